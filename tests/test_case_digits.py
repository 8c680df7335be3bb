"""The digits case (paper 001 Figs. 2 and 5, paper 004 Fig. 2) at a tiny size."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from scirobust import cases
from scirobust.layers import FeatureAttackModel
from scirobust.results import Results
from scirobust.training import history

pytest.importorskip("sklearn")

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
    for stem in ("fig2_pixels", "fig5_features", "fig_uncertainty"):
        assert (tmp_path / "figures" / "case" / f"{stem}.png").is_file()
    trends = (tmp_path / "tables" / "trends_pixels.csv").read_text().splitlines()
    assert trends[0].startswith("model,epochs,") and trends[1].startswith("cnn,1-2,")
    unc = out.results.metadata["uncertainty"]
    assert len(unc) == 2 * 10 and all(math.isfinite(r["delta_x"]) for r in unc)
    verdicts = {v["claim"][:20]: v["outcome"] for v in res.metadata["verdicts"]}
    assert len(verdicts) == 3
    assert set(verdicts.values()) <= {"reproduced", "partly", "not reproduced"}
    assert all(v["paper"] and v["ours"] and v["stand_in"] for v in res.metadata["verdicts"])
    assert any("cnn:features-rel" in n for n in res.metadata["notes"])
    assert out.summary[0][0] == "model" and len(out.summary) == 1 + 3


def test_a_local_data_set_replaces_the_bundled_digits(tmp_path, monkeypatch) -> None:
    from scirobust.cases import digits

    fake = (torch.rand(20, 3, 32, 32), torch.arange(20) % 10, torch.rand(10, 3, 32, 32),
            torch.arange(10) % 10)
    monkeypatch.setattr(digits, "read_mnist", lambda root: None)
    monkeypatch.setattr(digits, "read_cifar10", lambda root: fake)
    settings = replace(DigitsSettings.quick(), data_root=str(tmp_path), n_test=5, max_train=8)
    xtr, _, xte, _, desc = load_data(settings, 0)
    assert desc.startswith("CIFAR-10") and xtr.shape == (8, 3, 32, 32) and xte.shape[0] == 5
    assert make_network("resnet", in_channels=3)(xtr[:2]).shape == (2, 10)
