"""Track clean and robust accuracy over training (papers' Fig. 2): epochs or checkpoints.

`RobustnessTracker` is a callback that, at chosen epochs, runs the ordinary
`scirobust.audit` (task ``"classification"``, one accuracy-type metric) on a fixed evaluation
set and appends its records to one `Results`, plus the *envelope*: the lowest robust accuracy
over the gradient attacks at each epoch and epsilon (``attack="envelope"``). Because every
number comes from `audit` with the same arguments, the tracker records exactly what a direct
audit of the same model would.

Conventions: every record of one epoch has ``step=<epoch>`` and ``model=<model_name>``;
checkpoints without an epoch in their file name are labelled ``"<model_name>@<file stem>"``
with ``step=None``. Clean accuracy is the ``kind="clean"`` row (epsilon 0); the envelope rows
have ``kind="envelope"``.

Add it to your own loop in a few lines::

    sweep = Sweep(epsilons=[0.1], attacks=["random_sign", "fgsm", "pgd_linf"],
                  budget=Budget(bounds=(0.0, 1.0)), n_random=1)
    tracker = RobustnessTracker(x_test, y_test, sweep, every=1)
    for epoch in range(1, n_epochs + 1):
        train_one_epoch(model)                     # your code
        tracker.on_epoch_end(model, epoch)         # records if epoch is due
    tracker.results.save("out")                    # records + envelope rows

or let `fit` run a plain PyTorch loop with the tracker, or `track_checkpoints` audit saved
state_dicts (``scirobust track CONFIG.yaml CHECKPOINT...`` on the command line).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Unpack

import torch
from torch import Tensor, nn

from scirobust.audit import audit
from scirobust.errors import ConfigError, DataError
from scirobust.results import Record, Results
from scirobust.sweep import Sweep, SweepOptions

__all__ = [
    "DEFAULT_ATTACKS",
    "ENVELOPE",
    "RobustnessTracker",
    "checkpoint_epoch",
    "envelope_records",
    "fit",
    "history",
    "track_checkpoints",
]

ENVELOPE = "envelope"
DEFAULT_ATTACKS: tuple[str, ...] = ("random_sign", "fgsm", "pgd_linf")
_TRACK_METRICS = {"accuracy": True, "error_rate": False}  # name -> higher is better
_TRACK_DEFAULTS = {"attacks": DEFAULT_ATTACKS, "epsilons": (0.1,), "n_random": 1}


def envelope_records(
    records: Iterable[Record],
    attacks: Iterable[str] | None = None,
    *,
    metric: str = "accuracy",
) -> list[Record]:
    """Envelope rows: per (case, model, epsilon > 0, variable, step) the worst ``metric`` over
    the adversarial records (of ``attacks`` only, if given).

    Worst is the minimum for accuracy and the maximum for error-type metrics. The row has
    ``attack="envelope"``, ``kind="envelope"`` and the value, standard error and n of the
    attack attaining it (``spread`` is NaN). Random controls never enter the envelope.
    """
    higher_is_better = _TRACK_METRICS.get(metric, True)
    chosen = None if attacks is None else set(attacks)
    groups: dict[tuple[str, str, float, str, int | None], list[Record]] = {}
    for rec in records:
        if (rec.metric == metric and rec.kind == "adversarial" and rec.epsilon > 0
                and (chosen is None or rec.attack in chosen)):
            key = (rec.case, rec.model, rec.epsilon, rec.variable, rec.step)
            groups.setdefault(key, []).append(rec)
    out = []
    for (case, model, eps, variable, step), recs in groups.items():
        finite = [r for r in recs if not math.isnan(r.value)]
        if not finite:
            continue
        worst = (min if higher_is_better else max)(finite, key=lambda r: r.value)
        out.append(Record(case, model, ENVELOPE, eps, metric, worst.value, worst.stderr,
                          worst.n, float("nan"), worst.n_dropped, kind="envelope",
                          variable=variable, step=step))
    return out


def history(
    results: Results, attack: str, *, metric: str = "accuracy", epsilon: float | None = None,
    model_name: str | None = None,
) -> list[tuple[int, float]]:
    """``[(epoch, value), ...]`` of one attack (``"clean"``, an attack, ``"envelope"``) sorted
    by epoch (the records' ``step``); ratio rows are left out."""
    rows = []
    for rec in results.records:
        if (rec.attack != attack or rec.metric != metric or rec.step is None
                or rec.kind == "ratio" or (model_name is not None and rec.model != model_name)):
            continue
        if rec.kind != "clean" and epsilon is not None and not math.isclose(rec.epsilon, epsilon):
            continue
        rows.append((rec.step, rec.value))
    return sorted(rows)


class RobustnessTracker:
    """Record clean accuracy, robust accuracy per attack and their envelope over training.

    Args:
        inputs, targets: the fixed evaluation set (e.g. the test set) and integer labels.
        sweep: attacks (random controls allowed; they are excluded from the envelope),
            epsilons, budget (feature units when ``layer`` is set), n_random, batch_size, seed
            and device as a `Sweep`, or as keywords. Defaults here: attacks random_sign, fgsm,
            pgd_linf; ``epsilons=[0.1]``; ``n_random=1``. The metric is ``metric``.
        every: record every ``every`` epochs (epoch % every == 0) ...
        at: ... or exactly at these epochs (overrides ``every``).
        layer: attack the output of this submodule instead of the input
            (`scirobust.layers.FeatureAttackModel`; features recomputed at every record).
        feature_scale: with ``layer``: ``"std"`` measures eps in units of the standard
            deviation of the clean features at each record (their scale changes during
            training); ``None`` (default) in feature units.
        model_name, case: labels of the records.
        metric: ``"accuracy"`` (default) or ``"error_rate"``.
        keep_per_sample: passed to `audit`.
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        sweep: Sweep | None = None,
        *,
        every: int = 1,
        at: Iterable[int] | None = None,
        layer: str | None = None,
        feature_scale: str | None = None,
        model_name: str = "model",
        case: str = "training",
        metric: str = "accuracy",
        keep_per_sample: bool = False,
        **options: Unpack[SweepOptions],
    ) -> None:
        if metric not in _TRACK_METRICS:
            raise ConfigError(f"metric must be one of {sorted(_TRACK_METRICS)}; got {metric!r}.")
        if every < 1:
            raise ConfigError(f"every must be >= 1 (record every k-th epoch); got {every}.")
        if targets.shape[0] != inputs.shape[0]:
            raise DataError(f"inputs have {inputs.shape[0]} samples but targets have "
                            f"{targets.shape[0]}.")
        resolved = Sweep.resolve(sweep, defaults=_TRACK_DEFAULTS, **options)
        if resolved.metrics not in (None, (metric,)):
            raise ConfigError(
                f"The tracker records one metric, metric={metric!r}; the sweep asks for "
                f"{list(resolved.metrics)}. Pass metric= (accuracy or error_rate) instead."
            )
        self.sweep = resolved.replace(metrics=(metric,))
        self.inputs = inputs
        self.targets = targets
        self.every = int(every)
        self.at = None if at is None else {int(e) for e in at}
        if feature_scale not in (None, "std"):
            raise ConfigError(f"feature_scale must be None or 'std'; got {feature_scale!r}.")
        if feature_scale is not None and layer is None:
            raise ConfigError("feature_scale applies to feature attacks: give layer= too.")
        self.layer = layer
        self.feature_scale = feature_scale
        self.model_name = model_name
        self.case = case
        self.metric = metric
        self.keep_per_sample = keep_per_sample
        self._records: list[Record] = []
        self._per_sample: dict[str, Any] = {}
        self._metadata: dict[str, Any] = {}
        self._log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ callback API
    @property
    def adversarial(self) -> list[str]:
        """Keys of the gradient (and sparse) attacks: those the envelope runs over."""
        return [r.key for r in self.sweep.adversarial_runs]

    def due(self, epoch: int) -> bool:
        """True if ``epoch`` is one to record (in ``at``, else a multiple of ``every``)."""
        return int(epoch) in self.at if self.at is not None else int(epoch) % self.every == 0

    def record(self, model: nn.Module, epoch: int | None = None, *,
               label: str | None = None) -> Results:
        """Audit ``model`` now and append the records (always, whether due or not).

        Records get ``step=epoch`` and ``model=label`` (default: the tracker's model name).
        Returns this epoch's results (its envelope rows included).
        """
        if label is None and epoch is None:
            raise ConfigError("record() needs an epoch or a label.")
        label = label or self.model_name
        started = time.perf_counter()
        x = self.inputs
        target_model: nn.Module = model
        feature_info: dict[str, Any] | None = None
        sweep = self.sweep
        if self.layer is not None:
            from scirobust.layers import FeatureAttackModel

            target_model = FeatureAttackModel(model, self.layer, self.inputs[:8])
            x = target_model.features(self.inputs, batch_size=sweep.batch_size)
            feature_info = {"layer": self.layer, "shape": list(x.shape[1:]),
                            "std": float(x.double().std())}
            if self.feature_scale == "std":
                sweep = sweep.replace(budget=dataclasses.replace(sweep.budget,
                                                                 scale=feature_info["std"]))
                feature_info["eps_unit"] = "std of the clean features"
        res = audit(target_model, x, self.targets, sweep, task="classification", case=self.case,
                    model_name=label, keep_per_sample=self.keep_per_sample)
        step = None if epoch is None else int(epoch)
        res.records = [dataclasses.replace(r, step=step) for r in res.records]
        res.records.extend(envelope_records(res.records, metric=self.metric))
        self._records.extend(res.records)
        tag = label if step is None else f"{label}|epoch={step}"
        for key, value in res.per_sample.items():
            self._per_sample[f"{tag}|{key}"] = value
        if not self._metadata:
            self._metadata = {k: v for k, v in res.metadata.items()
                              if k not in ("checks", "wall_time_s", "cells_reused_from_cache")}
            self._metadata["warnings"] = list(res.metadata.get("warnings", []))
        else:
            for note in res.metadata.get("warnings", []):
                if note not in self._metadata["warnings"]:
                    self._metadata["warnings"].append(note)
        entry = {"label": label, "epoch": epoch, "wall_time_s": time.perf_counter() - started,
                 "checks": res.metadata.get("checks", {})}
        if feature_info is not None:
            entry["features"] = feature_info
        self._log.append(entry)
        return res

    def on_epoch_end(self, model: nn.Module, epoch: int) -> Results | None:
        """Record if ``epoch`` is due (see `due`); return that epoch's results or None."""
        return self.record(model, epoch) if self.due(epoch) else None

    __call__ = on_epoch_end

    def __enter__(self) -> RobustnessTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    # ------------------------------------------------------------------ results
    @property
    def results(self) -> Results:
        """All records so far (clean, attacks, random controls, envelope) with metadata."""
        metadata = dict(self._metadata)
        metadata["step_label"] = "epoch"
        metadata["tracking"] = {
            "envelope": f"attack='{ENVELOPE}': worst {self.metric} over "
                        f"{', '.join(self.adversarial)} per epoch and epsilon",
            "every": self.every, "at": sorted(self.at) if self.at is not None else None,
            "layer": self.layer, "feature_scale": self.feature_scale,
            "records": list(self._log),
        }
        return Results(list(self._records), metadata, dict(self._per_sample))

    def history(self, attack: str, epsilon: float | None = None) -> list[tuple[int, float]]:
        """``[(epoch, value)]`` of ``attack`` (or ``"clean"`` / ``"envelope"``)."""
        return history(self.results, attack, metric=self.metric, epsilon=epsilon,
                       model_name=self.model_name)


# --------------------------------------------------------------------------- plain loop
def _batches(data: Any, batch_size: int, generator: torch.Generator | None
             ) -> Iterable[tuple[Tensor, Tensor]]:
    if isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]
    else:
        yield from data


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Any,
    *,
    epochs: int,
    tracker: RobustnessTracker | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    record_initial: bool = False,
    on_epoch: Callable[[nn.Module, int], None] | None = None,
) -> list[float]:
    """A plain PyTorch training loop that calls ``tracker.on_epoch_end(model, epoch)``.

    Args:
        data: an iterable of ``(x, y)`` batches (e.g. a DataLoader, re-iterated each epoch) or
            a tuple ``(x, y)`` of tensors, shuffled with ``generator`` into ``batch_size``.
        epochs: epochs to train; epochs are numbered 1..epochs.
        loss_fn: default cross-entropy.
        record_initial: also record epoch 0 (the untrained model).
        on_epoch: extra callback ``(model, epoch)`` after the tracker.

    Returns:
        Mean training loss per epoch.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    if tracker is not None and record_initial:
        tracker.record(model, 0)
    losses = []
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        for xb, yb in _batches(data, batch_size, generator):
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * xb.shape[0]
            count += xb.shape[0]
        losses.append(total / max(count, 1))
        model.eval()
        if tracker is not None:
            tracker.on_epoch_end(model, epoch)
        if on_epoch is not None:
            on_epoch(model, epoch)
    return losses


# --------------------------------------------------------------------------- checkpoints
_FILE_EPOCH_RE = re.compile(r"(?:epoch|ep)[=_-]?(\d+)", re.IGNORECASE)


def checkpoint_epoch(path: str | Path) -> int | None:
    """The epoch in a checkpoint's file name (``epoch=3``, ``epoch_03``, ``ep3``) or None."""
    matches = _FILE_EPOCH_RE.findall(Path(path).stem)
    return int(matches[-1]) if matches else None


def track_checkpoints(
    build_model: Callable[[], nn.Module],
    checkpoints: Sequence[str | Path],
    tracker: RobustnessTracker,
    *,
    trust: bool = False,
    loader: Callable[[Path], nn.Module] | None = None,
) -> Results:
    """Audit each saved checkpoint with ``tracker`` and return all records + envelope.

    Each file is loaded with ``torch.load(weights_only=True)`` (unless ``trust``) into a fresh
    ``build_model()``, or by ``loader(path)`` if given (the CLI passes the config's loader).
    Records: ``model=<model_name>, step=<epoch>`` when the file name has an epoch, else
    ``model=<model_name>@<file stem>, step=None``.
    """
    from scirobust.io import apply_checkpoint, load_checkpoint

    if not checkpoints:
        raise ConfigError("Give at least one checkpoint file.")
    for path in checkpoints:
        if loader is not None:
            model = loader(Path(path)).eval()
        else:
            model = apply_checkpoint(build_model(), load_checkpoint(path, trust=trust)).eval()
        epoch = checkpoint_epoch(path)
        label = tracker.model_name if epoch is not None else \
            f"{tracker.model_name}@{Path(path).stem}"
        tracker.record(model, epoch, label=label)
    return tracker.results
