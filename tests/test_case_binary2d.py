"""binary2d case: quick mode writes the standard outputs with sane numbers."""

from __future__ import annotations

import csv
import math

import torch

from scirobust.cases import CaseOptions, get_case
from scirobust.cases.binary2d import Binary2dSettings, make_data
from scirobust.results import Results


def test_data_are_labelled_by_the_sign_of_x1():
    x, y = make_data(200, torch.Generator().manual_seed(0))
    assert x.shape == (200, 2) and x.abs().max() <= 1
    assert torch.equal(y, (x[:, 0] > 0).long())
    assert Binary2dSettings.full().epochs == 500 and Binary2dSettings.full().seeds == 5


def test_quick_mode_writes_outputs(tmp_path):
    out = get_case("binary2d").run(CaseOptions(output=tmp_path, quick=True))
    assert out.report.exists() and out.report.name == "report.html"
    for name in ("packet_landscapes", "accuracy_over_epochs", "spreads_over_epochs"):
        assert (tmp_path / "figures" / "case" / f"{name}.png").stat().st_size > 0
        assert (tmp_path / "figures" / "case" / f"{name}.svg").exists()
    with (tmp_path / "tables" / "binary2d_trends.csv").open() as handle:
        trends = list(csv.DictReader(handle))
    assert {r["quantity"] for r in trends} >= {"accuracy/clean", "delta_x/clean"}

    loaded = Results.load(tmp_path)
    assert len(loaded) == len(out.results) > 0
    assert {r.case for r in loaded} == {"binary2d"}
    assert {"accuracy", "delta_x", "delta_p", "delta_x_delta_p"} <= set(loaded.metrics)
    assert set(loaded.attacks) == {"clean", "random_sign", "fgsm", "pgd_linf"}
    last = "mlp@epoch=60"
    acc = loaded.value(model=last, attack="clean", metric="accuracy")
    assert 0.8 < acc <= 1.0
    assert loaded.value(model=last, attack="fgsm", metric="accuracy") <= acc + 1e-9
    for metric in ("delta_x", "delta_p", "delta_x_delta_p"):
        value = loaded.value(model=last, attack="clean", metric=metric)
        assert math.isfinite(value) and value > 0
    # Training sharpens the packet: Δp grows from the (nearly flat) initial network.
    assert (loaded.value(model=last, attack="clean", metric="delta_p")
            > loaded.value(model="mlp@epoch=1", attack="clean", metric="delta_p"))
    meta = out.results.metadata
    assert meta["description"] and len(meta["notes"]) >= 3
    assert out.summary[0][0] == "quantity" and len(out.summary) > 1
