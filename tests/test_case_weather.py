"""The weather case end to end on a tiny grid (the real quick mode is the same code path with
`WeatherSettings.quick()`; it takes about a minute and a half, so the suite runs a smaller one)."""

from __future__ import annotations

import csv
import math
import sys

import pytest

pytest.importorskip("torch_harmonics")
pytest.importorskip("xarray")

from scirobust.cases import CaseOptions, get_case
from scirobust.cases.weather import WeatherSettings, run_weather
from scirobust.errors import ConfigError
from scirobust.results import Results
from scirobust.weather.shallow_water import generate

TINY = WeatherSettings(nlat=16, nlon=32, n_train_traj=4, n_train_times=4, n_test=3,
                       lead_steps=2, spinup_hours=3, embed_dim=16, depth=1, num_blocks=4,
                       iterations=20, batch_size=4, n_random=2)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("weather")
    return out, run_weather(CaseOptions(output=out, quick=True), TINY)


def test_case_is_registered() -> None:
    case = get_case("weather")
    assert case.name == "weather" and "5.1" in case.paper


def test_missing_extra_gives_the_install_hint(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "scirobust.cases.weather")
    monkeypatch.setitem(sys.modules, "torch_harmonics", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"scirobust\[weather\]"):
        get_case("weather")


def test_quick_settings_are_the_documented_ones() -> None:
    q = WeatherSettings.quick()
    assert (q.nlat, q.nlon, q.n_test, q.epsilon) == (32, 64, 10, 0.05)
    assert WeatherSettings.full().nlat == 64


def test_shallow_water_fields_are_finite_and_physical() -> None:
    tr = generate(2, 3, nlat=16, nlon=32, spinup_hours=3, seed=1)
    assert tr.data.shape == (2, 3, 4, 16, 32)
    z, u = tr.data[:, :, 0], tr.data[:, :, 1]
    assert 9000 < z.mean() < 11000 and 1 < u.std() < 60
    assert tr.lat[0] == pytest.approx(90) and tr.lat[-1] == pytest.approx(-90)
    again = generate(2, 3, nlat=16, nlon=32, spinup_hours=3, seed=1)
    assert (again.data == tr.data).all()


def test_tiny_run_writes_results_tables_figures_report(tiny_run) -> None:
    out, output = tiny_run
    assert output.report.exists()
    for stem in ("weather_1_wind_maps", "weather_2_rmse_bars", "weather_3_rmse_vs_lead"):
        assert (out / "figures" / "case" / f"{stem}.png").exists()
        assert (out / "figures" / "case" / f"{stem}.svg").exists()
    with open(out / "tables" / "weather_rmse_by_lead.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 4 * TINY.lead_steps  # the paper's direct AFNO and the residual one
    assert {r["variable"] for r in rows} == {"z", "u", "v", "vort"}
    assert {r["model"] for r in rows} == {"afno", "afno_residual"}
    loaded = Results.load(out)
    assert len(loaded) == len(output.results)
    md = loaded.metadata
    assert md["description"] and md["notes"]
    (verdict,) = md["verdicts"]
    assert verdict["outcome"] in ("reproduced", "partly", "not reproduced")
    assert "FGSM/random" in verdict["detail"] and "Residual variant" in verdict["detail"]
    assert "FourCastNet" in verdict["paper"] and " m; " in verdict["ours"]
    assert len(output.summary) == 1 + 2 * 4


def test_records_carry_kind_variable_and_lead(tiny_run) -> None:
    _, output = tiny_run
    both = output.results
    assert {r.model for r in both} == {"afno", "afno_residual"}
    res = type(both)([r for r in both if r.model == "afno"], both.metadata)
    assert {r.kind for r in res} == {"clean", "random", "adversarial", "ratio"}
    assert all("[" not in r.metric for r in res)
    for attack, kind, eps in (("clean", "clean", 0.0), ("random_sign", "random", TINY.epsilon),
                              ("fgsm", "adversarial", TINY.epsilon)):
        for var in ("z", "u", "v", "vort"):
            for k in (1, 2):
                (rec,) = res.select(attack=attack, kind=kind, metric="lat_rmse", variable=var,
                                    step=k)
                assert (rec.epsilon, rec.n) == (eps, TINY.n_test)
                assert math.isfinite(rec.value)
                assert res.select(attack=attack, metric="acc", variable=var, step=k)
    (ratio,) = res.select(kind="ratio", metric="lat_rmse", variable="u", step=2)
    rnd = res.select(kind="random", metric="lat_rmse", variable="u", step=2)[0]
    fg = res.select(kind="adversarial", metric="lat_rmse", variable="u", step=2)[0]
    assert ratio.baseline == "random_sign"
    assert ratio.value == pytest.approx(fg.value / rnd.value)  # physical units cancel
    assert res.metadata["units"]["z"] == "m"
    assert res.metadata["step_label"] == "lead time (model steps)"


def test_rmse_is_in_physical_units(tiny_run) -> None:
    out, output = tiny_run
    # z (m, std ~ 10² m) and vort (1/s, std ~ 10⁻⁵) differ by many orders of magnitude
    z = output.results.select(model="afno", kind="clean", metric="lat_rmse", variable="z",
                              step=1)[0]
    vort = output.results.select(model="afno", kind="clean", metric="lat_rmse", variable="vort",
                                 step=1)[0]
    assert z.value > 1e3 * vort.value
    with open(out / "tables" / "weather_rmse_by_lead.csv") as f:
        first = next(csv.DictReader(f))
    assert float(first["clean"]) == pytest.approx(z.value, rel=1e-5)


def test_the_paper_model_predicts_the_state_and_the_variant_the_increment() -> None:
    from scirobust.cases.weather import MODELS, PAPER_MODEL

    assert MODELS[PAPER_MODEL] is False and MODELS["afno_residual"] is True
