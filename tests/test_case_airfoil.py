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
    circle_cp,
    integrated_lift_coefficient,
    inverse_joukowski,
    kutta_joukowski_lift_coefficient,
    surface_points,
)
from scirobust.cases.airfoil import (
    AirfoilSettings,
    ExactStream,
    JoukowskiPinn,
    StreamNet,
    coordinate_mask,
    run_airfoil,
    surface_batch,
)

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
    assert torch.allclose(circle_cp(theta, 0.0, 0j), expected, atol=1e-13)


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
    assert set(res.attacks) == {"clean", "random_sign", "fgsm"}
    pinn = res.select(model="pinn", metric="cp_relative_l2[case 1]")
    assert {r.attack for r in pinn} == {"clean", "random_sign", "fgsm"}
    assert all(np.isfinite(r.value) for r in res.records)
    assert "bit for bit: yes" in " ".join(res.metadata["notes"])
    assert len(out.summary) == 3
