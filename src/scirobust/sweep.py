"""`Sweep`: the one settings object of every paired sweep.

A sweep is *which* perturbations to measure: the attacks (with their options), the
perturbation sizes, the budget they scale, the metrics, how many random draws, the seed, the
batch size, the device and an optional resume cache. Every engine entry point takes one —
`scirobust.audit`, `scirobust.rollout.rollout_audit`, `scirobust.layers.feature_audit`,
`scirobust.training.RobustnessTracker` and the atomistic distortion sweeps — and the YAML
config of ``scirobust audit`` builds the same object. Keyword calls such as
``audit(model, x, y, epsilons=[0.1], attacks=["random_sign", "fgsm"])`` build a `Sweep`
from those keywords (`Sweep.resolve`).

Seeds: every (attack, epsilon, draw) cell draws its random numbers from its own generator,
seeded by `Sweep.generator` from the sweep's seed and the cell alone, so adding an attack or
an epsilon never changes the numbers of another cell.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch

from scirobust._hashing import stable_int
from scirobust.attacks import get_spec
from scirobust.budget import Budget
from scirobust.errors import ConfigError
from scirobust.metrics import Metric

__all__ = ["AttackRun", "Sweep", "SweepOptions", "stable_int"]


@dataclass(frozen=True)
class AttackRun:
    """One attack of a sweep with its parameters; ``label`` names it in the results.

    ``steps`` and ``step_size`` (a fraction of eps) override the registry defaults of
    `scirobust.ATTACKS`; ``random_start`` starts iterative attacks at a random point.
    """

    name: str
    steps: int | None = None
    step_size: float | None = None
    random_start: bool | None = None
    label: str | None = None

    @property
    def key(self) -> str:
        """Name used in the results (``label`` or ``name``)."""
        return self.label or self.name

    @property
    def is_random(self) -> bool:
        """True for random controls (several draws, no gradient)."""
        return get_spec(self.name).is_random

    @property
    def kind(self) -> str:
        """Record kind of its rows: ``"random"`` or ``"adversarial"``."""
        return "random" if self.is_random else "adversarial"

    def options(self) -> dict[str, Any]:
        """Keyword arguments of `scirobust.attack` given by this run (unset ones omitted)."""
        return {k: v for k, v in (("steps", self.steps), ("step_size", self.step_size),
                                  ("random_start", self.random_start)) if v is not None}

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
        if run.steps is not None and (not isinstance(run.steps, int) or run.steps < 1):
            raise ConfigError(f"{run.key}: steps must be an integer >= 1; got {run.steps!r}.")
        if run.step_size is not None and not (
            isinstance(run.step_size, int | float) and math.isfinite(run.step_size)
            and run.step_size > 0
        ):
            raise ConfigError(f"{run.key}: step_size must be a positive fraction of eps; got "
                              f"{run.step_size!r}.")
        return run


class SweepOptions(TypedDict, total=False):
    """The keyword form of a `Sweep` accepted by every engine entry point."""

    attacks: Sequence[str | Mapping[str, Any] | AttackRun]
    epsilons: Sequence[float]
    budget: Budget | None
    metrics: Sequence[str | Metric] | None
    n_random: int
    seed: int
    batch_size: int
    device: str | torch.device | None
    cache_dir: str | Path | None
    distributed: bool
    batch_draws: bool | None


SWEEP_FIELDS = frozenset(SweepOptions.__annotations__)


@dataclass(frozen=True)
class Sweep:
    """Which perturbations a paired sweep measures (validated when built).

    Args:
        epsilons: perturbation sizes; each multiplies ``budget.eps`` (default 1), so they are
            in the budget's units (input units, or fractions with ``relative=True``).
        attacks: names from `scirobust.ATTACKS`, mappings ``{name, steps, step_size,
            random_start, label}`` or `AttackRun`s. Random controls get ``n_random`` draws;
            the first random control is the baseline of the ratio rows.
        budget: norm, mask, relative/scale units, bounds and clip/drop (default `Budget()`).
        metrics: metric names or `Metric`s (default: the engine's defaults for its task).
        n_random: draws per random control (mean reported, ``spread`` = std over draws).
        seed: seeds every random draw (see `generator`).
        batch_size: samples per forward pass.
        device: where the model and data run (default: where the model is).
        cache_dir: store finished cells here and reuse them on a re-run (None: no cache).
        distributed: shard the batches across the processes of the ``torch.distributed``
            process group (launched by ``torchrun``); records stay identical to one process
            (see `scirobust.distributed`).
        batch_draws: evaluate all ``n_random`` draws of a batch in one forward pass (memory:
            ``n_random`` × the batch). None: on CUDA only; on the CPU it saves no work and
            would change the last bits of the outputs (another matrix shape).
    """

    epsilons: tuple[float, ...]
    attacks: tuple[AttackRun, ...] = (AttackRun("random_sign"), AttackRun("fgsm"))
    budget: Budget = field(default_factory=Budget)
    metrics: tuple[str | Metric, ...] | None = None
    n_random: int = 5
    seed: int = 0
    batch_size: int = 1024
    device: str | None = None
    cache_dir: Path | None = None
    distributed: bool = False
    batch_draws: bool | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the fields once, here
        if isinstance(self.attacks, str | Mapping | AttackRun):
            set_(self, "attacks", (self.attacks,))
        runs = tuple(AttackRun.coerce(a) for a in self.attacks)
        if not runs:
            raise ConfigError("A sweep needs at least one attack (e.g. 'random_sign', 'fgsm').")
        if len({r.key for r in runs}) != len(runs):
            raise ConfigError("Two attacks share a name; give each a distinct 'label'.")
        if "clean" in {r.key for r in runs}:
            raise ConfigError("'clean' is reserved for the unperturbed rows; relabel the attack.")
        set_(self, "attacks", runs)
        raw = [self.epsilons] if isinstance(self.epsilons, int | float) else self.epsilons
        try:
            # true/false in a YAML list would silently become 1.0/0.0
            epsilons = () if any(isinstance(e, bool) for e in raw) else tuple(
                float(e) for e in raw)
        except (TypeError, ValueError):
            epsilons = ()
        if not epsilons or any(not math.isfinite(e) or e < 0 for e in epsilons):
            raise ConfigError(f"epsilons must be a non-empty list of finite numbers >= 0; got "
                              f"{self.epsilons!r}.")
        set_(self, "epsilons", epsilons)
        budget = Budget() if self.budget is None else self.budget
        if not isinstance(budget, Budget):
            raise ConfigError(f"budget must be a scirobust.Budget; got {type(budget).__name__}.")
        set_(self, "budget", budget)
        if self.metrics is not None:
            metrics = (self.metrics,) if isinstance(self.metrics, str | Metric) else self.metrics
            set_(self, "metrics", tuple(metrics))
        for name in ("n_random", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1; got {value!r}.")
        if not isinstance(self.distributed, bool):
            raise ConfigError(f"distributed must be True or False; got {self.distributed!r}.")
        if self.batch_draws is not None and not isinstance(self.batch_draws, bool):
            raise ConfigError(f"batch_draws must be True, False or None (CUDA only); got "
                              f"{self.batch_draws!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer; got {self.seed!r}.")
        if self.device is not None:
            set_(self, "device", str(torch.device(self.device)))
        if self.cache_dir is not None:
            set_(self, "cache_dir", Path(self.cache_dir))
        mismatched = [r.key for r in runs if get_spec(r.name).norm not in (None, budget.norm)]
        if mismatched and any(r.is_random for r in runs):
            raise ConfigError(
                f"{', '.join(mismatched)} work(s) in another norm than the budget "
                f"(norm={budget.norm!r}); their ratio to the random controls would compare "
                "perturbations of different sizes. Audit them in a separate run whose budget "
                "has their norm (pgd_l2 -> norm='l2', pgd_linf -> norm='linf')."
            )

    # ------------------------------------------------------------------ building
    @classmethod
    def resolve(cls, sweep: Sweep | None = None, defaults: Mapping[str, Any] | None = None,
                **options: Any) -> Sweep:
        """The sweep of an engine call: ``sweep`` as given, or one built from ``options``
        (the `SweepOptions` keywords) over the engine's ``defaults``. Giving both a sweep and
        options is refused: the call would be ambiguous."""
        unknown = sorted(set(options) - SWEEP_FIELDS)
        if unknown:
            raise ConfigError(f"Unknown sweep option(s) {unknown}; a sweep takes "
                              f"{', '.join(sorted(SWEEP_FIELDS))}.")
        if sweep is not None:
            if not isinstance(sweep, Sweep):
                raise ConfigError(f"sweep must be a scirobust.Sweep; got {type(sweep).__name__}.")
            if options:
                raise ConfigError(
                    f"Give either a Sweep or the keywords {sorted(options)}, not both: use "
                    "sweep.replace(...) to change a sweep."
                )
            return sweep
        merged = {**(defaults or {}), **options}
        if "epsilons" not in merged:
            raise ConfigError("Give the perturbation sizes: epsilons=[...] (in the budget's "
                              "units), or a Sweep.")
        return cls(**merged)

    def replace(self, **changes: Any) -> Sweep:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ reading
    @property
    def random_runs(self) -> list[AttackRun]:
        """The random controls, in order."""
        return [r for r in self.attacks if r.is_random]

    @property
    def adversarial_runs(self) -> list[AttackRun]:
        """The gradient (and sparse) attacks, in order."""
        return [r for r in self.attacks if not r.is_random]

    @property
    def baseline(self) -> str | None:
        """Label of the random control that ratio rows divide by (the first one), or None."""
        return next((r.key for r in self.attacks if r.is_random), None)

    def draws(self, run: AttackRun | None) -> int:
        """Draws of one cell: ``n_random`` for random controls, else 1 (clean: None)."""
        return self.n_random if run is not None and run.is_random else 1

    def cells(self) -> Iterator[tuple[AttackRun | None, float]]:
        """``(None, 0.0)`` for the clean cell, then every (attack, epsilon), epsilon-major."""
        yield None, 0.0
        for eps in self.epsilons:
            for run in self.attacks:
                yield run, eps

    def cell_seed(self, label: str, epsilon: float, draw: int) -> int:
        """Seed of one (attack label, epsilon, draw) cell; ``label`` is ``"clean"`` for the
        unperturbed cell. Depends on the sweep's seed and the cell only."""
        return stable_int(self.seed, label, float(epsilon), int(draw))

    def generator(self, label: str, epsilon: float, draw: int) -> torch.Generator:
        """A CPU `torch.Generator` seeded with `cell_seed`."""
        return torch.Generator().manual_seed(self.cell_seed(label, epsilon, draw))

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (results metadata and cache keys)."""
        return {
            "attacks": [dataclasses.asdict(r) for r in self.attacks],
            "epsilons": list(self.epsilons), "budget": self.budget.describe(),
            "metrics": None if self.metrics is None else
            [m.name if isinstance(m, Metric) else m for m in self.metrics],
            "n_random": self.n_random, "seed": self.seed, "batch_size": self.batch_size,
        }
