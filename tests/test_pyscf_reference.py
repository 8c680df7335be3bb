"""PySCF DFT reference: units, forces = -gradient, cache, parallel labelling, refusals.

Tiny molecules (H2, H2O) in minimal basis sets so that the file runs in well under a minute
on two cores; every calculator uses one thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyscf", reason="PySCF is needed for the DFT reference: pip install pyscf")

from ase import Atoms

from scirobust.atomistic.calculators import Configurations
from scirobust.atomistic.pyscf_reference import (
    PySCFCalculator,
    PySCFSettings,
    label_configurations,
)
from scirobust.errors import ConfigError, DataError

# CODATA values written out, independent of ase.units (which the module uses)
HARTREE_EV = 27.211386
BOHR_ANGSTROM = 0.52917721


def water(shift: float = 0.0) -> Atoms:
    """A slightly asymmetric water molecule (Å), so that no force vanishes by symmetry."""
    positions = np.array([[0.02, -0.03, 0.1273], [0.0, 0.7572, -0.4692], [0.01, -0.7572, -0.4892]])
    return Atoms("OH2", positions=positions + shift, pbc=False)


def hydrogen(bond_angstrom: float = 0.74) -> Atoms:
    return Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, bond_angstrom]], pbc=False)


def test_units_match_a_direct_pyscf_call() -> None:
    from pyscf import dft, gto

    atoms = water()
    calc = PySCFCalculator(xc="pbe", basis="sto-3g", threads=1)
    energy_ev, forces = calc.energy_and_forces(atoms)

    mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(),
                                                     atoms.positions, strict=True)],
                basis="sto-3g", unit="Angstrom", verbose=0)
    mf = dft.RKS(mol)
    mf.xc = "pbe"
    mf.conv_tol = 1e-9
    energy_ha = mf.kernel()
    grad = mf.nuc_grad_method()
    grad.grid_response = True
    gradient_ha_bohr = grad.kernel()

    assert energy_ev == pytest.approx(energy_ha * HARTREE_EV, rel=1e-7)
    np.testing.assert_allclose(forces, -gradient_ha_bohr * HARTREE_EV / BOHR_ANGSTROM,
                               rtol=1e-6, atol=1e-7)
    # the ASE protocol gives the same numbers
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(energy_ev, abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-10)


def test_forces_are_the_negative_finite_difference_gradient() -> None:
    # Central differences, step 1e-3 Å. Tolerance 1e-4 eV/Å: the O(h²) truncation and SCF noise
    # (conv_tol 1e-11 Ha) are ~2e-5 eV/Å here; forces without the grid response would be off by
    # ~4e-4 eV/Å, so this also checks that the grid response is included.
    calc = PySCFCalculator(basis="sto-3g", conv_tol=1e-11, threads=1)
    atoms = water()
    _, forces = calc.energy_and_forces(atoms)
    h = 1e-3
    numeric = np.zeros_like(forces)
    for i in range(len(atoms)):
        for j in range(3):
            energies = []
            for sign in (1.0, -1.0):
                displaced = atoms.copy()
                displaced.positions[i, j] += sign * h
                energies.append(calc.energy_and_forces(displaced)[0])
            numeric[i, j] = -(energies[0] - energies[1]) / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-4)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-6)  # no net force


def test_cache_hit_across_instances_and_miss_for_another_basis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = PySCFCalculator(basis="sto-3g", cache_dir=tmp_path, threads=1)
    e1, f1 = first.energy_and_forces(hydrogen())
    assert (first.cache_hits, first.cache_misses) == (0, 1)
    assert len(list(tmp_path.rglob("*.npz"))) == 1

    def no_scf(*args: object, **kwargs: object) -> None:
        raise AssertionError("SCF ran although the geometry is cached")

    second = PySCFCalculator(basis="sto-3g", cache_dir=tmp_path, threads=1)
    with monkeypatch.context() as patch:
        patch.setattr(second, "_compute", no_scf)
        e2, f2 = second.energy_and_forces(hydrogen())
        # the same instance again: in-memory hit
        second.energy_and_forces(hydrogen())
    assert (second.cache_hits, second.cache_misses) == (2, 0)
    assert e2 == e1
    np.testing.assert_array_equal(f2, f1)

    other_basis = PySCFCalculator(basis="6-31g", cache_dir=tmp_path, threads=1)
    e3, _ = other_basis.energy_and_forces(hydrogen())
    assert (other_basis.cache_hits, other_basis.cache_misses) == (0, 1)
    assert e3 != pytest.approx(e1, abs=1e-3)
    # a different geometry is a miss too
    first.energy_and_forces(hydrogen(0.75))
    assert first.cache_misses == 2
    assert len(list(tmp_path.rglob("*.npz"))) == 3


def test_corrupt_cache_file_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    calc = PySCFCalculator(basis="sto-3g", cache_dir=tmp_path, threads=1)
    energy, forces = calc.energy_and_forces(hydrogen())
    (path,) = tmp_path.rglob("*.npz")
    path.write_bytes(b"not an npz file")

    fresh = PySCFCalculator(basis="sto-3g", cache_dir=tmp_path, threads=1)
    with pytest.warns(RuntimeWarning, match="recomputing"):
        energy2, forces2 = fresh.energy_and_forces(hydrogen())
    assert (fresh.cache_hits, fresh.cache_misses) == (0, 1)
    assert energy2 == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(forces2, forces, atol=1e-6)
    # the entry was rewritten and is good again
    again = PySCFCalculator(basis="sto-3g", cache_dir=tmp_path, threads=1)
    again.energy_and_forces(hydrogen())
    assert again.cache_hits == 1


def test_parallel_labelling_equals_serial_and_uses_the_cache(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = water()
    positions = base.positions + 0.05 * rng.standard_normal((4, 3, 3))
    positions = np.concatenate([positions, positions[1:2]])  # a repeat within the batch
    configs = Configurations(base, positions)
    settings = {"basis": "sto-3g", "threads": 1}

    calls: list[tuple[int, int]] = []
    serial = label_configurations(configs, settings, processes=1,
                                  progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (5, 5)
    assert (serial.computed, serial.cache_hits) == (4, 1)

    cached = {**settings, "cache_dir": tmp_path}
    parallel = label_configurations(configs.to_atoms_list(), cached, processes=2)
    assert parallel.processes == 2 and parallel.computed == 4
    energies, forces = parallel  # unpacks like a tuple
    assert energies.shape == (5,) and forces.shape == (5, 3, 3)
    np.testing.assert_allclose(energies, serial.energies_ev, rtol=0, atol=1e-8)
    np.testing.assert_allclose(forces, serial.forces_ev_per_angstrom, rtol=0, atol=1e-8)
    assert energies[4] == energies[1]

    # everything is cached now: no SCF, no worker process
    calc = PySCFCalculator(settings=PySCFSettings(basis="sto-3g", cache_dir=tmp_path))
    again = label_configurations(configs, calc, processes=2)
    assert again.computed == 0 and calc.cache_hits == 5 and calc.cache_misses == 0
    np.testing.assert_array_equal(again.energies_ev, energies)


def test_periodic_atoms_are_refused() -> None:
    atoms = hydrogen()
    atoms.cell = [5.0, 5.0, 5.0]
    atoms.pbc = True
    calc = PySCFCalculator(basis="sto-3g", threads=1)
    with pytest.raises(DataError, match=r"pbc=False.*periodic code"):
        calc.energy_and_forces(atoms)
    atoms.calc = calc
    with pytest.raises(DataError, match="periodic"):
        atoms.get_potential_energy()
    with pytest.raises(DataError, match="pbc=False"):
        label_configurations([atoms], calc, processes=1)


def test_non_converged_scf_is_refused_with_the_index() -> None:
    calc = PySCFCalculator(basis="sto-3g", max_cycle=1, threads=1)
    with pytest.raises(DataError, match=r"did not converge.*initial guess.*conv_tol"):
        calc.energy_and_forces(water())
    with pytest.raises(DataError, match="configuration 0 of 1"):
        label_configurations([water()], calc, processes=1)


def test_open_shell_uses_uks_and_inconsistent_spin_is_refused() -> None:
    h_atom = Atoms("H", positions=[[0.0, 0.0, 0.0]])
    energy, forces = PySCFCalculator(basis="sto-3g", spin=1, threads=1).energy_and_forces(h_atom)
    assert -15.0 < energy < -10.0  # about -0.46 Ha
    np.testing.assert_allclose(forces, 0.0, atol=1e-8)
    with pytest.raises(DataError, match="spin"):
        PySCFCalculator(basis="sto-3g", spin=0, threads=1).energy_and_forces(h_atom)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"conv_tol": -1.0}, "conv_tol"), ({"spin": -2}, "spin"), ({"xc": "no-such-xc"}, "xc"),
     ({"threads": 0}, "threads")],
)
def test_invalid_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PySCFCalculator(**kwargs)  # type: ignore[arg-type]
