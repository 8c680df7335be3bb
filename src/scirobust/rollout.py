"""Autoregressive rollouts under attack: perturb the state fed to the model at every step.

An autoregressive forecaster maps a state ``x_k`` (shape ``(batch, C, ...)``, variables on
axis 1) to the next state ``x_{k+1} = f(x_k)``. `rollout_audit` runs such a model for
``steps`` steps from ``initial_states`` and compares every forecast with ``targets`` (the true
states at lead 1 .. steps) under

* ``clean``: no perturbation;
* random controls (``random_sign`` by default, several draws): ``scirobust.attack`` with the
  same `Budget`, so the noise has exactly the size of the attack;
* gradient attacks (``fgsm``, ``pgd_linf``, ``bim`` ...): ``scirobust.attack`` with the
  one-step objective ``objectives.mse(true_next)`` (latitude-weighted when latitudes are given),
  i.e. the attacker pushes the one-step prediction away from the *true* next state.

Perturbation modes (``perturb``): ``"every_step"`` perturbs the state fed in at every step
(paper 000 §5.1: "the output from each step was also modified"); ``"initial"`` perturbs only
the initial condition and lets the model run freely afterwards.

Gradients and memory. With ``gradient="per_step"`` (default) every step attacks a *detached*
state with the one-step objective, so the autograd graph never spans more than one model call
and memory is O(1) in ``steps`` (tested by counting the bytes autograd saves). With
``gradient="through"`` (only for ``perturb="initial"``) the attack differentiates the MSE of the
whole rollout with respect to the initial condition: the attacked "model" is the model unrolled
``steps`` times, so the graph and its saved activations grow linearly with ``steps`` (roughly
``steps`` × one step's activation memory) and the backward pass costs as much as the forward
rollout. It finds stronger initial-condition perturbations for long leads, at that price.

Budgets. ``Budget(eps=torch.tensor([...]).reshape(C, 1, 1))`` gives one eps per variable in
the model's input units (normalised units if the model eats normalised fields, as FourCastNet
does); ``Budget(eps=0.05, scale=std.reshape(C, 1, 1))`` states eps in units of each variable's
standard deviation when the model works in physical units. `per_variable_budget` builds both.

Records convention. One `Record` per (attack, epsilon, metric, variable, lead time) with the
fields ``metric`` (``lat_rmse`` or ``acc``), ``variable`` and ``step`` (the lead in model steps;
multiply by the model's time step for hours: cases store it as ``metadata["step_hours"]``).
Metrics: ``lat_rmse`` (latitude-weighted RMSE, units of the variable as fed to the model),
``acc`` (anomaly correlation coefficient, dimensionless, only when a climatology is given) and
``kind="ratio"`` rows of ``lat_rmse`` (gradient attack / first random control, ``baseline``
column). ``value`` is the mean over initial conditions of the per-initial-condition score,
``stderr`` its standard error over initial conditions, ``spread`` the standard deviation over
random draws, ``n`` the number of initial conditions. ``epsilon`` is the sweep's epsilon, which
multiplies the budget's (per-variable) eps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Unpack

import numpy as np
import torch
from torch import Tensor, nn

from scirobust import objectives
from scirobust.attacks import attack, preserved_model_state
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.results import Record, Results, ratio_records
from scirobust.sweep import AttackRun, Sweep, SweepOptions

__all__ = [
    "RolloutTrace",
    "anomaly_correlation",
    "lat_weighted_rmse",
    "latitude_weights",
    "per_variable_budget",
    "rollout",
    "rollout_audit",
    "saved_tensor_bytes",
]

Perturb = Literal["every_step", "initial"]
GradientMode = Literal["per_step", "through"]
ObjectiveBuilder = Callable[[Tensor], objectives.Objective]

# --------------------------------------------------------------------------- weather metrics
def latitude_weights(lat_deg: Tensor | np.ndarray | Sequence[float]) -> Tensor:
    """Latitude weights ``w_j = N_lat cos(lat_j) / Σ_j cos(lat_j)`` (dimensionless, mean 1).

    ``lat_deg``: latitudes of the grid rows in degrees, shape ``(N_lat,)``. The weights sum to
    ``N_lat``, so a latitude-weighted mean over a grid equals the plain mean when every row
    holds the same value. Returned as float64.
    """
    lat = torch.as_tensor(np.array(lat_deg, dtype=np.float64))
    if lat.dim() != 1 or lat.numel() == 0:
        raise DataError(f"latitudes must be a non-empty 1-D array; got shape {tuple(lat.shape)}.")
    if (lat.abs() > 90).any():
        raise DataError("latitudes must be in degrees within [-90, 90].")
    cos = torch.cos(torch.deg2rad(lat)).clamp_min(0.0)
    total = cos.sum()
    if total <= 0:
        raise DataError("latitude weights: every latitude is a pole (cos(lat) = 0).")
    return lat.numel() * cos / total


def _weights_for(field: Tensor, weights: Tensor | None) -> Tensor | None:
    if weights is None:
        return None
    w = torch.as_tensor(weights, dtype=field.dtype, device=field.device)
    if field.dim() < 3 or w.numel() != field.shape[-2]:
        raise DataError(
            f"latitude weights of length {w.numel()} do not match the latitude axis (second "
            f"to last) of fields of shape {tuple(field.shape)}."
        )
    return w.reshape(-1, 1)


def _spatial_mean(t: Tensor, w: Tensor | None) -> Tensor:
    """Mean over every axis after the first two (batch, variable), latitude-weighted."""
    if w is not None:
        t = t * w
    return t.reshape(t.shape[0], t.shape[1], -1).mean(dim=2)


def lat_weighted_rmse(pred: Tensor, truth: Tensor, weights: Tensor | None = None) -> Tensor:
    """Latitude-weighted RMSE per sample and variable, shape ``(batch, C)``.

    ``sqrt( mean_{lat,lon} w_lat (pred - truth)² )`` with ``w`` from `latitude_weights` (None:
    unweighted). Fields have shape ``(batch, C, lat, lon)`` (or ``(batch, C, ...)`` without
    weights). Units: those of the fields.
    """
    if pred.shape != truth.shape:
        raise DataError(f"pred shape {tuple(pred.shape)} differs from truth {tuple(truth.shape)}.")
    w = _weights_for(pred, weights)
    return _spatial_mean((pred - truth) ** 2, w).sqrt()


def anomaly_correlation(
    pred: Tensor, truth: Tensor, climatology: Tensor, weights: Tensor | None = None
) -> Tensor:
    """Latitude-weighted anomaly correlation coefficient per sample and variable, ``(batch, C)``.

    ``ACC = Σ w a·b / sqrt(Σ w a² · Σ w b²)`` with anomalies ``a = pred − clim``,
    ``b = truth − clim`` (uncentred, as in WeatherBench 2 and FourCastNet); ``climatology``
    broadcasts to one sample ``(C, lat, lon)``. Dimensionless, in [−1, 1]; NaN where an anomaly
    is identically zero.
    """
    if pred.shape != truth.shape:
        raise DataError(f"pred shape {tuple(pred.shape)} differs from truth {tuple(truth.shape)}.")
    clim = torch.as_tensor(climatology, dtype=pred.dtype, device=pred.device)
    a, b = pred - clim, truth - clim
    w = _weights_for(pred, weights)
    num = _spatial_mean(a * b, w)
    den = (_spatial_mean(a * a, w) * _spatial_mean(b * b, w)).sqrt()
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))


# --------------------------------------------------------------------------- budgets
def per_variable_budget(
    eps: float | Sequence[float] | Tensor,
    n_variables: int,
    *,
    scale: Sequence[float] | Tensor | None = None,
    spatial_dims: int = 2,
) -> Budget:
    """L-inf `Budget` with one eps per variable, shaped ``(C, 1, ..., 1)`` for ``(C, lat, lon)``.

    ``eps`` in the model's input units (e.g. normalised units), or — with ``scale`` (one
    value per variable, e.g. the physical standard deviation) — in units of ``scale`` so
    ``eps=0.05, scale=std`` means 5 % of each variable's standard deviation in physical units.
    """
    shape = (n_variables,) + (1,) * spatial_dims
    eps_t = torch.as_tensor(eps, dtype=torch.float64)
    eps_t = eps_t.expand(n_variables).clone() if eps_t.dim() == 0 else eps_t
    if eps_t.numel() != n_variables:
        raise ConfigError(f"eps has {eps_t.numel()} values for {n_variables} variables.")
    scale_t = None
    if scale is not None:
        scale_t = torch.as_tensor(scale, dtype=torch.float64).reshape(shape)
    return Budget(eps=eps_t.reshape(shape), norm="linf", scale=scale_t)


# --------------------------------------------------------------------------- rollouts
def _step(model: Callable[[Tensor], Tensor], state: Tensor) -> Tensor:
    out = model(state)
    if not isinstance(out, Tensor) or out.shape != state.shape:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise DataError(
            f"An autoregressive model must map a state of shape {tuple(state.shape)} to the next "
            f"state of the same shape; got {shape}."
        )
    return out


def rollout(model: Callable[[Tensor], Tensor], initial_states: Tensor, steps: int) -> Tensor:
    """Plain autoregressive rollout in eval mode without gradients.

    Returns the forecasts at lead 1 .. steps, shape ``(batch, steps, C, ...)``.
    """
    out = []
    with preserved_model_state(model), torch.no_grad():
        state = initial_states.detach()
        for _ in range(int(steps)):
            state = _step(model, state)
            out.append(state)
    return torch.stack(out, dim=1)


class _Unrolled(nn.Module):
    """``model`` applied ``steps`` times; output: all forecasts, ``(batch, steps, C, ...)``."""

    def __init__(self, model: nn.Module | Callable[[Tensor], Tensor], steps: int) -> None:
        super().__init__()
        self.inner = model
        self.steps = steps

    def forward(self, x: Tensor) -> Tensor:
        states = []
        for _ in range(self.steps):
            x = _step(self.inner, x)
            states.append(x)
        return torch.stack(states, dim=1)


@dataclass
class RolloutTrace:
    """Per-step scores of one rollout (one attack, one draw): ``lat_rmse`` and ``acc`` arrays of
    shape ``(steps, batch, C)`` and the kept forecasts ``{step: (batch, C, ...)}`` and
    perturbed inputs ``{step: (batch, C, ...)}`` (the state fed in to produce that step)."""

    lat_rmse: np.ndarray
    acc: np.ndarray | None
    states: dict[int, Tensor]
    inputs: dict[int, Tensor]


def _run_one(
    model: Callable[[Tensor], Tensor],
    x0: Tensor,
    targets: Tensor,
    steps: int,
    method: str | None,
    budget: Budget,
    *,
    perturb: Perturb,
    gradient: GradientMode,
    build_objective: ObjectiveBuilder,
    weights: Tensor | None,
    climatology: Tensor | None,
    generator: torch.Generator | None,
    keep: set[int],
    attack_kwargs: dict[str, Any],
) -> RolloutTrace:
    """Per-step scores (units of the fields) and kept states of one rollout of one draw."""
    rmse, acc, states, inputs = [], [], {}, {}
    state = x0.detach()
    for k in range(steps):
        truth = targets[:, k]
        fed = state.detach()  # the graph of one step never reaches back to earlier steps
        if method is not None and (perturb == "every_step" or k == 0):
            if gradient == "through":
                unrolled = _Unrolled(model, steps)
                fed = attack(unrolled, fed, build_objective(targets), budget, method,
                             generator=generator, **attack_kwargs)
            else:
                fed = attack(model, fed, build_objective(truth), budget, method,
                             generator=generator, **attack_kwargs)
        with torch.no_grad():
            state = _step(model, fed)
        rmse.append(lat_weighted_rmse(state, truth, weights).cpu().numpy())
        if climatology is not None:
            acc.append(anomaly_correlation(state, truth, climatology, weights).cpu().numpy())
        if k + 1 in keep:
            states[k + 1] = state.detach().cpu()
            inputs[k + 1] = fed.detach().cpu()
    return RolloutTrace(np.stack(rmse), np.stack(acc) if acc else None, states, inputs)


def _checked_steps(initial_states: Tensor, targets: Tensor, steps: int | None, perturb: str,
                   gradient: str, attack_kwargs: dict[str, Any] | None) -> int:
    """Number of model steps to roll out, after checking the shapes, modes and attack options."""
    if not isinstance(initial_states, Tensor) or not initial_states.is_floating_point():
        raise DataError("initial_states must be a floating-point tensor (batch, C, ...).")
    if initial_states.dim() < 2:
        raise DataError("initial_states need shape (batch, C, ...).")
    if targets.dim() != initial_states.dim() + 1 or targets.shape[0] != initial_states.shape[0] \
            or targets.shape[2:] != initial_states.shape[1:]:
        raise DataError(
            f"targets must have shape (batch, steps, C, ...) = ({initial_states.shape[0]}, "
            f"steps, {', '.join(map(str, initial_states.shape[1:]))}); got "
            f"{tuple(targets.shape)}."
        )
    steps = int(targets.shape[1] if steps is None else steps)
    if not 1 <= steps <= targets.shape[1]:
        raise ConfigError(f"steps must be in [1, {targets.shape[1]}] (the targets given); "
                          f"got {steps}.")
    if perturb not in ("every_step", "initial"):
        raise ConfigError(f"perturb must be 'every_step' or 'initial'; got {perturb!r}.")
    if gradient not in ("per_step", "through"):
        raise ConfigError(f"gradient must be 'per_step' or 'through'; got {gradient!r}.")
    if gradient == "through" and perturb != "initial":
        raise ConfigError(
            "gradient='through' differentiates the whole rollout with respect to the initial "
            "condition, so it needs perturb='initial'. Use gradient='per_step' for "
            "perturbations at every step."
        )
    unknown = set(attack_kwargs or {}) - {"steps", "step_size", "random_start"}
    if unknown:
        raise ConfigError(f"attack_kwargs may set steps, step_size, random_start; got "
                          f"{sorted(unknown)}.")
    return steps


def _variable_names(variables: Sequence[str] | None, n_vars: int) -> list[str]:
    """The names of the ``n_vars`` variables (default ``v0``, ``v1``...), checked."""
    names = list(variables) if variables is not None else [f"v{i}" for i in range(n_vars)]
    if len(names) != n_vars:
        raise ConfigError(f"{len(names)} variable names for {n_vars} variables.")
    return names


def _default_objective(weights: Tensor | None, dtype: torch.dtype) -> ObjectiveBuilder:
    """Builder ``true_next -> objectives.mse(true_next)``, latitude-weighted when ``weights``
    (one per latitude row, dimensionless) are given."""
    w_obj = None if weights is None else weights.reshape(-1, 1).to(dtype)
    return lambda true: objectives.mse(true, weights=w_obj)


def _audit_cell(
    model: Callable[[Tensor], Tensor],
    initial_states: Tensor,
    targets: Tensor,
    steps: int,
    sweep: Sweep,
    run: AttackRun | None,
    eps: float,
    attack_kwargs: dict[str, Any] | None,
    common: dict[str, Any],
) -> tuple[dict[str, np.ndarray], RolloutTrace]:
    """Scores of every draw of one (attack, epsilon) cell and the trace of its first draw.

    Scores: ``{"lat_rmse": ..., "acc": ...}`` arrays ``(draws, steps, batch, C)`` in the units
    of the fields (``acc`` dimensionless, only with a climatology); ``run`` None is the clean cell.
    """
    label = run.key if run else "clean"
    budget = sweep.budget.scaled(eps)
    # the legacy attack_kwargs reach gradient attacks only; a run's own options override them
    options = ({} if run is None else run.options() if run.is_random
               else {**(attack_kwargs or {}), **run.options()})
    rm, ac = [], []
    first: RolloutTrace | None = None
    for draw in range(sweep.draws(run)):
        trace = _run_one(model, initial_states, targets, steps, run.name if run else None, budget,
                         generator=sweep.generator(label, eps, draw), attack_kwargs=options,
                         **common)
        rm.append(trace.lat_rmse)
        if trace.acc is not None:
            ac.append(trace.acc)
        if draw == 0:
            first = trace
    assert first is not None  # every cell has at least one draw
    scores = {"lat_rmse": np.stack(rm)}
    if ac:
        scores["acc"] = np.stack(ac)
    return scores, first


def rollout_audit(
    model: Callable[[Tensor], Tensor],
    initial_states: Tensor,
    targets: Tensor,
    steps: int | None = None,
    sweep: Sweep | None = None,
    *,
    perturb: Perturb = "every_step",
    gradient: GradientMode = "per_step",
    lat: Tensor | np.ndarray | Sequence[float] | None = None,
    climatology: Tensor | None = None,
    variables: Sequence[str] | None = None,
    objective: ObjectiveBuilder | None = None,
    attack_kwargs: dict[str, Any] | None = None,
    keep_states: Sequence[int] = (),
    case: str = "rollout",
    model_name: str = "model",
    **options: Unpack[SweepOptions],
) -> tuple[Results, dict[tuple[str, float], RolloutTrace]]:
    """Clean vs random vs gradient-attacked autoregressive rollouts, scored per variable and lead.

    Args:
        model: maps a state batch ``(batch, C, lat, lon)`` (or ``(batch, C, ...)``) to the next
            state of the same shape, in the same units as ``targets``.
        initial_states: ``(batch, C, ...)``, e.g. ten initial conditions.
        targets: true states at lead 1 .. steps, ``(batch, steps, C, ...)``.
        steps: number of model steps (default: ``targets.shape[1]``).
        sweep: attacks, epsilons, budget (the perturbation of one state;
            `per_variable_budget` gives per-variable eps), n_random and seed as a `Sweep`, or
            as keywords. Defaults here: ``epsilons=[1.0]`` (the budget as given),
            ``n_random=3``. ``metrics``, ``batch_size`` and ``cache_dir`` are not used.
        perturb: ``"every_step"`` or ``"initial"`` (see module docstring).
        gradient: ``"per_step"`` (one-step objective, O(1) memory in steps) or ``"through"``
            (only with ``perturb="initial"``: gradient of the whole rollout's MSE, O(steps)).
        lat: latitudes of axis -2 in degrees; enables latitude weighting of the metrics and of
            the default objective.
        climatology: ``(C, lat, lon)`` mean state in model units; enables ``acc``.
        variables: names of the C variables (default ``v0``, ``v1``...).
        objective: builder ``true_next -> objective`` (default: ``objectives.mse(true_next)``,
            latitude-weighted when ``lat`` is given). With ``gradient="through"`` it receives the
            whole ``targets`` tensor.
        attack_kwargs: ``steps``, ``step_size`` or ``random_start`` for every gradient attack
            that does not set its own (prefer attack mappings in the sweep).
        keep_states: lead steps whose forecasts (and fed inputs) are kept in the traces.

    Returns:
        ``(results, traces)``: `Results` with the records described in the module docstring and
        ``traces[(label, epsilon)]`` the `RolloutTrace` of the first draw of every attack and
        epsilon (and ``("clean", 0.0)``).
    """
    started = time.perf_counter()
    sweep = Sweep.resolve(sweep, defaults={"epsilons": (1.0,), "n_random": 3}, **options)
    steps = _checked_steps(initial_states, targets, steps, perturb, gradient, attack_kwargs)
    names = _variable_names(variables, initial_states.shape[1])
    targets = targets[:, :steps].detach()
    weights = latitude_weights(lat) if lat is not None else None
    if weights is not None:
        _weights_for(initial_states, weights)  # a length mismatch fails before any model call
    if objective is None:
        objective = _default_objective(weights, initial_states.dtype)
    common = dict(perturb=perturb, gradient=gradient, build_objective=objective,
                  weights=weights, climatology=climatology, keep={int(k) for k in keep_states})

    results = Results()
    traces: dict[tuple[str, float], RolloutTrace] = {}
    # eval mode (no dropout) for the whole audit, restored afterwards
    with preserved_model_state(model):
        for run, eps in sweep.cells():
            label, kind = (run.key, run.kind) if run else ("clean", "clean")
            scores, traces[(label, eps)] = _audit_cell(model, initial_states, targets, steps,
                                                       sweep, run, eps, attack_kwargs, common)
            for base, arr in scores.items():
                results.records += _score_records(arr, names, case, model_name, label, eps,
                                                  base, kind)
    results.records.extend(ratio_records(results.records, {"lat_rmse"},
                                         baseline=sweep.baseline))
    results.metadata = {
        "rollout": {
            "steps": steps, "perturb": perturb, "gradient": gradient,
            "attacks": [r.key for r in sweep.attacks], "epsilons": list(sweep.epsilons),
            "n_random": sweep.n_random, "n_initial_conditions": initial_states.shape[0],
            "variables": names, "eps_max": sweep.budget.eps_max,
            "latitude_weighted": weights is not None, "acc": climatology is not None,
            "seed": sweep.seed,
        },
        "step_label": "lead time (model steps)",
        "wall_time_s": time.perf_counter() - started,
    }
    return results, traces


def _score_records(arr: np.ndarray, names: Sequence[str], case: str, model_name: str,
                   label: str, eps: float, base: str, kind: str) -> list[Record]:
    """Records of one (attack, epsilon) from scores ``(draws, steps, B, C)``: mean over draws
    per initial condition, then mean ± standard error over initial conditions."""
    n = arr.shape[2]
    per_ic = arr.mean(axis=0)
    out = []
    for k in range(arr.shape[1]):
        for c, var in enumerate(names):
            vals = per_ic[k, :, c]
            se = float(np.std(vals, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            spread = (float(np.std(arr[:, k, :, c].mean(axis=1), ddof=1))
                      if arr.shape[0] > 1 else float("nan"))
            out.append(Record(case, model_name, label, eps, base, float(np.mean(vals)), se, n,
                              spread, kind=kind, variable=var, step=k + 1))  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------- memory probe
class saved_tensor_bytes:
    """Context manager measuring the peak bytes autograd keeps saved for backward.

    Every tensor that autograd saves while the context is open is counted until its graph is
    freed; ``peak`` is the largest total alive at once. A deterministic, allocator-independent
    measure of how much memory the gradients of a computation need (used to show that
    per-step attacks on a rollout use the same memory for 2 or 8 steps).
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._ctx: torch.autograd.graph.saved_tensors_hooks | None = None

    def __enter__(self) -> saved_tensor_bytes:
        probe = self

        class _Held:
            __slots__ = ("nbytes", "tensor")

            def __init__(self, tensor: Tensor) -> None:
                self.tensor = tensor
                self.nbytes = tensor.numel() * tensor.element_size()
                probe.current += self.nbytes
                probe.peak = max(probe.peak, probe.current)

            def __del__(self) -> None:
                probe.current -= self.nbytes

        self._ctx = torch.autograd.graph.saved_tensors_hooks(_Held, lambda held: held.tensor)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._ctx is not None
        self._ctx.__exit__(*exc)
