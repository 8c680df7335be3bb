"""Results: tidy records, the one format every report, plot and CLI command reads.

One `Record` is one number: a metric of one model under one attack at one perturbation size.
`Results` holds the records, run metadata and optional per-sample arrays, and writes
``results.csv``, ``results.json`` and ``per_sample.npz`` atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scirobust.errors import DataError

COLUMNS = (
    "case", "model", "attack", "epsilon", "metric", "value", "stderr", "n",
    "spread", "n_dropped", "baseline",
)


@dataclass(frozen=True)
class Record:
    """One measured number.

    ``epsilon`` is in the budget's units (0 for the clean row); ``stderr`` is the standard
    error over samples; ``spread`` the standard deviation of the value over random draws (NaN
    for deterministic attacks); ``n`` the samples used and ``n_dropped`` those excluded because
    the perturbation left the domain; ``baseline`` names the random control of a ratio row.
    """

    case: str
    model: str
    attack: str
    epsilon: float
    metric: str
    value: float
    stderr: float = float("nan")
    n: int = 0
    spread: float = float("nan")
    n_dropped: int = 0
    baseline: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with NaN as None (valid JSON)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Inverse of `to_dict` (also accepts CSV strings)."""
        missing = [c for c in COLUMNS[:6] if c not in data]
        if missing:
            raise DataError(f"A result record lacks the column(s) {missing}.")

        def num(v: Any) -> float:
            return float("nan") if v in (None, "", "nan") else float(v)

        return cls(
            case=str(data["case"]), model=str(data["model"]), attack=str(data["attack"]),
            epsilon=float(data["epsilon"]), metric=str(data["metric"]), value=num(data["value"]),
            stderr=num(data.get("stderr")), n=int(float(data.get("n") or 0)),
            spread=num(data.get("spread")), n_dropped=int(float(data.get("n_dropped") or 0)),
            baseline=str(data.get("baseline") or ""),
        )


_UMASK = os.umask(0)
os.umask(_UMASK)


def ratio_record(record: Record, baseline: Record) -> Record | None:
    """The row ``<metric>_ratio`` = record / baseline (adversarial over random), or None.

    The standard error propagates both relative errors as if independent (conservative: both
    rows are measured on the same samples, so their errors are positively correlated).
    """
    if not baseline.value or math.isnan(baseline.value):
        return None
    ratio = record.value / baseline.value
    rel = math.sqrt(sum((se / v) ** 2 for se, v in ((record.stderr, record.value),
                                                       (baseline.stderr, baseline.value))
                        if v and not math.isnan(se)))
    return Record(record.case, record.model, record.attack, record.epsilon,
                  f"{record.metric}_ratio", ratio, abs(ratio) * rel, record.n, float("nan"),
                  record.n_dropped, baseline.attack)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; results are meant to be shared like any other output.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _record_json(record: Record) -> dict[str, Any]:
    """`Record.to_dict` with ±Inf as the strings "inf"/"-inf" (strict JSON has no Infinity;
    `Record.from_dict` reads them back). A diverging model under attack gives Inf errors."""
    return {
        k: (("inf" if v > 0 else "-inf") if isinstance(v, float) and math.isinf(v) else v)
        for k, v in record.to_dict().items()
    }


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclass
class Results:
    """Tidy records plus run metadata and optional per-sample arrays."""

    records: list[Record] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def extend(self, other: Results | Iterable[Record]) -> None:
        """Append the records (and per-sample arrays) of another result set."""
        if isinstance(other, Results):
            self.records.extend(other.records)
            self.per_sample.update(other.per_sample)
        else:
            self.records.extend(other)

    def select(self, **criteria: Any) -> list[Record]:
        """Records whose fields equal the given values, e.g. ``select(attack="fgsm")``."""
        return [r for r in self.records if all(getattr(r, k) == v for k, v in criteria.items())]

    def value(self, **criteria: Any) -> float:
        """The value of the single record matching ``criteria`` (error if none or several)."""
        found = self.select(**criteria)
        if len(found) != 1:
            raise DataError(f"{len(found)} records match {criteria}; expected exactly one.")
        return found[0].value

    @property
    def attacks(self) -> list[str]:
        """Attack names in order of first appearance."""
        return list(dict.fromkeys(r.attack for r in self.records))

    @property
    def metrics(self) -> list[str]:
        """Metric names in order of first appearance."""
        return list(dict.fromkeys(r.metric for r in self.records))

    # ------------------------------------------------------------------ I/O
    def to_csv(self, path: str | Path | None = None) -> str:
        """CSV text with the `COLUMNS`; written atomically to ``path`` if given."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in self.records:
            row = record.to_dict()
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
        text = buffer.getvalue()
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text ``{"metadata": ..., "records": [...]}``; written atomically if ``path``."""
        payload = {
            "metadata": _json_safe(self.metadata),
            "records": [_record_json(r) for r in self.records],
        }
        text = json.dumps(payload, indent=2, allow_nan=False)
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    def save(self, directory: str | Path) -> Path:
        """Write results.csv, results.json and (if any) per_sample.npz into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.to_csv(directory / "results.csv")
        self.to_json(directory / "results.json")
        if self.per_sample:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **self.per_sample)
            atomic_write_bytes(directory / "per_sample.npz", buffer.getvalue())
        return directory

    @classmethod
    def load(cls, directory_or_file: str | Path) -> Results:
        """Read a results directory (results.json, else results.csv) or one of those files."""
        path = Path(directory_or_file)
        if path.is_dir():
            candidates = [path / "results.json", path / "results.csv"]
            path = next((p for p in candidates if p.exists()), candidates[0])
        if not path.exists():
            raise DataError(
                f"No results found at {directory_or_file}: expected a directory containing "
                "results.json or results.csv (as written by scirobust audit/reproduce)."
            )
        per_sample: dict[str, np.ndarray] = {}
        npz = path.parent / "per_sample.npz"
        if npz.exists():
            with np.load(npz, allow_pickle=False) as data:
                per_sample = {k: data[k] for k in data.files}
        if path.suffix == ".json":
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
                records = [Record.from_dict(r) for r in payload["records"]]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path} is not a scirobust results.json: {exc}") from exc
            return cls(records, payload.get("metadata", {}), per_sample)
        with path.open(newline="", encoding="utf-8") as handle:
            records = [Record.from_dict(row) for row in csv.DictReader(handle)]
        return cls(records, {}, per_sample)

    def summary_rows(self, metric: str | None = None) -> list[dict[str, Any]]:
        """One row per (model, attack, epsilon) with the value of ``metric`` (default: first)."""
        metric = metric or next((m for m in self.metrics if not m.endswith("_ratio")), None)
        return [r.to_dict() for r in self.records if r.metric == metric]
