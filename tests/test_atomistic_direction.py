"""Adversarial direction (paper 002, Eq. 3) and cos θ, for ASE calculators and torch models."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("ase")

import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from scirobust.atomistic import (
    BKS,
    BKS_REFIT,
    adversarial_direction,
    adversarial_direction_autograd,
    alpha_cristobalite,
    force_alignment,
)
from scirobust.atomistic.direction import cosine


def _copper(seed: int = 0, n: int = 1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        out.append(atoms)
    return out


def _lj():
    return LennardJones(sigma=2.33, epsilon=0.41, rc=6.0, smooth=True)


def test_import_scirobust_does_not_import_ase():
    code = ("import sys, scirobust; "
            "assert 'ase' not in sys.modules and 'scirobust.atomistic' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_direction_of_two_ase_calculators_matches_finite_differences():
    atoms = _copper()[0]
    direction = adversarial_direction(atoms, EMT(), _lj())
    assert direction.shape == (len(atoms), 3)

    def loss(positions):
        a = atoms.copy()
        a.positions = positions
        a.calc = EMT()
        e_app = a.get_potential_energy()
        a.calc = _lj()
        return (a.get_potential_energy() - e_app) ** 2

    h = 1e-5
    for atom, axis in [(0, 0), (5, 1), (11, 2)]:
        plus, minus = atoms.positions.copy(), atoms.positions.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = (loss(plus) - loss(minus)) / (2 * h)
        assert direction[atom, axis] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_direction_of_torch_models_matches_autograd_and_finite_differences():
    atoms = alpha_cristobalite((1, 1, 1))
    rng = np.random.default_rng(1)
    atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
    approx, accurate = BKS.from_atoms(atoms), BKS.from_atoms(atoms, BKS_REFIT)
    offset = -60.0  # the two models differ by a large constant; remove most of it
    direction = adversarial_direction(atoms, approx, accurate, energy_offset_ev=offset)
    pos = torch.as_tensor(atoms.positions)
    auto = adversarial_direction_autograd(pos, approx, accurate, offset).numpy()
    assert np.allclose(direction, auto, rtol=1e-10, atol=1e-8)

    def loss(p):
        with torch.no_grad():
            return (float(accurate(p)) - float(approx(p)) - offset) ** 2

    h = 1e-5
    for atom, axis in [(0, 2), (6, 0)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = (loss(plus) - loss(minus)) / (2 * h)
        assert direction[atom, axis] == pytest.approx(fd, rel=1e-5, abs=1e-5)


def test_identical_models_give_zero_direction_and_undefined_not_nan_cosine():
    configs = _copper(n=3)
    direction = adversarial_direction(configs, EMT(), EMT())
    assert direction.shape == (3, 16, 3) and not direction.any()
    result = force_alignment(configs, EMT(), EMT())
    assert (result.cos_theta == 0).all() and not result.defined.any()
    assert result.n_undefined == 3
    stats = result.stats()
    assert all(np.isfinite(v) for v in stats.values())
    assert "3 undefined" in result.summary() and "nan" not in result.summary().lower()


def test_three_line_comparison_of_two_ase_calculators():
    list_of_atoms = _copper(seed=2, n=4)
    result = force_alignment(list_of_atoms, approx=EMT(), accurate=_lj())
    assert result.cos_theta.shape == (4,) and result.defined.all()
    assert np.all(np.abs(result.cos_theta) <= 1)
    assert (result.energy_above_min_ev >= 0).all()
    binned = result.binned(bin_size=2)
    assert len(binned["mean_abs_cos"]) == 2
    assert "4 configurations" in result.summary()


def test_cosine_edge_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 10, 3))
    cos, defined = cosine(a, 2.5 * a)
    assert np.allclose(cos, 1) and defined.all()
    cos, _ = cosine(a, -a)
    assert np.allclose(cos, -1)
    zero = np.zeros_like(a)
    cos, defined = cosine(zero, a)
    assert (cos == 0).all() and not defined.any()


def test_energy_offsets_that_hide_or_zero_the_direction_are_flagged() -> None:
    from scirobust.atomistic import adversarial_direction
    from scirobust.errors import DataError

    one = _copper(0)
    with pytest.raises(DataError, match="needs several structures"):
        adversarial_direction(one, EMT(), _lj(), energy_offset_ev="mean")
    many = _copper(1, n=4)
    with pytest.warns(UserWarning, match="energy zeros probably differ"):
        adversarial_direction(many, EMT(), _lj())  # EMT and LJ have unrelated zeros
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        direction = adversarial_direction(many, EMT(), _lj(), energy_offset_ev="mean")
    assert np.abs(direction).max() > 0
