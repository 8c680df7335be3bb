"""Figures of the Poisson case (problem and paper in `scirobust.cases.poisson`): Rel MSE and
its signed variants against eps, and the fields on the attack grid. All dimensionless."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from scirobust.cases._poisson_readings import RESIDUAL_ATTACK, rel_values
from scirobust.report import COLORS, attack_styles, save_case_figure
from scirobust.results import Results

if TYPE_CHECKING:
    from scirobust.cases.poisson import PoissonSettings

__all__ = ["EPS_LABEL", "figures"]

EPS_LABEL = "perturbation eps (L-inf, units of x, y)"


def figures(directory: Path, results: Results, s: PoissonSettings, eps: Sequence[float],
            fields: dict[str, np.ndarray], models: dict[str, tuple[str, str]],
            paper_table: dict[str, dict[float, float | None]]) -> None:
    """``rel_mse_vs_eps``, ``rel_mse_signed_vs_eps`` and ``fields`` (see their captions);
    ``models``: our name → (title, name in the paper's table); ``paper_table``: paper name →
    {eps: FGSM Rel MSE or None where unreadable}."""
    x = np.array(eps)
    residual = attack_styles(results)[RESIDUAL_ATTACK]  # as in the report's standard figures
    rel_fig, signed_fig = (Figure(figsize=(8.0, 3.4), layout="constrained") for _ in range(2))
    for ax, ax2, (model, (title, key)) in zip(rel_fig.subplots(1, 2, sharey=True),
                                              signed_fig.subplots(1, 2, sharey=True),
                                              models.items(), strict=True):
        for atk, style, label in (("fgsm", "-", "FGSM on error vs u"),
                                  ("random_sign", "--", "random sign")):
            y, sd = (rel_values(results, model, atk, "rel_mse", eps, f)
                     for f in ("value", "spread"))
            ax.plot(x, np.maximum(y, 1e-4), style, color=COLORS[atk], marker="o", ms=3,
                    label=f"{label} (ours)")
            if atk == "random_sign":
                ax.fill_between(x, np.maximum(y - np.nan_to_num(sd), 1e-4),
                                y + np.nan_to_num(sd), color=COLORS[atk], alpha=0.15, lw=0)
        y = rel_values(results, model, RESIDUAL_ATTACK, "rel_mse", eps)
        ax.plot(x, np.maximum(y, 1e-4), ":", color=residual.color, marker=residual.marker, ms=3,
                label="FGSM on own residual loss (ours)")
        paper = [(e, v) for e, v in paper_table[key].items() if v is not None and e in eps]
        ax.plot(*zip(*paper, strict=True), "D", color=COLORS.clean, mfc="none", ms=6,
                label=f"paper Table 1 ({key}, FGSM)")
        ax2.axhline(0.0, color=COLORS.clean, lw=0.8)
        for (metric, marker, lw, what), (atk, style) in itertools.product(
                (("rel_mse_signed", "o", 1.0, "vs full-grid clean"),
                 ("rel_mse_same_points", "s", 2.0, "same points")),
                (("fgsm", "-"), ("random_sign", "--"))):
            ax2.plot(x, rel_values(results, model, atk, metric, eps), style, color=COLORS[atk],
                     marker=marker, ms=3, lw=lw,
                     label=f"{'FGSM' if atk == 'fgsm' else 'random'}, {what}")
        ax2.plot(x, rel_values(results, model, RESIDUAL_ATTACK, "rel_mse_same_points", eps),
                 ":", color=residual.color, marker=residual.marker, ms=3, lw=2.0,
                 label="FGSM on residual loss, same points")
        ax.set(yscale="log", xlabel=EPS_LABEL, title=title)
        ax2.set(xlabel=EPS_LABEL, title=title)
        ax.grid(alpha=0.3, which="both", lw=0.5)
        ax2.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=7)
        ax2.legend(fontsize=6.5)
    rel_fig.axes[0].set_ylabel("Rel MSE (dimensionless)")
    # The random band's lower edge can reach zero; keep the axis on the plotted values.
    lows = [r.value for r in results.select(metric="rel_mse") if r.value > 0]
    rel_fig.axes[0].set_ylim(bottom=max(min(lows, default=0.0) / 3, 1e-4))
    save_case_figure(rel_fig, directory, "rel_mse_vs_eps",
                     "Rel MSE against eps on the attack grid: FGSM on the squared error against u "
                     "(solid; decides the verdict), FGSM on the network's own residual loss "
                     "(dotted), random sign (dashed, band = std over draws), paper's Table 1 "
                     "FGSM values (open diamonds; RNN at eps = 0.25 unreadable in the paper's "
                     "text). Values below 1e-4 drawn at 1e-4.")
    signed_fig.axes[0].set_ylabel("(MSE_att − MSE_clean) / MSE_clean")
    save_case_figure(signed_fig, directory, "rel_mse_signed_vs_eps",
                     "Signed relative change of the MSE: against the full-grid clean MSE (thin, "
                     "circles; the paper's Rel MSE is its absolute value) and with both MSEs over "
                     "the same points that stay in Ω (thick, squares; dotted triangles: FGSM on "
                     "the residual loss). Below zero the perturbed points have a smaller error "
                     "than the clean ones.")

    n = s.grid
    fig = Figure(figsize=(8.0, 7.0), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    image = {k: fields[k].reshape(n, n).T for k in ("u_exact", "err_pinn", "err_rnn")}
    panels = [("exact u = sin(4πx) sin(4πy)", image["u_exact"], "RdBu_r", True),
              ("PINN error u_PINN − u", image["err_pinn"], "PuOr_r", True),
              ("RNN error u_RNN − u", image["err_rnn"], "PuOr_r", True),
              (f"FGSM step on the PINN, eps = {s.field_eps:g}\n(over |PINN error|)",
               np.abs(image["err_pinn"]), "Greys", False)]
    for ax, (title, data, cmap, signed) in zip(axes, panels, strict=True):
        # 99.5th percentile: a few corner points would otherwise wash out the colour scale.
        lim = float(np.percentile(np.abs(data), 99.5)) or 1.0
        im = ax.imshow(data, origin="lower", extent=(-1, 1, -1, 1), cmap=cmap,
                       vmin=-lim if signed else 0, vmax=lim)
        fig.colorbar(im, ax=ax, shrink=0.8, extend="both" if signed else "max")
        ax.set(xlabel="x", ylabel="y")
        ax.set_title(title, fontsize=9)
    step = max(1, round(n / 12))  # ~12 arrows per side stay readable
    pts, dlt = (fields[k].reshape(n, n, 2)[::step, ::step].reshape(-1, 2)
                for k in ("grid", "delta_pinn"))
    axes[3].quiver(pts[:, 0], pts[:, 1], dlt[:, 0], dlt[:, 1], color=COLORS.fgsm, angles="xy",
                   scale_units="xy", scale=1.0, width=0.004)
    axes[3].set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1))
    save_case_figure(fig, directory, "fields",
                     "Exact solution, pointwise errors of both networks on the attack grid "
                     "(colour scales clipped at the 99.5th percentile of |value|), and the FGSM "
                     "perturbation of the PINN's inputs (arrows, true length; every few grid "
                     "points) over its absolute error.")
