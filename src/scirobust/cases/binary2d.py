"""Binary 2-D demo of the uncertainty relation (paper 001 §3.2, Fig. 4; SCIENCE.md §9).

An MLP classifies points uniform in [−1, 1]² by the sign of x₁ (500 epochs, 5 seeds). At
selected epochs a `RobustnessTracker` records clean accuracy, accuracy under random sign, FGSM
and PGD (L-inf, ε = 0.1 in input units) and their envelope; `class_spreads` gives the exact
spreads Δx, Δp, Δx·Δp of the packet ψ_Y = CE/√β of both classes (Simpson quadrature) on the
square (``delta_x``, ...) and on the paper's slice x₂ = 0 (``delta_x_slice``, ...). What is
exact and what was chosen is listed in the run's notes.

Records: ``step`` = epoch; model ``mlp_seed<S>`` = one seed (``metadata["seeds"]``), ``mlp`` =
their mean (``spread`` = SD over seeds, ``stderr`` = SD/√seeds, ``n`` = seeds). Spreads are
``kind="clean"`` rows (ε = 0) with ``variable`` "y0" / "y1" per class and "" for their mean.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from scirobust.budget import Budget
from scirobust.cases import Case, CaseOptions, CaseOutput, Verdict, finish, outcome
from scirobust.report import COLORS, save_case_figure, write_case_table
from scirobust.results import Record, Results
from scirobust.sweep import Sweep
from scirobust.training import RobustnessTracker, fit
from scirobust.uncertainty import INTERPRETATION_NOTES, Box, class_spreads

CASE_NAME = "binary2d"
MODEL = "mlp"
ATTACKS = ("random_sign", "fgsm", "pgd_linf")
L2_ATTACKS = ("random_gaussian", "fgm")
SPREADS = {"delta_x": "delta_x", "delta_p": "delta_p", "delta_x_delta_p": "product"}  # -> Spreads
UNITS = {"accuracy": "(fraction)", "delta_x": "(input units)", "delta_p": "(1/input units)"}
# The paper's trends over training, as (metric, attack, sign of the change) per claim, with what
# the paper reports (it shows figures only) and what differs here beyond the common set-up.
CLAIMS = (
    ("Training raises test accuracy while robust accuracy under FGSM and PGD falls.",
     (("accuracy", "clean", +1), ("accuracy", "fgsm", -1), ("accuracy", "pgd_linf", -1)),
     "001 Fig. 4D: as test accuracy rises over 500 epochs, robust accuracy under a gradient "
     "attack gradually falls (mean of 5 seeds; no number given)", ""),
    ("Robust accuracy also falls under a gradient step without the sign (fgm: length ε "
     "along the L2-normalised gradient; paper 004: the sign is not necessary), where sign "
     "attacks leave a correct classifier 1 − P(|x₁| < ε) by construction.",
     (("accuracy", "fgm", -1),),
     "004: gradient attacks often use a sign function, \"although this is not strictly "
     "necessary\" (no experiment or number given)",
     "; paper 004 runs no such test: fgm and its Gaussian control on this demo are ours"),
    ("Training narrows the packet in input space (Δx falls) and widens it in the conjugate "
     "space (Δp rises), on the square and on the slice x₂ = 0.",
     (("delta_x", "clean", -1), ("delta_p", "clean", +1),
      ("delta_x_slice", "clean", -1), ("delta_p_slice", "clean", +1)),
     "001 Fig. 4E: dx falls while dp rises over 500 epochs, evaluated on the slice x₂ = 0 "
     "(mean of 5 seeds; no number given)", "; the full square is judged too"),
)


@dataclass(frozen=True)
class Binary2dSettings:
    """Settings of the demo; lengths in input units (the square is [−1, 1]²)."""

    seeds: int = 5
    epochs: int = 500
    eval_epochs: tuple[int, ...] = (1, *range(20, 501, 20))
    landscape_epochs: tuple[int, ...] = (100, 200, 500)
    n_train: int = 1000
    n_test: int = 1000
    hidden: int = 64
    depth: int = 3
    lr: float = 1e-3
    batch_size: int = 100
    eps: float = 0.1
    pgd_steps: int = 10
    random_draws: int = 5
    # Simpson points per axis; ReLU kinks make it O(h²): 401² keeps Δx·Δp within ~0.3 %.
    grid_points: int = 401
    slice_points: int = 801  # 1-D quadrature on x₂ = 0
    landscape_points: int = 61

    @classmethod
    def full(cls) -> Binary2dSettings:
        """The paper's scale: 500 epochs, 5 seeds."""
        return cls()

    @classmethod
    def quick(cls) -> Binary2dSettings:
        """A few seconds: 2 seeds, 60 epochs, coarse grids (for tests and smoke runs)."""
        return cls(
            seeds=2, epochs=60, eval_epochs=(1, 30, 60), landscape_epochs=(20, 40, 60),
            n_train=400, n_test=400, random_draws=2, grid_points=101, slice_points=201,
            landscape_points=31,
        )


def make_data(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n points uniform in [−1, 1]², label 1 where x₁ > 0."""
    x = torch.rand(n, 2, generator=generator) * 2 - 1
    return x, (x[:, 0] > 0).long()


def make_model(settings: Binary2dSettings, seed: int) -> nn.Module:
    """MLP 2 → hidden × depth (ReLU) → 2 logits, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        widths = itertools.pairwise([2] + [settings.hidden] * settings.depth)
        return nn.Sequential(*(m for a, b in widths for m in (nn.Linear(a, b), nn.ReLU())),
                             nn.Linear(settings.hidden, 2))


def make_sweep(settings: Binary2dSettings, seed: int) -> Sweep:
    """Random sign, FGSM and PGD at ε = ``settings.eps`` (L-inf, input units) inside the
    square; random draws and PGD starts seeded by ``seed`` (the same draws at every epoch)."""
    return Sweep(epsilons=(settings.eps,), budget=Budget(norm="linf", bounds=(-1.0, 1.0)),
                 attacks=("random_sign", "fgsm", {"name": "pgd_linf", "steps": settings.pgd_steps}),
                 metrics=("accuracy",), n_random=settings.random_draws, seed=seed)


def make_l2_sweep(settings: Binary2dSettings, seed: int) -> Sweep:
    """fgm and its Gaussian control of the same L2 norm (ε in input units) inside the square;
    an L2 budget, so a sweep of its own beside the L-inf one."""
    return Sweep(epsilons=(settings.eps,), budget=Budget(norm="l2", bounds=(-1.0, 1.0)),
                 attacks=("random_gaussian", "fgm"), metrics=("accuracy",),
                 n_random=settings.random_draws, seed=seed)


def spread_records(model: nn.Module, settings: Binary2dSettings, model_name: str,
                   epoch: int) -> list[Record]:
    """Exact Δx, Δp, Δx·Δp of both classes on the square and on x₂ = 0 (kind "clean", ε = 0):
    per class (variable "y0", "y1") and their mean (variable ""). ``stderr`` is the
    quadrature's grid-refinement error estimate."""
    line = Box(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0]))  # the paper's x₂ = 0
    records = []
    for suffix, box, points in (("", Box.cube(-1.0, 1.0, 2), settings.grid_points),
                                ("_slice", line, settings.slice_points)):
        spreads = class_spreads(model, [0, 1], box, method="quadrature", grid_points=points)
        for metric, name in SPREADS.items():
            rows = {f"y{c}": (getattr(s, name), getattr(s, f"{name}_stderr"))
                    for c, s in spreads.items()}
            # Both classes share the grid, so their errors add: the mean's error ≤ the mean.
            rows[""] = tuple(float(np.mean(v)) for v in zip(*rows.values(), strict=True))
            records += [Record(CASE_NAME, model_name, "clean", 0.0, metric + suffix, value, se,
                               1, kind="clean", variable=variable, step=epoch)
                        for variable, (value, se) in rows.items()]
    return records


def packet_landscape(model: nn.Module, label: int, points: int) -> tuple[np.ndarray, ...]:
    """ψ_label on a points × points grid of the square (β by the trapezoid rule on the grid)."""
    axis = torch.linspace(-1, 1, points)
    g1, g2 = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([g1.reshape(-1), g2.reshape(-1)], 1)
    with torch.no_grad():
        loss = nn.functional.cross_entropy(
            model(grid), torch.full((grid.shape[0],), label), reduction="none"
        ).reshape(points, points).double()
    beta = torch.trapezoid(torch.trapezoid(loss**2, axis.double(), dim=1), axis.double())
    return g1.numpy(), g2.numpy(), (loss / beta.sqrt()).numpy()


def train_seed(settings: Binary2dSettings, seed: int, want_landscapes: bool
               ) -> tuple[Results, dict[int, tuple[np.ndarray, ...]]]:
    """Train one seed; track accuracies and spreads after each epoch in ``eval_epochs``."""
    gen = torch.Generator().manual_seed(10_007 * seed + 1)  # data, then batch order
    x_train, y_train = make_data(settings.n_train, gen)
    x_test, y_test = make_data(settings.n_test, gen)
    model = make_model(settings, seed)
    label = f"{MODEL}_seed{seed}"
    tracker, l2 = (RobustnessTracker(x_test, y_test, sweep(settings, seed),
                                     at=settings.eval_epochs, model_name=label, case=CASE_NAME)
                   for sweep in (make_sweep, make_l2_sweep))
    spreads: list[Record] = []
    landscapes: dict[int, tuple[np.ndarray, ...]] = {}

    def after_epoch(net: nn.Module, epoch: int) -> None:
        if tracker.due(epoch):
            spreads.extend(spread_records(net, settings, label, epoch))
            # its clean rows and envelope repeat the L-inf tracker's: keep the attacks only
            spreads.extend(r for r in l2.record(net, epoch).records
                           if r.kind in ("random", "adversarial"))
        if want_landscapes and epoch in settings.landscape_epochs:
            landscapes[epoch] = packet_landscape(net, 1, settings.landscape_points)

    fit(model, torch.optim.Adam(model.parameters(), lr=settings.lr), (x_train, y_train),
        epochs=settings.epochs, tracker=tracker, batch_size=settings.batch_size,
        generator=gen, on_epoch=after_epoch)
    results = tracker.results
    results.extend(spreads)
    return results, landscapes


def seed_means(records: list[Record], n_seeds: int) -> list[Record]:
    """Model ``MODEL`` rows: per (attack, epsilon, metric, variable, step, kind) the mean over
    the seeds' records; ``spread`` = SD over seeds, ``stderr`` = SD/√seeds, ``n`` = seeds."""
    groups: dict[tuple, list[float]] = {}
    for r in records:
        key = (r.attack, r.epsilon, r.metric, r.variable, r.step, r.kind)
        groups.setdefault(key, []).append(r.value)
    out = []
    for (attack, eps, metric, variable, step, kind), values in groups.items():
        sd = float(np.std(values, ddof=1)) if n_seeds > 1 else math.nan
        out.append(Record(CASE_NAME, MODEL, attack, eps, metric, float(np.mean(values)),
                          sd / math.sqrt(n_seeds), n_seeds, sd, kind=kind, variable=variable,
                          step=step))
    return out


def series(results: Results, metric: str, attack: str) -> tuple[list[int], np.ndarray, ...]:
    """Seed-mean series of one metric over epochs: (epochs, mean, SD, stderr)."""
    rows = sorted(results.select(model=MODEL, metric=metric, attack=attack, variable=""),
                  key=lambda r: r.step)
    return ([r.step for r in rows], *(np.array([getattr(r, f) for r in rows])
                                      for f in ("value", "spread", "stderr")))


def judge(results: Results, windows: list[int], stand_in: str = ""
          ) -> tuple[list[list], list[Verdict]]:
    """Trend rows (metric, attack, from epoch, sign, first, last, change, z, as paper) and one
    `Verdict` per claim; z = change / combined standard error over seeds. ``ours`` quotes the
    seed means at the window starts and the last epoch; ``stand_in`` opens each claim's."""
    rows, verdicts = [], []
    epochs = series(results, "accuracy", "clean")[0]
    quoted = sorted({*windows, epochs[-1]})  # the epochs whose seed means `ours` quotes
    n_seeds = results.select(model=MODEL, metric="accuracy", attack="clean")[0].n
    for claim, checks, paper, extra in CLAIMS:
        passed, details, ours = [], [], []
        for metric, attack, _ in checks:
            mean = dict(zip(*series(results, metric, attack)[:2], strict=True))
            ours.append(f"{metric} ({attack}) {' → '.join(f'{mean[e]:.3g}' for e in quoted)} "
                        + UNITS[metric.removesuffix("_slice")])
        for (metric, attack, sign), start in itertools.product(checks, windows):
            epochs, mean, _, se = series(results, metric, attack)
            i = epochs.index(start)
            first, last = mean[i], mean[-1]
            change, denom = float(last - first), math.hypot(se[i], se[-1])
            z = change / denom if denom > 0 else math.copysign(math.inf, change) if change else 0.0
            passed.append(bool(np.sign(change) == sign and abs(z) > 2))
            rows.append([metric, attack, start, "up" if sign > 0 else "down", first, last,
                         change, z, "yes" if passed[-1] else "no"])
            details.append(f"{metric} ({attack}) from epoch {start}: {change:+.3g}, z = {z:.3g}")
        verdicts.append(Verdict(
            claim, "each change from the start epoch to the last evaluated one has the paper's "
            "sign and |z| > 2 (z = change / combined standard error over seeds)",
            outcome(passed),
            "; ".join(details) + ".", paper, f"mean of {n_seeds} seeds at epochs "
            f"{' → '.join(map(str, quoted))}: " + "; ".join(ours), stand_in + extra))
    return rows, verdicts


def run_binary2d(options: CaseOptions, settings: Binary2dSettings | None = None) -> CaseOutput:
    """Train all seeds, write results, figures, tables and report; return the summary."""
    started = time.perf_counter()
    settings = settings or (Binary2dSettings.quick() if options.quick else Binary2dSettings.full())
    directory = Path(options.output)
    seeds = {f"{MODEL}_seed{options.seed + s}": options.seed + s for s in range(settings.seeds)}
    results, landscapes, warnings = Results(), {}, []
    for i, seed in enumerate(seeds.values()):
        one, land = train_seed(settings, seed, want_landscapes=i == 0)
        results.extend(one)
        landscapes.update(land)
        warnings += [w for w in one.metadata["warnings"] if w not in warnings]
    results.records[:0] = seed_means(results.records, settings.seeds)

    epochs = series(results, "accuracy", "clean")[0]
    windows = sorted({epochs[0], *(e for e in settings.landscape_epochs[:1] if e in epochs)})
    trend_rows, verdicts = judge(results, windows, (
        f"MLP 2-{'-'.join([str(settings.hidden)] * settings.depth)}-2 ReLU, Adam, "
        f"{settings.n_train} training points and ε = {settings.eps} (input units) chosen here, "
        f"{settings.seeds} seeds × {settings.epochs} epochs (paper: 5 × 500)"))
    header = ["metric", "attack", "from_epoch", "expected", "first", "last", "change", "z",
              "as_paper"]
    write_case_table(directory / "tables" / "binary2d_trends.csv", header, trend_rows)
    _figure_landscapes(landscapes, directory)
    _figure_over_epochs(results, settings, directory)
    results.metadata.update({
        "case": CASE_NAME,
        "standard_figures": False,  # records are over epochs, not an epsilon sweep
        "step_label": "epoch",
        "settings": asdict(settings),
        "sweep": {**make_sweep(settings, options.seed).describe(),
                  "seed": "the training seed of each model (see seeds)"},
        "sweep_l2": {**make_l2_sweep(settings, options.seed).describe(),
                     "seed": "the training seed of each model (see seeds)"},
        "seeds": seeds,
        "warnings": warnings,
        "quick": options.quick,
        "seed": options.seed,
        "elapsed_s": time.perf_counter() - started,
        "description": (
            "Paper 001 Fig. 4: an MLP classifies points of [−1, 1]² by the sign of x₁ "
            f"({settings.epochs} epochs, {settings.seeds} seeds). Over epochs (step): test "
            f"accuracy, robust accuracy under FGSM and PGD (L-inf, ε = {settings.eps}), their "
            "envelope and the random-sign control of the same size, and the exact spreads Δx, "
            "Δp of the neural packet ψ_Y = CE/√β on the square and on the slice x₂ = 0."
        ),
        "notes": [
            *INTERPRETATION_NOTES,
            "Exact: data law, labelling by sign(x₁), epochs, seeds, the packet definition; "
            "Δx, Δp, Δx·Δp are integrals by composite Simpson quadrature "
            f"({settings.grid_points}² points on the square, {settings.slice_points} on x₂ = 0).",
            f"Choices (not stated in the paper): {settings.n_train} train / {settings.n_test} "
            f"test points, MLP 2-{'-'.join([str(settings.hidden)] * settings.depth)}-2 ReLU, "
            f"Adam lr {settings.lr:g}, batch {settings.batch_size}, ε = {settings.eps} (the "
            f"MNIST amplitude of §8), PGD {settings.pgd_steps} steps of 2.5ε/{settings.pgd_steps} "
            f"with random start, {settings.random_draws} random-sign draws (the same draws at "
            "every epoch of a seed: one sweep seed per training seed).",
            "Sign attacks cannot push a correct classifier of sign(x₁) below 1 − P(|x₁| < ε) "
            f"= {1 - settings.eps:.2f}: they move x₁ by exactly ε. fgm (a step of length ε "
            "along the L2-normalised gradient, no sign) and its Gaussian control of the same "
            "L2 norm run in a second L2 sweep; the third verdict judges its trend with the "
            "same criterion, fixed before the run.",
            "Records: step = epoch. Model 'mlp' = mean over seeds (spread = SD over seeds, "
            "stderr = SD/√seeds, n = seeds); 'mlp_seed<S>' = seed S (metadata 'seeds'). Δ "
            "metrics: variable '' = mean of both classes, 'y0' / 'y1' per class.",
            "Bound: on a box where the loss does not vanish at the edges Δx·Δp ≥ d/2 need not "
            "hold (an untrained, flat packet has Δp ≈ 0); values below it are not an error.",
        ],
    })
    summary = [header, *([f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
                         for row in trend_rows)]
    return finish(results, directory, summary=summary, verdicts=verdicts,
                  title="binary2d: accuracy, robustness and the uncertainty relation")


def _figure_landscapes(landscapes: dict[int, tuple[np.ndarray, ...]], directory: Path) -> None:
    epochs = sorted(landscapes)
    fig = Figure(figsize=(4.2 * len(epochs), 4.0), layout="constrained")
    zmax = max(float(landscapes[e][2].max()) for e in epochs)
    for i, epoch in enumerate(epochs):
        ax = fig.add_subplot(1, len(epochs), i + 1, projection="3d")
        ax.plot_surface(*landscapes[epoch], cmap="viridis", linewidth=0, antialiased=True)
        ax.set(zlim=(0, zmax), xlabel="x₁", ylabel="x₂", zlabel="ψ(x₁, x₂; Y = 1)",
               title=f"epoch {epoch}")
    fig.suptitle("Neural packet ψ = CE/√β of class 1 (first seed); inputs dimensionless")
    save_case_figure(fig, directory, "packet_landscapes",
                     "Packet ψ of class 1 on the square at three epochs (first seed).")


def _figure_over_epochs(results: Results, settings: Binary2dSettings, directory: Path) -> None:
    square, line = (COLORS["blue"], "2-D square"), (COLORS["orange"], "slice x₂ = 0 (paper)")
    panels = {"accuracy (fraction)": [("accuracy", "clean", COLORS["clean"], "test (clean)")] + [
        ("accuracy", a, COLORS[a], f"{a} (ε = {settings.eps}{', L2' * (a in L2_ATTACKS)})")
        for a in (*ATTACKS, *L2_ATTACKS)]}
    for metric, unit in zip(SPREADS, ("Δx (input units)", "Δp (1/input units)",
                                      "Δx·Δp (dimensionless; dotted: d/2)"), strict=True):
        panels[unit] = [(metric, "clean", *square), (f"{metric}_slice", "clean", *line)]
    fig = Figure(figsize=(14.0, 3.6), layout="constrained")
    for i, (unit, curves) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for metric, attack, color, label in curves:
            epochs, mean, sd, _ = series(results, metric, attack)
            ax.plot(epochs, mean, color=color, marker="o", markersize=3, label=label)
            if np.isfinite(sd).all():
                ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
        ax.set(xlabel="epoch", ylabel=unit)
        ax.legend(fontsize=7)
    for d, (color, _) in ((1.0, square), (0.5, line)):
        ax.axhline(d, color=color, linestyle=":", linewidth=1)
    fig.suptitle("Over training: test and robust accuracy, packet spreads (mean of both "
                 "classes); mean ± SD over seeds")
    save_case_figure(fig, directory, "over_epochs",
                     "Accuracy under attack and Δx, Δp, Δx·Δp over epochs (paper Fig. 4).")


CASE = Case(
    name=CASE_NAME,
    title="Binary 2-D demo of the uncertainty relation",
    paper="001 §3.2, Fig. 4",
    run=run_binary2d,
)

__all__ = ["CASE", "Binary2dSettings", "make_data", "make_model", "make_sweep", "run_binary2d",
           "seed_means", "spread_records"]
