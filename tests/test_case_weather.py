"""The weather case end to end on a tiny grid (the real quick mode is the same code path with
`WeatherSettings.quick()`; it takes about a minute and a half, so the suite runs a smaller one)."""

from __future__ import annotations

import csv
import math
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("torch_harmonics")
pytest.importorskip("xarray")

from scirobust.cases import CaseOptions, get_case
from scirobust.cases.weather import WeatherSettings, run_weather
from scirobust.errors import ConfigError
from scirobust.results import Results
from scirobust.weather.shallow_water import generate

TINY = WeatherSettings(nlat=16, nlon=32, n_train_traj=4, n_train_times=4, n_val_traj=2,
                       n_test=3, lead_steps=2, verdict_lead_steps=2, spinup_hours=3,
                       embed_dim=16, depth=1, num_blocks=4, iterations=20, eval_every=10,
                       batch_size=4, n_random=2)


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
    full = WeatherSettings.full()
    assert full.nlat == 32 and full.step_hours == 6.0
    # rollouts to five days, the verdict read at +24 h (fixed before the full run)
    assert full.lead_steps * full.step_hours == 120 and full.verdict_lead_steps == 4
    assert q.head_channels > 0 and full.head_channels > 0  # the conv head in both modes
    with pytest.raises(ValueError, match="verdict_lead_steps"):
        WeatherSettings(lead_steps=2, verdict_lead_steps=3)


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
    for stem in ("weather_1_wind_maps", "weather_2_rmse_bars", "weather_3_rmse_vs_lead",
                 "weather_4_training"):
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
    with open(out / "tables" / "weather_validation_skill.csv") as f:
        skill = list(csv.DictReader(f))
    assert len(skill) == 2 * 4 and {float(r["lead_h"]) for r in skill} == {6.0}
    assert all(float(r[k]) > 0 for r in skill for k in ("afno_rmse", "persistence_rmse",
                                                         "climatology_rmse"))
    training = md["training"]["afno"]
    assert training["iterations_run"] == TINY.iterations
    assert [c[0] for c in training["curve"]] == [10, 20]


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


def _pairs(n: int = 6) -> tuple:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, 8, 16, generator=g)
    return x, torch.roll(x, 1, dims=-1)


def test_training_keeps_the_best_weights_and_stops_early() -> None:
    from scirobust.cases._weather_train import _lr_factor, _mse, train
    from scirobust.weather.afno import AFNONet

    assert _lr_factor(0, 100) == pytest.approx(0.2) and _lr_factor(4, 100) == 1.0
    assert _lr_factor(100, 100) == pytest.approx(0.0, abs=1e-12)
    x, y = _pairs()
    torch.manual_seed(0)
    net = AFNONet((8, 16), 2, patch=4, embed_dim=16, depth=1, num_blocks=2, residual=False)
    # lr 0: the validation MSE never improves, so patience 2 stops after 3 evaluations
    info = train(net, x, y, x, y, iterations=50, batch_size=4, lr=0.0, eval_every=1,
                 patience=2, seed=0)
    assert info["stopped_early"] and info["iterations_run"] == 3 and info["best_iteration"] == 1
    # a huge lr wrecks the weights; the kept ones are those of the best validation MSE
    info = train(net, x, y, x, y, iterations=6, batch_size=4, lr=5.0, eval_every=1,
                 patience=10, seed=0)
    assert _mse(net, x, y) == pytest.approx(info["val_mse_best"], rel=1e-6)
    assert info["val_mse_best"] <= min(c[2] for c in info["curve"])
    with pytest.raises(ValueError, match="positive"):
        train(net, x, y, x, y, iterations=0, batch_size=4, lr=1e-3, eval_every=1, patience=1,
              seed=0)


def test_stripe_index_sees_tile_edges_and_skill_sees_persistence() -> None:
    from scirobust.cases._weather_train import skill_at, stripe_index

    x, y = _pairs()
    g = torch.Generator().manual_seed(1)
    tiles = torch.kron(torch.randn(6, 2, 2, 4, generator=g), torch.ones(4, 4))
    smooth = 0.1 * torch.randn(6, 2, 8, 16, generator=g)
    assert stripe_index(lambda t: y + tiles + smooth, x, y, 4) > 5
    assert stripe_index(lambda t: y + smooth, x, y, 4) == pytest.approx(1.0, abs=0.2)
    val = torch.randn(2, 4, 2, 8, 16, generator=g)
    lat = np.linspace(90, -90, 8)
    out = skill_at(torch.nn.Identity(), val, 2, lat, val.mean(dim=(0, 1)), np.array([2.0, 3.0]))
    assert np.allclose(out["model"], out["persistence"])  # the identity model is persistence
    assert out["climatology"].shape == (2,) and (out["climatology"] > 0).all()
