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
import platform
import time
import types
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import torch
from torch import Tensor, nn

from scirobust import distributed
from scirobust import objectives as obj
from scirobust._hashing import fingerprint_tensors, stable_int
from scirobust.attacks import attack as run_attack
from scirobust.attacks import get_spec, input_gradient, preserved_model_state, skip_randomness
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.metrics import DEFAULT_METRICS, Metric, Reduction, resolve_metric
from scirobust.results import (
    Perturbed,
    Record,
    Results,
    atomic_write_bytes,
    per_sample_key,
    ratio_records,
)
from scirobust.sweep import AttackRun, Sweep, SweepOptions

ObjectiveBuilder = Callable[[Tensor], obj.Objective]
Reference = Callable[[Tensor], Tensor]


def _callable_fingerprint(fn: Any) -> str | None:
    """Identify a reference or objective builder by its code, not only by its name.

    Two lambdas share the name ``<lambda>``; hashing the bytecode and constants keeps a cache
    from reusing cells computed with a different reference function.
    """
    if fn is None or isinstance(fn, str):
        return fn
    own = getattr(fn, "cache_fingerprint", None)
    if isinstance(own, str):  # objects that know what identifies them (e.g. a reference)
        return own
    if isinstance(fn, nn.Module):
        return _model_fingerprint(fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"{type(fn).__module__}.{type(fn).__qualname__}"
    h = hashlib.sha256()
    _hash_code(h, code)
    h.update(getattr(fn, "__qualname__", "").encode())
    return h.hexdigest()[:16]


def _hash_code(h: Any, code: types.CodeType) -> None:
    """Bytecode and constants, nested functions included by content: the repr of a nested
    code object holds its memory address, which differs between runs."""
    h.update(code.co_code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(h, const)
        else:
            h.update(repr(const).encode())


def _model_fingerprint(model: Any) -> str:
    if isinstance(model, nn.Module):
        state = model.state_dict()
        return fingerprint_tensors([state[k] for k in sorted(state)]) + type(model).__name__
    return type(model).__name__


def _model_device(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        for tensor in [*model.parameters(), *model.buffers()]:
            return tensor.device
    return torch.device("cpu")


_ONE_SAMPLE_OOM = ("One sample does not fit in the device's memory (out of memory at batch "
                   "size 1): use a smaller model or input, or run on the CPU (device='cpu').")


def _free_device_memory() -> None:
    """Return cached blocks to the GPU after an out-of-memory error, before retrying."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _check_arguments(model: Any, inputs: Tensor, targets: Tensor | None, task: str,
                     objective: Any, reference: Reference | None) -> None:
    """Refuse, with a message that says what to pass instead, what `audit` cannot use."""
    if task not in ("regression", "classification"):
        raise ConfigError(f"task must be 'regression' or 'classification'; got {task!r}.")
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point() or inputs.dim() < 2 \
            or inputs.shape[0] == 0:
        raise DataError("inputs must be a floating-point tensor of shape (N, ...) with N >= 1.")
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()} \
        if isinstance(model, nn.Module) else set()
    if dtypes and inputs.dtype not in dtypes:
        raise DataError(
            f"inputs are {inputs.dtype} but the model's parameters are "
            f"{', '.join(sorted(map(str, dtypes)))}; convert one of them first, e.g. "
            f"inputs.to({sorted(map(str, dtypes))[0]}) or model.to(inputs.dtype)."
        )
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


class _WithSideInputs(nn.Module):
    """``model(x, **side)`` as a module of ``x`` alone (so attacks, checks and the model-state
    guard see one ordinary module)."""

    def __init__(self, model: nn.Module | Callable[..., Tensor], side: dict[str, Tensor]):
        super().__init__()
        self.inner = model
        self.side = side

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x, **self.side)


def _check_side_inputs(side: Mapping[str, Tensor] | None, n: int) -> dict[str, Tensor]:
    if side is None:
        return {}
    if not isinstance(side, Mapping):
        raise DataError(f"side_inputs must be a mapping name -> tensor (the model's keyword "
                        f"arguments); got {type(side).__name__}.")
    out = {}
    for name, value in side.items():
        if not isinstance(name, str) or not isinstance(value, Tensor):
            raise DataError(f"side_inputs[{name!r}] must be a tensor keyed by the model's "
                            f"keyword name; got {type(value).__name__}.")
        if value.dim() == 0 or value.shape[0] != n:
            raise DataError(f"side_inputs[{name!r}] has shape {tuple(value.shape)}; it needs "
                            f"one row per sample, ({n}, ...), like the inputs.")
        out[name] = value
    return out


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
    model: Any, x: Tensor, objective: obj.Objective, task: str, needs_gradient: bool = True
) -> tuple[dict[str, Any], list[str], str]:
    """Gradient-masking and sanity checks on one clean batch (cf. AutoAttack checks.py);
    also returns the fingerprint of the model's behaviour on that batch (cache key)."""
    checks: dict[str, Any] = {}
    notes: list[str] = []
    if isinstance(model, nn.Module):
        # The flag of each stochastic layer decides what runs, not the wrapper's own flag (a
        # FeatureAttackModel around an eval-mode network is itself in training mode).
        stochastic_types = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
        stochastic = [type(m).__name__ for m in model.modules()
                      if isinstance(m, stochastic_types) and m.training]
        checks["train_mode_stochastic_layers"] = bool(stochastic)
        if stochastic:
            notes.append(
                f"The model was in training mode with {sorted(set(stochastic))}; scirobust "
                "evaluated it in eval mode (model.eval()) and restored the mode afterwards."
            )
    with preserved_model_state(model), torch.no_grad():
        out1 = model(x)
        out2 = model(x)
    # Two BLAS calls may differ in the last bits under thread contention; a randomised model
    # (dropout, noise layers) differs by far more than this tolerance.
    scale = float(out1.detach().abs().nan_to_num(0.0, 0.0, 0.0).max()) if out1.numel() else 0.0
    checks["randomised_output"] = not torch.allclose(
        out1, out2, rtol=1e-5, atol=1e-6 * max(scale, 1e-30), equal_nan=True)
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
        # Said even for random-only sweeps: the user learns that no gradient attack is possible.
        notes.append(
            "The objective has no gradient with respect to the input (model not differentiable "
            "in torch): gradient attacks will fail; only random controls can be run."
        )
        grad = torch.zeros_like(x)
    flat = grad.reshape(grad.shape[0], -1)
    checks["zero_gradient_fraction"] = float((flat == 0).all(dim=1).float().mean())
    if not needs_gradient:  # random controls only: a zero gradient harms nothing
        return checks, notes, _behaviour_fingerprint(out1, grad)
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
    return checks, notes, _behaviour_fingerprint(out1, grad)


def _behaviour_fingerprint(*tensors: Tensor) -> str:
    """What the model computes on the probe batch: outputs and input-gradients rounded to six
    significant digits of their largest element, so a change of code that leaves the weights
    alone (an activation, an output scale) changes the cache key, while last-bit noise of a
    busy BLAS does not."""
    rounded = []
    for t in tensors:
        a = t.detach().double().cpu()
        finite = a[torch.isfinite(a)]
        scale = float(finite.abs().max()) if finite.numel() else 1.0
        rounded.append(torch.round(a / (scale or 1.0), decimals=6))
    return fingerprint_tensors(rounded)


@dataclass
class _Part:
    """What one batch of one draw gives: metric components ``(b, k)``, kept flags ``(b,)`` and
    (with ``keep_perturbed``) the model's outputs and the perturbed inputs."""

    components: dict[str, np.ndarray]
    kept: np.ndarray
    outputs: np.ndarray | None = None
    inputs: np.ndarray | None = None

    @staticmethod
    def concatenate(parts: Sequence[_Part]) -> _Part:
        """The batches of one draw in order, as one part over the whole data set."""
        first = parts[0]
        return _Part(
            {k: np.concatenate([p.components[k] for p in parts]) for k in first.components},
            np.concatenate([p.kept for p in parts]),
            None if first.outputs is None else np.concatenate([p.outputs for p in parts]),  # type: ignore[misc]
            None if first.inputs is None else np.concatenate([p.inputs for p in parts]),  # type: ignore[misc]
        )


@dataclass
class _Cell:
    """Per-sample components of one (attack, epsilon): per draw, per metric; with
    ``keep_perturbed`` also the perturbed inputs and the model's outputs there."""

    components: dict[str, np.ndarray]  # metric -> (draws, n, k)
    kept: np.ndarray  # (draws, n) bool
    inputs: np.ndarray | None = None  # (draws, n, ...)
    outputs: np.ndarray | None = None  # (draws, n, ...)

    def to_bytes(self, key: str) -> bytes:
        buffer = io.BytesIO()
        arrays = {f"m_{k}": v for k, v in self.components.items()}
        if self.inputs is not None and self.outputs is not None:
            arrays.update(x_inputs=self.inputs, x_outputs=self.outputs)
        np.savez(buffer, kept=self.kept, key=np.array(key), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path: Path, key: str) -> _Cell | str:
        """The cell stored at ``path``, or why it cannot be used (a sentence)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if "key" not in data.files or str(data["key"]) != key:
                    return (f"cache cell {path} belongs to another cell or run (its stored key "
                            "differs): recomputed")
                comps = {k[2:]: data[k] for k in data.files if k.startswith("m_")}
                has_x = "x_inputs" in data.files
                return cls(comps, data["kept"], data["x_inputs"] if has_x else None,
                           data["x_outputs"] if has_x else None)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            return f"cache cell {path} is unreadable ({type(exc).__name__}: {exc}): recomputed"


def _per_sample_mean(cell: _Cell, metric: str) -> np.ndarray:
    """Components per sample averaged over the draws that kept it (NaN if none did)."""
    weights = cell.kept[:, :, None].astype(np.float64)
    counts = weights.sum(axis=0)
    total = (cell.components[metric] * weights).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / counts, np.nan)


def _pool(cell: _Cell, metric: Metric) -> tuple[list[Reduction], int, int,
                                               dict[tuple[str, str], float]]:
    """Reduce one cell: pooled rows over samples, n kept, n dropped, spread per row."""
    comps, kept = cell.components[metric.name], cell.kept
    ever = kept.any(axis=0)
    reduced = [Reduction(*row) for row in metric.reduce(_per_sample_mean(cell, metric.name)[ever])]
    spread: dict[tuple[str, str], float] = {}
    if comps.shape[0] > 1:
        per_draw = [{(row.metric, row.variable): row.value
                     for row in (Reduction(*r) for r in metric.reduce(comps[d][kept[d]]))}
                    for d in range(comps.shape[0])]
        for row in reduced:
            key = (row.metric, row.variable)
            spread[key] = float(np.std([draw[key] for draw in per_draw], ddof=1))
    n_dropped = int((~kept).sum(axis=1).mean().round())
    return reduced, int(ever.sum()), n_dropped, spread


def _bound(model: Any, side: Mapping[str, Tensor], sl: slice, device: torch.device,
           repeat: int = 1) -> Any:
    """The model of one batch: with that batch's side inputs bound (``repeat`` times, for
    draws stacked in one pass), if any."""
    if not side:
        return model
    return _WithSideInputs(model, {k: torch.cat([v[sl].to(device)] * repeat) if repeat > 1
                                   else v[sl].to(device) for k, v in side.items()})


@dataclass
class _Batches:
    """How `audit` attacks and measures one batch of one cell: the model and data, metrics,
    objectives, the one-step gradients shared across eps, and the batch size that fits in
    device memory after an out-of-memory error."""

    model: Any
    inputs: Tensor
    targets: Tensor | None
    side: dict[str, Tensor]
    device: torch.device
    task: str
    reference: Reference | None
    metrics: list[Metric]
    build_objective: Callable[[Tensor | None], obj.Objective]
    target_labels: Tensor | None
    keep_perturbed: bool
    batch_draws: bool
    shared_runs: set[str] = field(default_factory=set)
    shared_gradients: dict[tuple[str, int, int], Tensor] = field(default_factory=dict)
    rows_that_fit: int | None = None
    notes: list[str] = field(default_factory=list)

    def on(self, sl: slice, repeat: int = 1) -> Any:
        """The model of one batch, with its side inputs bound."""
        return _bound(self.model, self.side, sl, self.device, repeat)

    def objective_for(self, run: AttackRun, sl: slice) -> obj.Objective | None:
        """The attack objective of one batch (None for random controls)."""
        spec = get_spec(run.name)
        if spec.is_random:
            return None
        if spec.name == "illc":
            return obj.least_likely()
        if spec.name == "fgsm_targeted":
            assert self.target_labels is not None
            return obj.targeted(self.target_labels[sl].to(self.device))
        return self.build_objective(
            self.targets[sl].to(self.device) if self.targets is not None else None)

    def truth(self, x: Tensor, sl: slice) -> Tensor:
        """The true output at ``x``: the reference there, or the batch's targets."""
        if self.reference is not None and self.task == "regression":
            with torch.no_grad():
                return self.reference(x)
        assert self.targets is not None
        return self.targets[sl].to(self.device)

    def evaluate(self, xb: Tensor, sl: slice, budget: Budget, out: Tensor | None = None) -> _Part:
        """Metric components, kept flags (and outputs, inputs) of one perturbed batch."""
        if out is None:
            with preserved_model_state(self.model), torch.no_grad():
                out = self.on(sl)(xb)
        ref = self.truth(xb, sl)
        comps = {m.name: m.components(out, ref).double().cpu().numpy() for m in self.metrics}
        kept = budget.inside(xb).cpu().numpy()
        if not self.keep_perturbed:
            return _Part(comps, kept)
        return _Part(comps, kept, out.detach().cpu().numpy(), xb.detach().cpu().numpy())

    def attack(self, run: AttackRun | None, sl: slice, gens: list[torch.Generator],
               budget: Budget) -> list[_Part]:
        """One batch of one cell: the part of every draw."""
        xb = self.inputs[sl].to(self.device)
        if run is None:
            return [self.evaluate(xb, sl, budget)]
        objective = self.objective_for(run, sl)
        model = self.on(sl)  # side inputs moved to the device once per batch, not per draw
        first = None
        if run.key in self.shared_runs:
            first = self.shared_gradients.get((run.key, sl.start, sl.stop))
            if first is None:
                first = input_gradient(model, xb, objective)
                self.shared_gradients[(run.key, sl.start, sl.stop)] = first
        xs = [run_attack(model, xb, objective, budget, run.name, generator=gen,
                         first_gradient=first, **run.options()) for gen in gens]
        with preserved_model_state(self.model), torch.no_grad():
            if len(xs) == 1 or not self.batch_draws:
                outs = [model(x) for x in xs]
            else:
                outs = self.on(sl, repeat=len(xs))(torch.cat(xs)).split(xb.shape[0])
        return [self.evaluate(x, sl, budget, out) for x, out in zip(xs, outs, strict=True)]

    def cell(self, run: AttackRun | None, budget: Budget, gens: list[torch.Generator],
             slices: list[slice], rank: int, world: int) -> _Cell:
        """Every batch of one cell, one draw per generator; sharded, each process does
        batches ``i % world == rank`` and the parts are gathered."""
        by_draw: list[dict[int, _Part]] = [{} for _ in gens]
        for i, sl in enumerate(slices):
            if i % world != rank:  # another process's batch: stay in step
                if run is not None:
                    xb = self.inputs[sl].to(self.device)
                    for gen in gens:
                        skip_randomness(xb, run.name, budget, gen, **run.options())
                continue
            for draw, part in enumerate(self.parts(run, sl, gens, budget)):
                by_draw[draw][i] = part
        per_draw = []
        for parts in by_draw:
            parts = distributed.gather_parts(parts, world)
            per_draw.append(_Part.concatenate([parts[i] for i in range(len(slices))]))
        keep = self.keep_perturbed
        return _Cell(
            {m.name: np.stack([d.components[m.name] for d in per_draw]) for m in self.metrics},
            np.stack([d.kept for d in per_draw]),
            np.stack([d.inputs for d in per_draw]) if keep else None,  # type: ignore[misc]
            np.stack([d.outputs for d in per_draw]) if keep else None,  # type: ignore[misc]
        )

    def parts(self, run: AttackRun | None, sl: slice, gens: list[torch.Generator],
              budget: Budget) -> list[_Part]:
        """`attack`, split in halves while the device runs out of memory (the smaller size
        is kept for the rest of the sweep, and the user is told)."""
        rows = sl.stop - sl.start
        if self.rows_that_fit is not None and rows > self.rows_that_fit:
            step = self.rows_that_fit
            chunks = [self.parts(run, slice(a, min(a + step, sl.stop)), gens, budget)
                      for a in range(sl.start, sl.stop, step)]
            return [_Part.concatenate(list(p)) for p in zip(*chunks, strict=True)]
        states = [gen.get_state() for gen in gens]
        try:
            return self.attack(run, sl, gens, budget)
        except torch.OutOfMemoryError:
            if rows == 1:
                raise DataError(_ONE_SAMPLE_OOM) from None
            _free_device_memory()
            self.rows_that_fit = rows // 2
            stacked = f" × {len(gens)} draws" if self.batch_draws and len(gens) > 1 else ""
            self.notes.append(
                f"Out of device memory at {rows} samples per batch{stacked}; continuing with "
                f"{rows // 2}. Set batch_size={rows // 2} to start there; random draws from "
                "here on differ from an unsplit run's."
            )
            for gen, state in zip(gens, states, strict=True):
                gen.set_state(state)
            return self.parts(run, sl, gens, budget)


def audit(
    model: nn.Module | Callable[[Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor | None = None,
    sweep: Sweep | None = None,
    *,
    task: str = "regression",
    objective: str | ObjectiveBuilder | None = None,
    reference: Reference | None = None,
    case: str = "custom",
    model_name: str = "model",
    variable_names: Sequence[str] | None = None,
    keep_per_sample: bool = True,
    keep_perturbed: bool = False,
    side_inputs: Mapping[str, Tensor] | None = None,
    progress: bool = False,
    **options: Unpack[SweepOptions],
) -> Results:
    """Paired robustness audit of ``model`` on ``inputs`` across a `Sweep`.

    Args:
        model: differentiable ``nn.Module`` (or callable) mapping a batch to outputs.
        inputs: tensor ``(N, ...)`` in the model's input units.
        targets: ground truth ``(N, ...)`` (regression) or integer labels ``(N,)``; may be
            None when ``reference`` is given.
        sweep: attacks, epsilons, budget, metrics, n_random, seed, batch_size, device and
            cache_dir (see `Sweep`); or give those as keywords (``epsilons=[0.1], ...``).
            Random controls get ``n_random`` draws; the first one is the baseline of the
            ratio rows.
        task: ``"regression"`` or ``"classification"`` (sets default objective and metrics).
        objective: ``"mse"``, ``"relative_l2"``, ``"cross_entropy"`` or a callable
            ``targets_batch -> objective``; ILLC and one-step targeted build their own.
        reference: ``fn(x)`` giving the true output at any input (exact solution or accurate
            model); used as the attack target and as the truth for metrics at perturbed inputs.
        case, model_name: labels of the records.
        variable_names: names of output variables for ``rmse_per_variable``.
        keep_per_sample: keep per-sample components in ``Results.per_sample``.
        keep_perturbed: keep every cell's perturbed inputs and model outputs in
            ``Results.perturbed`` (in memory only, on the CPU): about
            ``(1 + n_epsilons × (n_attacks + (n_random − 1) × n_random_controls))`` copies of
            the inputs and of the outputs.
        side_inputs: per-sample keyword inputs of the model that are not attacked
            (attention masks, token types, graph edges...): each ``(N, ...)`` tensor is cut
            into the same batches as ``inputs``, moved to the device, and the model is called
            as ``model(x, **side)``.
        progress: show a rich progress bar.

    Returns:
        `Results` with clean, random, adversarial and ratio records and metadata (checks,
        warnings, versions, seed, configuration, wall time).
    """
    started = time.perf_counter()
    sweep = Sweep.resolve(sweep, defaults={"attacks": ("random_sign", "fgsm")}, **options)
    _check_arguments(model, inputs, targets, task, objective, reference)
    side = _check_side_inputs(side_inputs, inputs.shape[0])
    runs, budget, seed = list(sweep.attacks), sweep.budget, sweep.seed
    _check_inputs_and_runs(inputs, budget, runs, task)
    metric_objs = [resolve_metric(m, variable_names) for m in
                   (sweep.metrics or DEFAULT_METRICS[task])]
    build_objective = _objective_builder(objective, task, reference)

    rank, world = distributed.rank_and_world(sweep.distributed)
    if sweep.device is not None:
        device = torch.device(distributed.local_device(sweep.device, sweep.distributed))
        if isinstance(model, nn.Module):
            model.to(device)
    else:
        device = _model_device(model)
    n = inputs.shape[0]
    target_labels = _one_step_target_labels(model, side, inputs, targets, runs, task, seed,
                                            device)
    slices = [slice(i, min(i + sweep.batch_size, n)) for i in range(0, n, sweep.batch_size)]
    base_key = {
        "data": fingerprint_tensors([inputs, targets]), "model": _model_fingerprint(model),
        "budget": budget.describe(), "metrics": [m.name for m in metric_objs], "seed": seed,
        "task": task, "objective": _callable_fingerprint(objective),
        "reference": _callable_fingerprint(reference), "batch": sweep.batch_size,
        "variables": list(variable_names or []),
        "side": {k: fingerprint_tensors([v]) for k, v in sorted(side.items())},
    }
    cache = sweep.cache_dir / "cells" if sweep.cache_dir is not None else None

    # Draws in one forward pass pay off on a GPU; on the CPU they save nothing and would
    # change the last bits of the outputs (another matrix shape), so only CUDA does it.
    batch_draws = (device.type == "cuda") if sweep.batch_draws is None else sweep.batch_draws
    work = _Batches(model, inputs, targets, side, device, task, reference, metric_objs,
                    build_objective, target_labels, keep_perturbed, batch_draws,
                    shared_runs=_one_step_runs(runs, sweep.epsilons))
    checks, notes, behaviour = _first_batch_checks(
        work, slices[0].stop, build_objective, task, needs_gradient=bool(sweep.adversarial_runs))
    base_key["behaviour"] = behaviour
    work.notes = notes
    checks_notes = list(notes)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    stale_cells = set(cache.glob("*.npz")) if cache is not None and cache.is_dir() else set()

    cells = list(sweep.cells())
    results = Results()
    error_like: set[str] = set()
    reused = 0
    with _progress(progress and rank == 0, total=len(cells)) as bar:
        for run, eps in cells:
            draws = sweep.draws(run)
            label = run.key if run else "clean"
            key = {**base_key, "attack": asdict(run) if run else "clean", "eps": eps,
                   "draws": draws}
            cell_key = f"{stable_int(key):016x}"
            cell_path = cache / f"{cell_key}.npz" if cache else None
            if cell_path is not None:
                stale_cells.discard(cell_path)
            stored = _stored_cell(cell_path, cell_key, keep_perturbed, notes)
            # Sharded: every process must take the same branch (the gathers are collective).
            cell = stored if distributed.all_have(stored is not None, world) else None
            if cell is not None:
                reused += 1
            else:
                gens = [sweep.generator(label, eps, draw) for draw in range(draws)]
                cell = work.cell(run, budget.scaled(eps), gens, slices, rank, world)
                if cell_path is not None:
                    atomic_write_bytes(cell_path, cell.to_bytes(cell_key))
            note = _nonfinite_note(cell, label, eps, n)
            if note:
                notes.append(note)
            _add_records(results, cell, run, label, eps, metric_objs, error_like, case,
                         model_name, keep_per_sample, keep_perturbed)
            bar.advance()

    if reused == 0 and stale_cells:
        notes.append(
            f"The cache {cache} holds {len(stale_cells)} cell(s) of another run (model code or "
            "weights, data or settings differ): every cell was recomputed."
        )
    for note in notes[len(checks_notes):]:
        warnings.warn(note, stacklevel=2)
    results.records.extend(ratio_records(results.records, error_like, baseline=sweep.baseline))
    results.metadata = _metadata(sweep, runs, metric_objs, device, case, model_name, task, n,
                                 checks, notes, reused, time.perf_counter() - started)
    return results


def _check_inputs_and_runs(inputs: Tensor, budget: Budget, runs: Sequence[AttackRun],
                           task: str) -> None:
    """Refuse clean inputs outside the domain and classifier-only attacks on a regression."""
    budget.check_input(inputs)
    if budget.bounds is not None and not budget.inside(inputs).all():
        n_out = int((~budget.inside(inputs)).sum())
        raise DataError(f"{n_out} clean inputs already lie outside Budget.bounds; fix the bounds "
                        "or the data.")
    for r in runs:
        if get_spec(r.name).name in ("illc", "sparsefool") and task != "classification":
            raise ConfigError(
                f"{r.name} attacks classifiers: it needs task='classification' and labels."
            )


def _one_step_target_labels(model: Any, side: Mapping[str, Tensor], inputs: Tensor,
                            targets: Tensor | None, runs: Sequence[AttackRun], task: str,
                            seed: int, device: torch.device) -> Tensor | None:
    """The fixed random wrong class per sample that one-step targeted attacks aim at (None
    when the sweep has none); drawn from the sweep's seed so reruns and shards agree."""
    if not any(get_spec(r.name).name == "fgsm_targeted" for r in runs):
        return None
    if task != "classification" or targets is None:
        raise ConfigError("fgsm_targeted needs task='classification' and labels.")
    with preserved_model_state(model), torch.no_grad():
        n_classes = _bound(model, side, slice(0, 1), device)(inputs[:1].to(device)).shape[1]
    shift = torch.randint(1, n_classes, (inputs.shape[0],),
                          generator=torch.Generator().manual_seed(stable_int(seed, "tgt")))
    return (targets.cpu().long() + shift) % n_classes


def _one_step_runs(runs: Sequence[AttackRun], epsilons: Sequence[float]) -> set[str]:
    """Keys of the one-step gradient attacks from the clean input: they take the same
    gradient at every eps, so it is computed once per batch (memory: one input-sized
    gradient per such attack while the sweep runs)."""
    if len(epsilons) <= 1:
        return set()
    shared = set()
    for r in runs:
        spec = get_spec(r.name)
        random_start = spec.random_start if r.random_start is None else r.random_start
        if spec.kind == "gradient" and (r.steps or spec.steps) == 1 and not random_start:
            shared.add(r.key)
    return shared


def _first_batch_checks(work: _Batches, rows: int, build_objective: ObjectiveBuilder,
                        task: str, needs_gradient: bool) -> tuple[dict, list[str], str]:
    """`_run_checks` on the first ``rows`` clean samples, halved while they do not fit in
    device memory (``work.rows_that_fit`` then carries the smaller size into the sweep)."""
    first_rows = rows
    while True:
        head = slice(0, rows)
        targets = work.targets
        first_objective = build_objective(
            targets[head].to(work.device) if targets is not None else None
        )
        try:
            checks, notes, behaviour = _run_checks(
                work.on(head), work.inputs[head].to(work.device), first_objective, task,
                needs_gradient=needs_gradient)
            break
        except torch.OutOfMemoryError:
            if rows == 1:
                raise DataError(_ONE_SAMPLE_OOM) from None
            _free_device_memory()
            rows = work.rows_that_fit = rows // 2
    if work.rows_that_fit is not None:
        notes.append(f"Out of device memory at {first_rows} samples per batch; continuing "
                     f"with {rows}. Set batch_size={rows} to start there.")
    return checks, notes, behaviour


def _stored_cell(path: Path | None, key: str, keep_perturbed: bool,
                 notes: list[str]) -> _Cell | None:
    """The finished cell at ``path`` if it can be reused (why not goes into ``notes``)."""
    if path is None or not path.exists():
        return None
    stored = _Cell.from_file(path, key)
    if isinstance(stored, str):
        notes.append(stored)
        return None
    if keep_perturbed and stored.inputs is None:
        return None  # cached without the perturbed inputs: recompute them
    return stored


def _nonfinite_note(cell: _Cell, label: str, eps: float, n: int) -> str | None:
    """A sentence when some samples of the cell give NaN/Inf metrics, else None."""
    if not cell.components:
        return None
    n_bad = int((~np.isfinite(next(iter(cell.components.values())))).any(axis=(0, 2)).sum())
    if not n_bad:
        return None
    return (f"{label} at ε = {eps:g}: {n_bad} of {n} samples give NaN/Inf metrics (the "
            "model diverges there); the values use the finite samples only if any. Is "
            "this ε far outside the data's scale? Give Budget.bounds for the domain.")


def _add_records(results: Results, cell: _Cell, run: AttackRun | None, label: str, eps: float,
                 metrics: Sequence[Metric], error_like: set[str], case: str, model_name: str,
                 keep_per_sample: bool, keep_perturbed: bool) -> None:
    """Reduce one cell into ``results``: a record per metric row, and optionally the
    per-sample components and perturbed tensors. Error-like metric names go to
    ``error_like`` (the ratio rows are made for those)."""
    kind = run.kind if run else "clean"
    for m in metrics:
        reduced, n_kept, n_dropped, spread = _pool(cell, m)
        for row in reduced:
            if m.error_like:
                error_like.add(row.metric)
            results.records.append(Record(
                case, model_name, label, eps, row.metric, row.value, row.stderr, n_kept,
                spread.get((row.metric, row.variable), float("nan")), n_dropped,
                kind=kind, variable=row.variable,
            ))
        if keep_per_sample:
            results.per_sample[per_sample_key(label, eps, m.name)] = _per_sample_mean(
                cell, m.name)
    if keep_perturbed and cell.inputs is not None and cell.outputs is not None:
        results.perturbed[(label, eps)] = Perturbed(
            torch.from_numpy(cell.inputs), torch.from_numpy(cell.outputs),
            torch.from_numpy(cell.kept))


def _metadata(sweep: Sweep, runs: Sequence[AttackRun], metrics: Sequence[Metric],
              device: torch.device, case: str, model_name: str, task: str, n: int,
              checks: dict, notes: list[str], reused: int, wall_time_s: float) -> dict:
    """What `Results.metadata` records of an audit: versions, settings, checks, warnings."""
    import scirobust

    return {
        "scirobust_version": scirobust.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "seed": sweep.seed,
        "config": {
            "case": case, "model": model_name, "task": task, "epsilons": list(sweep.epsilons),
            "attacks": [asdict(r) for r in runs], "budget": sweep.budget.describe(),
            "metrics": [m.name for m in metrics], "n_random": sweep.n_random,
            "batch_size": sweep.batch_size, "n_samples": n,
        },
        "checks": checks,
        "warnings": notes,
        "cells_reused_from_cache": reused,
        "wall_time_s": wall_time_s,
    }


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
