"""Results: tidy records, CSV/JSON round trips (NaN and Inf included), atomic writes, loading."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from scirobust import DataError, Record, Results
from scirobust.results import COLUMNS

NAN = float("nan")


def _sample() -> Results:
    return Results(
        records=[
            Record("poisson", "pinn", "clean", 0.0, "rmse", 0.125, 0.01, 64, kind="clean"),
            Record("poisson", "pinn", "random_sign", 0.1, "rmse", 0.25, 0.02, 64, spread=0.003,
                   kind="random"),
            Record("poisson", "pinn", "fgsm", 0.1, "rmse", 1.5, NAN, 62, n_dropped=2,
                   kind="adversarial", variable="u", step=3),
            Record("poisson", "pinn", "fgsm", 0.1, "rmse", 6.0, 0.5, 62,
                   baseline="random_sign", kind="ratio"),
            Record("poisson", "pinn", "pgd_linf", 0.1, "rmse", math.inf, NAN, 62,
                   kind="adversarial"),
        ],
        metadata={"seed": 3, "checks": {"zero_gradient_fraction": 0.0, "bad": NAN}},
        per_sample={"fgsm|0.1|rmse": np.arange(6.0).reshape(3, 2)},
    )


def _dicts(results: Results) -> list[dict]:
    # Records hold NaN, which never compares equal; compare their JSON-style dicts instead.
    return [r.to_dict() for r in results.records]


def test_columns_cover_the_tidy_format() -> None:
    for column in ("case", "model", "attack", "epsilon", "metric", "value", "stderr", "n"):
        assert column in COLUMNS
    header = _sample().to_csv().splitlines()[0].split(",")
    assert header == list(COLUMNS)


def test_csv_round_trip_with_nan_as_empty(tmp_path: Path) -> None:
    results = _sample()
    results.to_csv(tmp_path / "results.csv")
    with (tmp_path / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["spread"] == "" and rows[2]["stderr"] == ""  # NaN is written as empty
    assert rows[3]["baseline"] == "random_sign"
    loaded = Results.load(tmp_path / "results.csv")
    assert _dicts(loaded) == _dicts(results)
    assert math.isnan(loaded.records[2].stderr) and loaded.records[2].n_dropped == 2
    assert loaded.records[4].value == math.inf


def test_json_round_trip_with_nan_as_null(tmp_path: Path) -> None:
    results = _sample()
    text = results.to_json(tmp_path / "results.json")
    payload = json.loads(text)  # strict JSON: no NaN/Infinity literals
    assert payload["records"][2]["stderr"] is None
    assert payload["metadata"]["checks"]["bad"] is None
    loaded = Results.load(tmp_path / "results.json")
    assert _dicts(loaded) == _dicts(results)
    assert loaded.metadata["seed"] == 3


def test_infinite_values_survive_json(tmp_path: Path) -> None:
    # Regression: an attack that makes the model diverge gives an infinite RMSE; saving used
    # to crash (json allow_nan=False) after the whole sweep had run.
    results = Results([Record("c", "m", "fgsm", 0.1, "rmse", math.inf, -math.inf,
                                kind="adversarial")])
    loaded = Results.load(results.save(tmp_path))
    assert loaded.records[0].value == math.inf and loaded.records[0].stderr == -math.inf
    json.loads((tmp_path / "results.json").read_text())  # still valid strict JSON


def test_save_writes_only_final_files(tmp_path: Path) -> None:
    out = _sample().save(tmp_path / "run")
    assert sorted(os.listdir(out)) == ["per_sample.npz", "results.csv", "results.json"]
    loaded = Results.load(out)
    np.testing.assert_array_equal(loaded.per_sample["fgsm|0.1|rmse"], np.arange(6.0).reshape(3, 2))
    assert _dicts(loaded) == _dicts(_sample())


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    results = _sample()
    results.save(tmp_path)
    old = (tmp_path / "results.csv").read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    results.records.append(Record("x", "y", "z", 1.0, "rmse", 1.0, kind="adversarial"))
    with pytest.raises(OSError, match="disk full"):
        results.to_csv(tmp_path / "results.csv")
    assert (tmp_path / "results.csv").read_text() == old
    assert sorted(os.listdir(tmp_path)) == ["per_sample.npz", "results.csv", "results.json"]


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"No results found.*results\.json or results\.csv"):
        Results.load(tmp_path / "missing")
    with pytest.raises(DataError, match="No results found"):
        Results.load(tmp_path)  # exists but empty
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(DataError, match=r"not a scirobust results\.json"):
        Results.load(tmp_path)
    with pytest.raises(DataError, match="lacks the column"):
        Record.from_dict({"case": "c", "model": "m"})


def test_select_value_and_names() -> None:
    results = _sample()
    assert results.value(attack="fgsm", metric="rmse", kind="adversarial") == 1.5
    assert len(results.select(epsilon=0.1)) == 4
    with pytest.raises(DataError, match=r"2 records match.*Narrow it with kind=\.\.\."):
        results.value(attack="fgsm")
    assert results.attacks == ["clean", "random_sign", "fgsm", "pgd_linf"]
    assert results.metrics == ["rmse"]
    assert results.variables == ["u"]
    assert results.kinds() == {"clean": "clean", "random_sign": "random",
                               "fgsm": "adversarial", "pgd_linf": "adversarial"}
    assert [r["attack"] for r in results.summary_rows()] == [*results.attacks[:3], "pgd_linf"]
    merged = Results()
    merged.extend(results)
    merged.extend([Record("a", "b", "c", 0.0, "mae", 1.0, kind="clean")])
    assert len(merged) == 6 and "fgsm|0.1|rmse" in merged.per_sample


def test_record_kind_is_required_and_checked() -> None:
    with pytest.raises(TypeError, match="kind"):
        Record("c", "m", "fgsm", 0.1, "rmse", 1.0)  # type: ignore[call-arg]
    with pytest.raises(DataError, match="kind must be one of"):
        Record("c", "m", "fgsm", 0.1, "rmse", 1.0, kind="attack")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="step must be an int"):
        Record("c", "m", "fgsm", 0.1, "rmse", 1.0, kind="adversarial", step="3")  # type: ignore


def test_ratio_records_match_every_field_but_the_attack() -> None:
    from scirobust.results import ratio_records

    def rec(attack: str, kind: str, value: float, **kw: object) -> Record:
        return Record("c", "m", attack, 0.1, "lat_rmse", value, kind=kind, **kw)  # type: ignore

    records = [
        rec("noise", "random", 2.0, variable="u", step=1),
        rec("noise", "random", 4.0, variable="u", step=2),
        rec("noise", "random", 5.0, variable="v", step=1),
        rec("my_attack", "adversarial", 6.0, variable="u", step=1),
        rec("my_attack", "adversarial", 6.0, variable="u", step=2),
        rec("my_attack", "adversarial", 6.0, variable="w", step=1),  # no control: no ratio
        Record("c", "m", "my_attack", 0.1, "acc", 0.5, kind="adversarial", variable="u",
               step=1),  # not an error-like metric: no ratio
    ]
    rows = ratio_records(records, {"lat_rmse"})
    assert [(r.variable, r.step, r.value, r.kind, r.baseline) for r in rows] == [
        ("u", 1, 3.0, "ratio", "noise"), ("u", 2, 1.5, "ratio", "noise")]
    assert ratio_records(records, {"lat_rmse"}, baseline="absent") == []


def test_results_written_before_kind_columns_are_upgraded(tmp_path: Path) -> None:
    old_header = "case,model,attack,epsilon,metric,value,stderr,n,spread,n_dropped,baseline\n"
    rows = [
        "w,afno,clean,0.0,lat_rmse[z@step=2],1.0,,4,,0,",
        "w,afno,my_noise,0.1,lat_rmse[z@step=2],2.0,,4,0.1,0,",
        "w,afno,fgsm,0.1,lat_rmse[z@step=2],6.0,,4,,0,",
        "w,afno,fgsm,0.1,lat_rmse[z@step=2]_ratio,3.0,,4,,0,my_noise",
        "w,cnn@epoch=7,envelope,0.1,accuracy,0.5,,4,,0,",
        "w,cnn@epoch=7,fgsm,0.1,rmse[u],0.5,,4,,0,",
    ]
    (tmp_path / "results.csv").write_text(old_header + "\n".join(rows) + "\n")
    loaded = Results.load(tmp_path)
    got = [(r.model, r.attack, r.metric, r.variable, r.step, r.kind) for r in loaded]
    assert got == [
        ("afno", "clean", "lat_rmse", "z", 2, "clean"),
        ("afno", "my_noise", "lat_rmse", "z", 2, "random"),
        ("afno", "fgsm", "lat_rmse", "z", 2, "adversarial"),
        ("afno", "fgsm", "lat_rmse", "z", 2, "ratio"),
        ("cnn", "envelope", "accuracy", "", 7, "envelope"),
        ("cnn", "fgsm", "rmse", "u", 7, "adversarial"),
    ]


def test_truncated_or_corrupt_csv_is_refused_with_file_and_line(tmp_path: Path) -> None:
    text = _sample().to_csv(tmp_path / "results.csv")
    lines = text.splitlines()
    (tmp_path / "results.csv").write_text("\n".join([*lines[:-1], lines[-1][:12]]) + "\n")
    with pytest.raises(DataError, match=r"results\.csv, line 6: the row has 14 columns"):
        Results.load(tmp_path)
    (tmp_path / "results.csv").write_text("\n".join([*lines[:3], lines[3] + ",extra"]) + "\n")
    with pytest.raises(DataError, match="line 4"):
        Results.load(tmp_path)
    bad = lines[2].replace("0.1,rmse", "abc,rmse", 1)
    (tmp_path / "results.csv").write_text("\n".join([lines[0], bad]) + "\n")
    with pytest.raises(DataError, match="line 2: unreadable epsilon"):
        Results.load(tmp_path)
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"not a scirobust results\.csv"):
        Results.load(tmp_path)


def test_record_step_accepts_numpy_integers() -> None:
    rec = Record("c", "m", "clean", 0.0, "rmse", 1.0, kind="clean", step=np.int64(3))
    assert rec.step == 3 and type(rec.step) is int
    assert json.loads(Results([rec]).to_json())["records"][0]["step"] == 3
