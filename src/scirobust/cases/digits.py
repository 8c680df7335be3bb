"""Accuracy vs robustness over training on 8×8 digits (paper 001 Figs. 2 and 5; paper 004 Fig. 2).

Data: scikit-learn's bundled 8×8 digits (1797 images), pixels scaled to [0, 1], a stratified split
of 360 test images; MNIST (``MNIST/raw/*-ubyte[.gz]``) or CIFAR-10 (``cifar-10-batches-py/``, with
the papers' eps = 8/255) in the torchvision layout under ``data_root`` or ``SCIROBUST_DATA_ROOT``
replaces it (nothing is ever downloaded). Fixed from the papers before any run (SCIENCE.md §8;
`DigitsSettings.sweep`): eps = 0.1 on [0, 1] pixels; PGD 4 × 0.25·eps with random start (paper
004); targeted (to a fixed random wrong class) and non-targeted FGSM; BIM and ILLC 10 × 0.25·eps;
SparseFool in the L-inf box; a random-sign control. Feature attacks: the same eps in feature units
(no bounds). Δx, Δp per class of the CNN (paper 004 Fig. 2): scrambled-Sobol QMC over the pixel
box, jackknife standard errors. Records: one `RobustnessTracker` per network and attacked layer.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import sklearn.datasets  # the `cases` extra
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor, nn

from scirobust.budget import Budget
from scirobust.cases import Case, CaseOptions, CaseOutput, Verdict, finish, outcome, single_threaded
from scirobust.errors import ConfigError
from scirobust.io import read_cifar10, read_mnist
from scirobust.report import COLORS, save_case_figure, write_case_table
from scirobust.results import Results
from scirobust.sweep import AttackRun, Sweep
from scirobust.training import ENVELOPE, RobustnessTracker, fit, history
from scirobust.uncertainty import INTERPRETATION_NOTES, Box, class_spreads

NAME = "digits"
PAPER = ("test accuracy rises, robust accuracy falls over epochs; MNIST (ε = 0.1): test > 98 %,"
         " robust down by around 10–15 %; CIFAR-10 (ε = 8/255): test ≈ 60 % (CNN), nearly 90 % "
         "(ResNet, GoogleNet), robust down by about 30–50 % (001 Fig. 2)", "ResNet attacked at "
         "its feature extractor's output: robust accuracy declines over epochs more than in Fig. "
         "2 (001 Fig. 5; no number given)", "3-layer CNN, MNIST, 50 epochs: Δx[class 8] falls, "
         "Δp[class 8] rises (004 Fig. 2b; Monte Carlo, no number given; CIFAR-10: class means)")
UNCERTAINTY_FIELDS = ("delta_x", "delta_x_stderr", "delta_p", "delta_p_stderr", "product",
                      "product_stderr", "n_evaluations")  # of `uncertainty.Spreads`


@dataclass(frozen=True)
class DigitsSettings:
    """Everything that sets the size of the run (eps and attack settings are the papers')."""

    networks: tuple[str, ...] = ("cnn", "resnet", "inception")
    feature_networks: tuple[str, ...] = ("resnet",)  # paper 001 Fig. 5 splits the ResNet
    feature_relative: bool = True  # also attack features with eps relative to their std
    epochs: int = 20
    n_test: int = 360  # evaluation images (the whole held-out split for 8×8 digits)
    batch_size: int = 32
    lr: float = 1e-3
    eps: float = 0.1
    pgd_steps: int = 4
    pgd_step_size: float = 0.25
    iter_steps: int = 10  # BIM / ILLC
    sparsefool_iter: int = 1  # outer iterations (each runs DeepFool to the box edge)
    uncertainty_network: str = "cnn"
    uncertainty_n: int = 4096  # QMC points per epoch (all classes share them)
    uncertainty_every: int = 1
    data_root: str | None = None
    max_train: int | None = None  # cap on training images (MNIST is large)

    @classmethod
    def quick(cls) -> DigitsSettings:
        """About 30 s on one free CPU thread (5 epochs, 100 test images)."""
        return cls(epochs=5, n_test=100, uncertainty_n=512)

    @classmethod
    def full(cls) -> DigitsSettings:
        """The published figure on 8×8 digits (20 epochs, 359 test images; 5–17 min, 1 thread)."""
        return cls()

    def sweep(self, seed: int = 0) -> Sweep:
        """The papers' attacks at ``eps`` on pixels in [0, 1], one draw of the control."""
        return Sweep(epsilons=(self.eps,), budget=Budget(bounds=(0.0, 1.0)), n_random=1,
                     seed=seed, batch_size=512, attacks=(
                         AttackRun("random_sign"), AttackRun("fgsm_targeted"), AttackRun("fgsm"),
                         AttackRun("bim", steps=self.iter_steps, step_size=0.25),
                         AttackRun("illc", steps=self.iter_steps, step_size=0.25),
                         AttackRun("pgd_linf", steps=self.pgd_steps,
                                   step_size=self.pgd_step_size, random_start=True),
                         AttackRun("sparsefool", steps=self.sparsefool_iter)))


# --------------------------------------------------------------------------- data
def load_data(settings: DigitsSettings, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """(x_train, y_train, x_test, y_test, description); images (N, C, H, W) in [0, 1]: MNIST,
    else CIFAR-10 from ``data_root`` (`scirobust.io` readers), else the bundled 8×8 digits."""
    root = settings.data_root or os.environ.get("SCIROBUST_DATA_ROOT")
    for loader, desc in ((read_mnist, "MNIST (28×28)"), (read_cifar10, "CIFAR-10 (32×32)")):
        found = loader(root) if root else None
        if found is not None:
            xtr, ytr, xte, yte = found
            gen = torch.Generator().manual_seed(seed)
            if settings.max_train is not None:
                keep = torch.randperm(xtr.shape[0], generator=gen)[: settings.max_train]
                xtr, ytr = xtr[keep], ytr[keep]
            pick = torch.randperm(xte.shape[0], generator=gen)[: settings.n_test]
            return xtr, ytr, xte[pick], yte[pick], f"{desc} from {root}"
    digits = sklearn.datasets.load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    y = torch.from_numpy(digits.target.astype(np.int64))
    rng, test, t = np.random.default_rng(seed), [], digits.target  # stratified: 360 for testing
    for c in np.unique(t):
        idx = rng.permutation(np.flatnonzero(t == c))
        test.extend(idx[: round(360 * len(idx) / len(t))].tolist())
    train_idx = np.setdiff1d(np.arange(len(t)), test)
    test_idx = np.array(sorted(test))[np.random.default_rng(seed + 1).permutation(len(test))]
    test_idx = np.sort(test_idx[: settings.n_test])
    return (x[train_idx], y[train_idx], x[test_idx], y[test_idx],
            "scikit-learn 8×8 digits (1797 images, pixels/16)")


# --------------------------------------------------------------------------- networks
class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class _Inception(nn.Module):
    def __init__(self, cin: int, branch: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(cin, branch, 1)
        self.b3, self.b5 = (nn.Sequential(nn.Conv2d(cin, branch, 1), nn.ReLU(), nn.Conv2d(
            branch, branch, k, padding=k // 2)) for k in (3, 5))  # created in this order
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(cin, branch, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1))


def make_network(name: str, in_channels: int = 1, n_classes: int = 10) -> nn.Module:
    """``cnn`` (4 layers), ``resnet`` (2 residual blocks) or ``inception`` (1 block), as
    ``Sequential(features, classifier)``; ``features`` is the attacked feature layer."""
    stem = (nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU())
    if name == "cnn":
        features = nn.Sequential(*stem, nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(4), nn.Flatten())
        classifier = nn.Sequential(nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, n_classes))
    elif name == "resnet":
        features = nn.Sequential(*stem, _ResBlock(16), _ResBlock(16), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten())
        classifier = nn.Linear(16 * 4, n_classes)
    elif name == "inception":
        features = nn.Sequential(*stem, _Inception(16, 8), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        classifier = nn.Linear(32 * 4, n_classes)
    else:
        raise ConfigError(f"Unknown network {name!r}; use cnn, resnet or inception.")
    return nn.Sequential(OrderedDict(features=features, classifier=classifier))


# --------------------------------------------------------------------------- analysis
def _slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (per epoch)."""
    return float(np.polyfit(np.arange(len(values), dtype=float), values, 1)[0]
                 if len(values) >= 2 else "nan")


def _trend(results: Results, label: str, eps: float) -> dict:
    """Clean accuracy and envelope of one tracked model over epochs: ends, slopes, kick."""
    clean = history(results, "clean", model_name=label)
    env = history(results, ENVELOPE, epsilon=eps, model_name=label)
    cv, ev = [v for _, v in clean], [v for _, v in env]
    rc, re_ = np.argsort(np.argsort(cv)), np.argsort(np.argsort(ev))
    spearman = (float(np.corrcoef(rc, re_)[0, 1]) if len(cv) >= 3 and rc.std() and re_.std()
                else float("nan"))
    # After the learning "kick" (paper 004): from the first epoch at ≥ 95 % of the maximal clean
    # accuracy (added after the first full run: the envelope rose with it in the first epochs).
    k = next(i for i, v in enumerate(cv) if v >= 0.95 * max(cv))
    clean_after, env_after = _slope(cv[k:]), _slope(ev[k:])
    return {"model": label, "epochs": f"{clean[0][0]}-{clean[-1][0]}",
        "clean_first": cv[0], "clean_last": cv[-1], "clean_max": max(cv),
        "envelope_first": ev[0], "envelope_last": ev[-1], "envelope_mean": float(np.mean(ev)),
        "envelope_slope_per_epoch": _slope(ev), "clean_slope_per_epoch": _slope(cv),
        "spearman_clean_vs_envelope": spearman,
        "tradeoff_seen": bool(cv[-1] > cv[0] and ev[-1] < ev[0]),
        "kick_epoch": clean[k][0], "clean_at_kick": cv[k], "envelope_at_kick": ev[k],
        "envelope_slope_after_kick": env_after, "clean_slope_after_kick": clean_after,
        "tradeoff_after_kick": bool(len(cv) - k >= 3 and clean_after >= 0 and env_after < 0)}


# --------------------------------------------------------------------------- figures
def _plot_tracking(results: Results, labels: list[str], sweep: Sweep, title: str) -> Figure:
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
            ax.plot(*zip(*history(results, key, epsilon=sweep.epsilons[0], model_name=label),
                         strict=True), **style)
        ax.set(title=label, xlabel="epoch", ylabel="accuracy (fraction correct)",
               ylim=(-0.02, 1.02))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=5,
               fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def _plot_uncertainty(rows: list[dict], network: str) -> Figure:
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    palette = [COLORS[c] for c in ("black", "orange", "sky_blue", "bluish_green", "yellow",
                                   "blue", "grey", "reddish_purple", "vermillion", "black")]
    for ax, key, name in zip(axes, ("delta_x", "delta_p", "product"),
                             ("Δx (pixel units)", "Δp (1/pixel units)", "Δx·Δp"), strict=True):
        for k in sorted({r["class"] for r in rows}):  # rows come in epoch order
            sub = [r for r in rows if r["class"] == k]
            ax.errorbar([r["epoch"] for r in sub], [r[key] for r in sub], capsize=2,
                        yerr=[r[key + "_stderr"] for r in sub], label=f"class {k}",
                        lw=2.4 if k == 8 else 1.0, color=palette[k % 10], ls="-" if k < 5 else "--")
        ax.set(xlabel="epoch", ylabel=name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"Δx and Δp per class over training ({network}; class 8 thick; "
                 "QMC ±1 s.e.)", fontsize=10)
    return fig


# --------------------------------------------------------------------------- run
def run_digits(settings: DigitsSettings, output: Path, *, seed: int = 0) -> CaseOutput:
    """Train every network, track (pixel and feature) robust accuracy and Δx/Δp per epoch."""
    started, output = time.perf_counter(), Path(output)
    xtr, ytr, xte, yte, data_desc = load_data(settings, seed)
    if data_desc.startswith("CIFAR") and settings.eps == DigitsSettings.eps:
        settings = replace(settings, eps=8 / 255)  # the papers' CIFAR-10 eps (SCIENCE.md §8)
    eps, sweep, n_classes = settings.eps, settings.sweep(seed), int(max(ytr.max(), yte.max())) + 1
    pixel_std, results = float(xte.double().std()), Results()
    domain = Box(torch.zeros(xte.shape[1:]), torch.ones(xte.shape[1:]))
    feature: dict[str, list[RobustnessTracker]] = {}  # network -> its feature-layer trackers
    unc_rows: list[dict] = []
    for i, net in enumerate(settings.networks):
        torch.manual_seed(seed * 1000 + i)
        model = make_network(net, xtr.shape[1], n_classes)
        if net in settings.feature_networks:
            # "-rel" (added after the first full run): eps/std(pixels) feature std deviations.
            feature[net] = [RobustnessTracker(
                xte, yte, sweep.replace(budget=budget), layer="features", feature_scale=scale,
                model_name=f"{net}:{label}", case=NAME) for label, budget, scale in (
                    ("features", Budget(), None),
                    ("features-rel", Budget(eps=1.0 / pixel_std), "std"),
                ) if scale is None or settings.feature_relative]
        trackers = [RobustnessTracker(xte, yte, sweep, model_name=net, case=NAME),
                    *feature.get(net, [])]

        def on_epoch(m: nn.Module, epoch: int, net: str = net,
                     trackers: list[RobustnessTracker] = trackers) -> None:
            for tracker in trackers:
                tracker.record(m, epoch)
            if net == settings.uncertainty_network and epoch % settings.uncertainty_every == 0:
                with warnings.catch_warnings(action="ignore"):  # small QMC sample's notes
                    spreads = class_spreads(
                        m, list(range(n_classes)), domain, method="qmc", batch_size=512,
                        n=settings.uncertainty_n,
                        generator=torch.Generator().manual_seed(seed * 7919 + epoch))
                unc_rows.extend({"network": net, "epoch": epoch, "class": k,
                                 **{f: getattr(s, f) for f in UNCERTAINTY_FIELDS}}
                                for k, s in spreads.items())

        fit(model, torch.optim.Adam(model.parameters(), lr=settings.lr), (xtr, ytr),
            epochs=settings.epochs, batch_size=settings.batch_size,
            generator=torch.Generator().manual_seed(seed + i), on_epoch=on_epoch)
        for tracker in trackers:
            results.extend(tracker.results)
            results.metadata = results.metadata or {
                k: v for k, v in tracker.results.metadata.items() if k != "tracking"}

    feature_labels = [t.model_name for kept in feature.values() for t in kept]
    trends = {m: _trend(results, m, eps) for m in [*settings.networks, *feature_labels]}
    for name, labels, stem, title, caption in (
        ("pixels", list(settings.networks), "fig2_pixels", "Test and robust accuracy over training"
         f", attacks on pixels (ε = {eps}) — paper 001 Fig. 2", "Test accuracy (black) and robust "
         "accuracy under six gradient attacks and a random-sign control of the same size, after "
         "every epoch; grey dashed: envelope (lowest robust accuracy over the six attacks)."),
        ("features", feature_labels, "fig5_features", f"Attacks on the feature layer (ε = {eps} in"
         " feature units) — paper 001 Fig. 5", "As Fig. 2 but every attack perturbs the output of "
         "the network's feature extractor (the input of its classifier); the input images are "
         "untouched.")):
        if labels:
            write_case_table(output / "tables" / f"trends_{name}.csv", list(trends[labels[0]]),
                             [list(trends[label].values()) for label in labels])
            save_case_figure(_plot_tracking(results, labels, sweep, title), output, stem, caption)
    if unc_rows:
        write_case_table(output / "tables" / "uncertainty_per_class.csv", list(unc_rows[0]),
                         [list(r.values()) for r in unc_rows])
        save_case_figure(
            _plot_uncertainty(unc_rows, settings.uncertainty_network), output, "fig_uncertainty",
            "Δx, Δp and Δx·Δp of the neural packet of every class over training (paper 004 "
            "Fig. 2), QMC over the pixel box with jackknife standard errors.")

    summary = [["model", "clean first→last", "envelope first→last", "trade-off seen"]] + [
        [r["model"], f"{r['clean_first']:.3f}→{r['clean_last']:.3f}",
         f"{r['envelope_first']:.3f}→{r['envelope_last']:.3f}", str(r["tradeoff_seen"])]
        for r in trends.values()]
    notes = [f"Data: {data_desc}; {len(xtr)} train, {len(xte)} test images.", *INTERPRETATION_NOTES]
    flags = {net: trends[net]["tradeoff_after_kick"] for net in settings.networks}
    stand_in = (f"{data_desc}, {xte.shape[0]} test images, small CNN/ResNet/Inception nets, "
                f"{settings.epochs} epochs; papers: MNIST/CIFAR-10, 4-layer CNN, ResNet, GoogleNet")
    verdicts = [Verdict(
        "Test accuracy rises while robust accuracy (the envelope over the attacks) falls over "
        "training (paper 001 Fig. 2, paper 004).",
        "per network attacked on pixels, after the learning kick (first epoch at ≥ 95 % of the "
        "maximal clean accuracy; rule added after the first full run) and over ≥ 3 epochs: "
        "least-squares slope of clean accuracy ≥ 0 and of the envelope < 0",
        outcome(list(flags.values())), "; ".join(
            f"{n}: {'yes' if flags[n] else 'no'} (from epoch {t['kick_epoch']}: clean "
            f"{t['clean_slope_after_kick']:+.4f}, envelope {t['envelope_slope_after_kick']:+.4f} "
            "per epoch)" for n, t in trends.items() if n in flags) + ".", PAPER[0],
        f"ε = {eps}, accuracy first→last epoch: " + "; ".join(
            f"{m} clean {c}, envelope {e}" for m, c, e, _ in summary[1:] if m in flags), stand_in)]
    flags = {}
    for net, kept in feature.items():
        for t in kept:
            pix, fea = trends[net]["envelope_mean"], trends[t.model_name]["envelope_mean"]
            std = [e["features"]["std"] for e in t.results.metadata["tracking"]["records"]]
            notes.append(f"{t.model_name}: mean envelope over epochs {pix:.3f} on pixels vs "
                         f"{fea:.3f} on features; eps = " + (
                             f"{eps / pixel_std:.3f} feature standard deviations (eps/std of "
                             "the pixels)." if t.feature_scale else
                             f"{eps} is {eps / std[-1]:.1%} of the final features' std (per "
                             f"epoch: {', '.join(f'{s:.3g}' for s in std)}) but "
                             f"{eps / pixel_std:.0%} of the test pixels' std."))
            if t.feature_scale is None:  # the papers' setting: the same eps in units
                flags[net] = bool(fea < pix)
    if flags:
        verdicts.append(Verdict(
            "Attacks on the feature layer hurt more than attacks on the pixels (paper 001 "
            "Fig. 5).", f"mean envelope over epochs lower with eps = {eps} in feature units "
            "than on pixels, per split network", outcome(list(flags.values())),
            ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in flags.items())
            + " (eps relative to the features' spread: see the notes).", PAPER[1], "mean envelope "
            "over epochs: " + ", ".join(f"{m} {v['envelope_mean']:.1%}" for m, v in trends.items()
                                        if m.split(":")[0] in feature), stand_in))
    if unc_rows:
        dx, dp = ([np.mean([r[key] for r in unc_rows if r["epoch"] == e])
                   for e in sorted({r["epoch"] for r in unc_rows})]
                  for key in ("delta_x", "delta_p"))
        r8 = [r for r in unc_rows if r["class"] == 8]
        c8 = (f"; class 8: Δx {r8[0]['delta_x']:.4f} → {r8[-1]['delta_x']:.4f}, Δp "
              f"{r8[0]['delta_p']:.3f} → {r8[-1]['delta_p']:.3f}" if r8 else "")
        verdicts.append(Verdict(
            "Over training, Δx of the neural packets shrinks and Δp grows (paper 004 Fig. 2).",
            f"mean over classes ({settings.uncertainty_network}): Δx last < first and Δp "
            "last > first", outcome([dx[-1] < dx[0], dp[-1] > dp[0]]),
            f"Δx {dx[0]:.4f} → {dx[-1]:.4f}, Δp {dp[0]:.3f} → {dp[-1]:.3f}{c8}. A flat packet "
            f"on the box has Δx = √(d/12) = {np.sqrt(xte[0].numel() / 12):.4f}.", PAPER[2],
            f"epochs {unc_rows[0]['epoch']}–{unc_rows[-1]['epoch']}, class mean: Δx {dx[0]:.4f} "
            f"→ {dx[-1]:.4f} pixel units, Δp {dp[0]:.3f} → {dp[-1]:.3f} per pixel unit{c8}",
            f"{data_desc}, our {settings.uncertainty_network}, {settings.epochs} epochs, QMC with "
            f"{settings.uncertainty_n} points; paper: 3-layer CNN, MNIST, 50 epochs, Monte Carlo"))
    results.metadata.update({
        "standard_figures": False,  # one eps, records per epoch: the case figures tell it
        "description": "Paper 001 Fig. 2/5 and paper 004 Fig. 2 on 8×8 digits: after every "
        f"epoch (step), test accuracy and robust accuracy under six gradient attacks at eps = {eps}"
        ", a random-sign control and their envelope, on the pixels (model '<network>') and on the "
        "feature layer ('<network>:features', '-rel'); Δx and Δp per class.",
        "notes": notes, "settings": asdict(settings), "uncertainty": unc_rows,
        "wall_time_s": time.perf_counter() - started, "torch_threads": torch.get_num_threads(),
        "seed": seed})
    return finish(results, output, title="Digits: accuracy vs robustness over training",
                  summary=summary, verdicts=verdicts)


@single_threaded
def run(options: CaseOptions) -> CaseOutput:
    """``scirobust reproduce digits`` (one torch thread: see `torch_threads`)."""
    settings = DigitsSettings.quick() if options.quick else DigitsSettings.full()
    root = str(options.data_root) if options.data_root else os.environ.get("SCIROBUST_DATA_ROOT")
    if root:
        settings = replace(settings, data_root=root, max_train=2000 if options.quick else 10000)
    return run_digits(settings, Path(options.output), seed=options.seed)


CASE = Case(NAME, "Digits: test vs robust accuracy over training (6 attacks, pixels and "
            "features)", "001 §2.1, §3.3 (Figs. 2, 5); 004 Fig. 2", run)

__all__ = ["CASE", "DigitsSettings", "load_data", "make_network", "run", "run_digits"]
