"""BKS in torch: forces and stress by autograd against finite differences, periodic images,
DSF Coulomb against the rock-salt Madelung constant, the α-quartz lattice."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ase")

import torch
from ase import Atoms

from scirobust.atomistic import (
    BKS,
    BKS_ORIGINAL,
    BKS_REFIT,
    TorchCalculator,
    alpha_cristobalite,
    energy_and_forces,
    relax,
)
from scirobust.atomistic.bks import COULOMB_EV_ANGSTROM, BKSParameters
from scirobust.errors import DataError


@pytest.fixture(scope="module")
def cell12():
    atoms = alpha_cristobalite((1, 1, 1))
    rng = np.random.default_rng(1)
    atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("params", [BKS_ORIGINAL, BKS_REFIT], ids=["original", "refit"])
def test_forces_are_minus_finite_difference_gradient(cell12, params):
    model = BKS.from_atoms(cell12, params)
    pos = torch.as_tensor(cell12.positions)
    _, forces = energy_and_forces(model, pos)
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2), (11, 0)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(float(model(plus)) - float(model(minus))) / (2 * h)
        assert forces[atom, axis].item() == pytest.approx(fd, rel=1e-6, abs=1e-6)


def test_stress_matches_finite_difference_of_strain(cell12):
    calc = TorchCalculator(BKS.from_atoms(cell12))
    atoms = cell12.copy()
    atoms.calc = calc
    stress = atoms.get_stress(voigt=False)
    h = 1e-6
    volume = atoms.get_volume()
    for a, b in [(0, 0), (2, 2), (0, 1)]:
        values = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[a, b] += sign * h
            strain[b, a] += sign * h if a != b else 0.0
            strained = cell12.copy()
            strained.set_cell(np.array(cell12.cell) @ strain, scale_atoms=True)
            strained.calc = TorchCalculator(BKS.from_atoms(strained))
            values.append(strained.get_potential_energy())
        factor = 2 * h * volume * (2 if a != b else 1)
        assert stress[a, b] == pytest.approx((values[0] - values[1]) / factor, rel=1e-5,
                                             abs=1e-8)


def test_periodic_image_invariance(cell12):
    model = BKS.from_atoms(cell12)
    pos = torch.as_tensor(cell12.positions)
    lattice = torch.as_tensor(np.array(cell12.cell))
    e0, f0 = energy_and_forces(model, pos)
    shifted_all = pos + lattice[0] - 2 * lattice[2]
    one = pos.clone()
    one[5] += lattice[1]
    batch = torch.stack([pos, shifted_all, one, pos + torch.tensor([0.3, -1.2, 2.0])])
    energies, forces = energy_and_forces(model, batch)
    assert torch.allclose(energies, e0.expand(4), rtol=0, atol=1e-9)
    assert torch.allclose(forces, f0.expand(4, -1, -1), rtol=0, atol=1e-9)


def test_batch_equals_single_and_cache_does_not_matter(cell12):
    model = BKS.from_atoms(cell12)
    rng = np.random.default_rng(2)
    batch = torch.as_tensor(cell12.positions[None] + rng.normal(0, 0.4, (5, 12, 3)))
    together = model(batch)
    fresh = [float(BKS.from_atoms(cell12)(p)) for p in batch]
    assert np.allclose(together.numpy(), fresh, rtol=0, atol=1e-9)


def test_dsf_coulomb_reproduces_rock_salt_madelung_constant():
    a = 5.64
    coulomb_only = BKSParameters("coulomb", {"Si": 1.0, "O": -1.0}, {}, {}, {}, {},
                                 alpha=0.3, cutoff=10.0)
    from ase.build import bulk

    rocksalt = bulk("NaCl", "rocksalt", a=a, cubic=True)
    rocksalt.numbers = np.where(rocksalt.numbers == 11, 14, 8)
    energy = float(BKS.from_atoms(rocksalt, coulomb_only)(torch.as_tensor(rocksalt.positions)))
    per_pair = energy / (len(rocksalt) / 2)
    madelung = -per_pair * (a / 2) / COULOMB_EV_ANGSTROM
    assert madelung == pytest.approx(1.747565, rel=5e-4)


def test_short_range_wall_prevents_collapse():
    dimer = Atoms("SiO", positions=[[0, 0, 0], [0, 0, 1.6]], cell=[30, 30, 30], pbc=False)
    model = BKS.from_atoms(dimer)

    def energy(r: float) -> float:
        return float(model(torch.tensor([[0.0, 0, 0], [0, 0, r]], dtype=torch.float64)))

    values = [energy(r) for r in (1.3, 1.1, 1.0, 0.9, 0.7)]
    assert all(np.diff(values) > 0)  # monotonically repulsive below ~1.3 Å


def test_alpha_quartz_lattice_close_to_published_bks():
    from ase.spacegroup import crystal

    quartz = crystal(["Si", "O"], basis=[(0.4697, 0, 1 / 3), (0.4135, 0.2669, 0.1191)],
                     spacegroup=152, cellpar=[4.916, 4.916, 5.405, 90, 90, 120])
    relaxed, info = relax(quartz.repeat((2, 2, 2)), TorchCalculator(BKS.from_atoms(
        quartz.repeat((2, 2, 2)))), fmax=1e-3)
    a, _, c = relaxed.cell.cellpar()[:3] / 2
    # van Beest et al. (1990): a = 4.941 Å, c = 5.449 Å for BKS α-quartz (Ewald sum)
    assert a == pytest.approx(4.941, rel=0.01)
    assert c == pytest.approx(5.449, rel=0.01)
    assert info["max_force_ev_per_angstrom"] < 1e-2


def test_unknown_element_and_wrong_shape_are_clear_errors(cell12):
    with pytest.raises(DataError, match="elements"):
        BKS(np.array([14, 29]), np.eye(3) * 10)
    model = BKS.from_atoms(cell12)
    with pytest.raises(DataError, match="shape"):
        model(torch.zeros(5, 3, dtype=torch.float64))


def test_cristobalite_has_96_atoms():
    atoms = alpha_cristobalite()
    assert len(atoms) == 96
    assert (atoms.numbers == 14).sum() == 32 and (atoms.numbers == 8).sum() == 64


def test_original_oo_pair_has_a_false_well_that_the_refit_lacks():
    # why adversarial distortions find a trap in the original BKS + borrowed wall (issue #17):
    # its O–O pair collapses below ~1.45 Å and the D/r²⁴ wall turns that into a ~22 eV well
    from scirobust.atomistic.bks import false_well_depth

    assert false_well_depth(BKS_ORIGINAL, ("O", "O")) > 20.0
    assert false_well_depth(BKS_REFIT, ("O", "O")) < 0.1
    assert false_well_depth(BKS_REFIT, ("Si", "Si")) == 0.0  # pure repulsion: no well at all
    with pytest.raises(DataError, match="r_min < r_max"):
        false_well_depth(BKS_REFIT, ("O", "O"), 1.5, 0.8)
    with pytest.raises(DataError, match="knows"):
        false_well_depth(BKS_REFIT, ("O", "Al"))
