"""Airfoil case: the exact Joukowski reference, the PINN pipeline, masks and the quick run."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from scirobust import Budget, attack, objectives
from scirobust.cases import CaseOptions, get_case
from scirobust.cases._airfoil_mach import (
    INPUTS_MACH,
    MachPinn,
    critical_mach,
    critical_pressure_coefficient,
    exponent,
    inverse_karman_trefftz,
    karman_trefftz,
    karman_trefftz_derivative,
    karman_tsien,
    mach_surface_batch,
    prandtl_glauert,
)
from scirobust.cases._joukowski import (
    ExactStream,
    JoukowskiPinn,
    StreamNet,
    circle_velocity,
    integrated_lift_coefficient,
    inverse_joukowski,
    kutta_joukowski_lift_coefficient,
    surface_angles,
    surface_points,
)
from scirobust.cases.airfoil import (
    AirfoilSettings,
    coordinate_mask,
    cp_error,
    measure_case,
    measure_mach_case,
    run_airfoil,
    surface_batch,
)
from scirobust.errors import ConfigError
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


def test_compressibility_corrections_match_hand_values() -> None:
    cp0 = torch.tensor([-1.0, -0.5, 0.3], dtype=f64)
    # Prandtl–Glauert at M = 0.6: √(1 − 0.36) = 0.8.
    assert torch.allclose(prandtl_glauert(cp0, 0.6), cp0 / 0.8, rtol=1e-15)
    # Kármán–Tsien at M = 0.5, Cp₀ = −1: −1 / (0.8660254 − 0.25/1.8660254 · 0.5) = −1.2515048.
    kt = karman_tsien(cp0, 0.5)
    assert float(kt[0]) == pytest.approx(-1.2515048, abs=1e-7)
    assert float(kt[2]) == pytest.approx(0.3385540, abs=1e-7)
    # Suction is amplified more than Prandtl–Glauert, pressure less; M = 0 is incompressible.
    pg = prandtl_glauert(cp0, 0.5)
    assert kt[0] < pg[0] and 0 < kt[2] < pg[2]
    assert torch.equal(karman_tsien(cp0, 0.0), cp0)
    # Sonic Cp* at M = 0.5 (textbook −2.13); the critical Mach inverts it through Kármán–Tsien.
    assert critical_pressure_coefficient(0.5) == pytest.approx(-2.1334, abs=1e-4)
    assert critical_pressure_coefficient(0.0) == -math.inf  # incompressible: never sonic
    m_crit = critical_mach(-1.0)
    assert float(karman_tsien(torch.tensor(-1.0, dtype=f64), m_crit)) == pytest.approx(
        critical_pressure_coefficient(m_crit), abs=1e-8)
    with pytest.raises(ConfigError, match="Mach"):
        karman_tsien(cp0, 1.0)


def test_karman_trefftz_with_zero_trailing_edge_angle_is_joukowski() -> None:
    mu = -0.1 + 0.05j
    zeta, z = surface_points(surface_angles(mu, 64), mu)
    assert float(exponent(0.0)) == 2.0
    assert torch.allclose(karman_trefftz(zeta, mu, 2.0), z, atol=1e-14)
    assert torch.allclose(karman_trefftz_derivative(zeta, mu, 2.0), 1 - 1 / zeta**2, atol=1e-14)
    far = mu + 2.5 * (zeta - mu)
    assert torch.allclose(inverse_karman_trefftz(far + 1 / far, mu, 2.0), far, atol=1e-13)
    # The whole model: 7 inputs at M = 0, τ = 0 give the 5-input model's Cp, for the exact
    # flow and for a network, on the surface and off it.
    torch.manual_seed(0)
    net = StreamNet(AirfoilSettings(hidden=8, depth=2)).double()
    inputs, _ = surface_batch(4.0, -0.1, 0.05, 50)
    inputs7, _ = mach_surface_batch(0.0, 4.0, -0.1, 0.05, 0.0, 50)
    assert torch.allclose(inputs7[:, :2], inputs[:, :2], atol=1e-14)
    for scale in (1.0, 1.02):  # 1.02: points moved off the surface, mostly outside
        moved, moved7 = inputs.clone(), inputs7.clone()
        moved[:, :2] *= scale
        moved7[:, :2] *= scale
        for stream in (ExactStream(), net):
            assert torch.allclose(MachPinn(stream)(moved7), JoukowskiPinn(stream)(moved),
                                  atol=1e-10)


@pytest.mark.parametrize("tau_deg", [5.0, 15.0])
def test_karman_trefftz_airfoil_geometry_and_exact_cp(tau_deg: float) -> None:
    mu = -0.12 + 0.03j
    n = exponent(tau_deg)
    theta_te = float(np.angle(1 - mu))
    radius = abs(1 - mu)
    # Trailing edge at z = n with the wedge angle τ between the upper and lower surfaces.
    delta = 1e-4  # small, but z − n ~ δⁿ must stay well above rounding
    zeta = mu + radius * torch.polar(torch.ones(2, dtype=f64),
                                     torch.tensor([theta_te + delta, theta_te - delta], dtype=f64))
    z = karman_trefftz(zeta, mu, n)
    assert torch.allclose(z, torch.full_like(z, complex(float(n))), atol=1e-4)
    upper, lower = (torch.angle(-(zi - float(n))) for zi in z)
    assert math.degrees(float(lower - upper)) == pytest.approx(tau_deg, abs=0.01)
    # Round trip of the exterior map, and the exact model against the closed-form surface Cp.
    zeta = mu + radius * torch.polar(torch.full((40,), 1.3, dtype=f64),
                                     surface_angles(mu, 40))
    assert torch.allclose(inverse_karman_trefftz(karman_trefftz(zeta, mu, n), mu, n), zeta,
                          atol=1e-12)
    inputs, ref = mach_surface_batch(0.45, 4.0, mu.real, mu.imag, tau_deg, 64)
    assert torch.allclose(MachPinn(ExactStream())(inputs), ref, atol=1e-10)
    assert torch.allclose(inputs[:, 0].max(), torch.tensor(1.0, dtype=f64), atol=1e-3)


def test_mach_test_cases_are_subcritical_and_paired_with_the_cases() -> None:
    settings = AirfoilSettings()
    for case, (mach, tau) in zip(settings.test_cases, settings.mach_cases, strict=True):
        _, ref0 = mach_surface_batch(0.0, *case, tau, 400)
        assert 0 < mach < critical_mach(float(ref0.min()))
    with pytest.raises(ConfigError, match=r"one \(Mach, trailing-edge angle\) pair"):
        AirfoilSettings(mach_cases=settings.mach_cases[:2])
    with pytest.raises(ConfigError, match="inside"):
        AirfoilSettings(mach_cases=((0.8, 0.0), *settings.mach_cases[1:]))


@pytest.mark.parametrize("method", ["fgsm", "random_sign"])
@pytest.mark.parametrize("mach", [False, True])
def test_mask_leaves_parameter_inputs_bit_for_bit(method: str, mach: bool) -> None:
    torch.manual_seed(0)
    net = StreamNet(AirfoilSettings(hidden=8, depth=2)).double()
    model = (MachPinn(net) if mach else JoukowskiPinn(net)).eval()
    inputs, ref = (mach_surface_batch(0.5, 4.0, -0.1, 0.05, 9.0, 40) if mach
                   else surface_batch(4.0, -0.1, 0.05, 40))
    budget = Budget(eps=0.03, relative=True,
                    mask=coordinate_mask(INPUTS_MACH) if mach else coordinate_mask())
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
    mach_records, mev = measure_mach_case(MachPinn(model.stream), MachPinn(ExactStream()), case,
                                          settings.mach_cases[0], "case 1", settings, seed=0)
    assert {r.model for r in mach_records} == {"pinn_mach", "exact_mach"}
    assert mev["params_unchanged"] and mev["cp_ref_min"] > mev["cp_critical"]
    assert mev["x_fgsm"].shape == (30, 7) and np.isfinite(mev["fgsm"])
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
        test_cases=base.test_cases[:2], mach_cases=base.mach_cases[:2])
    out = run_airfoil(CaseOptions(output=tmp_path, quick=True, seed=0), settings)
    assert get_case("airfoil").name == "airfoil"
    assert out.report.exists()
    for name in ("results.csv", "results.json", "tables/airfoil_cp_relative_l2.csv",
                 "tables/airfoil_training.csv"):
        assert (tmp_path / name).exists(), name
    stems = {p.stem for p in (tmp_path / "figures" / "case").glob("*.png")}
    assert {"airfoil_0_perturbation", "airfoil_1_cp_random", "airfoil_2_cp_fgsm",
            "airfoil_3_cp_error_bars", "airfoil_4_cp_5_inputs"} <= stems
    assert (tmp_path / "tables" / "airfoil_mach_cp_relative_l2.csv").exists()
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
    # The Mach setting beside it, and the verdicts are its numbers.
    mach = {r.kind: r.value for r in res.select(model="pinn_mach", variable="case 1")}
    assert mach.keys() == rows.keys() and mach != rows
    assert len(res.select(model="exact_mach", variable="", kind="random")) == 1
    assert res.metadata["verdicts"][1]["ours"].startswith(
        f"case 1: {mach['random']:.1%} → {mach['adversarial']:.1%}")
    assert all(np.isfinite(r.value) for r in res.records)
    assert "bit for bit: yes" in " ".join(res.metadata["notes"])
    assert len(res.metadata["verdicts"]) == 2 and len(out.summary) == 3
    for verdict in res.metadata["verdicts"]:  # the index compares paper and ours
        assert verdict["paper"] and verdict["ours"].startswith("case 1: ")
