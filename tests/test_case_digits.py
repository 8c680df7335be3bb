"""The digits case (paper 001 Figs. 2 and 5, paper 004 Fig. 2) at a tiny size."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from scirobust import cases
from scirobust.layers import FeatureAttackModel
from scirobust.results import Results
from scirobust.training import history

pytest.importorskip("sklearn")

from scirobust.cases._digits_stats import seed_means, tradeoff_strength
from scirobust.cases._digits_tsne import effective_radius
from scirobust.cases.digits import DigitsSettings, load_data, make_network, run_digits

torch.set_num_threads(1)


def test_settings_follow_the_papers() -> None:
    quick, full = DigitsSettings.quick(), DigitsSettings.full()
    assert quick.eps == full.eps == 0.1
    sweep = full.sweep(seed=3)
    assert sweep.epsilons == (0.1,) and sweep.n_random == 1 and sweep.seed == 3
    assert sweep.budget.bounds == (0.0, 1.0)
    pgd = next(a for a in sweep.attacks if a.name == "pgd_linf")
    assert (pgd.steps, pgd.step_size, pgd.random_start) == (4, 0.25, True)
    assert [a.key for a in sweep.attacks] == ["random_sign", "fgsm_targeted", "fgsm", "bim",
                                              "illc", "pgd_linf", "sparsefool"]
    assert [a.key for a in sweep.random_runs] == ["random_sign"]
    assert set(full.networks) == {"cnn", "resnet", "inception"}
    assert full.seeds >= 3 and quick.seeds == 1  # issue #15.4: full mode over ≥ 3 seeds
    assert set(full.uncertainty_networks) == set(full.networks)
    assert full.uncertainty_levels == ("pixels", "features")
    assert full.snapshot_epochs() == (1, 10, 20) and full.tsne_class == 8
    assert cases.get_case("digits").name == "digits"


@pytest.mark.parametrize("name", ["cnn", "resnet", "inception"])
def test_networks_split_at_the_feature_layer(name: str) -> None:
    x = torch.rand(4, 1, 8, 8)
    model = make_network(name).eval()
    wrapped = FeatureAttackModel(model, "features", x)  # checks the cut
    torch.testing.assert_close(wrapped(wrapped.features(x)), model(x))


def test_tiny_run_writes_the_standard_outputs(tmp_path) -> None:
    settings = replace(DigitsSettings.quick(), networks=("cnn",), feature_networks=("cnn",),
                       epochs=2, n_test=24, uncertainty_n=64)
    xtr, _, xte, _yte, _ = load_data(settings, 0)
    assert xtr.shape[1:] == (1, 8, 8) and xte.shape[0] == 24
    assert float(xte.min()) >= 0.0 and float(xte.max()) <= 1.0
    out = run_digits(settings, tmp_path, seed=0)
    res = Results.load(tmp_path)
    assert len(res) == len(out.results)
    assert {r.model for r in res} == {"cnn", "cnn:features", "cnn:features-rel"}
    assert {r.step for r in res} == {1, 2} and res.metadata["step_label"] == "epoch"
    assert {"clean", "envelope", "fgsm", "sparsefool", "pgd_linf"} <= set(res.attacks)
    assert res.kinds()["random_sign"] == "random" and res.kinds()["envelope"] == "envelope"
    for model in ("cnn", "cnn:features"):
        env = res.value(model=model, kind="envelope", step=2, metric="accuracy")
        attacks = [r.value for r in res.select(model=model, step=2, kind="adversarial")]
        assert len(attacks) == 6 and env == min(attacks)
        assert [s for s, _ in history(res, "envelope", model_name=model)] == [1, 2]
    assert (tmp_path / "report.html").is_file()
    for stem in ("fig2_pixels", "fig5_features", "fig_uncertainty", "fig2_uncertainty_levels",
                 "fig1_tsne"):
        assert (tmp_path / "figures" / "case" / f"{stem}.png").is_file()
    trends = (tmp_path / "tables" / "trends_pixels.csv").read_text().splitlines()
    assert trends[0].startswith("model,epochs,") and trends[1].startswith("cnn,1-2,")
    unc = out.results.metadata["uncertainty"]
    assert len(unc) == 2 * 2 * 10 and all(math.isfinite(r["delta_x"]) for r in unc)
    assert {r["level"] for r in unc} == {"pixels", "features"}
    # Pixel box [0, 1]^64: a flat packet's Δx = √(64/12); the feature box is the training range.
    assert all(math.isclose(r["delta_x_flat"], math.sqrt(64 / 12), rel_tol=1e-6)
               for r in unc if r["level"] == "pixels")
    feats = out.results.metadata["uncertainty_summary"]
    assert [(r["network"], r["level"]) for r in feats] == [("cnn", "pixels"), ("cnn", "features")]
    radii = out.results.metadata["tsne_radius"]
    assert [r["epoch"] for r in radii] == [1, 2] and all(r["radius_region"] > 0 for r in radii)
    verdicts = {v["claim"][:20]: v["outcome"] for v in res.metadata["verdicts"]}
    assert len(verdicts) == 5
    assert set(verdicts.values()) <= {"reproduced", "partly", "not reproduced"}
    assert all(v["paper"] and v["ours"] and v["stand_in"] for v in res.metadata["verdicts"])
    assert any("cnn:features-rel" in n for n in res.metadata["notes"])
    assert out.summary[0][0] == "model" and len(out.summary) == 1 + 3


def test_a_local_data_set_replaces_the_bundled_digits(tmp_path, monkeypatch) -> None:
    from scirobust.cases import _digits_data

    fake = (torch.rand(20, 3, 32, 32), torch.arange(20) % 10, torch.rand(10, 3, 32, 32),
            torch.arange(10) % 10)
    monkeypatch.setattr(_digits_data, "read_mnist", lambda root: None)
    monkeypatch.setattr(_digits_data, "read_cifar10", lambda root: fake)
    settings = replace(DigitsSettings.quick(), data_root=str(tmp_path), n_test=5, max_train=8)
    xtr, _, xte, _, desc = load_data(settings, 0)
    assert desc.startswith("CIFAR-10") and xtr.shape == (8, 3, 32, 32) and xte.shape[0] == 5
    assert make_network("resnet", in_channels=3)(xtr[:2]).shape == (2, 10)


def test_seed_means_and_statistics_by_hand() -> None:
    from scirobust.results import Record

    recs = [Record("digits", f"cnn_seed{s}", "clean", 0.0, "accuracy", v, kind="clean", step=1)
            for s, v in ((0, 0.5), (1, 0.7), (2, 0.9))]
    (mean,) = seed_means(recs, {"cnn": ["cnn_seed0", "cnn_seed1", "cnn_seed2"]})
    assert mean.model == "cnn" and mean.n == 3 and math.isclose(mean.value, 0.7)
    assert math.isclose(mean.spread, 0.2) and math.isclose(mean.stderr, 0.2 / math.sqrt(3))
    curves = {"delta_x": np.array([[2.0, 1.0]]), "delta_p": np.array([[1.0, 4.0]])}
    assert math.isclose(float(tradeoff_strength(curves)[0]), math.log(4) + math.log(2))
    pts = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]])
    assert math.isclose(effective_radius(pts, np.array([1.0, 1.0, 0.0])), 1.0)
    assert math.isnan(effective_radius(pts, np.zeros(3)))


def test_two_seeds_give_means_with_standard_errors(tmp_path) -> None:
    settings = replace(DigitsSettings.quick(), networks=("cnn",), feature_networks=(),
                       epochs=1, n_test=12, uncertainty_n=16, seeds=2, tsne=False,
                       uncertainty_levels=("features",))
    out = run_digits(settings, tmp_path, seed=0)
    one = run_digits(replace(settings, seeds=1), tmp_path / "one", seed=0)
    res = out.results
    assert {r.model for r in res} == {"cnn", "cnn_seed0", "cnn_seed1"}
    clean = [res.value(model=f"cnn_seed{s}", attack="clean", step=1) for s in (0, 1)]
    mean = res.select(model="cnn", attack="clean", step=1)[0]
    assert mean.n == 2 and math.isclose(mean.value, sum(clean) / 2)
    assert math.isclose(mean.stderr, abs(clean[0] - clean[1]) / 2)
    # Seed 0 of a multi-seed run is the one-seed run, record for record.
    first = [(r.attack, r.step, r.value) for r in res if r.model == "cnn_seed0"]
    assert first == [(r.attack, r.step, r.value) for r in one.results]
    assert {r["seed"] for r in res.metadata["uncertainty"]} == {0, 1}
    assert res.metadata["uncertainty_summary"][0]["seeds"] == 2
