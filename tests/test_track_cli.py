"""`scirobust track CONFIG CHECKPOINT...`: one Results over checkpoints, envelope, report."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from typer.testing import CliRunner

from scirobust import audit, cli
from scirobust.budget import Budget
from scirobust.results import Results

runner = CliRunner()
torch.set_num_threads(1)

FACTORY = """
import torch
from torch import nn

def make(hidden=6):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))
"""


def _project(directory: Path, **changes: Any) -> tuple[Path, list[Path]]:
    (directory / "trackmodel.py").write_text(textwrap.dedent(FACTORY))
    gen = np.random.default_rng(0)
    y = gen.integers(0, 3, size=30)
    x = np.clip(0.5 + 0.3 * np.eye(3, 4)[y] + 0.1 * gen.normal(size=(30, 4)), 0, 1)
    np.savez(directory / "data.npz", x=x.astype(np.float32), y=y)
    config = {
        "model": {"factory": "trackmodel:make", "kwargs": {"hidden": 6}},
        "data": {"path": "data.npz", "inputs": "x", "targets": "y"},
        "task": "classification",
        "budget": {"bounds": [0.0, 1.0]},
        "attacks": ["random_sign", "fgsm", {"name": "pgd_linf", "steps": 3}],
        "epsilons": [0.05, 0.2],
        "n_random": 2,
        "case": "tracked",
        "name": "mlp",
        **changes,
    }
    (directory / "audit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    checkpoints = []
    for epoch in (1, 2):
        torch.manual_seed(epoch)
        model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(),
                                    torch.nn.Linear(6, 3))
        path = directory / f"epoch_{epoch}.pt"
        torch.save(model.state_dict(), path)
        checkpoints.append(path)
    return directory / "audit.yaml", checkpoints


def test_track_writes_results_envelope_and_report(tmp_path: Path) -> None:
    config, checkpoints = _project(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(cli.app, ["track", str(config), *map(str, checkpoints),
                                     "--output", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()
    res = Results.load(out)
    assert {(r.model, r.step) for r in res} == {("mlp", 1), ("mlp", 2)}
    assert len(res.select(attack="envelope")) == 4  # 2 checkpoints x 2 epsilons
    # the numbers are those of a direct audit of the loaded checkpoint
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    model.load_state_dict(torch.load(checkpoints[1], weights_only=True))
    data = np.load(tmp_path / "data.npz")
    direct = audit(model, torch.tensor(data["x"]), torch.tensor(data["y"]),
                   epsilons=[0.05, 0.2], attacks=["random_sign", "fgsm",
                                                  {"name": "pgd_linf", "steps": 3}],
                   budget=Budget(bounds=(0.0, 1.0)), task="classification",
                   metrics=["accuracy"], n_random=2, case="tracked")
    for rec in direct.records:
        assert res.value(step=2, attack=rec.attack, epsilon=rec.epsilon,
                         metric=rec.metric, kind=rec.kind) == rec.value


def test_track_errors_are_clear(tmp_path: Path) -> None:
    config, checkpoints = _project(tmp_path)
    result = runner.invoke(cli.app, ["track", str(config), str(tmp_path / "nope.pt")])
    assert result.exit_code == 2 and "not found" in result.output
    config, _ = _project(tmp_path, task="regression", budget=None, attacks=["fgsm"])
    result = runner.invoke(cli.app, ["track", str(config), str(checkpoints[0])])
    assert result.exit_code == 2 and "classification" in result.output
