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
    force_alignment,
    newton_step,
    relaxation_error,
)
from scirobust.results import Results


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


def test_newton_step_records_and_sign_agreement():
    configs = _configs(4)
    approx, accurate = EMT(), _lj()
    step = newton_step(configs, approx, accurate, dt_fs=2.0, energy_offset_ev="mean")
    alignment = force_alignment(configs, approx, accurate, energy_offset_ev="mean")
    moved = np.linalg.norm((step.positions_after - configs.positions).reshape(4, -1), axis=1)
    assert step.mean_displacement_angstrom == pytest.approx(moved.mean())
    agree = step.sign_agreement(alignment)
    cos, change = alignment.cos_theta, step.relative_change_percent
    assert agree["n_up"] == int((cos > 0).sum()) and agree["n_down"] == int((cos < 0).sum())
    if agree["n_up"]:
        assert agree["frac_up_pos"] == pytest.approx(float((change[cos > 0] > 0).mean()))
    records = Results(step.to_records("demo", "EMT", alignment))
    assert {r.attack for r in records} == {"newton_step_2fs"}
    assert {r.kind for r in records} == {"adversarial"}
    assert {r.epsilon for r in records} == {step.mean_displacement_angstrom}
    rmse = records.value(metric="energy_error_after_2fs_step_mev_per_atom")
    assert rmse == pytest.approx(np.sqrt(np.mean(step.error_after_mev_per_atom ** 2)))
    np.testing.assert_equal([records.value(metric="fraction_error_up_if_cos_positive"),
                             records.value(metric="fraction_error_down_if_cos_negative")],
                            [agree["frac_up_pos"], agree["frac_down_neg"]])
    assert len(step.to_records("demo", "EMT")) == 1


def test_relaxation_trace_records_have_the_step_in_step():
    atoms = alpha_cristobalite((1, 1, 1))
    rng = np.random.default_rng(3)
    configs = Configurations(atoms, atoms.positions[None] + rng.normal(0, 0.05, (2, 12, 3)))
    trace = relaxation_error(configs, BKS.from_atoms(atoms), BKS.from_atoms(atoms, BKS_REFIT),
                             n_steps=3, energy_offset_ev="mean")
    records = trace.to_records("demo", "BKS")
    assert [r.step for r in records] == [0, 1, 2, 3]
    assert {(r.attack, r.metric, r.kind, r.epsilon, r.n) for r in records} == {
        ("gradient_descent", "energy_error_mev_per_atom_vs_gd_step", "adversarial", 0.0, 2)}
    assert [r.value for r in records] == list(trace.rmse_mev_per_atom)
    assert [r.metric for r in trace.to_records("demo", "BKS", "rmse")] == ["rmse"] * 4


def test_bad_arguments_are_clear_errors():
    from scirobust.errors import DataError

    with pytest.raises(DataError, match="dt_fs"):
        newton_step(_configs(), EMT(), _lj(), dt_fs=0)
    with pytest.raises(DataError, match="method"):
        relaxation_error(_configs(), EMT(), _lj(), method="newton")
