"""QCD equation-of-state case: HotQCD parametrisation, quasi-particle thermodynamics, the run."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from scirobust.cases import CaseOptions, get_case
from scirobust.cases._qcd_physics import (
    D_G,
    D_S,
    D_UD,
    DLQP,
    P_IDEAL,
    PressureOf,
    hotqcd_e_over_t4,
    hotqcd_p_over_t4,
    hotqcd_pressure_gev4,
    ln_z_over_v,
    momentum_integral,
    thermodynamics,
)
from scirobust.cases.qcd import (
    DECIDING,
    P_METRIC,
    QcdSettings,
    _verdict,
    audit_temperatures,
    run_qcd,
    temperature_errors,
)
from scirobust.results import Record, Results

f64 = torch.float64


@pytest.mark.parametrize(
    ("t_mev", "expected"), [(154, 0.715), (200, 1.62), (300, 3.08), (400, 3.79)]
)
def test_hotqcd_matches_tabulated_pressure(t_mev: float, expected: float) -> None:
    value = float(hotqcd_p_over_t4(torch.tensor(t_mev / 1000, dtype=f64)))
    assert value == pytest.approx(expected, abs=0.006)


def test_hotqcd_energy_density_matches_finite_differences() -> None:
    t = torch.linspace(0.13, 0.40, 28, dtype=f64)
    h = 1e-6
    dp_dt = (hotqcd_p_over_t4(t + h) - hotqcd_p_over_t4(t - h)) / (2 * h)
    expected = 3 * hotqcd_p_over_t4(t) + t * dp_dt
    assert torch.allclose(hotqcd_e_over_t4(t).detach(), expected, rtol=1e-7, atol=0)


def test_massless_gas_reaches_stefan_boltzmann_limit() -> None:
    t = torch.tensor([[0.2], [0.35]], dtype=f64)
    p_over_t4 = ln_z_over_v(t, torch.zeros(2, 3, dtype=f64)) / t**3
    assert torch.allclose(p_over_t4, torch.full_like(t, P_IDEAL), rtol=1e-6, atol=0)
    # Species separately: bosons 16 π²/90, fermions 7/8 × d π²/90.
    boson = -D_G * momentum_integral(torch.zeros(1, dtype=f64), -1) / (2 * math.pi**2)
    fermion = (D_UD + D_S) * momentum_integral(torch.zeros(1, dtype=f64), 1) / (2 * math.pi**2)
    assert float(boson) == pytest.approx(16 * math.pi**2 / 90, rel=1e-6)
    assert float(fermion) == pytest.approx(7 / 8 * 36 * math.pi**2 / 90, rel=1e-13)


@pytest.mark.parametrize("statistics", [-1, 1])
def test_massive_quadrature_matches_adaptive_integration(statistics: int) -> None:
    m_over_t = 1.7
    quad = momentum_integral(torch.tensor([m_over_t], dtype=f64), statistics)
    ref, _ = integrate.quad(
        lambda x: x**2 * np.log1p(statistics * np.exp(-np.sqrt(x**2 + m_over_t**2))),
        0, np.inf, epsabs=1e-14, epsrel=1e-12,
    )
    assert float(quad) == pytest.approx(ref, rel=1e-10)


def test_autograd_energy_density_is_thermodynamically_consistent() -> None:
    # ε = T dP/dT − P for any mass function m(T); massless gas: ε = 3P.
    model = DLQP(hidden=8, blocks=1).double()
    t = torch.linspace(0.15, 0.38, 9, dtype=f64)[:, None]
    thermo = model.thermodynamics(t)
    h = 1e-6

    def pressure(temp: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return temp * model.ln_z_over_v(temp)

    dp_dt = (pressure(t + h) - pressure(t - h)) / (2 * h)
    assert torch.allclose(thermo["energy_gev4"], t * dp_dt - pressure(t), rtol=1e-7, atol=0)
    assert torch.allclose(thermo["s_over_t3"], thermo["e_over_t4"] + thermo["p_over_t4"])
    massless = thermodynamics(lambda temp: ln_z_over_v(temp, 0 * temp.expand(-1, 3)), t)
    assert torch.allclose(massless["e_over_t4"], 3 * massless["p_over_t4"], rtol=1e-12)


def test_audit_flags_random_where_the_side_fgsm_avoided_is_worse() -> None:
    # 1-D input: FGSM moves T by exactly ±eps; every random_sign draw lands on T + eps or
    # T - eps, so its mean lies between the two and exceeds FGSM iff the other side is worse.
    torch.manual_seed(0)
    model = DLQP(hidden=8, blocks=1).double().eval()
    temps = np.linspace(0.2, 0.34, 8)
    settings = dataclasses.replace(QcdSettings.quick(), epsilons_gev=(0.005, 0.01), n_random=16)
    results = audit_temperatures(model, temps, settings, seed=3)
    errors = temperature_errors(results, temps)

    def error(t: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(t)[:, None]
        with torch.no_grad():
            return (model(t) - hotqcd_p_over_t4(t)).abs()[:, 0].numpy()

    np.testing.assert_allclose(errors["clean_abs_error"], error(temps), rtol=1e-12)
    for eps in settings.epsilons_gev:
        k, sign = f"{eps:g}", errors[f"fgsm_direction_{eps:g}"]
        assert set(np.unique(sign)) <= {-1.0, 1.0}
        fgsm_side, other_side = error(temps + sign * eps), error(temps - sign * eps)
        np.testing.assert_allclose(errors[f"fgsm_{k}"], fgsm_side, rtol=1e-12)
        low, high = np.minimum(fgsm_side, other_side), np.maximum(fgsm_side, other_side)
        random = errors[f"random_sign_{k}"]
        assert np.all((random >= low * (1 - 1e-12)) & (random <= high * (1 + 1e-12)))
        np.testing.assert_array_equal(errors[f"random_exceeds_fgsm_{k}"], other_side > fgsm_side)
    again = temperature_errors(audit_temperatures(model, temps, settings, seed=3), temps)
    np.testing.assert_array_equal(again["random_sign_0.01"], errors["random_sign_0.01"])


def test_pressure_reading_is_t4_times_p_over_t4_and_attacked_on_its_own_error() -> None:
    # P = T⁴·(p/T⁴) in GeV⁴; FGSM on P follows the sign of d(ΔP)²/dT, which can differ from
    # that of d(Δ(p/T⁴))²/dT; each reading's FGSM error is its own error at its own T ± eps.
    torch.manual_seed(0)
    model = DLQP(hidden=8, blocks=1).double().eval()
    temps = np.linspace(0.2, 0.34, 8)
    t = torch.as_tensor(temps)[:, None]
    assert DECIDING == P_METRIC == "mae_pressure"
    with torch.no_grad():
        np.testing.assert_allclose(PressureOf(model)(t), t**4 * model(t), rtol=1e-14)
        np.testing.assert_allclose(hotqcd_pressure_gev4(t), t**4 * hotqcd_p_over_t4(t), rtol=1e-14)
    settings = dataclasses.replace(QcdSettings.quick(), epsilons_gev=(0.005, 0.01), n_random=16)
    p_err = temperature_errors(audit_temperatures(model, temps, settings, seed=3), temps)
    big_p = temperature_errors(audit_temperatures(model, temps, settings, 3, P_METRIC), temps,
                               P_METRIC)

    def error(t_gev: np.ndarray, power: int) -> np.ndarray:
        t_ = torch.as_tensor(t_gev)[:, None]
        with torch.no_grad():
            return (t_**power * (model(t_) - hotqcd_p_over_t4(t_))).abs()[:, 0].numpy()

    np.testing.assert_allclose(big_p["clean_abs_error"], temps**4 * p_err["clean_abs_error"],
                               rtol=1e-12)
    t_req = t.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(
        ((t_req**4 * (model(t_req) - hotqcd_p_over_t4(t_req))) ** 2).sum(), t_req)
    for eps in settings.epsilons_gev:
        k, sign = f"{eps:g}", big_p[f"fgsm_direction_{eps:g}"]
        np.testing.assert_array_equal(sign, np.sign(grad[:, 0].numpy()))
        fgsm_side, other_side = error(temps + sign * eps, 4), error(temps - sign * eps, 4)
        np.testing.assert_allclose(big_p[f"fgsm_{k}"], fgsm_side, rtol=1e-12)
        p_side = p_err[f"fgsm_direction_{k}"]
        np.testing.assert_allclose(p_err[f"fgsm_{k}"], error(temps + p_side * eps, 0), rtol=1e-12)
        random = big_p[f"random_sign_{k}"]
        low, high = np.minimum(fgsm_side, other_side), np.maximum(fgsm_side, other_side)
        assert np.all((random >= low * (1 - 1e-12)) & (random <= high * (1 + 1e-12)))
        np.testing.assert_array_equal(big_p[f"random_exceeds_fgsm_{k}"], other_side > fgsm_side)


def _fake_results(outcomes: dict[str, bool]) -> Results:
    """Records of both readings where FGSM wins clearly (True) or loses (False)."""
    records = []
    for metric, fgsm_wins in outcomes.items():
        fraction = {"mae": "fraction_random_exceeds_fgsm",
                    "mae_pressure": "fraction_random_exceeds_fgsm_pressure"}[metric]
        records.append(Record("qcd", "dlqp", "clean", 0.0, metric, 1.0, n=57, kind="clean"))
        for eps in (0.005, 0.01):
            fgsm, frac = (2.0, 0.1) if fgsm_wins else (0.5, 0.9)
            records += [
                Record("qcd", "dlqp", "random_sign", eps, metric, 1.0, n=57, kind="random"),
                Record("qcd", "dlqp", "fgsm", eps, metric, fgsm, n=57, kind="adversarial"),
                Record("qcd", "dlqp", "fgsm", eps, metric, fgsm, n=57, kind="ratio",
                       baseline="random_sign"),
                Record("qcd", "dlqp", "fgsm", eps, fraction, frac, n=57, kind="adversarial",
                       baseline="random_sign")]
    return Results(records)


@pytest.mark.parametrize("pressure_wins", [True, False])
def test_verdict_is_decided_by_the_pressure_reading(pressure_wins: bool) -> None:
    results = _fake_results({"mae": not pressure_wins, "mae_pressure": pressure_wins})
    verdict = _verdict(results, 300, "At T = 0.2400 GeV: ...")
    assert verdict.outcome == ("reproduced" if pressure_wins else "not reproduced")
    diagnostic = "not reproduced" if pressure_wins else "reproduced"
    assert f"Diagnostic p/T⁴ reading (does not decide): {diagnostic}." in verdict.detail
    assert verdict.ours.startswith("mean |ΔP| (GeV⁴)")
    assert "Diagnostic: mean |Δp/T⁴|" in verdict.ours
    assert "0.2400 GeV" in verdict.detail and "pressure" in verdict.criterion


def test_quick_run_writes_results_figures_and_report(tmp_path) -> None:
    settings = dataclasses.replace(QcdSettings.quick(), epochs=300, n_dense=60)
    out = run_qcd(CaseOptions(output=tmp_path, quick=True, seed=1), settings)
    assert get_case("qcd").name == "qcd"
    assert out.report.exists()
    for name in ("results.csv", "results.json", "tables/qcd_errors_vs_temperature.csv",
                 "tables/qcd_fit_quality.csv"):
        assert (tmp_path / name).exists(), name
    stems = {p.stem for p in (tmp_path / "figures" / "case").glob("*.png")}
    assert {"qcd_1_eos", "qcd_2_attack_errors", "qcd_3_loss_landscape"} <= stems
    res = out.results
    assert set(res.attacks) == {"clean", "random_sign", "fgsm"}
    assert {r.epsilon for r in res.select(attack="fgsm")} == {0.005, 0.01}
    assert all(np.isfinite(r.value) for r in res.records)
    fraction = res.select(metric="fraction_random_exceeds_fgsm")
    assert [(r.kind, r.baseline) for r in fraction] == [("adversarial", "random_sign")] * 2
    flags = res.samples("random_sign", 0.01, "mae") > res.samples("fgsm", 0.01, "mae")
    assert res.value(metric="fraction_random_exceeds_fgsm", epsilon=0.01) == flags.mean()
    (verdict,) = res.metadata["verdicts"]
    assert verdict["claim"] and verdict["paper"] and verdict["ours"] and verdict["stand_in"]
    assert "of 57 temperatures" in verdict["ours"]
    notes = " ".join(res.metadata["notes"])
    assert "ε/T⁴" in notes and "Stand-in" in notes
    assert len(out.summary) == 3  # header + one row per eps
    # The pressure reading (GeV⁴) beside p/T⁴: P = T⁴·p/T⁴ at the clean temperatures.
    temps = res.per_sample["attack_temperature_gev"]
    np.testing.assert_allclose(res.samples("clean", 0.0, "mae_pressure")[:, 0],
                               temps**4 * res.samples("clean", 0.0, "mae")[:, 0], rtol=1e-12)
    for eps in (0.005, 0.01):
        for attack, kind in (("random_sign", "random"), ("fgsm", "adversarial"), ("fgsm", "ratio")):
            assert np.isfinite(res.value(metric="mae_pressure", attack=attack, epsilon=eps,
                                         kind=kind))
        flags = (res.samples("random_sign", eps, "mae_pressure")
                 > res.samples("fgsm", eps, "mae_pressure"))
        assert res.value(metric="fraction_random_exceeds_fgsm_pressure",
                         epsilon=eps) == flags.mean()
    assert res.metadata["deciding_metric"] == "mae_pressure"
    assert res.metadata["units"]["mae_pressure"] == "GeV^4"
    assert verdict["ours"].startswith("mean |ΔP| (GeV⁴)") and "p/T⁴" in verdict["detail"]
    assert "At T = 0.2400 GeV" in verdict["detail"] and "At T = 0.2400 GeV" in notes
    assert "pressure" in verdict["criterion"]
    header = (tmp_path / "tables" / "qcd_errors_vs_temperature.csv").read_text().splitlines()[0]
    assert "pressure_fgsm_0.01" in header and "fgsm_0.01" in header
