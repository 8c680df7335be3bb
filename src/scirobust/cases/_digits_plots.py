"""Figures of the digits case (`scirobust.cases.digits`): accuracy over training (paper 001
Figs. 2, 5) and Δx/Δp over training on pixels and features (paper 004 Fig. 2)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from scirobust.cases._digits_stats import LEVELS, class_mean_curves, curve
from scirobust.report import COLORS
from scirobust.results import Results
from scirobust.sweep import Sweep
from scirobust.training import ENVELOPE

CLASS_PALETTE = [COLORS[c] for c in ("black", "orange", "sky_blue", "bluish_green", "yellow",
                                     "blue", "grey", "reddish_purple", "vermillion", "black")]
LEVEL_STYLE = {"pixels": {"color": COLORS["black"], "ls": "-", "marker": "o"},
               "features": {"color": COLORS["vermillion"], "ls": "--", "marker": "s"}}


def plot_tracking(results: Results, labels: list[str], sweep: Sweep, title: str,
                  band: bool = False) -> Figure:
    """Clean and robust accuracy per attack and the envelope over epochs, one panel per model;
    ``band``: shade ±1 standard error (the records' ``stderr``: over seeds) of the clean
    accuracy and the envelope."""
    fig = Figure(figsize=(max(3.6 * len(labels), 8.0), 3.4), layout="constrained")
    axes = fig.subplots(1, len(labels), squeeze=False)[0]
    styles = {"clean": {"color": COLORS["clean"], "lw": 2.2, "marker": "o", "ms": 3,
                        "label": "test accuracy (clean)"}}
    # Several attacks share a palette colour: the marker tells them apart.
    styles.update({run.key: {"color": COLORS[run.name], "lw": 1.2, "marker": marker, "ms": 3,
                             "ls": ":" if run.is_random else "-", "label": run.key}
                   for run, marker in zip(sweep.attacks, "os^Dv<>P", strict=False)})
    styles[ENVELOPE] = {"color": COLORS["grey"], "lw": 3, "ls": "--", "alpha": 0.8,
                        "label": "envelope (min over attacks)"}
    for ax, label in zip(axes, labels, strict=True):
        for key, style in styles.items():
            epochs, values, errs = curve(results, key, label, sweep.epsilons[0])
            ax.plot(epochs, values, **style)
            if band and key in ("clean", ENVELOPE):  # bands on every curve hide them all
                v, e = np.asarray(values), np.asarray(errs)
                ax.fill_between(epochs, v - e, v + e, color=style["color"], alpha=0.15, lw=0)
        ax.set(title=label, xlabel="epoch", ylabel="accuracy (fraction correct)",
               ylim=(-0.02, 1.02))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=5,
               fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_uncertainty(rows: list[dict], network: str) -> Figure:
    """Δx, Δp, Δx·Δp per class over epochs (pixel level of ``network``): mean over seeds with
    ±1 s.e. over seeds (the QMC jackknife s.e. for a one-seed run)."""
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    sub = [r for r in rows if r["network"] == network and r["level"] == "pixels"]
    seeds = sorted({r["seed"] for r in sub})
    epochs = sorted({r["epoch"] for r in sub})
    for ax, key, name in zip(axes, ("delta_x", "delta_p", "product"),
                             ("Δx (pixel units)", "Δp (1/pixel units)", "Δx·Δp"), strict=True):
        for k in sorted({r["class"] for r in sub}):
            cell = np.array([[next(r for r in sub if r["class"] == k and r["epoch"] == e
                                   and r["seed"] == s) for e in epochs] for s in seeds])
            vals = np.vectorize(lambda r, key=key: r[key])(cell)
            err = (vals.std(0, ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else
                   np.vectorize(lambda r, key=key: r[key + "_stderr"])(cell)[0])
            ax.errorbar(epochs, vals.mean(0), yerr=err, capsize=2, label=f"class {k}",
                        lw=2.4 if k == 8 else 1.0, color=CLASS_PALETTE[k % 10],
                        ls="-" if k < 5 else "--")
        ax.set(xlabel="epoch", ylabel=name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    err_text = f"±1 s.e. over {len(seeds)} seeds" if len(seeds) > 1 else "QMC ±1 s.e."
    fig.suptitle(f"Δx and Δp per class over training ({network}, pixels; class 8 thick; "
                 f"{err_text})", fontsize=10)
    return fig


def plot_levels(rows: list[dict], networks: list[str]) -> Figure:
    """Per network (rows): class-mean Δx, Δp and Δx·Δp over epochs relative to the first
    evaluated epoch, on pixels and on the feature layer; mean over seeds, ±1 s.e. band."""
    fig = Figure(figsize=(11, 2.9 * len(networks) + 0.6), layout="constrained")
    axes = fig.subplots(len(networks), 3, squeeze=False)
    for row, net in zip(axes, networks, strict=True):
        for level in LEVELS:
            if not any(r["network"] == net and r["level"] == level for r in rows):
                continue
            c = class_mean_curves(rows, net, level)
            for ax, key in zip(row, ("delta_x", "delta_p", "product"), strict=True):
                rel = c[key] / c[key][:, :1]  # each seed relative to its own first epoch
                m = rel.mean(0)
                ax.plot(c["epochs"], m, ms=3, lw=1.6, label=level, **LEVEL_STYLE[level])
                if rel.shape[0] > 1:
                    se = rel.std(0, ddof=1) / np.sqrt(rel.shape[0])
                    ax.fill_between(c["epochs"], m - se, m + se, alpha=0.2, lw=0,
                                    color=LEVEL_STYLE[level]["color"])
        for ax, name in zip(row, ("Δx", "Δp", "Δx·Δp"), strict=True):
            ax.set(xlabel="epoch", ylabel=f"{name} / {name}(first epoch)",
                   title=f"{net}: {name}")
            ax.axhline(1.0, color=COLORS["grey"], lw=0.8)
            ax.set_yscale("log")  # ratios: a fall to ½ and a rise to 2 look alike
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    n_seeds = len({r["seed"] for r in rows})
    fig.suptitle("Class-mean Δx, Δp and Δx·Δp over training on pixels and on the feature layer,"
                 "\nrelative to the first epoch (paper 004 Fig. 2"
                 + (f"; mean of {n_seeds} seeds, ±1 s.e. band)" if n_seeds > 1 else ")"),
                 fontsize=10)
    return fig


__all__ = ["plot_levels", "plot_tracking", "plot_uncertainty"]
