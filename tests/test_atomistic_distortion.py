"""Distortions of exact norm, the distortion sweep, and the core attack/audit on atoms."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ase")

import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from hypothesis import given, settings
from hypothesis import strategies as st

from scirobust.atomistic import (
    ADVERSARIAL_FORCE,
    BKS,
    BKS_REFIT,
    Configurations,
    adversarial_direction,
    alpha_cristobalite,
    audit_coordinates,
    coordinate_attack,
    distort,
    distortion_sweep,
    force_alignment,
    random_displacements,
)
from scirobust.atomistic.distortion import alignment_records
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.results import Results
from scirobust.sweep import Sweep

METRIC = "energy_error_mev_per_atom"


@settings(max_examples=30, deadline=None)
@given(eps=st.floats(0, 3), seed=st.integers(0, 10_000), n_atoms=st.integers(1, 40))
def test_distortion_norms_are_exact(eps, seed, n_atoms):
    rng = np.random.default_rng(seed)
    positions = rng.normal(size=(3, n_atoms, 3))
    directions = rng.normal(size=(3, n_atoms, 3)) * rng.uniform(1e-6, 1e6)
    moved = distort(positions, directions, eps)
    norms = np.linalg.norm((moved - positions).reshape(3, -1), axis=1)
    assert np.allclose(norms, eps, rtol=1e-12, atol=1e-12)


def test_zero_direction_does_not_move():
    positions = np.ones((2, 4, 3))
    directions = np.zeros((2, 4, 3))
    directions[1, 0, 0] = 3.0
    moved = distort(positions, directions, 0.5)
    assert np.array_equal(moved[0], positions[0])
    assert moved[1, 0, 0] == pytest.approx(1.5)


def test_random_displacements_have_the_requested_norms():
    positions, norms = random_displacements(np.zeros((96, 3)), 50, np.random.default_rng(0))
    actual = np.linalg.norm(positions.reshape(50, -1), axis=1)
    assert np.allclose(actual, norms, atol=1e-12)
    assert (norms >= 0).all() and (norms <= 1).all()


def _copper_configs(n: int = 3) -> Configurations:
    rng = np.random.default_rng(1)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    return Configurations(atoms, atoms.positions[None] + rng.normal(0, 0.05, (n, 16, 3)))


def test_distortion_sweep_with_ase_calculators():
    configs = _copper_configs()
    lj = LennardJones(sigma=2.33, epsilon=0.41, rc=6.0, smooth=True)
    sweep = distortion_sweep(configs, EMT(), lj, epsilons=[0.0, 0.2], n_random=2, seed=1,
                             energy_offset_ev="mean")
    rows = sweep.table()
    assert rows[0]["random_mev_per_atom"] == rows[0]["adversarial_mev_per_atom"]
    assert sweep.random["random_gaussian"][1].shape == (2, 3)
    records = Results(sweep.to_records("demo", "EMT"))
    assert records.kinds() == {"clean": "clean", "random_gaussian": "random",
                               ADVERSARIAL_FORCE: "adversarial"}
    assert set(records.metrics) == {"energy_error_mev_per_atom",
                                    "median_abs_energy_error_mev_per_atom"}
    ratios = records.select(kind="ratio")
    assert [(r.attack, r.epsilon, r.baseline, r.metric) for r in ratios] == [
        (ADVERSARIAL_FORCE, e, "random_gaussian", "energy_error_mev_per_atom") for e in (0, 0.2)]
    assert ratios[1].value == pytest.approx(rows[1]["ratio"])
    # the adversarial direction raises the squared error to first order
    assert rows[1]["adversarial_mev_per_atom"] > rows[0]["adversarial_mev_per_atom"]


def test_distortion_sweep_refuses_what_it_cannot_measure(bks_pair):
    configs, approx, accurate = bks_pair
    with pytest.raises(ConfigError, match="random controls only"):
        distortion_sweep(configs, approx, accurate, epsilons=[0.1], attacks=["fgsm"])
    with pytest.raises(ConfigError, match="norm='l2'"):
        distortion_sweep(configs, approx, accurate, Sweep(epsilons=[0.1],
                                                          attacks=["random_gaussian"]))
    with pytest.raises(ConfigError, match="not both"):
        distortion_sweep(configs, approx, accurate, Sweep(epsilons=[0.1]), n_random=2)


@pytest.fixture(scope="module")
def bks_pair():
    atoms = alpha_cristobalite((1, 1, 1))
    rng = np.random.default_rng(2)
    configs = Configurations(atoms, atoms.positions[None] + rng.normal(0, 0.05, (4, 12, 3)))
    return configs, BKS.from_atoms(atoms), BKS.from_atoms(atoms, BKS_REFIT)


def test_core_l2_fgsm_is_the_papers_distortion(bks_pair):
    """One function and one test: the core attack on coordinates gives R + ε A/|A|."""
    configs, approx, accurate = bks_pair
    offset = -60.0
    moved = coordinate_attack(configs, approx, accurate, 0.3, norm="l2",
                              energy_offset_ev=offset)
    direction = adversarial_direction(configs, approx, accurate, energy_offset_ev=offset)
    expected = distort(configs.positions, direction, 0.3)
    assert np.allclose(moved, expected, atol=1e-10)


def test_core_linf_fgsm_moves_every_coordinate_along_the_sign_of_a(bks_pair):
    configs, approx, accurate = bks_pair
    moved = coordinate_attack(configs, approx, accurate, 0.01, norm="linf",
                              energy_offset_ev=-60.0)
    delta = moved - configs.positions
    direction = adversarial_direction(configs, approx, accurate, energy_offset_ev=-60.0)
    assert np.allclose(np.abs(delta), 0.01)
    assert (np.sign(delta) == np.sign(direction)).all()


def test_audit_coordinates_gives_standard_records(bks_pair):
    configs, approx, accurate = bks_pair
    results = audit_coordinates(configs, approx, accurate, epsilons=[0.1, 0.3], n_random=2,
                                energy_offset_ev=-60.0, case="demo", model_name="BKS")
    assert results.kinds() == {"clean": "clean", "random_sign": "random",
                               "fgsm_sign": "adversarial"}
    assert set(results.metrics) == {"energy_error_mev_per_atom"}
    assert len(results.select(kind="ratio", baseline="random_sign")) == 2
    fgsm = results.value(attack="fgsm_sign", epsilon=0.3, kind="adversarial")
    rand = results.value(attack="random_sign", epsilon=0.3, kind="random")
    assert fgsm > rand
    assert "L2" in results.metadata["epsilon_units"]
    assert torch.is_grad_enabled()


def test_distortion_sweep_is_the_engines_l2_sweep(bks_pair):
    """Along A = L2 FGSM of `audit`, and the random control draws exactly what `audit` draws
    for the same cell (one draw: both reduce to the same RMSE)."""
    configs, approx, accurate = bks_pair
    sweep = Sweep(epsilons=[0.2], attacks=["random_gaussian"], budget=Budget(norm="l2"),
                  n_random=1, seed=3, batch_size=8)
    ours = Results(distortion_sweep(configs, approx, accurate, sweep,
                                    energy_offset_ev=-60.0).to_records("demo", "BKS"))
    engine = audit_coordinates(configs, approx, accurate, sweep.replace(
        attacks=["random_gaussian", "fgsm"], metrics=["rmse"]), energy_offset_ev=-60.0,
        case="demo", model_name="BKS")
    for mine, theirs, kind in ((ADVERSARIAL_FORCE, "fgsm", "adversarial"),
                               ("random_gaussian", "random_gaussian", "random")):
        assert ours.value(attack=mine, epsilon=0.2, kind=kind, metric=METRIC) == pytest.approx(
            engine.value(attack=theirs, epsilon=0.2, kind=kind), rel=1e-9)


def test_alignment_records_of_any_pair(bks_pair):
    configs, approx, accurate = bks_pair
    alignment = force_alignment(configs, approx, accurate, energy_offset_ev="mean")
    stats = alignment.stats()
    records = Results(alignment_records("demo", "BKS", alignment))
    assert records.kinds() == {"clean": "clean", "random_direction": "random"}
    mean = records.select(attack="clean", metric="mean_abs_cos_theta")[0]
    cos = np.abs(alignment.cos_theta[alignment.defined])
    assert mean.value == stats["mean_abs_cos"] and mean.n == stats["n"] == 4
    assert mean.stderr == pytest.approx(cos.std(ddof=1) / np.sqrt(cos.size))
    assert records.value(attack="clean", metric="fraction_cos_theta_positive") == stats[
        "fraction_positive"]
    assert records.value(attack="clean", metric="fraction_abs_cos_theta_above_0.5") == stats[
        "fraction_abs_cos_above_0.5"]
    control = records.value(attack="random_direction", kind="random")
    assert control == pytest.approx(np.sqrt(2 / (np.pi * 3 * configs.n_atoms)))
    assert all(r.step is None and r.epsilon == 0 for r in records)
    bare = alignment_records("demo", "BKS", alignment, stderr=False)
    assert np.isnan(bare[0].stderr) and bare[0].value == mean.value


def test_participation_counts_the_atoms_a_distortion_moves():
    from scirobust.atomistic.distortion import participation

    d = np.zeros((3, 4, 3))
    d[0] = 1.0  # every atom alike
    d[1, 2] = (0.0, 3.0, 4.0)  # one atom carries it all
    atoms, share = participation(d)  # d[2] stays zero
    np.testing.assert_allclose(atoms, [4.0, 1.0, 0.0])
    np.testing.assert_allclose(share, [0.5, 1.0, 0.0])
    # under a total L2 norm ε the largest atom moves by exactly share·ε
    moved = distort(np.zeros_like(d), d, 0.3)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=-1).max(axis=1), 0.3 * share)
    with pytest.raises(DataError, match=r"\(M, N, 3\)"):
        participation(np.zeros((4, 3)))
