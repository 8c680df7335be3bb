"""Figures of multiple-choice results: paper 001 Fig. 3 (accuracy per task and condition,
chance dashed) and accuracy against amplitude. Both read `Results` of
`scirobust.llm.evaluate_multiple_choice` only (records + ``metadata["chance"]``)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from scirobust.errors import DataError
from scirobust.report import COLORS, attack_styles
from scirobust.results import Results

__all__ = ["accuracy_bars", "accuracy_vs_amplitude", "condition_label"]

_NAMES = {"clean": "clean", "random_sign": "random (±ε)", "random_gaussian": "random Gaussian",
          "random_uniform": "random uniform", "fgsm": "FGSM", "bim": "BIM", "pgd_linf": "PGD"}


def condition_label(attack: str) -> str:
    """Legend name of an attack label (``random_sign`` → ``random (±ε)``, ``fgsm`` → ``FGSM``)."""
    return _NAMES.get(attack, attack)


def _tasks_and_chance(results: Results, metric: str) -> tuple[list[str], dict[str, float]]:
    tasks = list(dict.fromkeys(r.variable for r in results.records
                               if r.metric == metric and r.variable))
    if not tasks:
        raise DataError(f"No per-task records of {metric!r} to plot.")
    chance = results.metadata.get("chance") or {}
    return tasks, {t: float(chance[t]) for t in tasks if t in chance}


def accuracy_bars(results: Results, *, epsilon: float | None = None, metric: str = "acc",
                  title: str | None = None) -> Figure:
    """Bars of ``metric`` per task and condition at amplitude ``epsilon`` (default: the
    smallest > 0), clean and adversarial values written on top, chance as a dashed line; the
    background is yellow behind tasks with more than two choices and green behind two-choice
    tasks (as in the paper's Fig. 3)."""
    tasks, chance = _tasks_and_chance(results, metric)
    eps_values = results.epsilons
    if not eps_values:
        raise DataError("No perturbed records to plot.")
    epsilon = eps_values[0] if epsilon is None else epsilon
    styles = attack_styles(results)
    conditions = ["clean"] + [a for a, k in results.kinds().items()
                              if k in ("random", "adversarial")]
    width = 0.8 / len(conditions)
    fig = Figure(figsize=(max(6.0, 1.4 * len(tasks) + 1.5), 4.0), layout="constrained")
    ax = fig.subplots()
    for i, task in enumerate(tasks):
        c = chance.get(task)
        if c is not None:
            shade = COLORS["bluish_green"] if c >= 0.45 else COLORS["yellow"]
            ax.axvspan(i - 0.5, i + 0.5, color=shade, alpha=0.15, lw=0)
            ax.hlines(c, i - 0.45, i + 0.45, colors=COLORS["grey"], linestyles="--", lw=1.2,
                      label="chance" if i == 0 else None)
    annotate = {"clean", next((a for a in conditions[1:] if results.kinds()[a] == "adversarial"),
                              "")}
    for j, cond in enumerate(conditions):
        values, errors = [], []
        for task in tasks:
            found = results.select(attack=cond, metric=metric, variable=task,
                                   epsilon=0.0 if cond == "clean" else epsilon)
            values.append(found[0].value if found else np.nan)
            errors.append(found[0].stderr if found else np.nan)
        x = np.arange(len(tasks)) - 0.4 + width * (j + 0.5)
        style = styles.get(cond)
        color = style.color if style else COLORS["grey"]
        ax.bar(x, values, width * 0.92, yerr=np.nan_to_num(errors), color=color,
               edgecolor="white", lw=0.5, capsize=2, error_kw={"lw": 0.8},
               label=condition_label(cond))
        if cond in annotate:
            for xi, v, e in zip(x, values, np.nan_to_num(errors), strict=True):
                if np.isfinite(v):
                    ax.text(xi, v + e + 0.015, f"{v:.2f}", ha="center", va="bottom",
                            fontsize=6.5)
    ax.set_xticks(np.arange(len(tasks)), tasks, fontsize=8)
    ax.set_xlim(-0.5, len(tasks) - 0.5)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(f"{metric} (fraction correct)")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(fontsize=7.5, ncol=len(conditions) + 1, loc="outside lower center",
               frameon=False)
    label = results.metadata.get("epsilon_label", "amplitude ε")
    ax.set_title(title or f"Multiple-choice {metric} under embedding noise, {label} = "
                 f"{epsilon:g}", fontsize=9)
    return fig


def accuracy_vs_amplitude(results: Results, *, metric: str = "acc",
                          mark: float | None = None) -> Figure:
    """One panel per task: ``metric`` against amplitude (log axis) for every random and
    gradient condition, clean as a solid black line, chance dashed, ``mark`` (e.g. the
    paper's amplitude) dotted."""
    tasks, chance = _tasks_and_chance(results, metric)
    styles = attack_styles(results)
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig = Figure(figsize=(3.3 * cols, 2.6 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    for ax, task in zip(axes, tasks, strict=False):
        clean = results.select(attack="clean", metric=metric, variable=task)
        if clean:
            ax.axhline(clean[0].value, color=COLORS["clean"], lw=1.2, label="clean")
        if task in chance:
            ax.axhline(chance[task], color=COLORS["grey"], ls="--", lw=1.0, label="chance")
        for cond, kind in results.kinds().items():
            if kind not in ("random", "adversarial"):
                continue
            recs = sorted((r for r in results.select(attack=cond, metric=metric, variable=task)
                           if r.epsilon > 0), key=lambda r: r.epsilon)
            if not recs:
                continue
            style = styles[cond]
            ax.errorbar([r.epsilon for r in recs], [r.value for r in recs],
                        yerr=np.nan_to_num([r.stderr for r in recs]), color=style.color,
                        marker=style.marker, ls=style.linestyle, lw=1.3, ms=4, capsize=2,
                        label=condition_label(cond))
        if mark is not None:
            ax.axvline(mark, color=COLORS["grey"], ls=":", lw=1.0)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel(results.metadata.get("epsilon_label", "amplitude ε"), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    axes[0].set_ylabel(f"{metric} (fraction correct)")
    axes[0].legend(fontsize=7)
    return fig
