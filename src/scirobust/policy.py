"""Attacks on policy networks in closed and open loop (domain-agnostic).

A *policy* maps a batch of observations in its own (normalised) input units to one score per
action (Q-values or logits); it acts greedily (arg-max). An *environment* is any object with

* ``n_steps`` (decision steps per episode) and ``start() -> state`` (a batch of episodes);
* ``observe(state) -> Tensor`` (batch, ...) in the measurement's physical units;
* ``action_values(state) -> Tensor`` (batch, n_actions): what each action is worth at this
  step (e.g. the rate in Mbps); the best is the optimal action, regret = best − chosen;
* ``step(state, actions) -> state``: the next state after the chosen actions;
* optionally ``budget_mask``: a boolean mask of one observation (True: a measurement that
  may be perturbed), combined with the sweep budget's mask.

`policy_audit` runs every cell of a `Sweep` (clean, random controls with several draws,
gradient attacks) as whole episodes. At every step the observation is perturbed within the
budget — ``eps`` in the *physical* unit of the measurement (e.g. dBm), converted exactly
through the policy's affine `Normalisation` to the policy's input units — by the core
`scirobust.attacks.attack` with an objective that pushes the greedy action away from the
clean greedy action at that state (`greedy_cross_entropy` or `q_margin`). ``loop="closed"``:
the perturbed action is executed, so it changes what is observed next; ``loop="open"``: the
episode follows the clean actions and only the perturbed decisions are scored.

Records (one per attack, epsilon, metric and episode step; ``step=None`` rows average over
steps): ``value`` (the action's value, e.g. rate; renamed by ``value_metric``), ``regret``
(best value − value), ``agreement`` (fraction of decisions equal to the clean policy's at
the same state) and ``kind="ratio"`` rows of ``regret`` (attack / first random control).
A record's ``value`` is the mean over episodes, ``stderr`` its standard error over episodes,
``spread`` the standard deviation over random draws. Each cell draws from `Sweep.generator`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Unpack

import numpy as np
import torch
from torch import Tensor, nn

from scirobust import objectives
from scirobust.attacks import attack, preserved_model_state
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.results import Record, Results, ratio_records
from scirobust.sweep import AttackRun, Sweep, SweepOptions

__all__ = ["EpisodeTrace", "Normalisation", "PolicyEnvironment", "greedy_cross_entropy",
           "policy_audit", "q_margin"]

Loop = Literal["closed", "open"]


class PolicyEnvironment(Protocol):
    """What `policy_audit` needs from an environment (see module docstring)."""

    n_steps: int

    def start(self) -> Any:
        """The initial state of a batch of episodes."""
        ...

    def observe(self, state: Any) -> Tensor:
        """The observation (batch, ...) in physical units."""
        ...

    def action_values(self, state: Any) -> Tensor:
        """The value of every action now, (batch, n_actions)."""
        ...

    def step(self, state: Any, actions: Tensor) -> Any:
        """The state after executing ``actions`` (batch,)."""
        ...


@dataclass(frozen=True)
class Normalisation:
    """The policy's input normalisation ``model_input = (physical + bias) / scale``.

    ``bias`` and ``scale`` are scalars or tensors broadcastable to one observation (e.g. one
    pair per plane). `budget` converts a physical budget exactly: eps / |scale|.
    """

    bias: float | Tensor = 0.0
    scale: float | Tensor = 1.0

    def __post_init__(self) -> None:
        scale = torch.as_tensor(self.scale, dtype=torch.float64)
        if not torch.isfinite(scale).all() or (scale == 0).any():
            raise ConfigError("Normalisation.scale must be finite and non-zero everywhere.")
        if not torch.isfinite(torch.as_tensor(self.bias, dtype=torch.float64)).all():
            raise ConfigError("Normalisation.bias must be finite.")

    def __call__(self, x: Tensor) -> Tensor:
        """Physical units -> model input units."""
        bias = torch.as_tensor(self.bias, dtype=x.dtype, device=x.device)
        scale = torch.as_tensor(self.scale, dtype=x.dtype, device=x.device)
        return (x + bias) / scale

    def budget(self, physical: Budget) -> Budget:
        """The budget in model units: eps / |scale| per feature (``linf``; ``l2`` needs a
        scalar scale). Mask, norm and relative flag are kept; bounds are not supported."""
        if physical.bounds is not None or physical.scale is not None:
            raise ConfigError("Convert a budget without bounds or scale: give eps in the "
                              "measurement's physical unit.")
        scale = torch.as_tensor(self.scale, dtype=torch.float64).abs()
        if physical.norm == "l2" and scale.numel() != 1:
            raise ConfigError("An L2 budget converts only through a scalar scale.")
        eps = torch.as_tensor(physical.eps, dtype=torch.float64) / scale
        return Budget(eps=eps if eps.numel() > 1 else float(eps), norm=physical.norm,
                      relative=physical.relative, mask=physical.mask)


def greedy_cross_entropy(clean_actions: Tensor) -> objectives.TargetObjective:
    """Cross-entropy (nats) of softmax(Q) against the clean greedy action: maximising it
    pushes the greedy action away (its gradient is non-zero at the clean input)."""
    return objectives.cross_entropy(clean_actions)


class _QMargin:
    def __init__(self, clean_actions: Tensor) -> None:
        self.actions = clean_actions.long()

    def __call__(self, output: Tensor, x: Tensor) -> Tensor:
        if output.dim() != 2 or output.shape[0] != self.actions.shape[0]:
            raise DataError(f"q_margin needs Q-values (batch, n_actions) for "
                            f"{self.actions.shape[0]} actions; got {tuple(output.shape)}.")
        chosen = output.gather(1, self.actions[:, None].to(output.device))[:, 0]
        others = output.scatter(1, self.actions[:, None].to(output.device), float("-inf"))
        return others.max(dim=1).values - chosen


def q_margin(clean_actions: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """Q-margin (Q units): best other action's Q minus the clean greedy action's Q; the greedy
    action changes where it becomes positive."""
    return _QMargin(clean_actions)


OBJECTIVES: dict[str, Callable[[Tensor], Callable[[Tensor, Tensor], Tensor]]] = {
    "cross_entropy": greedy_cross_entropy, "margin": q_margin}


@dataclass(frozen=True)
class EpisodeTrace:
    """One run of the episodes: actions (steps, E), the clean policy's actions at the same
    states (steps, E), the values of the taken actions (steps, E) and the best values."""

    actions: np.ndarray
    clean_actions: np.ndarray
    values: np.ndarray
    best: np.ndarray


def _episodes(policy: nn.Module | Callable[[Tensor], Tensor], env: PolicyEnvironment,
              norm: Normalisation, run: AttackRun | None, budget: Budget, loop: Loop,
              objective: str, generator: torch.Generator) -> EpisodeTrace:
    acts, cleans, values, best = [], [], [], []
    state = env.start()
    for k in range(env.n_steps):
        x = norm(env.observe(state))
        with torch.no_grad():
            clean = policy(x).argmax(dim=1)
        action = clean
        if run is not None:
            x_adv = attack(policy, x, OBJECTIVES[objective](clean), budget, run.name,
                           generator=generator, **run.options())
            with torch.no_grad():
                action = policy(x_adv).argmax(dim=1)
        v = env.action_values(state)
        if v.shape != (x.shape[0], v.shape[1]):
            raise DataError(f"action_values must be (batch, n_actions); got {tuple(v.shape)}.")
        acts.append(action.cpu().numpy())
        cleans.append(clean.cpu().numpy())
        values.append(v.gather(1, action.cpu()[:, None])[:, 0].numpy())
        best.append(v.max(dim=1).values.numpy())
        if k + 1 < env.n_steps:
            state = env.step(state, action if loop == "closed" else clean)
    return EpisodeTrace(*(np.stack(a) for a in (acts, cleans, values, best)))


def _records(traces: list[EpisodeTrace], case: str, model: str, label: str, eps: float,
             kind: str, value_metric: str) -> list[Record]:
    scores = {value_metric: np.stack([t.values for t in traces]),
              "regret": np.stack([t.best - t.values for t in traces]),
              "agreement": np.stack([(t.actions == t.clean_actions).astype(float)
                                     for t in traces])}  # (draws, steps, E)
    out = []
    for metric, arr in scores.items():
        n_steps, n = arr.shape[1], arr.shape[2]
        for step in [*range(n_steps), None]:
            per_draw = arr[:, step] if step is not None else arr.mean(axis=1)  # (draws, E)
            per_ep = per_draw.mean(axis=0)
            se = float(per_ep.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            spread = float(per_draw.mean(axis=1).std(ddof=1)) if arr.shape[0] > 1 \
                else float("nan")
            out.append(Record(case, model, label, eps, metric, float(per_ep.mean()), se, n,
                              spread, kind=kind, step=step))  # type: ignore[arg-type]
    return out


def policy_audit(
    policy: nn.Module | Callable[[Tensor], Tensor],
    env: PolicyEnvironment,
    sweep: Sweep | None = None,
    *,
    normalisation: Normalisation | None = None,
    objective: str = "cross_entropy",
    loop: Loop = "closed",
    value_metric: str = "value",
    case: str = "policy",
    model_name: str = "policy",
    **options: Unpack[SweepOptions],
) -> tuple[Results, dict[tuple[str, float], EpisodeTrace]]:
    """Clean vs random vs gradient-attacked episodes of a greedy policy.

    Args:
        policy: maps model-input observations (batch, ...) to scores (batch, n_actions).
        env: a `PolicyEnvironment`; ``observe`` gives physical units.
        sweep: attacks, epsilons (multiplying ``budget.eps``, in the measurement's physical
            unit, e.g. dBm), budget (linf; ``mask`` of one observation), n_random, seed.
            Defaults: ``attacks=("random_sign", "fgsm")``, ``n_random=3``. ``metrics``,
            ``batch_size``, ``device``, ``cache_dir`` and ``distributed`` are not used (the
            whole batch of episodes runs at once, where the environment puts it).
        normalisation: physical -> model input (default identity); the budget is converted
            through it exactly.
        objective: ``"cross_entropy"`` (`greedy_cross_entropy`) or ``"margin"`` (`q_margin`).
        loop: ``"closed"`` (perturbed actions are executed) or ``"open"`` (clean actions are).
        value_metric: metric name of the action-value rows (e.g. ``"rate"``).

    Returns:
        ``(results, traces)``: records as in the module docstring (metadata
        ``step_label = "episode step"``) and the `EpisodeTrace` of the first draw of every
        (label, epsilon), ``("clean", 0.0)`` included.
    """
    started = time.perf_counter()
    sweep = Sweep.resolve(sweep, defaults={"n_random": 3}, **options)
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {sorted(OBJECTIVES)}; got {objective!r}.")
    if not isinstance(value_metric, str) or value_metric in ("", "regret", "agreement"):
        raise ConfigError(f"value_metric must be a new metric name; got {value_metric!r}.")
    if loop not in ("closed", "open"):
        raise ConfigError(f"loop must be 'closed' or 'open'; got {loop!r}.")
    for name in ("n_steps", "start", "observe", "action_values", "step"):
        if not hasattr(env, name):
            raise ConfigError(f"The environment lacks {name!r}; see scirobust.policy's "
                              "PolicyEnvironment.")
    if not isinstance(env.n_steps, int) or env.n_steps < 1:
        raise ConfigError(f"env.n_steps must be an integer >= 1; got {env.n_steps!r}.")
    norm = normalisation or Normalisation()
    physical = sweep.budget
    env_mask = getattr(env, "budget_mask", None)
    if env_mask is not None:
        mask = torch.as_tensor(env_mask, dtype=torch.bool)
        if physical.mask is not None:
            mask = mask & physical.mask
        physical = dataclasses.replace(physical, mask=mask)
    base = norm.budget(physical)
    results, traces = Results(), {}
    with preserved_model_state(policy):
        for run, eps in sweep.cells():
            label = run.key if run else "clean"
            runs = [_episodes(policy, env, norm, run, base.scaled(eps), loop, objective,
                              sweep.generator(label, eps, draw))
                    for draw in range(sweep.draws(run))]
            traces[(label, eps)] = runs[0]
            results.records += _records(runs, case, model_name, label, eps,
                                        run.kind if run else "clean", value_metric)
    results.records.extend(ratio_records(results.records, {"regret"}, baseline=sweep.baseline))
    results.metadata = {
        "policy": {"loop": loop, "objective": objective, "steps": env.n_steps,
                   "attacks": [r.key for r in sweep.attacks], "epsilons": list(sweep.epsilons),
                   "n_random": sweep.n_random, "seed": sweep.seed,
                   "budget": physical.describe()},
        "step_label": "episode step",
        "wall_time_s": time.perf_counter() - started,
    }
    return results, traces
