"""The weather case end to end on a tiny grid (the real quick mode is the same code path with
`WeatherSettings.quick()`; it takes about a minute and a half, so the suite runs a smaller one)."""

from __future__ import annotations

import csv
import math

import pytest
import torch

pytest.importorskip("torch_harmonics")
pytest.importorskip("xarray")

from scirobust.cases import CaseOptions, get_case
from scirobust.cases.weather import WeatherSettings, run_weather
from scirobust.results import Results
from scirobust.rollout import parse_metric
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
    assert len(rows) == 4 * TINY.lead_steps
    assert {r["variable"] for r in rows} == {"z", "u", "v", "vort"}
    loaded = Results.load(out)
    assert len(loaded) == len(output.results)
    md = output.results.metadata
    assert md["description"] and any("Verdict" in n for n in md["notes"])
    assert md["verdict"].split(":")[0] in ("REPRODUCED", "PARTLY", "NOT REPRODUCED")
    assert len(output.summary) == 5


def test_records_follow_the_lead_time_convention(tiny_run) -> None:
    _, output = tiny_run
    res = output.results
    for attack in ("clean", "random_sign", "fgsm"):
        for var in ("z", "u", "v", "vort"):
            for k in (1, 2):
                (rec,) = res.select(attack=attack, metric=f"lat_rmse[{var}@step={k}]")
                assert rec.n == TINY.n_test and math.isfinite(rec.value)
    ratio = res.select(attack="fgsm", metric="lat_rmse[u@step=2]_ratio")[0]
    rnd = res.select(attack="random_sign", metric="lat_rmse[u@step=2]")[0]
    fg = res.select(attack="fgsm", metric="lat_rmse[u@step=2]")[0]
    assert ratio.value == pytest.approx(fg.value / rnd.value)
    assert all(parse_metric(r.metric) is not None for r in res.records)
    assert res.metadata["units"]["lat_rmse[z@step=1]"] == "m"
    assert torch.get_num_threads() >= 1
