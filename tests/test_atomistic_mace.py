"""The MACE adapter (scirobust.atomistic.mace) on an 8-atom diamond-Si cell with a tiny MACE.

Most tests need mace-torch, which lives in its own environment (`make install-mace`, run by
`make test-mace`); the import-isolation and missing-install tests run everywhere.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest
import torch

pytest.importorskip("ase", reason="needs ase: pip install 'scirobust[atomistic]'")

from ase.build import bulk

from scirobust.atomistic import energy_and_forces, fit_potential
from scirobust.atomistic.mace import (
    MACE_INSTALL,
    MACEPotential,
    MACESettings,
    build_mace,
    load_mace_model,
    mace_scale_shift,
    save_mace_model,
)
from scirobust.atomistic.neighbors import build_pair_list, pair_vectors
from scirobust.errors import ConfigError

needs_mace = pytest.mark.skipif(find_spec("mace") is None, reason=MACE_INSTALL)
TINY = MACESettings(channels=4, max_ell=2, correlation=2, num_bessel=4, radial_mlp=(8, 8))


def _cell(seed: int = 0, n: int = 1) -> tuple[object, np.ndarray]:
    """Diamond Si (8 atoms, a = 5.43 Å) and ``n`` rattled copies (0.1 Å) of its positions."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    rng = np.random.default_rng(seed)
    return atoms, atoms.positions + 0.1 * rng.standard_normal((n, len(atoms), 3))


def _potential(atoms, seed: int = 0) -> MACEPotential:
    return MACEPotential.from_atoms(atoms, TINY, seed=seed)


def test_importing_atomistic_does_not_import_mace() -> None:
    code = ("import sys, scirobust.atomistic, scirobust.atomistic.mace; "
            "assert 'mace' not in sys.modules and 'e3nn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_mace_gives_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mace.modules", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "mace", None)
    with pytest.raises(ConfigError, match="make install-mace"):
        build_mace([14])


@needs_mace
def test_mace_energy_invariant_under_rotation_and_translation() -> None:
    atoms, pos = _cell()
    pot = _potential(atoms)
    x = torch.as_tensor(pos)
    energy = float(pot(x)[0])
    assert float(pot(x + torch.tensor([0.31, -0.27, 1.9], dtype=x.dtype))[0]) == pytest.approx(
        energy, abs=1e-10)
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))
    rot = q * np.sign(np.linalg.det(q))  # a proper rotation; cell and positions turn together
    turned = MACEPotential(pot.model, atoms.numbers, np.array(atoms.cell) @ rot.T)
    assert float(turned(torch.as_tensor(pos @ rot.T))[0]) == pytest.approx(energy, abs=1e-10)
    moved = x.clone()
    moved[0, 0, 0] += 0.2
    assert abs(float(pot(moved)[0]) - energy) > 1e-6  # not trivially constant


@needs_mace
def test_mace_forces_are_minus_the_energy_gradient() -> None:
    atoms, pos = _cell(seed=2)
    pot = _potential(atoms)
    _, forces = energy_and_forces(pot, torch.as_tensor(pos[0]))
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2)]:
        plus, minus = pos[0].copy(), pos[0].copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        numeric = -(float(pot(torch.as_tensor(plus))) - float(pot(torch.as_tensor(minus)))) / (
            2 * h)
        assert float(forces[atom, axis]) == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    assert float(forces.abs().max()) > 1e-4


@needs_mace
def test_mace_matches_its_own_neighbour_list() -> None:
    from mace import data as mace_data
    from mace.tools import AtomicNumberTable, torch_geometric

    atoms, pos = _cell(seed=3)
    pot = _potential(atoms)
    atoms.positions = pos[0]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # MACE's data pipeline uses the default dtype
    try:
        item = mace_data.AtomicData.from_config(mace_data.config_from_atoms(atoms),
                                                z_table=AtomicNumberTable([14]), cutoff=3.0)
        batch = next(iter(torch_geometric.dataloader.DataLoader([item], batch_size=1)))
        own = pot.model(batch.to_dict(), compute_force=True)
    finally:
        torch.set_default_dtype(previous)
    energy, forces = energy_and_forces(pot, torch.as_tensor(pos[0]))
    assert float(energy) == pytest.approx(float(own["energy"].detach()), abs=1e-10)
    np.testing.assert_allclose(forces.numpy(), own["forces"].detach().numpy(), atol=1e-10)


@needs_mace
def test_mace_force_loss_is_differentiable_in_the_positions() -> None:
    atoms, pos = _cell(seed=4)
    pot = _potential(atoms)
    x = torch.as_tensor(pos).requires_grad_(True)
    energy = pot(x)
    (grad,) = torch.autograd.grad(energy.sum(), x, create_graph=True)
    loss = ((-grad - 0.1) ** 2).sum()  # a force loss, as an attack on forces would use
    (second,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(second).all() and float(second.abs().max()) > 1e-6


def _labels(atoms, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A smooth pair potential (eV) as a stand-in reference: energies and forces."""
    pairs = build_pair_list(atoms.positions, np.array(atoms.cell), atoms.pbc, 3.0, 1.0)
    x = torch.as_tensor(positions).requires_grad_(True)
    r = pair_vectors(x, pairs, torch.as_tensor(np.array(atoms.cell))).norm(dim=-1)
    energy = (torch.where(r < 3.0, (r - 2.35) ** 2 * (3.0 - r) ** 2, 0 * r)).sum(-1) - 40.0
    (grad,) = torch.autograd.grad(energy.sum(), x)
    return energy.detach().numpy(), -grad.numpy()


@needs_mace
def test_mace_tiny_fit_lowers_the_loss() -> None:
    atoms, _ = _cell()
    rng = np.random.default_rng(5)  # rattles of 0.02-0.25 Å: a spread of energies to learn
    pos = atoms.positions + np.linspace(0.02, 0.25, 6)[:, None, None] * rng.standard_normal(
        (6, len(atoms), 3))
    energies, forces = _labels(atoms, pos)
    shift, scale = mace_scale_shift(energies, forces, len(atoms))
    assert shift == pytest.approx(energies.mean() / 8) and scale > 0.1
    pot = MACEPotential.from_atoms(atoms, TINY, energy_shift_ev=shift, energy_scale_ev=scale)

    def loss() -> float:
        e, f = energy_and_forces(pot, torch.as_tensor(pos))
        return float((((e.numpy() - energies) / 8) ** 2).mean()
                     + 0.1 * ((f.numpy() - forces) ** 2).mean())

    before = loss()
    log = fit_potential(pot, pos, energies, pos, energies, train_forces=forces,
                        force_weight=0.1, batch_size=3, learning_rate=1e-2, epochs=15)
    assert log.epochs == 15 and loss() < 0.5 * before


@needs_mace
def test_load_mace_model_round_trip_and_refuses_pickles(tmp_path) -> None:
    atoms, pos = _cell(seed=6)
    pot = MACEPotential.from_atoms(atoms, TINY, seed=3, energy_shift_ev=-5.0)
    x = torch.as_tensor(pos)
    expected = pot(x).detach()
    saved = save_mace_model(pot, tmp_path / "tiny.pt")
    again = MACEPotential.from_file(saved, atoms)
    torch.testing.assert_close(again(x).detach(), expected, rtol=0, atol=1e-12)
    pickled = tmp_path / "MACE_model.model"
    torch.save(pot.model, pickled)  # how MACE's training script saves its models
    with pytest.raises(ConfigError, match="trust_checkpoint=True"):
        load_mace_model(pickled)
    trusted = MACEPotential.from_file(pickled, atoms, trust_checkpoint=True)
    torch.testing.assert_close(trusted(x).detach(), expected, rtol=0, atol=1e-12)
