"""Figures of the airfoil case (paper 000 Fig. 4A–D), for either input setting.

Each function takes the per-test-case dicts of `scirobust.cases.airfoil.measure_case`
(``evals``): inputs, exact reference Cp, PINN Cp clean / random draw / FGSM, the perturbed
inputs and the relative L2 errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from scirobust.report import COLORS, save_case_figure

if TYPE_CHECKING:
    from scirobust.cases.airfoil import AirfoilSettings

__all__ = ["case_figures", "cp_curve_figures", "error_bar_figure", "perturbation_figure"]

Evals = Sequence[dict[str, Any]]


def cp_curve_figures(
    directory: Path, evals: Evals, titles: Sequence[str], stems: Sequence[str], setting: str
) -> None:
    """Fig. 4B and 4C: surface Cp of every test case under one random draw and under FGSM,
    against the exact reference and the clean PINN. Two ``stems``: a random and an FGSM
    figure; one stem: both perturbations in one figure."""
    cols = min(len(evals), 3)
    rows = math.ceil(len(evals) / cols)
    kinds = [("cp_random", "random ±3 % (one draw)", COLORS.random, "B", "s"),
             ("cp_fgsm", "FGSM 3 %", COLORS.fgsm, "C", "^")]
    groups = [[k] for k in kinds] if len(stems) == 2 else [kinds]
    for stem, group in zip(stems, groups, strict=True):
        fig = Figure(figsize=(4.0 * cols, 3.3 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, ev, title in zip(axes, evals, titles, strict=False):
            x = ev["inputs"][:, 0]
            ax.plot(x, ev["ref"], color=COLORS.grey, lw=2.5, label="exact")
            ax.plot(x, ev["cp_clean"], color=COLORS.clean, lw=1.0, label="PINN clean")
            for key, label, colour, _, marker in group:
                ax.plot(x, ev[key], marker, ms=2.5, ls="none", color=colour,
                        label=f"PINN, {label}")
            ax.invert_yaxis()
            ax.set(xlabel="x/c (clean surface point)", ylabel="Cp")
            ax.set_title(title, fontsize=9)
        axes[0].legend(fontsize=7)
        for ax in axes[len(evals):]:
            ax.set_visible(False)
        label = " and ".join(g[1] for g in group)
        save_case_figure(fig, directory, stem,
                         f"Paper Fig. 4{''.join(g[3] for g in group)}, {setting}: surface "
                         f"pressure coefficient of the test cases under {label} of the spatial "
                         "coordinates, against the exact reference and the clean PINN; plotted "
                         "at the clean chord position; Cp axis inverted.")


def error_bar_figure(
    directory: Path, settings: Sequence[tuple[str, Evals]], stem: str = "airfoil_3_cp_error_bars"
) -> None:
    """Fig. 4D: relative L2 error of the surface Cp per test case, one panel per setting
    (``(title, evals)``), with the paper's 10 % line."""
    fig = Figure(figsize=(6.0 * len(settings), 3.8), layout="constrained")
    axes = fig.subplots(1, len(settings), squeeze=False, sharey=True).ravel()
    for ax, (title, evals) in zip(axes, settings, strict=True):
        idx = np.arange(len(evals))
        for j, (key, colour, label) in enumerate((
            ("clean", COLORS.clean, "PINN clean"), ("random", COLORS.random, "PINN random ±3 %"),
            ("fgsm", COLORS.fgsm, "PINN FGSM 3 %"),
            ("exact_random", COLORS.grey, "exact flow, random ±3 % (control)"),
        )):
            errs = [ev["random_spread"] * 100 for ev in evals] if key == "random" else None
            ax.bar(idx + (j - 1.5) * 0.2, [ev[key] * 100 for ev in evals], 0.2, color=colour,
                   label=label, yerr=errs, capsize=2)
        ax.axhline(10, color=COLORS.grey, ls=":", lw=1)
        ax.set_xticks(idx, [f"case {i + 1}" for i in idx])
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("relative L2 error of surface Cp (%)")
    axes[0].legend(fontsize=8)
    save_case_figure(fig, directory, stem,
                     "Paper Fig. 4D: relative L2 error of the surface Cp against the exact "
                     "reference per test case, clean, random ±3 % (bars: standard deviation over "
                     "draws) and FGSM 3 %; grey: the exact flow at the same randomly moved "
                     "points (the error an exact solver would show); dotted: the paper's 10 % "
                     "line. " + " | ".join(f"Panel {i + 1}: {t}." for i, (t, _) in
                                            enumerate(settings)))


def perturbation_figure(directory: Path, ev: dict[str, Any], title: str,
                        stem: str = "airfoil_0_perturbation") -> None:
    """Fig. 4A: the clean surface points of one test case and the same points moved by one
    random ±3 % draw and by FGSM 3 % (whole airfoil, and zooms on the leading and trailing
    edges with each move drawn as a segment), with the resulting Cp curves."""
    clean, rand, fgsm = (np.asarray(ev[k])[:, :2] for k in ("inputs", "x_random", "x_fgsm"))
    fig = Figure(figsize=(12.0, 6.4), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[0.5, 1.5])
    ax_all = fig.add_subplot(grid[0, :])
    ax_le, ax_te, ax_cp = (fig.add_subplot(grid[1, i]) for i in range(3))
    moved = ((rand, COLORS.random, "s", "random ±3 % (one draw)"),
             (fgsm, COLORS.fgsm, "^", "FGSM 3 %"))
    outline = np.vstack([clean, clean[:1]])  # points come in circle-angle order
    for ax, size, window in ((ax_all, 5, None), (ax_le, 16, (-0.01, 0.12)),
                             (ax_te, 16, (0.82, 1.035))):
        ax.plot(outline[:, 0], outline[:, 1], color=COLORS.grey, lw=0.8, zorder=0,
                label="airfoil (through the clean points)")
        ax.scatter(clean[:, 0], clean[:, 1], s=size, color=COLORS.clean, label="clean point",
                   zorder=3, linewidths=0)
        for pts, colour, marker, label in moved:
            if window is not None:  # each move as a segment from its clean point
                ax.add_collection(LineCollection(np.stack([clean, pts], 1), colors=colour,
                                                 linewidths=0.7, alpha=0.8))
            ax.scatter(pts[:, 0], pts[:, 1], s=size, color=colour, marker=marker, label=label,
                       linewidths=0, alpha=0.85, zorder=2)
        if window is None:
            ax.set_aspect("equal")
        else:
            inside = (clean[:, 0] >= window[0]) & (clean[:, 0] <= window[1])
            span = np.concatenate([p[inside, 1] for p in (clean, rand, fgsm)])
            pad = 0.15 * (span.max() - span.min())
            ax.set(xlim=window, ylim=(span.min() - pad, span.max() + pad))
        ax.set(xlabel="x/c", ylabel="y/c")
    ax_all.set_title(f"{title}: {len(clean)} surface points", fontsize=10)
    ax_all.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_le.set_title("leading edge (zoom, axes not to scale)", fontsize=9)
    ax_te.set_title("trailing edge (zoom, axes not to scale)", fontsize=9)
    x = ev["inputs"][:, 0]
    ax_cp.plot(x, ev["ref"], color=COLORS.grey, lw=2.5, label="exact")
    ax_cp.plot(x, ev["cp_clean"], color=COLORS.clean, lw=1.0, label="PINN clean")
    ax_cp.plot(x, ev["cp_random"], "s", ms=2.5, color=COLORS.random, label="PINN, random ±3 %")
    ax_cp.plot(x, ev["cp_fgsm"], "^", ms=2.5, color=COLORS.fgsm, label="PINN, FGSM 3 %")
    ax_cp.invert_yaxis()
    ax_cp.set(xlabel="x/c (clean surface point)", ylabel="Cp", title="resulting surface Cp")
    ax_cp.legend(fontsize=7)
    save_case_figure(fig, directory, stem,
                     f"Paper Fig. 4A ({title}): the clean surface points (black) and the same "
                     "points moved by one draw of random ±3 % signs (blue squares) and by FGSM "
                     "3 % (vermillion triangles) of their chord-frame coordinates; in the zooms "
                     "each move is a segment from its clean point. The budget is relative to "
                     "each coordinate, so points near the trailing edge (x ≈ 1) move about "
                     "0.03 chord, mostly along the chord, and points near the leading edge "
                     "hardly at all. Bottom right: the PINN's surface Cp at the moved points "
                     "against the exact Cp at the clean ones (axis inverted).")


def case_figures(directory: Path, s: AirfoilSettings, evals: Evals, mach: Evals) -> None:
    """Draw and save the case figures (paper Fig. 4A–D): the perturbation, the Cp curves of the
    Mach setting, the error bars of both settings and the Cp curves of the 5-input variant."""
    titles = [f"case {i + 1}: M = {m[0]:g}, α = {c[0]:g}°, μ = ({c[1]:g}, {c[2]:g}), τ = {m[1]:g}°"
              for i, (c, m) in enumerate(zip(s.test_cases, s.mach_cases, strict=True))]
    perturbation_figure(directory, mach[0], f"Mach setting, {titles[0]}")
    cp_curve_figures(directory, mach, titles, ("airfoil_1_cp_random", "airfoil_2_cp_fgsm"),
                     "7-input Mach setting (Kármán–Trefftz, Kármán–Tsien)")
    error_bar_figure(directory, [
        ("7 inputs: Mach (Kármán–Tsien), α, μ, trailing-edge angle — decides", mach),
        ("5 inputs: incompressible Joukowski (α, μ) — variant", evals)])
    cp_curve_figures(directory, evals, [f"case {i + 1}: α = {c[0]:g}°, μ = ({c[1]:g}, {c[2]:g})"
                                        for i, c in enumerate(s.test_cases)],
                     ("airfoil_4_cp_5_inputs",),
                     "5-input incompressible variant")
