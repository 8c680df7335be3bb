"""Binary 2-D demo of the uncertainty relation (paper 001 §3.2, Fig. 4; SCIENCE.md §9).

Points uniform in the square [−1, 1]², labelled by the sign of x₁ (class 1: x₁ > 0); a small
fully connected network is trained for 500 epochs with 5 seeds. After selected epochs we
record the test accuracy, the robust accuracy under FGSM and PGD (L-inf, ε = 0.1) and under
the random-sign control of the same size, and the spreads Δx, Δp of the neural packet
ψ_Y = CE/√β of both classes, computed *exactly* (composite Simpson quadrature) with
`scirobust.uncertainty.class_spreads`:

* on the whole 2-D square (``delta_x``, ``delta_p``, ``delta_x_delta_p``; mean over the two
  classes), and
* on the slice x₂ = 0 as in the paper's Fig. 4E (``*_slice``).

Exact: data law, labelling rule, epochs, seeds, the packet definition and its integrals.
Choices (the paper does not state them; fixed before running): the square [−1, 1]², 1000
training / 1000 test points, an MLP 2-64-64-64-2 with ReLU, Adam (lr 10⁻³, batch 100), ε = 0.1
(the MNIST amplitude of §8), PGD 10 steps of 0.25ε with random start.

Results convention: one model label per evaluated epoch, ``model="mlp@epoch=E"``; attack
``clean`` (ε = 0) for clean accuracy and the spreads; value = mean over seeds, ``spread`` =
standard deviation over seeds, ``stderr`` = spread/√seeds, ``n`` = number of seeds.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from scirobust import objectives
from scirobust.attacks import attack
from scirobust.budget import Budget
from scirobust.cases import Case, CaseOptions, CaseOutput
from scirobust.report import COLORS, save_figure, write_report
from scirobust.results import Record, Results, atomic_write_text
from scirobust.uncertainty import Box, class_spreads

CASE_NAME = "binary2d"
ATTACKS = ("random_sign", "fgsm", "pgd_linf")
SPREAD_METRICS = ("delta_x", "delta_p", "delta_x_delta_p")


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
    extra: dict[str, str] = field(default_factory=dict)

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
        layers: list[nn.Module] = []
        width = 2
        for _ in range(settings.depth):
            layers += [nn.Linear(width, settings.hidden), nn.ReLU()]
            width = settings.hidden
        layers.append(nn.Linear(width, 2))
        return nn.Sequential(*layers)


def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, settings: Binary2dSettings, generator: torch.Generator
) -> dict[str, float]:
    """Clean/robust accuracy and exact packet spreads of ``model`` at one epoch."""
    budget = Budget(eps=settings.eps, norm="linf", bounds=(-1.0, 1.0))
    out = {"accuracy/clean": _accuracy(model, x, y)}
    objective = objectives.cross_entropy(y)
    for name in ATTACKS:
        draws = settings.random_draws if name == "random_sign" else 1
        accs = []
        for _ in range(draws):
            kwargs = {"steps": settings.pgd_steps} if name == "pgd_linf" else {}
            x_adv = attack(model, x, objective, budget, name, generator=generator, **kwargs)
            accs.append(_accuracy(model, x_adv, y))
        out[f"accuracy/{name}"] = float(np.mean(accs))
    square = Box.cube(-1.0, 1.0, 2)
    line = Box(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0]))  # the paper's x₂ = 0
    for suffix, box, pts in (("", square, settings.grid_points),
                             ("_slice", line, settings.slice_points)):
        spreads = class_spreads(model, [0, 1], box, method="quadrature", grid_points=pts)
        for y_cls, s in spreads.items():
            out[f"delta_x{suffix}/y{y_cls}"] = s.delta_x
            out[f"delta_p{suffix}/y{y_cls}"] = s.delta_p
            out[f"delta_x_delta_p{suffix}/y{y_cls}"] = s.product
        for m in SPREAD_METRICS:
            out[f"{m}{suffix}/clean"] = float(np.mean([out[f"{m}{suffix}/y{c}"] for c in (0, 1)]))
    return out


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


def train_seed(
    settings: Binary2dSettings, seed: int, want_landscapes: bool
) -> tuple[dict[int, dict[str, float]], dict[int, tuple[np.ndarray, ...]]]:
    """Train one seed; evaluate after each epoch in ``settings.eval_epochs``."""
    gen = torch.Generator().manual_seed(10_007 * seed + 1)
    x_train, y_train = make_data(settings.n_train, gen)
    x_test, y_test = make_data(settings.n_test, gen)
    model = make_model(settings, seed)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    evals: dict[int, dict[str, float]] = {}
    landscapes: dict[int, tuple[np.ndarray, ...]] = {}
    attack_gen = torch.Generator().manual_seed(seed + 99)
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(settings.n_train, generator=gen)
        for start in range(0, settings.n_train, settings.batch_size):
            idx = order[start:start + settings.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
        if epoch in settings.eval_epochs:
            model.eval()
            evals[epoch] = evaluate(model, x_test, y_test, settings, attack_gen)
        if want_landscapes and epoch in settings.landscape_epochs:
            landscapes[epoch] = packet_landscape(model, 1, settings.landscape_points)
    return evals, landscapes


def _trend(epochs: list[int], mean: np.ndarray, se: np.ndarray) -> tuple[float, float, float]:
    """(change last − first, z of that change, Spearman rank correlation with epoch)."""
    change = float(mean[-1] - mean[0])
    denom = math.hypot(se[0], se[-1])
    z = change / denom if denom > 0 else (math.inf if change else 0.0) * np.sign(change)
    ranks_v = np.argsort(np.argsort(mean))
    ranks_e = np.argsort(np.argsort(epochs))
    rho = float(np.corrcoef(ranks_e, ranks_v)[0, 1]) if np.std(ranks_v) > 0 else 0.0
    return change, float(z), rho


def run_binary2d(options: CaseOptions, settings: Binary2dSettings | None = None) -> CaseOutput:
    """Train all seeds, write results, figures, tables and report; return the summary."""
    started = time.perf_counter()
    settings = settings or (Binary2dSettings.quick() if options.quick else Binary2dSettings.full())
    directory = Path(options.output)
    per_seed: list[dict[int, dict[str, float]]] = []
    landscapes: dict[int, tuple[np.ndarray, ...]] = {}
    for s in range(settings.seeds):
        evals, land = train_seed(settings, options.seed + s, want_landscapes=s == 0)
        per_seed.append(evals)
        landscapes.update(land)
    epochs = sorted(per_seed[0])
    keys = list(per_seed[0][epochs[0]])
    values = {k: np.array([[ev[e][k] for e in epochs] for ev in per_seed]) for k in keys}
    n_seeds = settings.seeds
    mean = {k: v.mean(0) for k, v in values.items()}
    sd = {k: (v.std(0, ddof=1) if n_seeds > 1 else np.full(len(epochs), np.nan))
          for k, v in values.items()}
    se = {k: sd[k] / math.sqrt(n_seeds) for k in keys}

    records: list[Record] = []
    for i, epoch in enumerate(epochs):
        model_label = f"mlp@epoch={epoch}"
        for k in keys:
            metric, attack_name = k.split("/")
            if attack_name.startswith("y"):  # per-class spreads go to the table only
                continue
            eps = 0.0 if attack_name == "clean" else settings.eps
            records.append(Record(CASE_NAME, model_label, attack_name, eps, metric,
                                  float(mean[k][i]), float(se[k][i]), n_seeds,
                                  spread=float(sd[k][i])))

    # Trends against the paper: accuracy up, robust accuracy down, Δx down, Δp up.
    expected = {"accuracy/clean": +1, "accuracy/fgsm": -1, "accuracy/pgd_linf": -1,
                "delta_x/clean": -1, "delta_p/clean": +1,
                "delta_x_slice/clean": -1, "delta_p_slice/clean": +1}
    windows = sorted({epochs[0], *(e for e in settings.landscape_epochs[:1] if e in epochs)})
    trend_rows = [["quantity", "from_epoch", "expected", "first", "last", "change", "z",
                   "spearman", "reproduced"]]
    verdicts: dict[str, bool] = {}
    for start in windows:
        i0 = epochs.index(start)
        for k, sign in expected.items():
            change, z, rho = _trend(epochs[i0:], mean[k][i0:], se[k][i0:])
            ok = bool(np.sign(change) == sign and abs(z) > 2)
            verdicts[f"{k} (from epoch {start})"] = ok
            trend_rows.append([k, str(start), "up" if sign > 0 else "down",
                               f"{mean[k][i0]:.4g}", f"{mean[k][-1]:.4g}", f"{change:+.4g}",
                               f"{z:.3g}", f"{rho:.3g}", "yes" if ok else "no"])

    # Tables.
    tables = directory / "tables"
    header = ["epoch"] + [f"{k}_{stat}" for k in keys for stat in ("mean", "sd")]
    lines = [",".join(header)]
    for i, epoch in enumerate(epochs):
        row = [str(epoch)] + [f"{x[i]:.6g}" for k in keys for x in (mean[k], sd[k])]
        lines.append(",".join(row))
    atomic_write_text(tables / "binary2d_over_epochs.csv", "\n".join(lines) + "\n")
    atomic_write_text(tables / "binary2d_trends.csv",
                      "\n".join(",".join(r) for r in trend_rows) + "\n")

    # Figures.
    case_dir = directory / "figures" / "case"
    _figure_landscapes(landscapes, case_dir)
    _figure_accuracy(epochs, mean, sd, settings, case_dir)
    _figure_spreads(epochs, mean, sd, case_dir)

    reproduced = [k for k, ok in verdicts.items() if ok]
    missing = [k for k, ok in verdicts.items() if not ok]
    results = Results(records)
    results.metadata.update({
        "case": CASE_NAME,
        # records are per training epoch, not an epsilon sweep: only the case's own figures
        "standard_figures": False,
        "settings": asdict(settings),
        "quick": options.quick,
        "seed": options.seed,
        "elapsed_s": time.perf_counter() - started,
        "trends": [dict(zip(trend_rows[0], r, strict=True)) for r in trend_rows[1:]],
        "description": (
            "Paper 001 Fig. 4: a fully connected network classifies points of [−1, 1]² by "
            f"the sign of x₁; {settings.epochs} epochs, {n_seeds} seeds. Test accuracy, robust "
            f"accuracy under FGSM and PGD (L-inf, ε = {settings.eps}) and under the random-sign "
            "control of the same size, and the spreads Δx, Δp of the neural packet "
            "ψ_Y = CE/√β of both classes (exact 2-D quadrature; also on the slice x₂ = 0 as in "
            "the paper), over epochs; mean ± standard deviation over seeds. Model label "
            "'mlp@epoch=E' = the network after epoch E."
        ),
        "notes": [
            "Exact: data law (uniform), labelling by sign(x₁), epochs, seeds, the packet "
            "definition; Δx, Δp, Δx·Δp are exact integrals (composite Simpson, "
            f"{settings.grid_points}² points on the square, {settings.slice_points} on x₂ = 0), "
            "not Monte Carlo.",
            "Choices (not stated in the paper): square [−1, 1]², "
            f"{settings.n_train} train / {settings.n_test} test points, MLP 2-"
            f"{'-'.join([str(settings.hidden)] * settings.depth)}-2 ReLU, Adam lr "
            f"{settings.lr:g}, batch {settings.batch_size}, ε = {settings.eps}, PGD "
            f"{settings.pgd_steps} steps of 2.5ε/{settings.pgd_steps} with random start.",
            "Record convention: value = mean over seeds, spread = SD over seeds, stderr = "
            "SD/√seeds, n = seeds. Δ metrics are the mean over the two classes; per class in "
            "tables/binary2d_over_epochs.csv.",
            "Trend (a start epoch vs the last evaluated epoch, z = change / combined standard "
            "error over seeds, reproduced if the sign matches the paper and |z| > 2; computed "
            "from the numbers of this run): reproduced for "
            + (", ".join(reproduced) or "none") + "; not reproduced for "
            + (", ".join(missing) or "none") + ". Table: tables/binary2d_trends.csv.",
            "Bound: on a box where the loss does not vanish at the edges the relation "
            "Δx·Δp ≥ d/2 need not hold (an untrained, flat packet has Δp ≈ 0); values below "
            "the bound are expected here and are not an error.",
        ],
    })
    results.save(directory)
    report = write_report(results, directory,
                          title="binary2d: accuracy, robustness and the uncertainty relation")
    summary = [["quantity", "from epoch", "start", f"epoch {epochs[-1]}", "change", "as paper"]]
    summary += [[r[0], r[1], r[3], r[4], r[5], r[8]] for r in trend_rows[1:]]
    return CaseOutput(results, report, summary)


def _band(ax, epochs, mean, sd, color, label, marker="o", linestyle="-"):
    ax.plot(epochs, mean, color=color, marker=marker, markersize=3, linestyle=linestyle,
            label=label)
    if np.isfinite(sd).all():
        ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, linewidth=0)


def _figure_landscapes(landscapes: dict[int, tuple[np.ndarray, ...]], directory: Path) -> None:
    epochs = sorted(landscapes)
    fig = Figure(figsize=(4.2 * len(epochs), 4.0), layout="constrained")
    zmax = max(float(landscapes[e][2].max()) for e in epochs)
    for i, epoch in enumerate(epochs):
        ax = fig.add_subplot(1, len(epochs), i + 1, projection="3d")
        g1, g2, psi = landscapes[epoch]
        ax.plot_surface(g1, g2, psi, cmap="viridis", linewidth=0, antialiased=True)
        ax.set_zlim(0, zmax)
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.set_zlabel("ψ(x₁, x₂; Y = 1)")
        ax.set_title(f"epoch {epoch}")
    fig.suptitle("Neural packet ψ = CE/√β of class 1 (seed 0); inputs dimensionless")
    save_figure(fig, directory, "packet_landscapes")


def _figure_accuracy(epochs, mean, sd, settings, directory: Path) -> None:
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    _band(ax, epochs, mean["accuracy/clean"], sd["accuracy/clean"], COLORS["clean"],
          "test (clean)", linestyle="--")
    for name in ATTACKS:
        _band(ax, epochs, mean[f"accuracy/{name}"], sd[f"accuracy/{name}"], COLORS[name],
              f"{name} (ε = {settings.eps})", marker="s" if name != "random_sign" else "o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (fraction)")
    ax.set_title("Test and robust accuracy over training (mean ± SD over seeds)")
    ax.legend(fontsize=8)
    save_figure(fig, directory, "accuracy_over_epochs")


def _figure_spreads(epochs, mean, sd, directory: Path) -> None:
    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    labels = {"delta_x": "Δx (input units)", "delta_p": "Δp (1/input units)",
              "delta_x_delta_p": "Δx·Δp (dimensionless)"}
    for i, (m, label) in enumerate(labels.items()):
        ax = fig.add_subplot(1, 3, i + 1)
        _band(ax, epochs, mean[f"{m}/clean"], sd[f"{m}/clean"], COLORS["blue"],
              "2-D square")
        _band(ax, epochs, mean[f"{m}_slice/clean"], sd[f"{m}_slice/clean"], COLORS["orange"],
              "slice x₂ = 0 (paper)", marker="s")
        if m == "delta_x_delta_p":
            ax.axhline(1.0, color=COLORS["blue"], linestyle=":", linewidth=1)
            ax.axhline(0.5, color=COLORS["orange"], linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle("Packet spreads over training, mean of both classes (± SD over seeds); "
                 "dotted: d/2")
    save_figure(fig, directory, "spreads_over_epochs")


CASE = Case(
    name=CASE_NAME,
    title="Binary 2-D demo of the uncertainty relation",
    paper="001 §3.2, Fig. 4",
    run=run_binary2d,
)

__all__ = ["CASE", "Binary2dSettings", "evaluate", "make_data", "make_model", "run_binary2d"]
