"""Results: tidy records, the one format every report, plot and CLI command reads.

One `Record` is one number: a metric of one model under one attack at one perturbation size.
What a record *is* lives in fields, never in a name to be parsed: ``kind`` (clean, random,
adversarial, ratio or envelope), ``variable`` (an output variable, or empty) and ``step`` (a
lead time, epoch, relaxation or episode step, or None). `Results` holds the records, run
metadata and optional per-sample arrays, and writes ``results.csv``, ``results.json`` and
``per_sample.npz`` atomically. Results written before these fields existed are upgraded on
reading (`Results.load`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import numbers
import os
import re
import tempfile
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from scirobust.errors import DataError

Kind = Literal["clean", "random", "adversarial", "ratio", "envelope"]
KINDS: tuple[str, ...] = ("clean", "random", "adversarial", "ratio", "envelope")
"""What a record measures: the unperturbed input, a random control, a gradient (or sparse)
attack, an adversarial/random ratio, or the worst case over several attacks."""

COLUMNS = (
    "case", "model", "attack", "epsilon", "metric", "value", "stderr", "n",
    "spread", "n_dropped", "baseline", "kind", "variable", "step",
)


@dataclass(frozen=True)
class Record:
    """One measured number.

    ``epsilon`` is in the budget's units (0 for the clean row); ``stderr`` is the standard
    error over samples; ``spread`` the standard deviation of the value over random draws (NaN
    for deterministic attacks); ``n`` the samples used and ``n_dropped`` those excluded because
    the perturbation left the domain; ``baseline`` names the random control of a ratio row.
    ``kind`` (required, keyword only) is one of `KINDS`; ``variable`` names the output
    variable ("" for the whole output); ``step`` is the lead time, epoch, relaxation or
    episode step the number belongs to (None when the run has no steps; the results'
    ``metadata["step_label"]`` says which).
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
    kind: Kind = field(kw_only=True)
    variable: str = field(default="", kw_only=True)
    step: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"Record kind must be one of {', '.join(KINDS)}; got {self.kind!r}.")
        if self.step is not None:
            if isinstance(self.step, bool) or not isinstance(self.step, numbers.Integral):
                raise DataError(f"Record step must be an int or None; got {self.step!r}.")
            object.__setattr__(self, "step", int(self.step))  # e.g. a NumPy integer

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with NaN as None (valid JSON)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Inverse of `to_dict` (also accepts CSV strings). Needs the ``kind`` column: results
        written before it existed are read with `Results.load`, which upgrades them."""
        missing = [c for c in (*COLUMNS[:6], "kind") if c not in data]
        if missing:
            raise DataError(f"A result record lacks the column(s) {missing}.")

        def num(v: Any) -> float:
            return float("nan") if v in (None, "", "nan") else float(v)

        try:
            step = data.get("step")
            return cls(
                case=str(data["case"]), model=str(data["model"]), attack=str(data["attack"]),
                epsilon=float(data["epsilon"]), metric=str(data["metric"]),
                value=num(data["value"]), stderr=num(data.get("stderr")),
                n=int(float(data.get("n") or 0)), spread=num(data.get("spread")),
                n_dropped=int(float(data.get("n_dropped") or 0)),
                baseline=str(data.get("baseline") or ""), kind=str(data["kind"]),  # type: ignore[arg-type]
                variable=str(data.get("variable") or ""),
                step=None if step in (None, "") else int(float(step)),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"A result record has an unreadable value: {exc} (row {data}).") \
                from exc


_UMASK = os.umask(0)
os.umask(_UMASK)


def ratio_record(record: Record, baseline: Record) -> Record | None:
    """The ``kind="ratio"`` row record / baseline (adversarial over random), or None.

    The ratio row keeps the metric, variable and step of ``record`` and names the random
    control in ``baseline``. The standard error propagates both relative errors as if
    independent (conservative: both rows are measured on the same samples, so their errors
    are positively correlated).
    """
    if not baseline.value or math.isnan(baseline.value):
        return None
    ratio = record.value / baseline.value
    rel = math.sqrt(sum((se / v) ** 2 for se, v in ((record.stderr, record.value),
                                                       (baseline.stderr, baseline.value))
                        if v and not math.isnan(se)))
    return Record(record.case, record.model, record.attack, record.epsilon, record.metric,
                  ratio, abs(ratio) * rel, record.n, float("nan"), record.n_dropped,
                  baseline.attack, kind="ratio", variable=record.variable, step=record.step)


def ratio_records(
    records: Iterable[Record],
    metrics: Collection[str],
    *,
    baseline: str | None = None,
) -> list[Record]:
    """Adversarial/random ratio rows of every engine: one per adversarial record of an
    error-like metric in ``metrics``, against the random control ``baseline`` (default: the
    first random control among ``records``) with the same case, model, epsilon, metric,
    variable and step. Records without such a control get no ratio.
    """
    records = list(records)
    if baseline is None:
        baseline = next((r.attack for r in records if r.kind == "random"), None)
    if baseline is None:
        return []
    index = {(r.case, r.model, r.epsilon, r.metric, r.variable, r.step): r
             for r in records if r.kind == "random" and r.attack == baseline}
    out: list[Record] = []
    for rec in records:
        if rec.kind != "adversarial" or rec.metric not in metrics:
            continue
        ref = index.get((rec.case, rec.model, rec.epsilon, rec.metric, rec.variable, rec.step))
        row = ratio_record(rec, ref) if ref is not None else None
        if row is not None:
            out.append(row)
    return out


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


_LEGACY_METRIC = re.compile(r"(?P<base>[^\[]+)(?:\[(?P<var>.*?)(?:@step=(?P<step>-?\d+))?\])?")
_LEGACY_EPOCH = re.compile(r"@epoch=(-?\d+)$")


def upgrade_legacy_rows(rows: list[dict[str, Any]], metadata: dict[str, Any]) -> list[Record]:
    """Records from rows written before ``kind``, ``variable`` and ``step`` were columns.

    Those files encoded them in strings: ``lat_rmse[u@step=3]_ratio`` (metric, variable, lead
    step, ratio row), ``rmse[u]`` (per-variable metric) and ``cnn@epoch=3`` (model at an
    epoch). The kind of a non-ratio row comes from the run's own description: ``clean`` and
    ``envelope`` labels, the attacks listed in ``metadata["config"]``, the baselines named by
    ratio rows, the attack registry, and (for labels it does not know) several random draws
    (a finite ``spread``). This is the only place that reads meaning out of names.
    """
    from scirobust.attacks import ATTACKS

    random_labels = {str(r.get("baseline")) for r in rows if r.get("baseline")}
    configs = metadata.get("config")
    for config in configs if isinstance(configs, list) else [configs]:
        for entry in (config or {}).get("attacks") or [] if isinstance(config, dict) else []:
            if isinstance(entry, dict) and entry.get("name") in ATTACKS \
                    and ATTACKS[entry["name"]].is_random:
                random_labels.add(str(entry.get("label") or entry["name"]))
    random_labels |= {name for name, spec in ATTACKS.items() if spec.is_random}
    spread_labels = {str(r["attack"]) for r in rows
                     if r.get("spread") not in (None, "", "nan") and str(r["attack"]) not in ATTACKS
                     and not str(r.get("metric", "")).endswith("_ratio")}
    out = []
    for row in rows:
        row = dict(row)
        metric = str(row.get("metric", ""))
        is_ratio = metric.endswith("_ratio")
        if is_ratio:
            metric = metric[: -len("_ratio")]
        match = _LEGACY_METRIC.fullmatch(metric)
        step: int | None = None
        if match is not None:
            metric = match["base"]
            row["variable"] = match["var"] or ""
            step = int(match["step"]) if match["step"] is not None else None
        model = str(row.get("model", ""))
        epoch = _LEGACY_EPOCH.search(model)
        if epoch is not None:
            row["model"] = model[: epoch.start()]
            step = int(epoch.group(1))
        attack = str(row.get("attack", ""))
        if is_ratio:
            kind = "ratio"
        elif attack in ("clean", "envelope"):
            kind = attack
        elif attack in random_labels or attack in spread_labels:
            kind = "random"
        else:
            kind = "adversarial"
        row.update(metric=metric, kind=kind, step=step)
        out.append(Record.from_dict(row))
    return out


def per_sample_key(attack: str, epsilon: float, metric: str) -> str:
    """Key of one cell's per-sample array in ``Results.per_sample`` and ``per_sample.npz``."""
    return f"{attack}|{float(epsilon)!r}|{metric}"


def _read_csv_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.csv, refusing a truncated or malformed file (file and line named)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS[:6] if c not in header]
        if missing:
            raise DataError(f"{path} is not a scirobust results.csv: its header lacks "
                            f"{missing}.")
        rows = []
        for row in reader:
            # DictReader fills missing trailing fields with None and puts extra ones under
            # None: both mean a cut or corrupted line, never a legitimate empty (NaN) value.
            if None in row or any(v is None for v in row.values()):
                raise DataError(
                    f"{path}, line {reader.line_num}: the row has {len(header)} columns "
                    f"expected but {sum(v is not None for v in row.values())} found (a "
                    "truncated or edited file?). Re-run the audit or restore the file."
                )
            if not all(row[c] for c in ("case", "attack", "epsilon", "metric")):
                raise DataError(f"{path}, line {reader.line_num}: empty case, attack, epsilon "
                                "or metric.")
            row["_line"] = reader.line_num
            rows.append(row)
    for row in rows:
        line = row.pop("_line")
        for column in ("epsilon", "value"):
            try:
                float(row[column] or "nan")
            except ValueError as exc:
                raise DataError(f"{path}, line {line}: unreadable {column} ({exc}).") from exc
    return rows


@dataclass(frozen=True)
class Perturbed:
    """The perturbed inputs of one (attack, epsilon) cell and the model's outputs there, on
    the CPU: ``inputs`` ``(draws, N, ...)``, ``outputs`` ``(draws, N, ...)`` and ``kept``
    ``(draws, N)`` (False where the sample left the domain and was dropped)."""

    inputs: torch.Tensor
    outputs: torch.Tensor
    kept: torch.Tensor


@dataclass
class Results:
    """Tidy records plus run metadata and optional per-sample arrays.

    ``perturbed[(attack_label, epsilon)]`` holds the `Perturbed` inputs and outputs of each
    cell when the engine was asked to keep them (in memory only; never written to disk).
    """

    records: list[Record] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    perturbed: dict[tuple[str, float], Perturbed] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def extend(self, other: Results | Iterable[Record]) -> None:
        """Append the records (and per-sample arrays) of another result set."""
        if isinstance(other, Results):
            self.records.extend(other.records)
            self.per_sample.update(other.per_sample)
            self.perturbed.update(other.perturbed)
        else:
            self.records.extend(other)

    def select(self, **criteria: Any) -> list[Record]:
        """Records whose fields equal the given values, e.g. ``select(attack="fgsm")``."""
        return [r for r in self.records if all(getattr(r, k) == v for k, v in criteria.items())]

    def value(self, **criteria: Any) -> float:
        """The value of the single record matching ``criteria`` (error if none or several)."""
        found = self.select(**criteria)
        if len(found) != 1:
            hint = ""
            if len(found) > 1:
                differing = [f for f in ("kind", "variable", "step", "model", "epsilon")
                             if f not in criteria and len({getattr(r, f) for r in found}) > 1]
                if differing:
                    hint = f" Narrow it with {', '.join(f'{f}=...' for f in differing)}."
            raise DataError(f"{len(found)} records match {criteria}; expected exactly one.{hint}")
        return found[0].value

    @property
    def attacks(self) -> list[str]:
        """Attack names in order of first appearance."""
        return list(dict.fromkeys(r.attack for r in self.records))

    @property
    def metrics(self) -> list[str]:
        """Metric names in order of first appearance."""
        return list(dict.fromkeys(r.metric for r in self.records))

    @property
    def epsilons(self) -> list[float]:
        """Perturbation sizes > 0 in increasing order."""
        return sorted({r.epsilon for r in self.records if r.epsilon > 0})

    def samples(self, attack: str, epsilon: float, metric: str) -> np.ndarray:
        """Per-sample components of ``metric`` in the cell (``attack``, ``epsilon``), averaged
        over random draws, shape ``(N, k)`` (kept by ``audit(..., keep_per_sample=True)``;
        the clean cell is ``("clean", 0.0)``). ``metric`` is the metric's registry name."""
        key = per_sample_key(attack, epsilon, metric)
        if key not in self.per_sample:
            cells = sorted({k.rsplit("|", 1)[0] for k in self.per_sample}) or ["none"]
            raise DataError(f"No per-sample values of {metric!r} for {attack!r} at epsilon "
                            f"{epsilon!r}; the results hold cells {', '.join(cells)}.")
        return self.per_sample[key]

    @property
    def variables(self) -> list[str]:
        """Variable names (non-empty) in order of first appearance."""
        return list(dict.fromkeys(r.variable for r in self.records if r.variable))

    def kinds(self) -> dict[str, str]:
        """Kind of every attack label (``clean``, ``random``, ``adversarial``, ``envelope``),
        read from the records' ``kind`` field; ratio rows do not define a label's kind."""
        out: dict[str, str] = {}
        for rec in self.records:
            if rec.kind != "ratio":
                out.setdefault(rec.attack, rec.kind)
        return out

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
                rows, metadata = list(payload["records"]), dict(payload.get("metadata", {}))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path} is not a scirobust results.json: {exc}") from exc
        else:
            rows, metadata = _read_csv_rows(path), {}
        try:
            if rows and all(isinstance(r, dict) and "kind" not in r for r in rows):
                return cls(upgrade_legacy_rows(rows, metadata), metadata, per_sample)
            return cls([Record.from_dict(r) for r in rows], metadata, per_sample)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc

    def summary_rows(self, metric: str | None = None) -> list[dict[str, Any]]:
        """One row per (model, attack, epsilon, variable, step) of ``metric`` (default: the
        first metric), ratio rows excluded."""
        metric = metric or (self.metrics[0] if self.metrics else None)
        return [r.to_dict() for r in self.records if r.metric == metric and r.kind != "ratio"]
