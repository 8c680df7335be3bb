"""Structured verdicts of the digits case (`scirobust.cases.digits`); every criterion is fixed
here before the runs it judges. Multi-seed runs judge the mean over seeds and quote the spread
over seeds beside it."""

from __future__ import annotations

from typing import Any

import numpy as np

from scirobust.cases import Verdict, outcome
from scirobust.cases._digits_stats import class_mean_curves, seed_spread

PAPER = ("test accuracy rises, robust accuracy falls over epochs; MNIST (ε = 0.1): test > 98 %,"
         " robust down by around 10–15 %; CIFAR-10 (ε = 8/255): test ≈ 60 % (CNN), nearly 90 % "
         "(ResNet, GoogleNet), robust down by about 30–50 % (001 Fig. 2)", "ResNet attacked at "
         "its feature extractor's output: robust accuracy declines over epochs more than in Fig. "
         "2 (001 Fig. 5; no number given)", "3-layer CNN, MNIST, 50 epochs: Δx[class 8] falls, "
         "Δp[class 8] rises (004 Fig. 2b; Monte Carlo, no number given; CIFAR-10: class means)",
         "ResNet on CIFAR-10: the Δx–Δp trade-off is more pronounced for features than for "
         "pixels (004 Fig. 2i–l; no number given)", "3-layer CNN, MNIST, epochs 1, 21, 41: the "
         "effective radius of class 8's region shrinks, that of the attacked points grows (004 "
         "Fig. 1c, d; pictures only)")


def verdicts(*, settings: Any, trends: dict, per_seed: dict, feature: dict, unc_rows: list[dict],
             unc_summary: list[dict], radii: list[dict], notes: list[str], pixel_std: float,
             data_desc: str, n_test: int, d_pixels: int) -> list[Verdict]:
    """The case's verdicts (appends the feature-attack notes to ``notes``)."""
    eps, n = settings.eps, settings.seeds
    stand_in = (f"{data_desc}, {n_test} test images, small CNN/ResNet/Inception nets, "
                f"{settings.epochs} epochs" + (f", {n} seeds" if n > 1 else "")
                + "; papers: MNIST/CIFAR-10, 4-layer CNN, ResNet, GoogleNet")
    flags = {net: trends[net]["tradeoff_after_kick"] for net in settings.networks}

    def seeds_text(net: str) -> str:
        if n == 1:
            return ""
        m, se = seed_spread(per_seed[net], "envelope_slope_after_kick")
        k = sum(t["tradeoff_after_kick"] for t in per_seed[net])
        return f"; per seed: envelope slope {m:+.4f} ± {se:.4f}, trade-off in {k}/{n} seeds"

    out = [Verdict(
        "Test accuracy rises while robust accuracy (the envelope over the attacks) falls over "
        "training (paper 001 Fig. 2, paper 004).",
        "per network attacked on pixels, after the learning kick (first epoch at ≥ 95 % of the "
        "maximal clean accuracy; rule added after the first full run) and over ≥ 3 epochs: "
        "least-squares slope of clean accuracy ≥ 0 and of the envelope < 0"
        + (f" (of the mean over {n} seeds)" if n > 1 else ""),
        outcome(list(flags.values())), "; ".join(
            f"{m}: {'yes' if flags[m] else 'no'} (from epoch {t['kick_epoch']}: clean "
            f"{t['clean_slope_after_kick']:+.4f}, envelope {t['envelope_slope_after_kick']:+.4f} "
            f"per epoch{seeds_text(m)})" for m, t in trends.items() if m in flags) + ".",
        PAPER[0], f"ε = {eps}, accuracy first→last epoch: " + "; ".join(
            f"{m} clean {t['clean_first']:.3f}→{t['clean_last']:.3f}, envelope "
            f"{t['envelope_first']:.3f}→{t['envelope_last']:.3f}" for m, t in trends.items()
            if m in flags), stand_in)]
    flags = {}
    for net, kept in feature.items():
        first = {}  # base label -> the first seed's tracker (feature std per epoch)
        for t in kept:
            first.setdefault(t.model_name.split("_seed")[0], t)
        for label, t in first.items():
            pix, fea = trends[net]["envelope_mean"], trends[label]["envelope_mean"]
            std = [e["features"]["std"] for e in t.results.metadata["tracking"]["records"]]
            notes.append(f"{label}: mean envelope over epochs {pix:.3f} on pixels vs "
                         f"{fea:.3f} on features; eps = " + (
                             f"{eps / pixel_std:.3f} feature standard deviations (eps/std of "
                             "the pixels)." if t.feature_scale else
                             f"{eps} is {eps / std[-1]:.1%} of the final features' std (per "
                             f"epoch: {', '.join(f'{s:.3g}' for s in std)}) but "
                             f"{eps / pixel_std:.0%} of the test pixels' std."))
            if t.feature_scale is None:  # the papers' setting: the same eps in units
                flags[net] = bool(fea < pix)
    if flags:
        out.append(Verdict(
            "Attacks on the feature layer hurt more than attacks on the pixels (paper 001 "
            "Fig. 5).", f"mean envelope over epochs lower with eps = {eps} in feature units "
            "than on pixels, per split network", outcome(list(flags.values())),
            ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in flags.items())
            + " (eps relative to the features' spread: see the notes).", PAPER[1], "mean envelope "
            "over epochs: " + ", ".join(f"{m} {v['envelope_mean']:.1%}" for m, v in trends.items()
                                        if m.split(":")[0] in feature), stand_in))
    if any(r["level"] == "pixels" for r in unc_rows):
        out.append(_dx_dp_verdict(settings, unc_rows, unc_summary, data_desc, d_pixels))
        both = [net for net in dict.fromkeys(r["network"] for r in unc_summary)
                if {"pixels", "features"} <= {r["level"] for r in unc_summary
                                              if r["network"] == net}]
        if both:
            out.append(_levels_verdict(unc_summary, both, n, stand_in))
    if radii:
        k, a, b = settings.tsne_class, radii[0], radii[-1]
        flags_r = [b["radius_region"] < a["radius_region"],
                   b["radius_attacked"] > a["radius_attacked"]]
        text = (f"class {k}, epoch {a['epoch']} → {b['epoch']}: region radius "
                f"{a['radius_region']:.3f} → {b['radius_region']:.3f}, attacked points' radius "
                f"{a['radius_attacked']:.3f} → {b['radius_attacked']:.3f} pixel units")
        out.append(Verdict(
            f"Over training the effective radius of class {k}'s region shrinks while that of "
            "the PGD-attacked points grows (paper 004 Fig. 1c, d).",
            f"p_{k}-weighted RMS distance to the p_{k}-weighted centroid in pixel space, first "
            "vs last snapshot: clean test images' radius falls and PGD-moved images' radius "
            "rises", outcome(flags_r), text + ".", PAPER[4], text,
            f"{data_desc}, {settings.tsne_network}, first seed, snapshots after epochs "
            f"{', '.join(str(r['epoch']) for r in radii)}; paper: MNIST, epochs 1, 21, 41"))
    return out


def _dx_dp_verdict(settings: Any, unc_rows: list[dict], unc_summary: list[dict],
                   data_desc: str, d_pixels: int) -> Verdict:
    """Δx falls and Δp rises (class mean, pixels of the first Δx/Δp network: as before)."""
    net = next(r["network"] for r in unc_rows if r["level"] == "pixels")
    c = class_mean_curves(unc_rows, net, "pixels")
    dx, dp = c["delta_x"].mean(0), c["delta_p"].mean(0)
    k8 = [r for r in unc_rows if r["network"] == net and r["level"] == "pixels"
          and r["class"] == 8]
    epochs = sorted({r["epoch"] for r in k8})

    def c8(key: str, e: int) -> float:
        return float(np.mean([r[key] for r in k8 if r["epoch"] == e]))

    c8_text = (f"; class 8: Δx {c8('delta_x', epochs[0]):.4f} → {c8('delta_x', epochs[-1]):.4f}"
               f", Δp {c8('delta_p', epochs[0]):.3f} → {c8('delta_p', epochs[-1]):.3f}"
               if k8 else "")
    others = "; ".join(
        f"{r['network']} {r['level']}: Δx {r['delta_x_first']:.4g} → {r['delta_x_last']:.4g}, "
        f"Δp {r['delta_p_first']:.4g} → {r['delta_p_last']:.4g}" for r in unc_summary
        if (r["network"], r["level"]) != (net, "pixels"))
    n = len(c["seeds"])
    return Verdict(
        "Over training, Δx of the neural packets shrinks and Δp grows (paper 004 Fig. 2).",
        f"mean over classes ({net}, pixels" + (f", mean of {n} seeds" if n > 1 else "")
        + "): Δx last < first and Δp last > first", outcome([dx[-1] < dx[0], dp[-1] > dp[0]]),
        f"Δx {dx[0]:.4f} → {dx[-1]:.4f}, Δp {dp[0]:.3f} → {dp[-1]:.3f}{c8_text}. A flat packet "
        f"on the box has Δx = √(d/12) = {np.sqrt(d_pixels / 12):.4f}."
        + (f" Not judged (class means, seed mean): {others}." if others else ""), PAPER[2],
        f"epochs {c['epochs'][0]}–{c['epochs'][-1]}, class mean: Δx {dx[0]:.4f} "
        f"→ {dx[-1]:.4f} pixel units, Δp {dp[0]:.3f} → {dp[-1]:.3f} per pixel unit{c8_text}",
        f"{data_desc}, our {net}, {settings.epochs} epochs, QMC with "
        f"{settings.uncertainty_n} points; paper: 3-layer CNN, MNIST, 50 epochs, Monte Carlo")


def _levels_verdict(summary: list[dict], nets: list[str], n: int, stand_in: str) -> Verdict:
    """Trade-off strength s (features) > s (pixels), per network, seed means."""
    s = {(r["network"], r["level"]): r for r in summary}
    flags = [s[(m, "features")]["tradeoff_strength"] > s[(m, "pixels")]["tradeoff_strength"]
             for m in nets]

    def val(m: str, level: str) -> str:
        r = s[(m, level)]
        se = f" ± {r['tradeoff_strength_se']:.3f}" if n > 1 else ""
        return (f"{r['tradeoff_strength']:+.3f}{se}"
                + (f" ({r['tradeoff_seeds']}/{n} seeds > 0)" if n > 1 else ""))

    text = "; ".join(f"{m}: features {val(m, 'features')} vs pixels {val(m, 'pixels')}"
                     for m in nets)
    side = "; ".join(f"{m} {s[(m, 'features')]['tradeoff_strength_box']:+.3f} vs "
                     f"{s[(m, 'pixels')]['tradeoff_strength_box']:+.3f}" for m in nets)
    return Verdict(
        "The Δx–Δp trade-off is more pronounced on the features than on the pixels (paper 004 "
        "Fig. 2i–l).", "trade-off strength s = ln(Δp_last/Δp_first) − ln(Δx_last/Δx_first) of "
        "the class-mean curves" + (f", mean of {n} seeds" if n > 1 else "") + ": s(features) > "
        "s(pixels), per network", outcome(flags), text + ". Not judged: in units of the flat "
        f"packet of each epoch's box (the feature box widens in training), s_box: {side}.",
        PAPER[3], "s: " + text, stand_in)


__all__ = ["PAPER", "verdicts"]
