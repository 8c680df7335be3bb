"""Airfoil case: the exact Joukowski reference, the PINN pipeline, masks and the quick run."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from scirobust import Budget, attack, objectives
from scirobust.cases import CaseOptions, get_case
from scirobust.cases._joukowski import (
    ExactStream,
    JoukowskiPinn,
    StreamNet,
    circle_velocity,
    integrated_lift_coefficient,
    inverse_joukowski,
    kutta_joukowski_lift_coefficient,
    surface_points,
)
from scirobust.cases.airfoil import (
    AirfoilSettings,
    coordinate_mask,
    cp_error,
    measure_case,
    run_airfoil,
    surface_batch,
)
from scirobust.sweep import Sweep, stable_int

f64 = torch.float64


@pytest.mark.parametrize(
    ("alpha_deg", "mu"), [(4.0, -0.1 + 0.05j), (0.0, -0.08 + 0.0j), (7.0, -0.06 + 0.07j)]
)
def test_integrated_cp_gives_kutta_joukowski_lift(alpha_deg: float, mu: complex) -> None:
    alpha = math.radians(alpha_deg)
    assert integrated_lift_coefficient(alpha, mu) == pytest.approx(
        kutta_joukowski_lift_coefficient(alpha, mu), rel=1e-6, abs=1e-9)


def test_lift_of_reference_airfoil() -> None:
    # SCIENCE.md: C_l = 0.7889 for μ = −0.1 + 0.05i, α = 4° (chord from trailing to leading edge).
    assert kutta_joukowski_lift_coefficient(math.radians(4), -0.1 + 0.05j) == pytest.approx(
        0.7889, abs=1e-4)


def test_cylinder_limit() -> None:
    theta = torch.linspace(0, 2 * math.pi, 37, dtype=f64)
    expected = 1 - 4 * torch.sin(theta) ** 2
    zeta, _ = surface_points(theta, 0j)
    cp_circle = 1 - circle_velocity(zeta, 0.0, 0j).abs() ** 2
    assert torch.allclose(cp_circle, expected, atol=1e-13)


def test_inverse_map_returns_exterior_preimage() -> None:
    mu = -0.12 + 0.03j
    theta = torch.linspace(0.1, 6.1, 50, dtype=f64)
    zeta, z = surface_points(theta, mu)
    assert torch.allclose(inverse_joukowski(z, mu), zeta, atol=1e-12)
    far_zeta = mu + 3.0 * (zeta - mu)
    assert torch.allclose(inverse_joukowski(far_zeta + 1 / far_zeta, mu), far_zeta, atol=1e-12)


def test_exact_stream_reproduces_surface_cp() -> None:
    model = JoukowskiPinn(ExactStream())
    for case in AirfoilSettings().test_cases:
        inputs, ref = surface_batch(*case, 64)
        assert torch.allclose(model(inputs), ref, atol=1e-10)


def test_stream_net_derivatives_match_autograd() -> None:
    torch.manual_seed(0)
    net = StreamNet(AirfoilSettings(hidden=8, depth=2)).double()
    s = torch.rand(6, dtype=f64, requires_grad=True)
    theta = 6 * torch.rand(6, dtype=f64).requires_grad_(True)
    params = torch.tensor([[3.0, -0.1, 0.04]], dtype=f64).expand(6, 3)
    n, n_s, n_t, n_ss, n_tt = net.derivatives(s, theta, params, second=True)
    g_s, g_t = torch.autograd.grad(n.sum(), (s, theta), create_graph=True)
    assert torch.allclose(n_s, g_s) and torch.allclose(n_t, g_t)
    (g_ss,) = torch.autograd.grad(g_s.sum(), s, retain_graph=True)
    (g_tt,) = torch.autograd.grad(g_t.sum(), theta)
    assert torch.allclose(n_ss, g_ss) and torch.allclose(n_tt, g_tt)


@pytest.mark.parametrize("method", ["fgsm", "random_sign"])
def test_mask_leaves_parameter_inputs_bit_for_bit(method: str) -> None:
    torch.manual_seed(0)
    model = JoukowskiPinn(StreamNet(AirfoilSettings(hidden=8, depth=2)).double()).eval()
    inputs, ref = surface_batch(4.0, -0.1, 0.05, 40)
    budget = Budget(eps=0.03, relative=True, mask=coordinate_mask())
    gen = torch.Generator().manual_seed(0)
    moved = attack(model, inputs, objectives.mse(ref), budget, method=method, generator=gen)
    assert torch.equal(moved[:, 2:], inputs[:, 2:])
    # Spatial inputs move by exactly 3 % of their value (sign attacks use the whole budget).
    step = (moved[:, :2] - inputs[:, :2]).abs()
    assert torch.allclose(step, 0.03 * inputs[:, :2].abs(), rtol=1e-12, atol=1e-15)
    assert (step > 0).any()


def test_cp_error_is_relative_l2_of_the_surface_with_case_label() -> None:
    torch.manual_seed(0)
    cp, ref = torch.randn(50, 1, dtype=f64), torch.randn(50, 1, dtype=f64)
    metric = cp_error("case 3")
    (row,) = metric.reduce(metric.components(cp, ref).numpy())
    assert row.value == float(torch.linalg.vector_norm(cp - ref) / torch.linalg.vector_norm(ref))
    assert (row.metric, row.variable) == ("cp_relative_l2", "case 3") and row.stderr > 0


def test_exact_control_sees_the_same_random_draws() -> None:
    torch.manual_seed(0)
    settings = AirfoilSettings(hidden=8, depth=2, n_surface=30, n_random=3)
    model = JoukowskiPinn(StreamNet(settings).double()).eval()
    exact = JoukowskiPinn(ExactStream())
    case = settings.test_cases[0]
    records, ev = measure_case(model, exact, case, "case 1", settings, seed=0)
    assert {r.variable for r in records} == {"case 1"}
    assert ev["params_unchanged"] and 0 <= ev["fgsm_inside_body"] <= 30
    # Regenerate the sweep's random draws: both models' random rows come from the same points
    # (relative L2 of the squared errors averaged over draws).
    inputs, ref = surface_batch(*case, 30)
    budget = Budget(eps=settings.epsilon, relative=True, mask=coordinate_mask())
    sweep = Sweep(epsilons=[settings.epsilon], seed=stable_int(0, "airfoil", "case 1"))
    draws = [attack(model, inputs, None, budget, "random_sign",
                    generator=sweep.generator("random_sign", settings.epsilon, d))
             for d in range(3)]
    for name, net in (("pinn", model), ("exact_potential", exact)):
        with torch.no_grad():
            sq = torch.stack([((net(x) - ref) ** 2).sum() for x in draws]).mean()
        (row,) = [r for r in records if r.model == name and r.kind == "random"]
        assert row.value == pytest.approx(float((sq / (ref**2).sum()).sqrt()), rel=1e-12)


def test_quick_run_writes_results_figures_and_report(tmp_path) -> None:
    base = AirfoilSettings.quick()
    settings = dataclasses.replace(
        base, iterations=20, lbfgs_iterations=10, hidden=16, depth=2, n_interior=64,
        n_wall=32, n_far=16, n_kutta=8, n_surface=40, n_random=3,
        test_cases=base.test_cases[:2])
    out = run_airfoil(CaseOptions(output=tmp_path, quick=True, seed=0), settings)
    assert get_case("airfoil").name == "airfoil"
    assert out.report.exists()
    for name in ("results.csv", "results.json", "tables/airfoil_cp_relative_l2.csv",
                 "tables/airfoil_training.csv"):
        assert (tmp_path / name).exists(), name
    stems = {p.stem for p in (tmp_path / "figures" / "case").glob("*.png")}
    assert {"airfoil_1_cp_random", "airfoil_2_cp_fgsm", "airfoil_3_cp_error_bars"} <= stems
    res = out.results
    assert res.kinds() == {"clean": "clean", "random_sign": "random", "fgsm": "adversarial"}
    assert res.variables == ["case 1", "case 2"]
    rows = {r.kind: r.value for r in res.select(model="pinn", variable="case 1")}
    assert rows.keys() == {"clean", "random", "adversarial", "ratio"}
    assert rows["ratio"] == rows["adversarial"] / rows["random"]
    # Mean over the cases: variable "", n = number of cases.
    mean = res.select(model="pinn", variable="", kind="adversarial")
    assert [r.n for r in mean] == [2] and mean[0].value == pytest.approx(np.mean(
        [res.value(model="pinn", variable=v, kind="adversarial") for v in ("case 1", "case 2")]))
    assert len(res.select(model="exact_potential", variable="", kind="random")) == 1
    assert all(np.isfinite(r.value) for r in res.records)
    assert "bit for bit: yes" in " ".join(res.metadata["notes"])
    assert len(res.metadata["verdicts"]) == 2 and len(out.summary) == 3
    for verdict in res.metadata["verdicts"]:  # the index compares paper and ours
        assert verdict["paper"] and verdict["ours"].startswith("case 1: ")
