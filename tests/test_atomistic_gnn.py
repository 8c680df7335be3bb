"""Paper 002's displacement GNN and the generic potential trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ase", reason="needs ase: pip install 'scirobust[atomistic]'")

from ase.build import bulk
from ase.calculators.lj import LennardJones

from scirobust.atomistic.calculators import TorchEvaluator
from scirobust.atomistic.gnn import DisplacementGNN
from scirobust.atomistic.training import fit_potential, random_rotations


def _silicon(n: int, seed: int, amplitude: float = 0.08):
    """Rattled 8-atom diamond Si cells labelled by a Lennard-Jones stand-in (eV, eV/Å)."""
    rng = np.random.default_rng(seed)
    base = bulk("Si", "diamond", a=5.43, cubic=True)
    calc = LennardJones(sigma=2.1, epsilon=1.0, rc=4.5, smooth=True)
    pos, energies, forces = [], [], []
    for _ in range(n):
        atoms = base.copy()
        atoms.positions += amplitude * rng.standard_normal(atoms.positions.shape)
        atoms.calc = calc
        pos.append(atoms.positions.copy())
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    return base, np.stack(pos), np.array(energies), np.stack(forces)


def test_forces_are_gradients_and_energy_is_smooth_and_translation_invariant() -> None:
    base, pos, _, _ = _silicon(2, 0)
    model = DisplacementGNN.from_atoms(base, width=16, hidden=(16, 16),
                                       activation=torch.nn.SiLU)
    energies, forces = TorchEvaluator(model).energies_and_forces(pos)
    h = 1e-5
    for atom, axis in ((0, 0), (5, 2)):
        plus, minus = pos[:1].copy(), pos[:1].copy()
        plus[0, atom, axis] += h
        minus[0, atom, axis] -= h
        e = TorchEvaluator(model).energies(np.concatenate([plus, minus]))
        assert forces[0, atom, axis] == pytest.approx(-(e[0] - e[1]) / (2 * h), rel=1e-5,
                                                      abs=1e-8)
    shifted = TorchEvaluator(model).energies(pos + np.array([0.3, -0.2, 0.1]))
    assert np.allclose(shifted, energies, atol=1e-9)
    # nearest neighbours sit at 2.35 Å, second neighbours at 3.84 Å: stretch one bond through
    # the 3 Å cut-off and the energy changes continuously
    line = []
    for d in np.linspace(2.95, 3.05, 21):
        p = base.positions.copy()
        p[1] = p[0] + d * (p[1] - p[0]) / np.linalg.norm(p[1] - p[0])
        line.append(p)
    e_line = TorchEvaluator(model).energies(np.stack(line))
    assert np.abs(np.diff(e_line)).max() < 0.05 * np.abs(e_line).max()


def test_rotations_are_orthogonal_with_flips() -> None:
    rot = random_rotations(64, torch.Generator().manual_seed(0))
    eye = torch.eye(3, dtype=rot.dtype).expand(64, 3, 3)
    assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-12)
    det = torch.linalg.det(rot)
    assert torch.allclose(det.abs(), torch.ones(64, dtype=rot.dtype))
    assert (det < 0).any() and (det > 0).any()


def test_fit_potential_learns_energies_and_forces() -> None:
    base, pos, energies, forces = _silicon(96, 1)
    train, val = slice(0, 80), slice(80, 96)
    kwargs = {"width": 24, "hidden": (24, 24), "activation": torch.nn.SiLU, "seed": 0}
    untrained = DisplacementGNN.from_atoms(base, **kwargs)
    e0 = TorchEvaluator(untrained).energies(pos[val])
    rmse0 = np.sqrt((((e0 - energies[val]) / 8) ** 2).mean()) * 1000
    models = {}
    for name, weight in (("energy", 0.0), ("energy+forces", 1.0)):
        model = DisplacementGNN.from_atoms(base, **kwargs)
        log = fit_potential(model, pos[train], energies[train], pos[val], energies[val],
                            train_forces=forces[train], force_weight=weight, epochs=40,
                            batch_size=16, learning_rate=3e-3, augment_rotations=True)
        assert log.final_val_rmse < rmse0
        assert model.rotations is None  # augmentation never leaks into evaluation
        models[name] = model
    f_err = {name: np.sqrt(((TorchEvaluator(m).energies_and_forces(pos[val])[1]
                              - forces[val]) ** 2).mean()) for name, m in models.items()}
    assert f_err["energy+forces"] < f_err["energy"]


def test_adversarial_samples_reduce_error_on_held_out_adversarial_configurations() -> None:
    """Issue #16 item 5 on a tiny set. Measured (seeds 0 and 1, steps 0.1 and 0.2 Å): RMSE on
    held-out configurations stepped along A of the first model fell from 339 → 308/334 and
    931 → 825/767 meV/atom with 20 adversarial samples, and stayed at 338/927 with 20 random
    ones. Asserted for step 0.2 Å, seed 0."""
    from scirobust.atomistic import Configurations
    from scirobust.atomistic.sampling import adversarial_samples

    base, pos, energies, _ = _silicon(120, 3)
    calc = LennardJones(sigma=2.1, epsilon=1.0, rc=4.5, smooth=True)
    train, val, test = slice(0, 60), slice(60, 80), slice(80, 120)

    def fit(x: np.ndarray, y: np.ndarray) -> DisplacementGNN:
        model = DisplacementGNN.from_atoms(base, width=24, hidden=(24, 24),
                                           activation=torch.nn.SiLU, seed=0)
        fit_potential(model, x, y, pos[val], energies[val], epochs=60, batch_size=8,
                      learning_rate=3e-3, seed=0)
        return model.eval()

    first = fit(pos[train], energies[train])
    held = adversarial_samples(Configurations(base, pos[test]), first, calc,
                               step_angstrom=0.2, along="adversarial")
    held_x = np.stack([a.positions for a in held])
    held_y = np.array([a.get_potential_energy() for a in held])

    def rmse(model: DisplacementGNN) -> float:
        pred = TorchEvaluator(model).energies(held_x)
        return float(np.sqrt((((pred - held_y) / 8) ** 2).mean()) * 1000)

    errors = {"none": rmse(first)}
    for along in ("adversarial", "random"):
        new = adversarial_samples(Configurations(base, pos[train][:20]), first, calc,
                                  step_angstrom=0.2, along=along, seed=1)
        x = np.concatenate([pos[train], [a.positions for a in new]])
        y = np.concatenate([energies[train], [a.get_potential_energy() for a in new]])
        errors[along] = rmse(fit(x, y))
    assert errors["adversarial"] < 0.95 * errors["none"]
    assert errors["adversarial"] < errors["random"]
