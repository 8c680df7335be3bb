"""Robust-accuracy tracking over training reuses audit: same numbers, envelope rows."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from scirobust import Budget, Sweep, audit
from scirobust.training import (
    ENVELOPE,
    RobustnessTracker,
    checkpoint_epoch,
    fit,
    track_checkpoints,
)

torch.set_num_threads(1)
ATTACKS = ["random_sign", "fgsm", {"name": "pgd_linf", "steps": 4, "step_size": 0.25}]


def _data(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=gen)
    centres = torch.tensor([[0.2, 0.2, 0.5, 0.5], [0.8, 0.2, 0.5, 0.5], [0.5, 0.8, 0.5, 0.5]])
    x = (centres[y] + 0.1 * torch.randn(n, 4, generator=gen)).clamp(0, 1)
    return x, y


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def test_tracker_records_the_same_numbers_as_a_direct_audit() -> None:
    x, y = _data()
    model = _model()
    budget = Budget(bounds=(0.0, 1.0))
    tracker = RobustnessTracker(x, y, attacks=ATTACKS, epsilons=[0.1], budget=budget,
                                every=2, model_name="mlp", n_random=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = fit(model, opt, (x, y), epochs=4, tracker=tracker, batch_size=16,
                 generator=torch.Generator().manual_seed(0), record_initial=True)
    assert len(losses) == 4 and losses[-1] < losses[0]
    res = tracker.results
    assert sorted({r.step for r in res}) == [0, 2, 4] and {r.model for r in res} == {"mlp"}
    assert res.metadata["step_label"] == "epoch"
    direct = audit(model, x, y, epsilons=[0.1], attacks=ATTACKS, budget=budget,
                   task="classification", metrics=["accuracy"], n_random=2,
                   model_name="mlp", case="training", keep_per_sample=False)
    tracked = [r for r in res if r.step == 4 and r.kind != "envelope"]
    assert [r.to_dict() for r in tracked] == [dataclasses.replace(r, step=4).to_dict()
                                              for r in direct.records]
    env = res.select(step=4, attack=ENVELOPE)
    assert len(env) == 1 and env[0].kind == "envelope"
    worst = min(direct.value(attack=a, metric="accuracy") for a in ("fgsm", "pgd_linf"))
    assert env[0].value == worst
    assert tracker.history("clean")[-1] == (4, direct.value(attack="clean", metric="accuracy"))
    assert res.metadata["tracking"]["layer"] is None


def test_feature_layer_tracking_and_checkpoints(tmp_path) -> None:
    x, y = _data(30)
    model = _model()
    for k in (1, 3):
        with torch.no_grad():
            model[0].weight.mul_(1.5)
        torch.save(model.state_dict(), tmp_path / f"mlp_epoch_{k}.pt")
    tracker = RobustnessTracker(x, y, attacks=["fgsm"], epsilons=[0.1], model_name="mlp",
                                layer="1")
    res = track_checkpoints(_model, sorted(tmp_path.glob("*.pt")), tracker)
    assert {(r.model, r.step) for r in res} == {("mlp", 1), ("mlp", 3)}
    assert res.metadata["tracking"]["records"][0]["features"]["layer"] == "1"
    assert len(res.select(attack=ENVELOPE)) == 2
    rel = RobustnessTracker(x, y, attacks=["fgsm"], epsilons=[0.1], layer="1",
                            feature_scale="std", model_name="mlp")
    rel.record(_model(), 1)
    entry = rel.results.metadata["tracking"]["records"][0]["features"]
    assert entry["eps_unit"].startswith("std") and entry["std"] > 0
    assert checkpoint_epoch("run/ckpt-epoch=12.pt") == 12
    assert checkpoint_epoch("final.pt") is None
    assert tracker.due(5) and RobustnessTracker(x, y, at=[2]).due(2)


def test_tracker_takes_a_sweep_and_labels_checkpoints_without_epochs(tmp_path) -> None:
    x, y = _data(30)
    sweep = Sweep(epsilons=[0.1], attacks=["random_sign", "fgsm"], n_random=1)
    tracker = RobustnessTracker(x, y, sweep, model_name="mlp")
    assert tracker.sweep.metrics == ("accuracy",) and tracker.adversarial == ["fgsm"]
    torch.save(_model().state_dict(), tmp_path / "final.pt")
    res = track_checkpoints(_model, [tmp_path / "final.pt"], tracker)
    assert {(r.model, r.step) for r in res} == {("mlp@final", None)}
    # the envelope never takes a random control, even when it is the worst
    assert [r.attack for r in res.select(kind="envelope")] == ["envelope"]


def test_tracker_refuses_a_sweep_with_other_metrics() -> None:
    import pytest

    from scirobust import ConfigError

    x, y = _data(10)
    with pytest.raises(ConfigError, match="records one metric"):
        RobustnessTracker(x, y, Sweep(epsilons=[0.1], metrics=["error_rate"]))
    assert RobustnessTracker(x, y, Sweep(epsilons=[0.1], metrics=["error_rate"]),
                             metric="error_rate").sweep.metrics == ("error_rate",)
