"""One velocity-Verlet step and the relaxation error with the approximate forces."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ase")

from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.md.verlet import VelocityVerlet

from scirobust.atomistic import (
    BKS,
    BKS_REFIT,
    Configurations,
    alpha_cristobalite,
    newton_step,
    relaxation_error,
)


def _configs(n: int = 2) -> Configurations:
    rng = np.random.default_rng(0)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    return Configurations(atoms, atoms.positions[None] + rng.normal(0, 0.08, (n, 16, 3)))


def _lj():
    return LennardJones(sigma=2.33, epsilon=0.41, rc=6.0, smooth=True)


def test_newton_step_matches_ase_velocity_verlet():
    configs = _configs()
    rng = np.random.default_rng(1)
    velocities = rng.normal(0, 0.01, (2, 16, 3))
    step = newton_step(configs, EMT(), _lj(), dt_fs=1.0, velocities=velocities,
                       complete_velocities=True)
    for k in range(2):
        atoms = configs.atoms(k)
        atoms.calc = EMT()
        atoms.set_velocities(velocities[k])
        VelocityVerlet(atoms, timestep=1.0 * units.fs).run(1)
        assert np.allclose(step.positions_after[k], atoms.positions, atol=1e-12)
        assert np.allclose(step.velocities_after[k], atoms.get_velocities(), atol=1e-12)


def test_newton_step_from_rest_moves_by_half_f_over_m_dt_squared():
    configs = _configs(1)
    step = newton_step(configs, EMT(), _lj())
    atoms = configs.atoms(0)
    atoms.calc = EMT()
    expected = 0.5 * atoms.get_forces() / atoms.get_masses()[:, None] * units.fs**2
    assert np.allclose(step.positions_after[0] - configs.positions[0], expected)
    assert step.error_before_mev_per_atom.shape == (1,)
    assert np.isfinite(step.relative_change_percent).all()


def test_relaxation_error_gradient_descent_and_fire():
    atoms = alpha_cristobalite((1, 1, 1))
    rng = np.random.default_rng(2)
    configs = Configurations(atoms, atoms.positions[None] + rng.normal(0, 0.05, (3, 12, 3)))
    approx, accurate = BKS.from_atoms(atoms), BKS.from_atoms(atoms, BKS_REFIT)
    trace = relaxation_error(configs, approx, accurate, n_steps=4, energy_offset_ev="mean")
    assert trace.errors_mev_per_atom.shape == (5, 3)
    assert trace.rmse_mev_per_atom.shape == (5,)
    # gradient descent with the approximate forces lowers the approximate energy
    assert (np.diff(trace.energy_app_ev, axis=0) < 0).all()
    fire = relaxation_error(configs.subset([0]), approx, accurate, n_steps=3, method="fire")
    assert fire.errors_mev_per_atom.shape == (4, 1)
    same = relaxation_error(configs, approx, approx, n_steps=2)
    assert np.allclose(same.errors_mev_per_atom, 0)


def test_bad_arguments_are_clear_errors():
    from scirobust.errors import DataError

    with pytest.raises(DataError, match="dt_fs"):
        newton_step(_configs(), EMT(), _lj(), dt_fs=0)
    with pytest.raises(DataError, match="method"):
        relaxation_error(_configs(), EMT(), _lj(), method="newton")
