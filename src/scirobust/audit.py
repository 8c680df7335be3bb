"""The paired audit: clean vs random (same size, several draws) vs adversarial, per epsilon.

`audit` sweeps attacks × epsilons over a dataset in batches, keeps per-sample metric
components, reduces them to tidy `Record`s with standard errors, adds the adversarial/random
ratio, runs gradient-masking checks in the spirit of AutoAttack, and (with ``cache_dir``) stores
every finished (attack, epsilon) cell so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scirobust import objectives as obj
from scirobust.attacks import attack as run_attack
from scirobust.attacks import get_spec, preserved_model_state
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.metrics import DEFAULT_METRICS, Metric, resolve_metric
from scirobust.results import Record, Results, atomic_write_bytes, ratio_record

ObjectiveBuilder = Callable[[Tensor], obj.Objective]
Reference = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class AttackRun:
    """One attack of a sweep with its parameters; ``label`` names it in the results."""

    name: str
    steps: int | None = None
    step_size: float | None = None
    random_start: bool | None = None
    label: str | None = None

    @property
    def key(self) -> str:
        """Name used in the results (``label`` or ``name``)."""
        return self.label or self.name

    @classmethod
    def coerce(cls, item: str | Mapping[str, Any] | AttackRun) -> AttackRun:
        """Build from a name, a mapping ``{name: ..., steps: ...}`` or an `AttackRun`."""
        if isinstance(item, AttackRun):
            run = item
        elif isinstance(item, str):
            run = cls(item)
        elif isinstance(item, Mapping):
            unknown = set(item) - {"name", "steps", "step_size", "random_start", "label"}
            if "name" not in item or unknown:
                raise ConfigError(
                    f"An attack mapping needs 'name' and may have steps, step_size, "
                    f"random_start, label; got keys {sorted(item)}."
                )
            run = cls(**dict(item))
        else:
            raise ConfigError(f"An attack must be a name or a mapping; got {item!r}.")
        get_spec(run.name)
        return run


def _stable_int(*parts: Any) -> int:
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fingerprint_tensors(tensors: Sequence[Tensor | None]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def _callable_fingerprint(fn: Any) -> str | None:
    """Identify a reference or objective builder by its code, not only by its name.

    Two lambdas share the name ``<lambda>``; hashing the bytecode and constants keeps a cache
    from reusing cells computed with a different reference function.
    """
    if fn is None or isinstance(fn, str):
        return fn
    if isinstance(fn, nn.Module):
        return _model_fingerprint(fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"{type(fn).__module__}.{type(fn).__qualname__}"
    h = hashlib.sha256(code.co_code)
    h.update(repr(code.co_consts).encode())
    h.update(getattr(fn, "__qualname__", "").encode())
    return h.hexdigest()[:16]


def _model_fingerprint(model: Any) -> str:
    if isinstance(model, nn.Module):
        state = model.state_dict()
        return _fingerprint_tensors([state[k] for k in sorted(state)]) + type(model).__name__
    return type(model).__name__


def _model_device(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        for tensor in [*model.parameters(), *model.buffers()]:
            return tensor.device
    return torch.device("cpu")


def _budget_description(budget: Budget) -> dict[str, Any]:
    def describe(v: Any) -> Any:
        if isinstance(v, Tensor):
            # Large tensors are summarised, but with a content hash: this description is part
            # of the cache key, and a different mask of the same shape must not reuse cells.
            if v.numel() <= 64:
                return v.tolist()
            return f"tensor{tuple(v.shape)}:{_fingerprint_tensors([v])}"
        if isinstance(v, tuple):
            return [describe(x) for x in v]
        return v

    return {k: describe(getattr(budget, k)) for k in
            ("eps", "norm", "relative", "scale", "mask", "bounds", "outside")}


def _objective_builder(
    objective: str | ObjectiveBuilder | None, task: str, reference: Reference | None
) -> ObjectiveBuilder:
    if callable(objective):
        return objective
    if reference is not None and objective in (None, "against_reference", "mse"):
        return lambda _targets: obj.against_reference(reference)
    name = objective or ("cross_entropy" if task == "classification" else "mse")
    builders: dict[str, ObjectiveBuilder] = {
        "mse": obj.mse, "relative_l2": obj.relative_l2, "cross_entropy": obj.cross_entropy,
    }
    if name not in builders:
        raise ConfigError(
            f"Unknown objective {name!r}; use one of {sorted(builders)} (or against_reference "
            "with a reference function), or pass a callable targets -> objective."
        )
    return builders[name]


def _run_checks(
    model: Any, x: Tensor, objective: obj.Objective, task: str
) -> tuple[dict[str, Any], list[str]]:
    """Gradient-masking and sanity checks on one clean batch (cf. AutoAttack checks.py)."""
    checks: dict[str, Any] = {}
    notes: list[str] = []
    if isinstance(model, nn.Module):
        stochastic_types = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
        stochastic = [type(m).__name__ for m in model.modules()
                      if isinstance(m, stochastic_types)]
        checks["train_mode_stochastic_layers"] = bool(model.training and stochastic)
        if model.training and stochastic:
            notes.append(
                f"The model was in training mode with {sorted(set(stochastic))}; scirobust "
                "evaluated it in eval mode (model.eval()) and restored the mode afterwards."
            )
    with preserved_model_state(model), torch.no_grad():
        out1 = model(x)
        out2 = model(x)
    checks["randomised_output"] = not torch.equal(out1, out2)
    if checks["randomised_output"]:
        notes.append(
            "Two forward passes on the same input differ: the model is randomised, so single "
            "gradients are noisy and attacks look weaker than they are (average gradients over "
            "several passes, EOT)."
        )
    n_bad_out = int((~torch.isfinite(out1)).reshape(out1.shape[0], -1).any(1).sum())
    checks["nonfinite_output_fraction"] = n_bad_out / out1.shape[0]
    if n_bad_out:
        notes.append(f"{n_bad_out} of {out1.shape[0]} outputs contain NaN or Inf.")
    if task == "classification" and out1.dim() == 2:
        sums = out1.sum(dim=1)
        looks_softmax = bool((out1 >= 0).all() and torch.allclose(sums, torch.ones_like(sums)))
        checks["softmax_output"] = looks_softmax
        if looks_softmax:
            notes.append(
                "The classifier's outputs look like probabilities (softmax). Cross-entropy on "
                "probabilities saturates and masks gradients: return logits instead."
            )
    with preserved_model_state(model):
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = objective(model(xg), xg)
            # A black-box model (no autograd graph) can still be audited with random controls,
            # so record the missing gradient instead of failing here.
            grad = None
            if loss.requires_grad:
                (grad,) = torch.autograd.grad(loss.sum(), xg, allow_unused=True)
    if grad is None:
        notes.append(
            "The objective has no gradient with respect to the input (model not differentiable "
            "in torch): gradient attacks will fail; only random controls can be run."
        )
        grad = torch.zeros_like(x)
    flat = grad.reshape(grad.shape[0], -1)
    checks["zero_gradient_fraction"] = float((flat == 0).all(dim=1).float().mean())
    checks["nonfinite_gradient_fraction"] = float((~torch.isfinite(flat)).any(1).float().mean())
    if checks["zero_gradient_fraction"] > 0.05:
        notes.append(
            f"{checks['zero_gradient_fraction']:.0%} of samples have an exactly zero "
            "input-gradient: attacks cannot move them (gradient masking, saturated outputs, "
            "or a target equal to the model's prediction)."
        )
    if checks["nonfinite_gradient_fraction"] > 0:
        notes.append(
            f"{checks['nonfinite_gradient_fraction']:.0%} of samples have NaN/Inf gradients."
        )
    return checks, notes


@dataclass
class _Cell:
    """Per-sample components of one (attack, epsilon): per draw, per metric."""

    components: dict[str, np.ndarray]  # metric -> (draws, n, k)
    kept: np.ndarray  # (draws, n) bool

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, kept=self.kept, **{f"m_{k}": v for k, v in self.components.items()})
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> _Cell:
        with np.load(path, allow_pickle=False) as data:
            comps = {k[2:]: data[k] for k in data.files if k.startswith("m_")}
            return cls(comps, data["kept"])


def _per_sample_mean(cell: _Cell, metric: str) -> np.ndarray:
    """Components per sample averaged over the draws that kept it (NaN if none did)."""
    weights = cell.kept[:, :, None].astype(np.float64)
    counts = weights.sum(axis=0)
    total = (cell.components[metric] * weights).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / counts, np.nan)


def _pool(cell: _Cell, metric: Metric) -> tuple[list[tuple[str, float, float]], int, int,
                                               dict[str, float]]:
    """Reduce one cell: pooled value/stderr over samples, n kept, n dropped, spread per name."""
    comps, kept = cell.components[metric.name], cell.kept
    ever = kept.any(axis=0)
    reduced = metric.reduce(_per_sample_mean(cell, metric.name)[ever])
    spread: dict[str, float] = {}
    if comps.shape[0] > 1:
        per_draw = [dict((n, v) for n, v, _ in metric.reduce(comps[d][kept[d]]))
                    for d in range(comps.shape[0])]
        for name, _, _ in reduced:
            spread[name] = float(np.std([row[name] for row in per_draw], ddof=1))
    n_dropped = int((~kept).sum(axis=1).mean().round())
    return reduced, int(ever.sum()), n_dropped, spread


def audit(
    model: nn.Module | Callable[[Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor | None = None,
    *,
    epsilons: Sequence[float],
    attacks: Sequence[str | Mapping[str, Any] | AttackRun] = ("random_sign", "fgsm"),
    budget: Budget | None = None,
    task: str = "regression",
    objective: str | ObjectiveBuilder | None = None,
    reference: Reference | None = None,
    metrics: Sequence[str | Metric] | None = None,
    n_random: int = 5,
    batch_size: int = 1024,
    seed: int = 0,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
    case: str = "custom",
    model_name: str = "model",
    variable_names: Sequence[str] | None = None,
    keep_per_sample: bool = True,
    progress: bool = False,
) -> Results:
    """Paired robustness audit of ``model`` on ``inputs`` across ``epsilons``.

    Args:
        model: differentiable ``nn.Module`` (or callable) mapping a batch to outputs.
        inputs: tensor ``(N, ...)`` in the model's input units.
        targets: ground truth ``(N, ...)`` (regression) or integer labels ``(N,)``; may be
            None when ``reference`` is given.
        epsilons: perturbation sizes; each multiplies ``budget.eps`` (default 1), so they are
            in the budget's units (input units, or fractions with ``relative=True``).
        attacks: names from `scirobust.attacks.ATTACKS` or mappings with parameters. Random
            controls get ``n_random`` draws; the first random control is the baseline of the
            ``<metric>_ratio`` rows.
        budget: norm, mask, relative/scale units, bounds and clip/drop (eps is set per sweep).
        task: ``"regression"`` or ``"classification"`` (sets default objective and metrics).
        objective: ``"mse"``, ``"relative_l2"``, ``"cross_entropy"`` or a callable
            ``targets_batch -> objective``; ILLC and one-step targeted build their own.
        reference: ``fn(x)`` giving the true output at any input (exact solution or accurate
            model); used as the attack target and as the truth for metrics at perturbed inputs.
        metrics: metric names (`scirobust.metrics.METRICS` or ``rmse_per_variable``).
        n_random: draws per random control (mean reported, ``spread`` = std over draws).
        batch_size: samples per forward pass.
        seed: seeds every random draw; same seed and batch size give identical results.
        device: move the model and data there (default: the model's device).
        cache_dir: store finished (attack, epsilon) cells here and reuse them on a re-run.
        case, model_name: labels of the records.
        variable_names: names of output variables for ``rmse_per_variable``.
        keep_per_sample: keep per-sample components in ``Results.per_sample``.
        progress: show a rich progress bar.

    Returns:
        `Results` with clean, attack and ratio records and metadata (checks, warnings,
        versions, seed, configuration, wall time).
    """
    started = time.perf_counter()
    if task not in ("regression", "classification"):
        raise ConfigError(f"task must be 'regression' or 'classification'; got {task!r}.")
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point() or inputs.dim() < 2:
        raise DataError("inputs must be a floating-point tensor of shape (N, ...) with N >= 1.")
    if targets is None and reference is None:
        raise DataError("Give targets (ground truth or labels) or a reference function.")
    if targets is None and task == "classification":
        raise DataError("task='classification' needs the integer labels as targets.")
    if targets is None and isinstance(objective, str) and objective not in (
        "mse", "against_reference"
    ):
        raise ConfigError(
            f"objective={objective!r} compares with targets, but only a reference function was "
            "given: pass targets, or leave objective unset (squared error against the reference)."
        )
    if targets is not None and targets.shape[0] != inputs.shape[0]:
        raise DataError(
            f"inputs have {inputs.shape[0]} samples but targets have {targets.shape[0]}."
        )
    if not torch.isfinite(inputs).all():
        raise DataError("inputs contain NaN or Inf; remove or impute those samples first.")
    if targets is not None and targets.is_floating_point() and not torch.isfinite(targets).all():
        raise DataError("targets contain NaN or Inf; remove those samples first.")
    epsilons = [float(e) for e in epsilons]
    if not epsilons or any(not math.isfinite(e) or e < 0 for e in epsilons):
        raise ConfigError(f"epsilons must be a non-empty list of finite numbers >= 0; got "
                          f"{epsilons}.")
    if n_random < 1 or batch_size < 1:
        raise ConfigError("n_random and batch_size must be >= 1.")
    runs = [AttackRun.coerce(a) for a in attacks]
    if len({r.key for r in runs}) != len(runs):
        raise ConfigError("Two attacks share a name; give each a distinct 'label'.")
    budget = budget or Budget()
    budget.check_input(inputs)
    mismatched = [r.key for r in runs if get_spec(r.name).norm not in (None, budget.norm)]
    if mismatched and any(get_spec(r.name).is_random for r in runs):
        raise ConfigError(
            f"{', '.join(mismatched)} work(s) in another norm than the budget "
            f"(norm={budget.norm!r}); their ratio to the random controls would compare "
            "perturbations of different sizes. Audit them in a separate run whose budget has "
            "their norm (pgd_l2 -> norm='l2', pgd_linf -> norm='linf')."
        )
    if budget.bounds is not None and not budget.inside(inputs).all():
        n_out = int((~budget.inside(inputs)).sum())
        raise DataError(f"{n_out} clean inputs already lie outside Budget.bounds; fix the bounds "
                        "or the data.")
    metric_objs = [resolve_metric(m, variable_names) for m in
                   (metrics or DEFAULT_METRICS[task])]
    build_objective = _objective_builder(objective, task, reference)

    if device is not None:
        device = torch.device(device)
        if isinstance(model, nn.Module):
            model.to(device)
    else:
        device = _model_device(model)
    n = inputs.shape[0]

    # One-step targeted attacks aim at a fixed random wrong class per sample.
    target_labels: Tensor | None = None
    for r in runs:
        if get_spec(r.name).name in ("illc", "sparsefool") and task != "classification":
            raise ConfigError(
                f"{r.name} attacks classifiers: it needs task='classification' and labels."
            )
    if any(get_spec(r.name).name == "fgsm_targeted" for r in runs):
        if task != "classification" or targets is None:
            raise ConfigError("fgsm_targeted needs task='classification' and labels.")
        with preserved_model_state(model), torch.no_grad():
            n_classes = model(inputs[:1].to(device)).shape[1]
        shift = torch.randint(1, n_classes, (n,), generator=_generator(_stable_int(seed, "tgt")))
        target_labels = (targets.cpu().long() + shift) % n_classes

    def objective_for(run: AttackRun, sl: slice) -> obj.Objective | None:
        spec = get_spec(run.name)
        if spec.is_random:
            return None
        if spec.name == "illc":
            return obj.least_likely()
        if spec.name == "fgsm_targeted":
            assert target_labels is not None
            return obj.targeted(target_labels[sl].to(device))
        return build_objective(targets[sl].to(device) if targets is not None else None)

    def truth(x: Tensor, sl: slice) -> Tensor:
        if reference is not None and task == "regression":
            with torch.no_grad():
                return reference(x)
        assert targets is not None
        return targets[sl].to(device)

    def evaluate(x_batches: list[Tensor]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        comps: dict[str, list[np.ndarray]] = {m.name: [] for m in metric_objs}
        kept: list[np.ndarray] = []
        start = 0
        for xb in x_batches:
            sl = slice(start, start + xb.shape[0])
            start += xb.shape[0]
            with preserved_model_state(model), torch.no_grad():
                out = model(xb)
            ref = truth(xb, sl)
            for m in metric_objs:
                comps[m.name].append(m.components(out, ref).double().cpu().numpy())
            kept.append(budget_now.inside(xb).cpu().numpy())
        return {k: np.concatenate(v) for k, v in comps.items()}, np.concatenate(kept)

    slices = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    data_fp = _fingerprint_tensors([inputs, targets])
    model_fp = _model_fingerprint(model)
    base_key = {
        "data": data_fp, "model": model_fp, "budget": _budget_description(budget),
        "metrics": [m.name for m in metric_objs], "seed": seed, "task": task,
        "objective": _callable_fingerprint(objective),
        "reference": _callable_fingerprint(reference), "batch": batch_size,
        "variables": list(variable_names or []),
    }
    cache = Path(cache_dir) / "cells" if cache_dir is not None else None

    # checks on the first clean batch
    first = inputs[slices[0]].to(device)
    first_objective = build_objective(
        targets[slices[0]].to(device) if targets is not None else None
    )
    checks, notes = _run_checks(model, first, first_objective, task)
    for note in notes:
        warnings.warn(note, stacklevel=2)

    cells: list[tuple[AttackRun | None, float]] = [(None, 0.0)]
    cells += [(run, eps) for eps in epsilons for run in runs]
    results = Results()
    reused = 0
    progress_cm = _progress(progress, total=len(cells))
    with progress_cm as bar:
        for run, eps in cells:
            budget_now = budget.scaled(eps)
            spec = get_spec(run.name) if run else None
            draws = n_random if spec is not None and spec.is_random else 1
            key = {**base_key, "attack": asdict(run) if run else "clean", "eps": eps,
                   "draws": draws}
            cell_path = cache / f"{_stable_int(key):016x}.npz" if cache else None
            if cell_path is not None and cell_path.exists():
                cell = _Cell.from_file(cell_path)
                reused += 1
            else:
                per_draw_c: list[dict[str, np.ndarray]] = []
                per_draw_k: list[np.ndarray] = []
                for draw in range(draws):
                    gen = _generator(_stable_int(seed, run.key if run else "clean", eps, draw))
                    x_batches = []
                    for sl in slices:
                        xb = inputs[sl].to(device)
                        if run is not None:
                            xb = run_attack(
                                model, xb, objective_for(run, sl), budget_now, run.name,
                                steps=run.steps, step_size=run.step_size,
                                random_start=run.random_start, generator=gen,
                            )
                        x_batches.append(xb)
                    c, k = evaluate(x_batches)
                    per_draw_c.append(c)
                    per_draw_k.append(k)
                cell = _Cell(
                    {m.name: np.stack([c[m.name] for c in per_draw_c]) for m in metric_objs},
                    np.stack(per_draw_k),
                )
                if cell_path is not None:
                    atomic_write_bytes(cell_path, cell.to_bytes())
            attack_name = run.key if run else "clean"
            for m in metric_objs:
                reduced, n_kept, n_dropped, spread = _pool(cell, m)
                for name, value, se in reduced:
                    results.records.append(Record(
                        case, model_name, attack_name, eps, name, value, se, n_kept,
                        spread.get(name, float("nan")), n_dropped,
                    ))
                if keep_per_sample:
                    results.per_sample[f"{attack_name}|{eps!r}|{m.name}"] = _per_sample_mean(
                        cell, m.name
                    )
            bar.advance()

    results.records.extend(_ratio_records(results.records, runs, metric_objs))
    import scirobust

    results.metadata = {
        "scirobust_version": scirobust.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "seed": seed,
        "config": {
            "case": case, "model": model_name, "task": task, "epsilons": epsilons,
            "attacks": [asdict(r) for r in runs], "budget": _budget_description(budget),
            "metrics": [m.name for m in metric_objs], "n_random": n_random,
            "batch_size": batch_size, "n_samples": n,
        },
        "checks": checks,
        "warnings": notes,
        "cells_reused_from_cache": reused,
        "wall_time_s": time.perf_counter() - started,
    }
    return results


def _ratio_records(
    records: list[Record], runs: Sequence[AttackRun], metric_objs: Sequence[Metric]
) -> list[Record]:
    """Adversarial/random ratio of every error-like metric against the first random control."""
    baseline = next((r.key for r in runs if get_spec(r.name).is_random), None)
    if baseline is None:
        return []
    error_like = {m.name for m in metric_objs if m.error_like}
    index = {(r.attack, r.epsilon, r.metric): r for r in records}
    out: list[Record] = []
    for rec in records:
        spec_run = next((r for r in runs if r.key == rec.attack), None)
        if spec_run is None or get_spec(spec_run.name).is_random:
            continue
        base_metric = rec.metric.split("[")[0]
        if base_metric not in error_like and not rec.metric.startswith("rmse["):
            continue
        ref = index.get((baseline, rec.epsilon, rec.metric))
        row = ratio_record(rec, ref) if ref is not None else None
        if row is not None:
            out.append(row)
    return out


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self) -> None:
        return None


class _RichBar:
    def __init__(self, total: int) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=True)
        self._total = total

    def __enter__(self) -> _RichBar:
        self._progress.__enter__()
        self._task = self._progress.add_task("audit", total=self._total)
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def advance(self) -> None:
        self._progress.advance(self._task)


def _progress(enabled: bool, total: int) -> contextlib.AbstractContextManager:
    return _RichBar(total) if enabled else _NoBar()


__all__ = ["AttackRun", "audit"]
