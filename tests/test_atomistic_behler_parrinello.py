"""Behler–Parrinello symmetry functions and network: analytic values, invariances, forces."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ase")

import torch
from ase import Atoms

from scirobust.atomistic import (
    BehlerParrinello,
    SymmetryFunctions,
    TorchCalculator,
    alpha_cristobalite,
    energy_and_forces,
    train_energy_model,
)


def _open(symbols: str, positions) -> Atoms:
    return Atoms(symbols, positions=positions, cell=[40, 40, 40], pbc=False)


def test_radial_function_of_a_dimer_is_analytic():
    sym = SymmetryFunctions(radial_etas=(0.5, 2.0), angular=(), radial_cutoff=4.0)
    dimer = _open("SiO", [[0, 0, 0], [0, 0, 1.7]])
    model = BehlerParrinello.from_atoms(dimer, symmetry=sym)
    g = model.descriptors(torch.as_tensor(dimer.positions)[None])[0]
    fc = 0.5 * (math.cos(math.pi * 1.7 / 4.0) + 1)
    # species order is sorted atomic numbers: O (8) first, then Si (14)
    si_sees_o = [math.exp(-0.5 * 1.7**2) * fc, math.exp(-2.0 * 1.7**2) * fc]
    assert torch.allclose(g[0, :2], torch.tensor(si_sees_o, dtype=torch.float64))
    assert torch.allclose(g[0, 2:], torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(g[1, 2:], torch.tensor(si_sees_o, dtype=torch.float64))


def test_angular_function_of_a_triangle_is_analytic():
    eta, lam, zeta, rc = 0.1, 1.0, 2.0, 5.0
    sym = SymmetryFunctions(radial_etas=(), angular=((eta, lam, zeta),), angular_cutoff=rc,
                            radial_cutoff=rc)
    pos = np.array([[0.0, 0, 0], [1.6, 0, 0], [-0.5, 1.5, 0]])
    tri = _open("SiOO", pos)
    model = BehlerParrinello.from_atoms(tri, symmetry=sym)
    g = model.descriptors(torch.as_tensor(pos)[None])[0]
    rij, rik = pos[1] - pos[0], pos[2] - pos[0]
    dij, dik, djk = np.linalg.norm(rij), np.linalg.norm(rik), np.linalg.norm(pos[2] - pos[1])
    cos = rij @ rik / (dij * dik)

    def fc(r):
        return 0.5 * (math.cos(math.pi * r / rc) + 1)

    expected = (2 ** (1 - zeta) * (1 + lam * cos) ** zeta
                * math.exp(-eta * (dij**2 + dik**2 + djk**2)) * fc(dij) * fc(dik) * fc(djk))
    # Si sees the pair (O, O): species-pair index 0 of (O-O, O-Si, Si-Si)
    assert g[0, 0].item() == pytest.approx(expected, rel=1e-12)
    assert g[0, 1].item() == 0 and g[0, 2].item() == 0


@pytest.fixture(scope="module")
def small_bp():
    atoms = alpha_cristobalite((1, 1, 1))
    model = BehlerParrinello.from_atoms(atoms, generator=torch.Generator().manual_seed(0))
    # give it non-trivial normalisation
    rng = np.random.default_rng(0)
    pos = atoms.positions[None] + rng.normal(0, 0.05, (8, 12, 3))
    feats = model.descriptors(torch.as_tensor(pos))
    model.fit_normalisation(feats, torch.linspace(-10, -9, 8, dtype=torch.float64))
    return atoms, model


def test_forces_are_minus_finite_difference_gradient(small_bp):
    atoms, model = small_bp
    rng = np.random.default_rng(3)
    pos = torch.as_tensor(atoms.positions + rng.normal(0, 0.05, atoms.positions.shape))
    _, forces = energy_and_forces(model, pos)
    h = 1e-5
    for atom, axis in [(0, 0), (4, 2), (9, 1)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        with torch.no_grad():
            fd = -(float(model(plus)) - float(model(minus))) / (2 * h)
        assert forces[atom, axis].item() == pytest.approx(fd, rel=1e-6, abs=1e-8)


@torch.no_grad()
def test_invariances(small_bp):
    atoms, model = small_bp
    pos = torch.as_tensor(atoms.positions)
    e0 = float(model(pos))
    lattice = torch.as_tensor(np.array(atoms.cell))
    one = pos.clone()
    one[2] += lattice[0] - lattice[1]
    assert float(model(one)) == pytest.approx(e0, abs=1e-9)
    assert float(model(pos + torch.tensor([0.7, -0.2, 3.1]))) == pytest.approx(e0, abs=1e-9)
    perm = pos.clone()
    oxygens = torch.nonzero(torch.as_tensor(atoms.numbers) == 8).flatten()
    perm[oxygens] = pos[oxygens.flip(0)]
    assert float(model(perm)) == pytest.approx(e0, abs=1e-9)


@torch.no_grad()
def test_rotation_invariance_of_an_open_cluster():
    rng = np.random.default_rng(4)
    pos = rng.normal(0, 1.5, (6, 3))
    cluster = _open("SiSiOOOO", pos)
    model = BehlerParrinello.from_atoms(cluster, generator=torch.Generator().manual_seed(1))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    e0 = float(model(torch.as_tensor(pos)))
    e1 = float(model(torch.as_tensor(pos @ q.T)))
    assert e1 == pytest.approx(e0, abs=1e-10)


def test_ase_calculator_and_training(small_bp):
    atoms, _ = small_bp
    model = BehlerParrinello.from_atoms(atoms, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(5)
    pos = atoms.positions[None] + rng.normal(0, 0.05, (40, 12, 3))
    target = -10 - ((pos - atoms.positions) ** 2).sum(axis=(1, 2))  # any smooth function
    log = train_energy_model(model, pos[:30], target[:30], pos[30:], target[30:], max_epochs=30)
    assert log.epochs == 30 and np.isfinite(log.final_val_rmse)
    assert log.val_rmse_mev_per_atom[-1] < log.val_rmse_mev_per_atom[0]
    assert all(p.grad is None for p in model.parameters())
    a = atoms.copy()
    a.calc = TorchCalculator(model)
    _, forces = energy_and_forces(model, torch.as_tensor(a.positions))
    assert np.allclose(a.get_forces(), forces.numpy())
    with torch.no_grad():
        energy = float(model(torch.as_tensor(a.positions)))
    assert a.get_potential_energy() == pytest.approx(energy)
