"""Standard figures of a `Results`: metric vs perturbation size, and adversarial/random ratio.

Every figure uses one colour-blind-safe palette (Okabe–Ito, `COLORS`): clean in black, random
controls in blues, gradient attacks in vermillion / orange / reddish purple, and the same
attack keeps the same colour and marker in every figure of a report. Figures are built on
`matplotlib.figure.Figure` directly (no pyplot state, no window), so this module is safe to
use from scripts, tests and worker threads.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scirobust.errors import DataError
from scirobust.results import Record, Results, atomic_write_bytes


class _Palette(dict):
    """A dict of colour strings that also allows attribute access (``COLORS.clean``)."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# Okabe & Ito (2008), "Color Universal Design": eight colours distinguishable by all common
# forms of colour blindness.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "grey": "#999999",
}

COLORS: _Palette = _Palette(
    {
        **OKABE_ITO,
        # roles
        "clean": OKABE_ITO["black"],
        "random": OKABE_ITO["blue"],
        "adversarial": OKABE_ITO["vermillion"],
        "reference": OKABE_ITO["grey"],
        # random controls: blues
        "random_sign": OKABE_ITO["blue"],
        "random_gaussian": OKABE_ITO["sky_blue"],
        "random_uniform": OKABE_ITO["bluish_green"],
        # gradient attacks: warm colours
        "fgsm": OKABE_ITO["vermillion"],
        "bim": OKABE_ITO["orange"],
        "pgd_linf": OKABE_ITO["reddish_purple"],
        "pgd_l2": OKABE_ITO["orange"],
        "illc": OKABE_ITO["reddish_purple"],
        "fgsm_targeted": OKABE_ITO["orange"],
        "sparsefool": OKABE_ITO["reddish_purple"],
    }
)
"""Fixed palette. Keys: the Okabe–Ito colour names, the roles ``clean`` / ``random`` /
``adversarial`` / ``reference``, and every built-in attack name."""

RANDOM_COLORS = (COLORS["blue"], COLORS["sky_blue"], COLORS["bluish_green"])
ADVERSARIAL_COLORS = (COLORS["vermillion"], COLORS["orange"], COLORS["reddish_purple"])
_RANDOM_MARKERS = ("o", "h", "p")
_ADV_MARKERS = ("s", "^", "D", "v", "P", "X", "<", ">")

MAX_PANELS = 12  # panels per figure
MAX_FIGURE_GROUPS = 12  # metric groups drawn by write_report (each: value figure + ratio figure)

_METRIC_LABELS = {
    "mse": ("MSE", "output units²"),
    "rmse": ("RMSE", "output units"),
    "mae": ("MAE", "output units"),
    "relative_l2": ("relative L2 error", "dimensionless"),
    "accuracy": ("accuracy", "fraction correct"),
    "error_rate": ("error rate", "fraction misclassified"),
}
_FRACTION_METRICS = {"accuracy", "error_rate"}
_HIGHER_IS_BETTER = {"accuracy"}


# --------------------------------------------------------------------------- data helpers
@dataclass(frozen=True)
class Style:
    """How one attack is drawn: role (clean/random/adversarial), colour, marker, line style."""

    kind: str
    color: str
    marker: str
    linestyle: str = "-"


def _is_ratio(metric: str) -> bool:
    return metric.endswith("_ratio")


def split_metric(metric: str) -> tuple[str, str | None]:
    """``"rmse[u]_ratio"`` → ``("rmse", "u")``; ``"mae"`` → ``("mae", None)``."""
    name = metric[: -len("_ratio")] if _is_ratio(metric) else metric
    match = re.fullmatch(r"(.*)\[(.*)\]", name)
    return (match.group(1), match.group(2)) if match else (name, None)


def require_records(results: Results) -> None:
    """Raise `DataError` unless ``results`` holds at least one record."""
    if not isinstance(results, Results):
        raise DataError(f"Expected a scirobust Results; got {type(results).__name__}.")
    if not results.records:
        raise DataError(
            "The Results hold no records, so there is nothing to report. Run an audit or a "
            "case first (or load a results directory with Results.load)."
        )


def value_metrics(results: Results) -> list[str]:
    """Non-ratio metric names in order of first appearance."""
    return [m for m in results.metrics if not _is_ratio(m)]


def _config_entries(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    config = metadata.get("config")
    if isinstance(config, dict):
        return [config]
    if isinstance(config, list):
        return [c for c in config if isinstance(c, dict)]
    return []


def attack_kinds(results: Results) -> dict[str, str]:
    """Role of every attack label: ``"clean"``, ``"random"`` (control) or ``"adversarial"``.

    Decided from, in order: the label ``clean``; the audit's config (label → attack name →
    `AttackSpec.is_random`); the ``baseline`` of ratio records; a built-in attack name; a
    label starting with ``random``/``noise``; a finite ``spread`` (several random draws).
    """
    from scirobust.attacks import ATTACKS

    random_labels: set[str] = set()
    for config in _config_entries(results.metadata):
        for entry in config.get("attacks") or []:
            if isinstance(entry, dict) and entry.get("name") in ATTACKS:
                label = entry.get("label") or entry["name"]
                if ATTACKS[entry["name"]].is_random:
                    random_labels.add(str(label))
    random_labels.update(r.baseline for r in results.records if r.baseline)
    spread_labels = {
        r.attack for r in results.records
        if not _is_ratio(r.metric) and isinstance(r.spread, float) and math.isfinite(r.spread)
    }
    kinds: dict[str, str] = {}
    for label in results.attacks:
        if label == "clean":
            kinds[label] = "clean"
        elif (
            label in random_labels
            or (label in ATTACKS and ATTACKS[label].is_random)
            or label.lower().startswith(("random", "noise"))
            or (label not in ATTACKS and label in spread_labels)
        ):
            kinds[label] = "random"
        else:
            kinds[label] = "adversarial"
    return kinds


def attack_styles(results: Results) -> dict[str, Style]:
    """A fixed `Style` per attack label, consistent across every figure of one report.

    Built-in attack names get their `COLORS` entry unless another attack of the same report
    already took it; then the next unused colour of the role's palette, then repeats with a
    dash-dot line.
    """
    kinds = attack_kinds(results)
    styles: dict[str, Style] = {}
    used: dict[str, list[str]] = {"random": [], "adversarial": []}
    for label, kind in kinds.items():
        if kind == "clean":
            styles[label] = Style("clean", COLORS["clean"], "", "--")
            continue
        pool = RANDOM_COLORS if kind == "random" else ADVERSARIAL_COLORS
        markers = _RANDOM_MARKERS if kind == "random" else _ADV_MARKERS
        taken = used[kind]
        preferred = COLORS.get(label)
        if preferred in pool and preferred not in taken:
            color = preferred
        else:
            free = [c for c in pool if c not in taken]
            color = free[0] if free else pool[len(taken) % len(pool)]
        linestyle = "-" if len(taken) < len(pool) else "-."
        styles[label] = Style(kind, color, markers[len(taken) % len(markers)], linestyle)
        taken.append(color)
    return styles


def _panel_keys(records: Iterable[Record]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.case, r.model) for r in records))


def _panel_title(key: tuple[str, str], keys: Sequence[tuple[str, str]]) -> str:
    several_cases = len({k[0] for k in keys}) > 1
    return f"{key[0]}: {key[1]}" if several_cases else key[1]


def metric_name(metric: str) -> str:
    """Readable name of a metric without units: ``"rmse[u]_ratio"`` → ``"RMSE of u"``."""
    base, var = split_metric(metric)
    name = _METRIC_LABELS.get(base, (base, None))[0]
    return f"{name} of {var}" if var is not None else name


def metric_label(metric: str, metadata: dict[str, Any] | None = None) -> str:
    """Axis label with units for a metric name (``metadata["units"]`` may override units)."""
    base, var = split_metric(metric)
    units = (metadata or {}).get("units") or {}
    name, unit = metric_name(metric), _METRIC_LABELS.get(base, (base, None))[1]
    if var is not None:
        unit = f"units of {var}" if unit == "output units" else unit
    if isinstance(units, dict):
        key = next((k for k in (metric, var, base) if k is not None and k in units), None)
        unit = str(units[key]) if key is not None else unit
    return f"{name} ({unit})" if unit else name


def epsilon_label(metadata: dict[str, Any] | None) -> str:
    """x-axis label: ε with its norm and units (budget units, or relative perturbation)."""
    metadata = metadata or {}
    if isinstance(metadata.get("epsilon_label"), str):
        return metadata["epsilon_label"]
    relative, norms = False, set()
    for config in _config_entries(metadata):
        budget = config.get("budget")
        if isinstance(budget, dict):
            relative = relative or bool(budget.get("relative"))
            if budget.get("norm"):
                norms.add(str(budget["norm"]))
    units = "relative perturbation" if relative else "budget units"
    norm = {"linf": "L∞", "l2": "L2"}.get(next(iter(norms)), "") if len(norms) == 1 else ""
    return f"perturbation size ε ({norm + ', ' if norm else ''}{units})"


def _finite(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    return arr[np.isfinite(arr)]


def _use_log(values: Iterable[float]) -> bool:
    arr = _finite(values)
    return bool(arr.size and (arr > 0).all() and arr.max() / arr.min() > 100.0)


def _series(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ordered = sorted(records, key=lambda r: r.epsilon)
    eps = np.array([r.epsilon for r in ordered], dtype=float)
    val = np.array([r.value for r in ordered], dtype=float)
    se = np.array([r.stderr for r in ordered], dtype=float)
    spread = np.array([r.spread for r in ordered], dtype=float)
    return eps, val, np.where(np.isfinite(se), se, 0.0), np.where(np.isfinite(spread), spread, 0.0)


# --------------------------------------------------------------------------- drawing
def _draw_panel(
    ax: Axes,
    records: Sequence[Record],
    metric: str,
    styles: dict[str, Style],
    *,
    ratio: bool,
    prefix: str = "",
    linestyle: str | None = None,
) -> list[float]:
    """Draw one (case, model) panel; returns every plotted y value (for the log decision)."""
    plotted: list[float] = []
    by_attack: dict[str, list[Record]] = {}
    for rec in records:
        if rec.metric == metric:
            by_attack.setdefault(rec.attack, []).append(rec)
    for attack, recs in by_attack.items():
        style = styles.get(attack, Style("adversarial", COLORS["adversarial"], "s"))
        if style.kind == "clean":
            if ratio:
                continue
            clean = recs[0]
            ax.axhline(clean.value, color=style.color, linestyle="--", linewidth=1.2,
                       label=f"{prefix}clean", zorder=1)
            if math.isfinite(clean.stderr) and clean.stderr > 0:
                ax.axhspan(clean.value - clean.stderr, clean.value + clean.stderr,
                           color=COLORS["grey"], alpha=0.15, linewidth=0, zorder=0)
            plotted.append(clean.value)
            continue
        if ratio and style.kind == "random":
            continue
        eps, val, se, spread = _series(recs)
        plotted.extend(val.tolist())
        if np.isfinite(val).any():
            plotted.extend((val + se).tolist())
            plotted.extend((val - se)[val - se > 0].tolist())
        ls = linestyle or style.linestyle
        ax.plot(eps, val, color=style.color, marker=style.marker, markersize=4, linewidth=1.6,
                linestyle=ls, label=f"{prefix}{attack}", zorder=3)
        if eps.size > 1 and se.any():
            ax.fill_between(eps, val - se, val + se, color=style.color, alpha=0.22,
                            linewidth=0, zorder=2)
        elif se.any():
            ax.errorbar(eps, val, yerr=se, color=style.color, fmt="none", capsize=0,
                        elinewidth=5, alpha=0.3, zorder=2)
        if style.kind == "random" and spread.any():
            ax.errorbar(eps, val, yerr=spread, fmt="none", ecolor=style.color, capsize=3,
                        elinewidth=0.9, alpha=0.9, zorder=2)
    return plotted


def _finish_axes(ax: Axes, metric: str, eps_values: Sequence[float], plotted: Sequence[float],
                 *, ratio: bool) -> None:
    base, _ = split_metric(metric)
    positive_eps = [e for e in eps_values if e > 0]
    if len(set(eps_values)) == 1 and positive_eps:
        eps = positive_eps[0]  # a single ε: show it against ε = 0 (clean)
        ax.set_xlim(-0.25 * eps, 1.5 * eps)
        ax.set_xticks([0.0, eps], ["0", f"{eps:g}"])
    elif positive_eps and len(positive_eps) == len(eps_values) and _use_log(positive_eps):
        ax.set_xscale("log")
    if _use_log(plotted):
        ax.set_yscale("log")
    elif base in _FRACTION_METRICS and not ratio:
        ax.set_ylim(-0.03, 1.03)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8)


def _new_figure(n_panels: int, *, width: float = 3.4, height: float = 2.7) -> tuple[Figure,
                                                                                  list[Axes]]:
    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width * ncols + 1.9, height * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    return fig, axes[:n_panels]


def _legend(fig: Figure, axes: Sequence[Axes], title: str | None) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper",
                   fontsize=8, title=title, title_fontsize=7, frameon=False)


def _records_for(results: Results, metric: str) -> list[Record]:
    found = [r for r in results.records if r.metric == metric]
    if not found:
        available = ", ".join(results.metrics) or "none"
        raise DataError(f"No records for metric {metric!r}; the results have: {available}.")
    return found


def _plot(results: Results, metrics: Sequence[str], ax: Axes | None, *, ratio: bool,
          suptitle: str | None = None) -> Figure:
    require_records(results)
    styles = attack_styles(results)
    per_metric = {m: _records_for(results, m) for m in metrics}
    keys = _panel_keys(r for recs in per_metric.values() for r in recs)
    panels = [(m, k) for k in keys for m in metrics]
    if ax is not None:
        fig = ax.figure
        plotted: list[float] = []
        eps_values: list[float] = []
        for i, key in enumerate(keys):
            recs = [r for m in metrics for r in per_metric[m] if (r.case, r.model) == key]
            several = len(keys) > 1
            prefix = f"{_panel_title(key, keys)} · " if several else ""
            plotted += _draw_panel(ax, recs, metrics[0], styles, ratio=ratio, prefix=prefix,
                                   linestyle=("-", ":", "-.")[i % 3] if several else None)
            eps_values += [r.epsilon for r in recs if r.attack != "clean"]
        _finish_axes(ax, metrics[0], eps_values, plotted, ratio=ratio)
        _label_axes(ax, metrics[0], ratio, results)
        if ratio:
            ax.axhline(1.0, color=COLORS["grey"], linestyle=":", linewidth=1.2,
                       label="random level (1)")
        ax.legend(fontsize=7, frameon=False)
        return fig  # type: ignore[return-value]

    truncated = len(panels) > MAX_PANELS
    panels = panels[:MAX_PANELS]
    fig, axes = _new_figure(len(panels))
    for axis, (metric, key) in zip(axes, panels, strict=True):
        recs = [r for r in per_metric[metric] if (r.case, r.model) == key]
        plotted = _draw_panel(axis, recs, metric, styles, ratio=ratio)
        if ratio:
            axis.axhline(1.0, color=COLORS["grey"], linestyle=":", linewidth=1.2,
                         label="random level (ratio 1)", zorder=1)
            plotted.append(1.0)
        eps_values = [r.epsilon for r in recs if r.attack != "clean"]
        _finish_axes(axis, metric, eps_values, plotted, ratio=ratio)
        _label_axes(axis, metric, ratio, results)
        title_parts = []
        if len(keys) > 1:
            title_parts.append(_panel_title(key, keys))
        if len(metrics) > 1:
            title_parts.append(split_metric(metric)[1] or metric)
        if title_parts:
            axis.set_title(" · ".join(title_parts), fontsize=9)
    legend_title = ("bands: ±1 s.e.\nbars: s.d. over draws" if not ratio
                    else "bands: ±1 s.e.")
    _legend(fig, axes, legend_title)
    if suptitle or truncated:
        text = suptitle or ""
        if truncated:
            text += f" (first {MAX_PANELS} panels)"
        fig.suptitle(text.strip(), fontsize=10)
    return fig


def _label_axes(ax: Axes, metric: str, ratio: bool, results: Results) -> None:
    ax.set_xlabel(epsilon_label(results.metadata), fontsize=8)
    if ratio:
        baselines = sorted({r.baseline for r in results.records
                            if r.metric == metric and r.baseline})
        base = metric_name(metric)
        against = baselines[0] if len(baselines) == 1 else "random"
        ax.set_ylabel(f"{base}: adversarial / {against}", fontsize=8)
    else:
        ax.set_ylabel(metric_label(metric, results.metadata), fontsize=8)


def plot_metric_vs_eps(results: Results, metric: str, ax: Axes | None = None) -> Figure:
    """Plot ``metric`` against ε for every attack, with the clean value as a dashed line.

    Each attack is a line with a ±stderr band; random controls also get error bars of the
    spread over draws. Without ``ax``, a new Figure with one panel per model (legend outside
    the axes); with ``ax``, everything is drawn into it (models told apart by line style).
    Returns the Figure.
    """
    if _is_ratio(metric):
        return plot_ratio(results, metric, ax)
    base, _ = split_metric(metric)
    direction = "lower is worse" if base in _HIGHER_IS_BETTER else "higher is worse"
    return _plot(results, [metric], ax, ratio=False,
                 suptitle=f"{metric_name(metric)} vs ε ({direction})")


def plot_ratio(results: Results, metric: str, ax: Axes | None = None) -> Figure:
    """Plot ``<metric>_ratio`` (adversarial / random control) against ε, with a line at 1.

    ``metric`` may be given with or without the ``_ratio`` suffix. One line (±stderr band) per
    adversarial attack; one panel per model unless ``ax`` is given. Returns the Figure;
    `DataError` if the results hold no such ratio (e.g. no random control).
    """
    name = metric if _is_ratio(metric) else f"{metric}_ratio"
    require_records(results)
    if not any(r.metric == name for r in results.records):
        raise DataError(
            f"No ratio records {name!r}: the results need a random control and an "
            "error-like metric (the audit adds <metric>_ratio rows then)."
        )
    return _plot(results, [name], ax, ratio=True,
                 suptitle=f"{metric_name(name)}: adversarial / random")


def _plot_grid(results: Results, metrics: Sequence[str], *, ratio: bool, title: str) -> Figure:
    return _plot(results, metrics, None, ratio=ratio, suptitle=title)


# --------------------------------------------------------------------------- standard set
@dataclass(frozen=True)
class FigureFile:
    """One saved figure: file stem, caption, PNG bytes and the paths written."""

    stem: str
    caption: str
    png: bytes
    png_path: Path
    svg_path: Path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "metric"


def save_figure(fig: Figure, directory: Path, stem: str, *, dpi: int = 150) -> tuple[bytes,
                                                                                   Path, Path]:
    """Save ``fig`` as ``stem.png`` (``dpi``) and ``stem.svg`` in ``directory``, atomically.

    Returns the PNG bytes and both paths.
    """
    directory.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi)
    svg = io.BytesIO()
    fig.savefig(svg, format="svg")
    png_path, svg_path = directory / f"{stem}.png", directory / f"{stem}.svg"
    atomic_write_bytes(png_path, png.getvalue())
    atomic_write_bytes(svg_path, svg.getvalue())
    return png.getvalue(), png_path, svg_path


def metric_groups(results: Results) -> list[tuple[str, list[str]]]:
    """Non-ratio metrics grouped for plotting: ``(base, [metrics])``; ``rmse[u]``, ``rmse[v]``
    share the group ``rmse[*]``, any other metric is a group of its own. Metrics measured
    only at epsilon = 0 have nothing to plot against epsilon and are left to the tables."""
    swept = {r.metric for r in results.records if r.epsilon > 0}
    groups: dict[str, list[str]] = {}
    for metric in value_metrics(results):
        if metric not in swept:
            continue
        base, var = split_metric(metric)
        groups.setdefault(f"{base}[*]" if var is not None else metric, []).append(metric)
    return list(groups.items())


def standard_figures(results: Results, directory: str | Path) -> tuple[list[FigureFile],
                                                                       list[str]]:
    """Draw and save every standard figure into ``directory`` (PNG + SVG).

    Per metric group: ``<metric>_vs_eps`` and, where ratio records exist, ``<metric>_ratio``.
    Returns the figures and notes about anything left out.
    """
    require_records(results)
    directory = Path(directory)
    out: list[FigureFile] = []
    notes: list[str] = []
    groups = metric_groups(results)
    if len(groups) > MAX_FIGURE_GROUPS:
        notes.append(f"Figures drawn for the first {MAX_FIGURE_GROUPS} of {len(groups)} metric "
                     "groups; every value is in the results table.")
        groups = groups[:MAX_FIGURE_GROUPS]
    kinds = attack_kinds(results)
    has_random = "random" in kinds.values()
    all_metrics = set(results.metrics)
    used: set[str] = set()

    def unique(stem: str) -> str:
        candidate, i = stem, 2
        while candidate in used:
            candidate, i = f"{stem}_{i}", i + 1
        used.add(candidate)
        return candidate

    for group, members in groups:
        per_variable = group.endswith("[*]")
        base = group[:-3] if per_variable else group
        label = metric_name(members[0])
        if per_variable:
            label = label.rsplit(" of ", 1)[0] + " per variable"
        n_panels = len(members) * len(_panel_keys(
            r for r in results.records if r.metric in members))
        if n_panels > MAX_PANELS:
            notes.append(f"{label}: {n_panels} panels (models × variables); the figure shows "
                         f"the first {MAX_PANELS}, the tables hold every value.")
        direction = "lower is worse" if base in _HIGHER_IS_BETTER else "higher is worse"
        fig = _plot_grid(results, members, ratio=False, title=f"{label} vs ε ({direction})")
        stem = unique(_slug(f"{base}_per_variable" if per_variable else base) + "_vs_eps")
        png, png_path, svg_path = save_figure(fig, directory, stem)
        out.append(FigureFile(
            stem, f"{label} against perturbation size ε for every attack; dashed: clean; "
            "bands: ±1 standard error over samples; bars on random controls: standard "
            "deviation over random draws.", png, png_path, svg_path))
        ratio_members = [f"{m}_ratio" for m in members if f"{m}_ratio" in all_metrics]
        if ratio_members:
            fig = _plot_grid(results, ratio_members, ratio=True,
                             title=f"{label}: adversarial / random control")
            stem = unique(_slug(f"{base}_per_variable" if per_variable else base) + "_ratio")
            png, png_path, svg_path = save_figure(fig, directory, stem)
            out.append(FigureFile(
                stem, f"Ratio of {label} under each gradient attack to its value under the "
                "random control of the same size; 1 (dotted) = no worse than random noise.",
                png, png_path, svg_path))
    if not has_random:
        notes.append("No random control in these results: no adversarial/random ratio.")
    return out, notes


__all__ = [
    "COLORS",
    "FigureFile",
    "Style",
    "attack_kinds",
    "attack_styles",
    "epsilon_label",
    "metric_groups",
    "metric_label",
    "metric_name",
    "plot_metric_vs_eps",
    "plot_ratio",
    "save_figure",
    "split_metric",
    "standard_figures",
]
