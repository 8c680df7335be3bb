"""Track clean and robust accuracy over training (papers' Fig. 2): epochs or checkpoints.

`RobustnessTracker` is a callback that, at chosen epochs, runs the ordinary
`scirobust.audit` (task ``"classification"``, one accuracy-type metric) on a fixed evaluation
set and appends its records to one `Results`, plus the *envelope*: the lowest robust accuracy
over the gradient attacks at each epoch and epsilon (``attack="envelope"``). Because every
number comes from `audit` with the same arguments, the tracker records exactly what a direct
audit of the same model would.

Conventions: the epoch is part of the model label, ``"<model_name>@epoch=<k>"`` (see
`epoch_label` / `parse_epoch`); checkpoints without an epoch in their file name are labelled
``"<model_name>@<file stem>"``. Clean accuracy is the ``attack="clean"`` row (epsilon 0).

Add it to your own loop in a few lines::

    tracker = RobustnessTracker(x_test, y_test, attacks=["random_sign", "fgsm", "pgd_linf"],
                                epsilons=[0.1], budget=Budget(bounds=(0.0, 1.0)), every=1)
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from scirobust.attacks import get_spec
from scirobust.audit import AttackRun, audit
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.results import Record, Results

__all__ = [
    "DEFAULT_ATTACKS",
    "ENVELOPE",
    "RobustnessTracker",
    "checkpoint_epoch",
    "envelope_records",
    "epoch_label",
    "fit",
    "history",
    "parse_epoch",
    "track_checkpoints",
]

ENVELOPE = "envelope"
DEFAULT_ATTACKS: tuple[str, ...] = ("random_sign", "fgsm", "pgd_linf")
_TRACK_METRICS = {"accuracy": True, "error_rate": False}  # name -> higher is better
_EPOCH_RE = re.compile(r"@epoch=(-?\d+)$")


def epoch_label(model_name: str, epoch: int) -> str:
    """Model label of one tracked epoch: ``"<model_name>@epoch=<epoch>"``."""
    return f"{model_name}@epoch={int(epoch)}"


def parse_epoch(label: str) -> tuple[str, int | None]:
    """Inverse of `epoch_label`: ``("cnn", 3)`` from ``"cnn@epoch=3"``; ``(label, None)``
    for a label without an epoch."""
    match = _EPOCH_RE.search(label)
    if match is None:
        return label, None
    return label[: match.start()], int(match.group(1))


def envelope_records(
    records: Iterable[Record],
    attacks: Iterable[str],
    *,
    metric: str = "accuracy",
) -> list[Record]:
    """Envelope rows: per (case, model, epsilon > 0) the worst ``metric`` over ``attacks``.

    Worst is the minimum for accuracy and the maximum for error-type metrics. The row has
    ``attack="envelope"`` and the value, standard error and n of the attack attaining it
    (``spread`` is NaN). Random controls should not be passed in ``attacks``.
    """
    higher_is_better = _TRACK_METRICS.get(metric, True)
    chosen = set(attacks)
    groups: dict[tuple[str, str, float], list[Record]] = {}
    for rec in records:
        if rec.metric == metric and rec.attack in chosen and rec.epsilon > 0:
            groups.setdefault((rec.case, rec.model, rec.epsilon), []).append(rec)
    out = []
    for (case, model, eps), recs in groups.items():
        finite = [r for r in recs if not math.isnan(r.value)]
        if not finite:
            continue
        worst = (min if higher_is_better else max)(finite, key=lambda r: r.value)
        out.append(Record(case, model, ENVELOPE, eps, metric, worst.value, worst.stderr,
                          worst.n, float("nan"), worst.n_dropped))
    return out


def history(
    results: Results, attack: str, *, metric: str = "accuracy", epsilon: float | None = None,
    model_name: str | None = None,
) -> list[tuple[int, float]]:
    """``[(epoch, value), ...]`` of one attack (``"clean"``, an attack, ``"envelope"``) sorted
    by epoch, read from model labels ``name@epoch=k``."""
    rows = []
    for rec in results.records:
        name, epoch = parse_epoch(rec.model)
        if (rec.attack != attack or rec.metric != metric or epoch is None
                or (model_name is not None and name != model_name)):
            continue
        if attack != "clean" and epsilon is not None and not math.isclose(rec.epsilon, epsilon):
            continue
        rows.append((epoch, rec.value))
    return sorted(rows)


class RobustnessTracker:
    """Record clean accuracy, robust accuracy per attack and their envelope over training.

    Args:
        inputs, targets: the fixed evaluation set (e.g. the test set) and integer labels.
        attacks: attack names or mappings as in `scirobust.audit` (random controls allowed;
            they are excluded from the envelope).
        epsilons: perturbation sizes in the budget's units.
        budget: norm, bounds, mask (as in `audit`); feature units when ``layer`` is set.
        every: record every ``every`` epochs (epoch % every == 0) ...
        at: ... or exactly at these epochs (overrides ``every``).
        layer: attack the output of this submodule instead of the input
            (`scirobust.layers.FeatureAttackModel`; features recomputed at every record).
        feature_scale: with ``layer``: ``"std"`` measures eps in units of the standard
            deviation of the clean features at each record (their scale changes during
            training); ``None`` (default) in feature units.
        model_name, case: labels of the records (model label ``model_name@epoch=k``).
        metric: ``"accuracy"`` (default) or ``"error_rate"``.
        n_random, batch_size, seed, device, keep_per_sample: passed to `audit`.
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        *,
        attacks: Sequence[str | Mapping[str, Any] | AttackRun] = DEFAULT_ATTACKS,
        epsilons: Sequence[float] = (0.1,),
        budget: Budget | None = None,
        every: int = 1,
        at: Iterable[int] | None = None,
        layer: str | None = None,
        feature_scale: str | None = None,
        model_name: str = "model",
        case: str = "training",
        metric: str = "accuracy",
        n_random: int = 1,
        batch_size: int = 1024,
        seed: int = 0,
        device: str | torch.device | None = None,
        keep_per_sample: bool = False,
    ) -> None:
        if metric not in _TRACK_METRICS:
            raise ConfigError(f"metric must be one of {sorted(_TRACK_METRICS)}; got {metric!r}.")
        if every < 1:
            raise ConfigError(f"every must be >= 1 (record every k-th epoch); got {every}.")
        if targets.shape[0] != inputs.shape[0]:
            raise DataError(f"inputs have {inputs.shape[0]} samples but targets have "
                            f"{targets.shape[0]}.")
        self.inputs = inputs
        self.targets = targets
        self.runs = [AttackRun.coerce(a) for a in attacks]
        self.epsilons = [float(e) for e in epsilons]
        self.budget = budget
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
        self.n_random = n_random
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.keep_per_sample = keep_per_sample
        self._records: list[Record] = []
        self._per_sample: dict[str, Any] = {}
        self._metadata: dict[str, Any] = {}
        self._log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ callback API
    @property
    def adversarial(self) -> list[str]:
        """Keys of the gradient (and sparse) attacks: those the envelope runs over."""
        return [r.key for r in self.runs if not get_spec(r.name).is_random]

    def due(self, epoch: int) -> bool:
        """True if ``epoch`` is one to record (in ``at``, else a multiple of ``every``)."""
        return int(epoch) in self.at if self.at is not None else int(epoch) % self.every == 0

    def audit_kwargs(self) -> dict[str, Any]:
        """The arguments every record passes to `scirobust.audit` (besides model and data)."""
        return {
            "epsilons": self.epsilons, "attacks": self.runs, "budget": self.budget,
            "task": "classification", "metrics": [self.metric], "n_random": self.n_random,
            "batch_size": self.batch_size, "seed": self.seed, "device": self.device,
            "case": self.case, "keep_per_sample": self.keep_per_sample,
        }

    def record(self, model: nn.Module, epoch: int | None = None, *,
               label: str | None = None) -> Results:
        """Audit ``model`` now and append the records (always, whether due or not).

        Returns this epoch's results (its envelope rows included).
        """
        if label is None:
            if epoch is None:
                raise ConfigError("record() needs an epoch or a label.")
            label = epoch_label(self.model_name, epoch)
        started = time.perf_counter()
        x = self.inputs
        target_model: nn.Module = model
        feature_info: dict[str, Any] | None = None
        if self.layer is not None:
            from scirobust.layers import FeatureAttackModel

            target_model = FeatureAttackModel(model, self.layer, self.inputs[:8])
            x = target_model.features(self.inputs, batch_size=self.batch_size)
            feature_info = {"layer": self.layer, "shape": list(x.shape[1:]),
                            "std": float(x.double().std())}
        kwargs = self.audit_kwargs()
        if feature_info is not None and self.feature_scale == "std":
            kwargs["budget"] = dataclasses.replace(self.budget or Budget(),
                                                   scale=feature_info["std"])
            feature_info["eps_unit"] = "std of the clean features"
        res = audit(target_model, x, self.targets, model_name=label, **kwargs)
        env = envelope_records(res.records, self.adversarial, metric=self.metric)
        res.records.extend(env)
        self._records.extend(res.records)
        for key, value in res.per_sample.items():
            self._per_sample[f"{label}|{key}"] = value
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
        metadata["tracking"] = {
            "model_label": "<model_name>@epoch=<k>",
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
    Labels: ``<model_name>@epoch=<k>`` when the file name has an epoch, else
    ``<model_name>@<file stem>``.
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
        label = (epoch_label(tracker.model_name, epoch) if epoch is not None
                 else f"{tracker.model_name}@{Path(path).stem}")
        tracker.record(model, epoch, label=label)
    return tracker.results
