"""Robust-accuracy tracking over training reuses audit: same numbers, envelope rows."""

from __future__ import annotations

import torch
from torch import nn

from scirobust import Budget, audit
from scirobust.training import (
    ENVELOPE,
    RobustnessTracker,
    checkpoint_epoch,
    epoch_label,
    fit,
    parse_epoch,
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
    assert sorted({parse_epoch(r.model)[1] for r in res}) == [0, 2, 4]
    direct = audit(model, x, y, epsilons=[0.1], attacks=ATTACKS, budget=budget,
                   task="classification", metrics=["accuracy"], n_random=2,
                   model_name=epoch_label("mlp", 4), case="training", keep_per_sample=False)
    tracked = [r for r in res if r.model == "mlp@epoch=4" and r.attack != ENVELOPE]
    assert [r.to_dict() for r in tracked] == [r.to_dict() for r in direct.records]
    env = res.select(model="mlp@epoch=4", attack=ENVELOPE)
    assert len(env) == 1
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
    assert {r.model for r in res} == {"mlp@epoch=1", "mlp@epoch=3"}
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
