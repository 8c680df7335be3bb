"""Names, labels and figures of the QCD case's two readings, p/T⁴ and the pressure P (see
`scirobust.cases.qcd`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from scirobust.cases import _qcd_physics as phys
from scirobust.report import COLORS, save_case_figure

if TYPE_CHECKING:
    from scirobust.cases.qcd import QcdSettings

METRIC, P_METRIC = "mae", "mae_pressure"
FRACTION, P_FRACTION = "fraction_random_exceeds_fgsm", "fraction_random_exceeds_fgsm_pressure"
READINGS = {METRIC: ("p/T⁴", "dimensionless", FRACTION, 0), P_METRIC: ("P", "GeV⁴", P_FRACTION, 4)}
"""Per metric: label, unit, fraction metric and the power of T that turns p/T⁴ into it."""
CLEAN, RANDOM, FGSM = COLORS.clean, COLORS.random, COLORS.fgsm

CAPTIONS = {
    "qcd_1_eos": "Paper Fig. 5B: pressure (trained) and energy density (predicted by autograd, "
    "never trained on) of the DLQP model against the HotQCD 2014 parametrisation; circles: the "
    "training temperatures; lower panel: model minus parametrisation.",
    "qcd_2_attack_errors": "Paper Fig. 5C/D: |Δ(p/T⁴)| (left, diagnostic) and |ΔP|, P = T⁴·p/T⁴ "
    "in GeV⁴ (right, the paper's quantity; each attacked on its own error) at the T the network "
    "sees: clean, random ±eps (mean of the draws), FGSM; shaded: random gives the larger error.",
    "qcd_3_loss_landscape": "|Δ(p/T⁴)| (left) and |ΔP| (right) along T around a temperature where "
    "random beats FGSM in that reading (nearest 0.24 GeV); dotted: first-order prediction from "
    "the gradient; markers: T ± eps on the side FGSM chose and on the other side.",
    "qcd_4_masses": "Quasi-particle masses learned by the three residual MLPs (not unique: one "
    "pressure curve constrains one combination of three masses).",
}
"""Captions of the case figures, by file stem."""


def figures(directory: Path, dense: dict[str, np.ndarray], t_train: np.ndarray,
             temps: np.ndarray, readings: dict[str, dict[str, np.ndarray]],
             settings: QcdSettings, landscapes: dict[str, dict[str, Any]]) -> None:
    """Draw and save the four case figures (EOS fit, errors vs T, loss landscape, masses)."""
    epsilons = settings.epsilons_gev
    figs = {"qcd_1_eos": Figure(figsize=(6.4, 6.4), layout="constrained"),
            "qcd_2_attack_errors": Figure(figsize=(11, 3.2 * len(epsilons)), layout="constrained"),
            "qcd_3_loss_landscape": Figure(figsize=(11, 3.8), layout="constrained"),
            "qcd_4_masses": Figure(figsize=(6.4, 3.6), layout="constrained")}
    phys.plot_eos(figs["qcd_1_eos"], dense, t_train)  # paper Fig. 5B
    phys.plot_masses(figs["qcd_4_masses"], dense)
    axes = figs["qcd_2_attack_errors"].subplots(len(epsilons), 2, sharex=True, squeeze=False)
    panels = [(ax, eps, m) for col, m in enumerate(READINGS)  # paper Fig. 5C/D
              for ax, eps in zip(axes[:, col], epsilons, strict=True)]
    for ax, eps, metric in panels:
        errors, (name, unit, _, _) = readings[metric], READINGS[metric]
        k, flagged = f"{eps:g}", errors[f"random_exceeds_fgsm_{eps:g}"]
        for column, style, colour, label in (
                ("clean_abs_error", "o-", CLEAN, "clean"), (f"fgsm_{k}", "^-", FGSM, "FGSM"),
                (f"random_sign_{k}", "s-", RANDOM, f"random_sign ({settings.n_random} draws)")):
            ax.semilogy(temps * 1e3, errors[column], style, ms=3, color=colour, label=label)
        for t in temps[flagged]:
            ax.axvspan(t * 1e3 - 1.0, t * 1e3 + 1.0, color=RANDOM, alpha=0.15, lw=0)
        ax.set_ylabel(f"|Δ{name}| ({unit})")
        ax.set_title(f"{name}, eps = {k} GeV: random > FGSM at {int(flagged.sum())} of "
                     f"{flagged.size} temperatures (shaded)", fontsize=9)
        ax.legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("T (MeV)")

    for ax, m in zip(figs["qcd_3_loss_landscape"].subplots(1, 2), READINGS, strict=True):
        _landscape_panel(ax, readings[m], landscapes[m], epsilons, m)
    for stem, fig in figs.items():
        save_case_figure(fig, directory, stem, CAPTIONS[stem])


def _landscape_panel(ax: Any, errors: dict[str, np.ndarray], landscape: dict[str, Any],
                     epsilons: tuple[float, ...], metric: str) -> None:
    """Draw one reading's error along T around the landscape temperature, with the gradient's
    first-order prediction and the errors at T ± eps on either side."""
    label = "|Δ{}| ({})".format(*READINGS[metric])
    t_c, t_line, line = landscape["t_gev"], landscape["t_line_gev"], landscape["abs_error_line"]
    i = landscape["index"]
    ax.plot(t_line * 1e3, line, color=CLEAN, label=f"{label} along T")
    tangent = errors["clean_abs_error"][i] + landscape["slope_per_gev"] * (t_line - t_c)
    ax.plot(t_line * 1e3, np.abs(tangent), color=COLORS.grey, ls=":",
            label="first-order (gradient) prediction")
    ax.axvline(t_c * 1e3, color=CLEAN, lw=0.8)
    for eps, marker in zip(epsilons, ("o", "s", "D"), strict=False):
        sign = errors[f"fgsm_direction_{eps:g}"][i]
        for s, colour, lab in ((sign, FGSM, "FGSM side"), (-sign, RANDOM, "other side")):
            t_s = t_c + s * eps
            ax.plot(t_s * 1e3, np.interp(t_s, t_line, line), marker, color=colour, ms=7,
                    mfc="none", label=f"{lab}, eps = {eps:g} GeV")
    ax.set(xlabel="T (MeV)", ylabel=label)
    ax.set_title(f"Loss along T around T = {t_c * 1e3:.1f} MeV", fontsize=10)
    ax.legend(fontsize=7)
