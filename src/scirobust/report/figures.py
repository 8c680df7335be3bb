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
        "fgm": OKABE_ITO["orange"],
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
_FRACTION_METRICS = {"accuracy", "error_rate", "agreement", "acc", "acc_norm"}
# metrics where a drop is the damage (the policy audit's action value and agreement, rates)
_HIGHER_IS_BETTER = {"accuracy", "acc", "acc_norm", "agreement", "value", "rate", "rate_mbps"}


# --------------------------------------------------------------------------- data helpers
@dataclass(frozen=True)
class Style:
    """How one attack is drawn: role (clean/random/adversarial), colour, marker, line style."""

    kind: str
    color: str
    marker: str
    linestyle: str = "-"


Series = tuple[str, str, int | None]
"""One plotted quantity: (metric, variable, step); variable "" and step None for the whole
output of a run without steps."""


def _series_of(record: Record) -> Series:
    return (record.metric, record.variable, record.step)


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
    """Metric names that have non-ratio records, in order of first appearance."""
    return list(dict.fromkeys(r.metric for r in results.records if r.kind != "ratio"))


def _config_entries(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    config = metadata.get("config")
    if isinstance(config, dict):
        return [config]
    if isinstance(config, list):
        return [c for c in config if isinstance(c, dict)]
    return []


def attack_kinds(results: Results) -> dict[str, str]:
    """Role of every attack label (clean, random, adversarial, envelope), read from the
    records' ``kind`` field (`Results.kinds`)."""
    return results.kinds()


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
        if kind == "envelope":
            styles[label] = Style("envelope", COLORS["grey"], "", "--")
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


def metric_name(metric: str, variable: str = "", step: int | None = None) -> str:
    """Readable name without units: ``("rmse", "u", 3)`` → ``"RMSE of u at step 3"``."""
    name = _METRIC_LABELS.get(metric, (metric, None))[0]
    if variable:
        name += f" of {variable}"
    if step is not None:
        name += f" at step {step}"
    return name


def metric_label(metric: str, metadata: dict[str, Any] | None = None,
                 variable: str = "") -> str:
    """Axis label with units for a metric (``metadata["units"]`` may override units, keyed by
    metric or variable name)."""
    units = (metadata or {}).get("units") or {}
    unit = _METRIC_LABELS.get(metric, (metric, None))[1]
    if variable and unit == "output units":
        unit = f"units of {variable}"
    if isinstance(units, dict):
        key = next((k for k in (variable, metric) if k and k in units), None)
        unit = str(units[key]) if key is not None else unit
    name = metric_name(metric, variable)
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
    styles: dict[str, Style],
    *,
    ratio: bool,
    prefix: str = "",
    linestyle: str | None = None,
) -> list[float]:
    """Draw one (case, model) panel of one series (records already selected); returns every
    plotted y value (for the log decision)."""
    plotted: list[float] = []
    by_attack: dict[str, list[Record]] = {}
    for rec in records:
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
    positive_eps = [e for e in eps_values if e > 0]
    if len(set(eps_values)) == 1 and positive_eps:
        eps = positive_eps[0]  # a single ε: show it against ε = 0 (clean)
        ax.set_xlim(-0.25 * eps, 1.5 * eps)
        ax.set_xticks([0.0, eps], ["0", f"{eps:g}"])
    elif positive_eps and len(positive_eps) == len(eps_values) and _use_log(positive_eps):
        ax.set_xscale("log")
    if _use_log(plotted):
        ax.set_yscale("log")
    elif metric in _FRACTION_METRICS and not ratio:
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


def _records_for(results: Results, series: Series, *, ratio: bool) -> list[Record]:
    """Records of one series: ratio rows, or every other kind (clean, random, adversarial,
    envelope)."""
    found = [r for r in results.records
             if _series_of(r) == series and (r.kind == "ratio") == ratio]
    if not found:
        what = "ratio records" if ratio else "records"
        available = ", ".join(results.metrics) or "none"
        raise DataError(f"No {what} for metric {series[0]!r} (variable {series[1]!r}, step "
                        f"{series[2]}); the results have the metrics: {available}.")
    return found


def _plot(results: Results, series: Sequence[Series], ax: Axes | None, *, ratio: bool,
          suptitle: str | None = None) -> Figure:
    require_records(results)
    styles = attack_styles(results)
    per_series = {s: _records_for(results, s, ratio=ratio) for s in series}
    keys = _panel_keys(r for recs in per_series.values() for r in recs)
    panels = [(s, k) for k in keys for s in series]
    if ax is not None:
        fig = ax.figure
        plotted: list[float] = []
        eps_values: list[float] = []
        for i, key in enumerate(keys):
            recs = [r for r in per_series[series[0]] if (r.case, r.model) == key]
            several = len(keys) > 1
            prefix = f"{_panel_title(key, keys)} · " if several else ""
            plotted += _draw_panel(ax, recs, styles, ratio=ratio, prefix=prefix,
                                   linestyle=("-", ":", "-.")[i % 3] if several else None)
            eps_values += [r.epsilon for r in recs if r.kind != "clean"]
        _finish_axes(ax, series[0][0], eps_values, plotted, ratio=ratio)
        _label_axes(ax, series[0], ratio, results)
        if ratio:
            ax.axhline(1.0, color=COLORS["grey"], linestyle=":", linewidth=1.2,
                       label="random level (1)")
        ax.legend(fontsize=7, frameon=False)
        return fig  # type: ignore[return-value]

    truncated = len(panels) > MAX_PANELS
    panels = panels[:MAX_PANELS]
    fig, axes = _new_figure(len(panels))
    for axis, (one, key) in zip(axes, panels, strict=True):
        recs = [r for r in per_series[one] if (r.case, r.model) == key]
        plotted = _draw_panel(axis, recs, styles, ratio=ratio)
        if ratio:
            axis.axhline(1.0, color=COLORS["grey"], linestyle=":", linewidth=1.2,
                         label="random level (ratio 1)", zorder=1)
            plotted.append(1.0)
        eps_values = [r.epsilon for r in recs if r.kind != "clean"]
        _finish_axes(axis, one[0], eps_values, plotted, ratio=ratio)
        _label_axes(axis, one, ratio, results)
        title_parts = []
        if len(keys) > 1:
            title_parts.append(_panel_title(key, keys))
        if len(series) > 1:
            where = [one[1]] if one[1] else []
            where += [f"step {one[2]}"] if one[2] is not None else []
            title_parts.append(" ".join(where) or one[0])
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


def _label_axes(ax: Axes, series: Series, ratio: bool, results: Results) -> None:
    metric, variable, _ = series
    ax.set_xlabel(epsilon_label(results.metadata), fontsize=8)
    if ratio:
        baselines = sorted({r.baseline for r in results.records
                            if r.kind == "ratio" and r.metric == metric and r.baseline})
        against = baselines[0] if len(baselines) == 1 else "random"
        ax.set_ylabel(f"{metric_name(metric, variable)}: adversarial / {against}", fontsize=8)
    else:
        ax.set_ylabel(metric_label(metric, results.metadata, variable), fontsize=8)


def plot_metric_vs_eps(results: Results, metric: str, ax: Axes | None = None, *,
                       variable: str = "", step: int | None = None) -> Figure:
    """Plot ``metric`` (of ``variable`` at ``step``) against ε for every attack, with the
    clean value as a dashed line.

    Each attack is a line with a ±stderr band; random controls also get error bars of the
    spread over draws. Without ``ax``, a new Figure with one panel per model (legend outside
    the axes); with ``ax``, everything is drawn into it (models told apart by line style).
    Returns the Figure.
    """
    direction = "lower is worse" if metric in _HIGHER_IS_BETTER else "higher is worse"
    return _plot(results, [(metric, variable, step)], ax, ratio=False,
                 suptitle=f"{metric_name(metric, variable, step)} vs ε ({direction})")


def plot_ratio(results: Results, metric: str, ax: Axes | None = None, *,
               variable: str = "", step: int | None = None) -> Figure:
    """Plot the ``kind="ratio"`` rows of ``metric`` (adversarial / random control) against ε,
    with a line at 1.

    One line (±stderr band) per adversarial attack; one panel per model unless ``ax`` is given.
    Returns the Figure; `DataError` if the results hold no such ratio (e.g. no random control).
    """
    require_records(results)
    if not any(r.kind == "ratio" and r.metric == metric for r in results.records):
        raise DataError(
            f"No ratio records for {metric!r}: the results need a random control and an "
            "error-like metric (the engines add kind='ratio' rows then)."
        )
    return _plot(results, [(metric, variable, step)], ax, ratio=True,
                 suptitle=f"{metric_name(metric, variable, step)}: adversarial / random")


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


def metric_groups(results: Results) -> list[tuple[str, list[Series]]]:
    """Series grouped for plotting: ``(group, [series])``. A metric's whole-output series
    (variable "", step None) is one group; its per-variable and per-step series share the group
    ``"<metric> per variable"``. Series measured only at epsilon = 0 have nothing to plot
    against epsilon and are left to the tables."""
    swept = {_series_of(r) for r in results.records if r.epsilon > 0 and r.kind != "ratio"}
    groups: dict[str, list[Series]] = {}
    for rec in results.records:
        one = _series_of(rec)
        if rec.kind == "ratio" or one not in swept:
            continue
        group = rec.metric if one[1:] == ("", None) else f"{rec.metric} per variable"
        if one not in groups.setdefault(group, []):
            groups[group].append(one)
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
    has_random = "random" in results.kinds().values()
    ratio_series = {_series_of(r) for r in results.records if r.kind == "ratio"}
    used: set[str] = set()

    def unique(stem: str) -> str:
        candidate, i = stem, 2
        while candidate in used:
            candidate, i = f"{stem}_{i}", i + 1
        used.add(candidate)
        return candidate

    for group, members in groups:
        metric = members[0][0]
        per_variable = group.endswith(" per variable")
        label = metric_name(metric) + (" per variable" if per_variable else "")
        n_panels = len(members) * len(_panel_keys(
            r for r in results.records if _series_of(r) in members))
        if n_panels > MAX_PANELS:
            notes.append(f"{label}: {n_panels} panels (models × variables); the figure shows "
                         f"the first {MAX_PANELS}, the tables hold every value.")
        direction = "lower is worse" if metric in _HIGHER_IS_BETTER else "higher is worse"
        fig = _plot(results, members, None, ratio=False,
                    suptitle=f"{label} vs ε ({direction})")
        stem = unique(_slug(group.replace(" ", "_")) + "_vs_eps")
        png, png_path, svg_path = save_figure(fig, directory, stem)
        out.append(FigureFile(
            stem, f"{label} against perturbation size ε for every attack; dashed: clean; "
            "bands: ±1 standard error over samples; bars on random controls: standard "
            "deviation over random draws.", png, png_path, svg_path))
        ratio_members = [m for m in members if m in ratio_series]
        if ratio_members:
            fig = _plot(results, ratio_members, None, ratio=True,
                        suptitle=f"{label}: adversarial / random control")
            stem = unique(_slug(group.replace(" ", "_")) + "_ratio")
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
    "standard_figures",
]
