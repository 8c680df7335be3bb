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

Records convention. One `Record` per (attack, metric, variable, lead time); the lead time is
part of the metric name: ``"<metric>[<variable>@step=<k>]"``, e.g. ``lat_rmse[u@step=3]`` is
the latitude-weighted RMSE of variable ``u`` after 3 model steps (multiply by the model's time
step for hours; cases store it as ``metadata["step_hours"]``). `parse_metric` inverts it.
Metrics: ``lat_rmse`` (latitude-weighted RMSE, units of the variable as fed to the model),
``acc`` (anomaly correlation coefficient, dimensionless, only when a climatology is given) and
``lat_rmse[...]_ratio`` rows (gradient attack / first random control, ``baseline`` column).
``value`` is the mean over initial conditions of the per-initial-condition score, ``stderr``
its standard error over initial conditions, ``spread`` the standard deviation over random
draws, ``n`` the number of initial conditions.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from scirobust import objectives
from scirobust.attacks import attack, get_spec, preserved_model_state
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.results import Record, Results, ratio_record

__all__ = [
    "RolloutTrace",
    "anomaly_correlation",
    "lat_weighted_rmse",
    "latitude_weights",
    "metric_name",
    "parse_metric",
    "per_variable_budget",
    "rollout",
    "rollout_audit",
    "saved_tensor_bytes",
]

Perturb = Literal["every_step", "initial"]
GradientMode = Literal["per_step", "through"]
ObjectiveBuilder = Callable[[Tensor], objectives.Objective]

_METRIC_RE = re.compile(r"(?P<base>[^\[]+)\[(?P<var>.*)@step=(?P<step>\d+)\](?P<ratio>_ratio)?")


# --------------------------------------------------------------------------- metric names
def metric_name(base: str, variable: str, step: int) -> str:
    """Record metric name for ``base`` of ``variable`` at lead ``step`` (model steps)."""
    return f"{base}[{variable}@step={int(step)}]"


def parse_metric(metric: str) -> tuple[str, str, int, bool] | None:
    """``"lat_rmse[u@step=3]_ratio"`` → ``("lat_rmse", "u", 3, True)``; None if not a rollout
    metric name."""
    match = _METRIC_RE.fullmatch(metric)
    if match is None:
        return None
    return match["base"], match["var"], int(match["step"]), bool(match["ratio"])


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
    attack_kwargs: dict,
) -> RolloutTrace:
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


def _seed_for(seed: int, label: str, draw: int) -> int:
    digest = 0
    for ch in f"{seed}|{label}|{draw}":
        digest = (digest * 1000003 + ord(ch)) % (2**61 - 1)
    return digest


def rollout_audit(
    model: Callable[[Tensor], Tensor],
    initial_states: Tensor,
    targets: Tensor,
    steps: int | None = None,
    *,
    budget: Budget,
    attacks: Sequence[str] = ("random_sign", "fgsm"),
    perturb: Perturb = "every_step",
    gradient: GradientMode = "per_step",
    n_random: int = 3,
    lat: Tensor | np.ndarray | Sequence[float] | None = None,
    climatology: Tensor | None = None,
    variables: Sequence[str] | None = None,
    objective: ObjectiveBuilder | None = None,
    attack_kwargs: dict | None = None,
    keep_states: Sequence[int] = (),
    seed: int = 0,
    case: str = "rollout",
    model_name: str = "model",
) -> tuple[Results, dict[str, RolloutTrace]]:
    """Clean vs random vs gradient-attacked autoregressive rollouts, scored per variable and lead.

    Args:
        model: maps a state batch ``(batch, C, lat, lon)`` (or ``(batch, C, ...)``) to the next
            state of the same shape, in the same units as ``targets``.
        initial_states: ``(batch, C, ...)``, e.g. ten initial conditions.
        targets: true states at lead 1 .. steps, ``(batch, steps, C, ...)``.
        steps: number of model steps (default: ``targets.shape[1]``).
        budget: the perturbation of one state (`per_variable_budget` for per-variable eps).
        attacks: attack names of `scirobust.ATTACKS`; random controls get ``n_random`` draws.
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
        attack_kwargs: extra arguments of `scirobust.attack` (``steps``, ``step_size``...).
        keep_states: lead steps whose forecasts (and fed inputs) are kept in the traces.
        seed: seeds every random draw (reproducible bit-for-bit on CPU).

    Returns:
        ``(results, traces)``: `Results` with the records described in the module docstring and
        ``traces[label]`` the `RolloutTrace` of the first draw of every attack (and ``clean``).
    """
    started = time.perf_counter()
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
    n_vars = initial_states.shape[1]
    names = list(variables) if variables is not None else [f"v{i}" for i in range(n_vars)]
    if len(names) != n_vars:
        raise ConfigError(f"{len(names)} variable names for {n_vars} variables.")
    specs = [get_spec(a) for a in attacks]
    if n_random < 1:
        raise ConfigError(f"n_random must be >= 1; got {n_random}.")
    targets = targets[:, :steps].detach()
    weights = latitude_weights(lat) if lat is not None else None
    if weights is not None:
        _weights_for(initial_states, weights)
    if objective is None:
        w_obj = None if weights is None else weights.reshape(-1, 1).to(initial_states.dtype)
        objective = lambda true: objectives.mse(true, weights=w_obj)  # noqa: E731
    keep = {int(k) for k in keep_states}
    common = dict(perturb=perturb, gradient=gradient, build_objective=objective,
                  weights=weights, climatology=climatology, keep=keep,
                  attack_kwargs=dict(attack_kwargs or {}))

    runs: list[tuple[str, str | None, int]] = [("clean", None, 1)]
    runs += [(s.name, s.name, n_random if s.is_random else 1) for s in specs]
    eps_value = budget.eps_max
    results = Results()
    traces: dict[str, RolloutTrace] = {}
    per_run: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    # eval mode (no dropout) and frozen parameters for the whole audit, restored afterwards
    with preserved_model_state(model):
        for label, method, draws in runs:
            rm, ac = [], []
            for draw in range(draws):
                gen = torch.Generator().manual_seed(_seed_for(seed, label, draw))
                trace = _run_one(model, initial_states, targets, steps, method, budget,
                                 generator=gen, **common)
                rm.append(trace.lat_rmse)
                if trace.acc is not None:
                    ac.append(trace.acc)
                if draw == 0:
                    traces[label] = trace
            per_run[label] = (np.stack(rm), np.stack(ac) if ac else None)  # (draws, steps, B, C)

    n = initial_states.shape[0]
    for label, _method, _draws in runs:
        eps = 0.0 if label == "clean" else eps_value
        for base, arr in (("lat_rmse", per_run[label][0]), ("acc", per_run[label][1])):
            if arr is None:
                continue
            per_ic = arr.mean(axis=0)  # mean over draws: (steps, B, C)
            for k in range(steps):
                for c, var in enumerate(names):
                    vals = per_ic[k, :, c]
                    value = float(np.mean(vals))
                    se = float(np.std(vals, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
                    spread = (float(np.std(arr[:, k, :, c].mean(axis=1), ddof=1))
                              if arr.shape[0] > 1 else float("nan"))
                    results.records.append(Record(case, model_name, label, eps,
                                                  metric_name(base, var, k + 1), value, se, n,
                                                  spread))
    results.records.extend(_ratio_records(results.records, specs))
    results.metadata = {
        "rollout": {
            "steps": steps, "perturb": perturb, "gradient": gradient, "attacks": list(attacks),
            "n_random": n_random, "n_initial_conditions": n, "variables": names,
            "eps_max": eps_value, "latitude_weighted": weights is not None,
            "acc": climatology is not None, "seed": seed,
            "metric_convention": "<metric>[<variable>@step=<k>], k = lead in model steps",
        },
        "wall_time_s": time.perf_counter() - started,
    }
    return results, traces


def _ratio_records(records: list[Record], specs: Sequence) -> list[Record]:
    baseline = next((s.name for s in specs if s.is_random), None)
    if baseline is None:
        return []
    index = {(r.attack, r.metric): r for r in records}
    out = []
    for rec in records:
        if rec.attack in ("clean", baseline) or not rec.metric.startswith("lat_rmse["):
            continue
        if any(s.name == rec.attack and s.is_random for s in specs):
            continue
        ref = index.get((baseline, rec.metric))
        row = ratio_record(rec, ref) if ref is not None else None
        if row is not None:
            out.append(row)
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
