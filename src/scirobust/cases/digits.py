"""Accuracy vs robustness over training on 8×8 digits (paper 001 Figs. 2 and 5; paper 004
Figs. 1 and 2).

Data: scikit-learn's bundled 8×8 digits (1797 images), pixels scaled to [0, 1], a stratified split
of 360 test images; MNIST (``MNIST/raw/*-ubyte[.gz]``) or CIFAR-10 (``cifar-10-batches-py/``, with
the papers' eps = 8/255) in the torchvision layout under ``data_root`` or ``SCIROBUST_DATA_ROOT``
replaces it (nothing is ever downloaded). Fixed from the papers before any run (SCIENCE.md §8;
`DigitsSettings.sweep`): eps = 0.1 on [0, 1] pixels; PGD 4 × 0.25·eps with random start (paper
004); targeted (to a fixed random wrong class) and non-targeted FGSM; BIM and ILLC 10 × 0.25·eps;
SparseFool in the L-inf box; a random-sign control. Feature attacks: the same eps in feature units
(no bounds). Δx, Δp per class (paper 004 Fig. 2): scrambled-Sobol QMC over the pixel box and over
the feature box (each feature's range on the training images; the feature layer is the input of
the classifier), jackknife standard errors (`_digits_stats`). t-SNE pictures of paper 004 Fig. 1
with class 8's effective radius: `_digits_tsne`.

Seeds (issue #15.4, fixed before the runs): full mode trains ``seeds`` = 3 seeds ``seed,
seed + 1, seed + 2`` (each its own data split, initialisation, batch order and attack draws).
Records of model ``<label>_seed<S>`` are one seed (seed ``seed`` identical to a one-seed run);
``<label>`` is their mean (``spread`` = SD, ``stderr`` = SD/√seeds, ``n`` = seeds; the mean
envelope is the mean of the seeds' envelopes). A one-seed run (quick mode) names its records
``<label>`` as before. The trade-off statistics (`_digits_stats.trend`) are judged on the mean
curves and quoted per seed (mean ± s.e.) beside them.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import sklearn  # noqa: F401  (the `cases` extra: checked here even when submodules are cached)
import torch
from torch import nn

from scirobust.budget import Budget
from scirobust.cases import Case, CaseOptions, CaseOutput, finish, single_threaded
from scirobust.cases import _digits_tsne as tsne
from scirobust.cases._digits_data import load_data, make_network
from scirobust.cases._digits_plots import plot_levels, plot_tracking, plot_uncertainty
from scirobust.cases._digits_stats import (
    FEATURE_QMC_OFFSET,
    feature_box,
    packet_rows,
    seed_label,
    seed_means,
    seed_spread,
    trend,
    uncertainty_summary,
)
from scirobust.cases._digits_verdicts import verdicts
from scirobust.errors import ConfigError
from scirobust.report import save_case_figure, write_case_table
from scirobust.results import Results
from scirobust.sweep import AttackRun, Sweep
from scirobust.training import RobustnessTracker, fit
from scirobust.uncertainty import INTERPRETATION_NOTES, Box

NAME = "digits"


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
    seeds: int = 3  # seeds seed, seed + 1, ...: every curve is their mean ± s.e.
    uncertainty_networks: tuple[str, ...] = ("cnn", "resnet", "inception")
    uncertainty_levels: tuple[str, ...] = ("pixels", "features")
    uncertainty_n: int = 4096  # QMC points per epoch and level (all classes share them)
    uncertainty_every: int = 1
    tsne: bool = True  # paper 004 Fig. 1 (first seed only)
    tsne_network: str = "cnn"
    tsne_class: int = 8  # the paper's class
    tsne_epochs: tuple[int, ...] | None = None  # default: 1, the middle and the last epoch
    data_root: str | None = None
    max_train: int | None = None  # cap on training images (MNIST is large)

    @classmethod
    def quick(cls) -> DigitsSettings:
        """About 40 s CPU on one thread (1 seed, 5 epochs, 100 test images, Δx/Δp and t-SNE of
        the CNN only)."""
        return cls(epochs=5, n_test=100, uncertainty_n=512, seeds=1,
                   uncertainty_networks=("cnn",))

    @classmethod
    def full(cls) -> DigitsSettings:
        """The published figures on 8×8 digits: 3 seeds × 20 epochs, 359 test images."""
        return cls()

    def snapshot_epochs(self) -> tuple[int, ...]:
        """Epochs of the t-SNE snapshots (paper: 1, 21 and 41 of 50)."""
        default = (1, (self.epochs + 1) // 2, self.epochs)
        return tuple(sorted(set(self.tsne_epochs or default)))

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


def _train_seed(settings: DigitsSettings, seed: int, state: dict) -> None:
    """Train every network on ``seed``'s split; add records, Δx/Δp rows and (first seed) t-SNE
    snapshots to ``state``."""
    xtr, ytr, xte, yte, state["data_desc"] = load_data(settings, seed)
    eps, sweep, n_classes = settings.eps, settings.sweep(seed), state["n_classes"]
    n_seeds, pixel_std = settings.seeds, float(xte.double().std())
    state.setdefault("pixel_std", pixel_std)
    pixels = Box(torch.zeros(xte.shape[1:]), torch.ones(xte.shape[1:]))
    for i, net in enumerate(settings.networks):
        torch.manual_seed(seed * 1000 + i)
        model = make_network(net, xtr.shape[1], n_classes)
        feature: list[RobustnessTracker] = []
        if net in settings.feature_networks:
            # "-rel" (added after the first full run): eps/std(pixels) feature std deviations.
            feature = [RobustnessTracker(
                xte, yte, sweep.replace(budget=budget), layer="features", feature_scale=scale,
                model_name=seed_label(f"{net}:{label}", seed, n_seeds), case=NAME)
                for label, budget, scale in (
                    ("features", Budget(), None),
                    ("features-rel", Budget(eps=1.0 / pixel_std), "std"),
                ) if scale is None or settings.feature_relative]
            state["feature"].setdefault(net, []).extend(feature)
            state["feature_labels"].update(dict.fromkeys(
                t.model_name.removesuffix(f"_seed{seed}") for t in feature))
        trackers = [RobustnessTracker(xte, yte, sweep, model_name=seed_label(net, seed, n_seeds),
                                      case=NAME), *feature]
        snap = (settings.tsne and net == settings.tsne_network
                and seed == state["seeds"][0])

        def on_epoch(m: nn.Module, epoch: int, net: str = net, snap: bool = snap,
                     trackers: list[RobustnessTracker] = trackers) -> None:
            for tracker in trackers:
                tracker.record(m, epoch)
            if net in settings.uncertainty_networks and epoch % settings.uncertainty_every == 0:
                for level in settings.uncertainty_levels:
                    box = pixels if level == "pixels" else feature_box(m, xtr)
                    state["unc"].extend(packet_rows(
                        m, level, box, n_classes, settings.uncertainty_n,
                        seed * 7919 + epoch + (FEATURE_QMC_OFFSET if level != "pixels" else 0),
                        {"network": net, "level": level, "seed": seed, "epoch": epoch}))
            if snap and epoch in settings.snapshot_epochs():
                state["snaps"][epoch] = tsne.snapshot(
                    m, xte, yte, eps=eps, steps=settings.pgd_steps,
                    step_size=settings.pgd_step_size, seed=seed * 31 + epoch)
                state["tsne_data"] = (xte, yte)

        fit(model, torch.optim.Adam(model.parameters(), lr=settings.lr), (xtr, ytr),
            epochs=settings.epochs, batch_size=settings.batch_size,
            generator=torch.Generator().manual_seed(seed + i), on_epoch=on_epoch)
        results: Results = state["results"]
        for tracker in trackers:
            results.extend(tracker.results)
            results.metadata = results.metadata or {
                k: v for k, v in tracker.results.metadata.items() if k != "tracking"}
    state["sizes"] = (len(xtr), len(xte), xte[0].numel())


def _train_all(settings: DigitsSettings, seed: int) -> tuple[DigitsSettings, dict]:
    """The settings as run (the papers' CIFAR-10 eps on CIFAR data at the default eps) and the
    training state after every network on every seed (see `_train_seed`)."""
    _, ytr, _, yte, data_desc = load_data(settings, seed)
    if data_desc.startswith("CIFAR") and settings.eps == DigitsSettings.eps:
        settings = replace(settings, eps=8 / 255)  # the papers' CIFAR-10 eps (SCIENCE.md §8)
    seeds = [seed + s for s in range(settings.seeds)]
    state: dict = {"results": Results(), "feature": {}, "feature_labels": {}, "unc": [],
                   "snaps": {}, "seeds": seeds,
                   "n_classes": int(max(ytr.max(), yte.max())) + 1}
    for s in seeds:
        _train_seed(settings, s, state)
    return settings, state


def _write_tracking(output: Path, settings: DigitsSettings, seed: int, results: Results,
                    feature_labels: list[str], trends: dict[str, dict],
                    per_seed: dict[str, list[dict]]) -> None:
    """Write the accuracy trend tables and the tracking figures on pixels (paper 001 Fig. 2)
    and on the feature layer (Fig. 5)."""
    eps, sweep, n = settings.eps, settings.sweep(seed), settings.seeds
    for name, group, stem, title, caption in (
        ("pixels", list(settings.networks), "fig2_pixels", "Test and robust accuracy over training"
         f", attacks on pixels (ε = {eps}) — paper 001 Fig. 2", "Test accuracy (black) and robust "
         "accuracy under six gradient attacks and a random-sign control of the same size, after "
         "every epoch; grey dashed: envelope (lowest robust accuracy over the six attacks)."),
        ("features", feature_labels, "fig5_features", f"Attacks on the feature layer (ε = {eps} in"
         " feature units) — paper 001 Fig. 5", "As Fig. 2 but every attack perturbs the output of "
         "the network's feature extractor (the input of its classifier); the input images are "
         "untouched.")):
        if group:
            rows = [trends[m] for m in group] + ([t for m in group for t in per_seed[m]]
                                                 if n > 1 else [])
            write_case_table(output / "tables" / f"trends_{name}.csv", list(rows[0]),
                             [list(r.values()) for r in rows])
            save_case_figure(plot_tracking(results, group, sweep, title + (
                f" (mean of {n} seeds ± 1 s.e.)" if n > 1 else ""), n > 1),
                             output, stem, caption + (
                                 f" Mean of {n} seeds; shaded: ±1 s.e. over seeds of the test "
                                 "accuracy and the envelope." if n > 1 else ""))


def _write_uncertainty(output: Path, unc_rows: list[dict], n: int) -> list[dict]:
    """Write the Δx/Δp tables and figures (paper 004 Fig. 2) of ``n`` seeds; returns the
    summary rows (none without Δx/Δp rows)."""
    if not unc_rows:
        return []
    band = f" Mean of {n} seeds, ±1 s.e. band." if n > 1 else ""
    unc_summary = uncertainty_summary(unc_rows)
    write_case_table(output / "tables" / "uncertainty_per_class.csv", list(unc_rows[0]),
                     [list(r.values()) for r in unc_rows])
    write_case_table(output / "tables" / "uncertainty_summary.csv", list(unc_summary[0]),
                     [list(r.values()) for r in unc_summary])
    pixel_net = next((r["network"] for r in unc_rows if r["level"] == "pixels"), None)
    if pixel_net is not None:
        save_case_figure(
            plot_uncertainty(unc_rows, pixel_net), output, "fig_uncertainty",
            "Δx, Δp and Δx·Δp of the neural packet of every class over training (paper 004 "
            "Fig. 2), QMC over the pixel box with jackknife standard errors." + band)
    unc_nets = list(dict.fromkeys(r["network"] for r in unc_rows))
    save_case_figure(
        plot_levels(unc_rows, unc_nets), output, "fig2_uncertainty_levels",
        "Paper 004 Fig. 2 (b, d, f, h, j, l): class-mean Δx, Δp and Δx·Δp over training "
        "relative to the first epoch, on the pixels (box [0, 1]) and on the feature layer "
        "(box: each feature's range over the training images at that epoch)." + band)
    return unc_summary


def _write_tsne(output: Path, settings: DigitsSettings, state: dict, seed: int) -> list[dict]:
    """Write the t-SNE figure (paper 004 Fig. 1) and radius table of the first seed's
    snapshots; returns the radius rows (none without snapshots)."""
    if not state["snaps"]:
        return []
    x_t, y_t = state["tsne_data"]
    emb, emb_adv = tsne.embed(x_t, state["snaps"], seed)
    radii = tsne.radius_rows(x_t, y_t, state["snaps"], settings.tsne_class)
    write_case_table(output / "tables" / "tsne_radius.csv", list(radii[0]),
                     [list(r.values()) for r in radii])
    save_case_figure(tsne.plot_tsne(emb, emb_adv, y_t, state["snaps"], radii,
                                    settings.tsne_class, settings.tsne_network),
                     output, "fig1_tsne", tsne.CAPTION.format(
                         network=settings.tsne_network, k=settings.tsne_class, seed=seed))
    return radii


def _summary(trends: dict[str, dict], per_seed: dict[str, list[dict]],
             n: int) -> list[list[str]]:
    """Report summary rows: clean and envelope accuracy first→last epoch per model (seed mean
    ± s.e. over ``n`` seeds) and whether the trade-off is seen."""
    def fmt(m: str, first: str, last: str) -> str:  # seed mean, ± s.e. over seeds
        def pm(key: str) -> str:
            return f"±{seed_spread(per_seed[m], key)[1]:.3f}" if n > 1 else ""
        return f"{trends[m][first]:.3f}{pm(first)}→{trends[m][last]:.3f}{pm(last)}"

    return [["model", "clean first→last", "envelope first→last", "trade-off seen"]] + [
        [m, fmt(m, "clean_first", "clean_last"), fmt(m, "envelope_first", "envelope_last"),
         str(t["tradeoff_seen"])] for m, t in trends.items()]


def _notes(settings: DigitsSettings, state: dict, unc_rows: list[dict],
           radii: list[dict]) -> list[str]:
    """Report notes: the data, the feature-level Δx/Δp box, t-SNE and how to read Δx/Δp."""
    n_train, n_test, _ = state["sizes"]
    notes = [f"Data: {state['data_desc']}; {n_train} train, {n_test} test images"
             + (f" (last seed; seeds {state['seeds']}, each its own split)."
                if settings.seeds > 1 else ".")]
    if unc_rows:
        notes.append("Feature level of Δx/Δp: the packet is the classifier's cross-entropy as a "
                     "function of the feature vector (output of `features`, the input of "
                     "`classifier`; paper 004 does not name its layer); box: each feature's "
                     "observed min/max over the training images at that epoch, features "
                     "constant there held fixed; QMC points as on pixels.")
    if radii:
        notes.append(tsne.NOTE.format(k=settings.tsne_class))
    notes.extend(INTERPRETATION_NOTES)
    return notes


def run_digits(settings: DigitsSettings, output: Path, *, seed: int = 0) -> CaseOutput:
    """Train every network on every seed, track (pixel and feature) robust accuracy and Δx/Δp
    (pixel and feature level) per epoch; t-SNE pictures of the first seed."""
    started, output = time.perf_counter(), Path(output)
    if settings.seeds < 1:
        raise ConfigError(f"DigitsSettings.seeds must be >= 1; got {settings.seeds}.")
    settings, state = _train_all(settings, seed)
    results, feature, unc_rows, seeds = (state["results"], state["feature"], state["unc"],
                                         state["seeds"])
    eps, n = settings.eps, settings.seeds
    feature_labels = list(state["feature_labels"])
    labels = [*settings.networks, *feature_labels]
    if n > 1:  # the mean over seeds under the plain label, before the per-seed records
        results.records[:0] = seed_means(
            results.records, {m: [seed_label(m, s, n) for s in seeds] for m in labels})
    trends = {m: trend(results, m, eps) for m in labels}
    per_seed = {m: [trend(results, seed_label(m, s, n), eps) for s in seeds] for m in labels}

    _write_tracking(output, settings, seed, results, feature_labels, trends, per_seed)
    unc_summary = _write_uncertainty(output, unc_rows, n)
    radii = _write_tsne(output, settings, state, seed)

    summary = _summary(trends, per_seed, n)
    notes = _notes(settings, state, unc_rows, radii)
    _, n_test, d_pixels = state["sizes"]
    verdict_list = verdicts(settings=settings, trends=trends, per_seed=per_seed,
                            feature=feature, unc_rows=unc_rows, unc_summary=unc_summary,
                            radii=radii, notes=notes, pixel_std=state["pixel_std"],
                            data_desc=state["data_desc"], n_test=n_test, d_pixels=d_pixels)
    results.metadata.update({
        "standard_figures": False,  # one eps, records per epoch: the case figures tell it
        "description": "Paper 001 Fig. 2/5 and paper 004 Figs. 1/2 on 8×8 digits: after every "
        f"epoch (step), test accuracy and robust accuracy under six gradient attacks at eps = {eps}"
        ", a random-sign control and their envelope, on the pixels (model '<network>') and on the "
        "feature layer ('<network>:features', '-rel'); Δx and Δp per class on pixels and "
        "features" + (f"; mean of {n} seeds ('<model>_seed<S>': one seed)" if n > 1 else "")
        + ".", "notes": notes, "settings": asdict(settings), "uncertainty": unc_rows,
        "uncertainty_summary": unc_summary, "tsne_radius": radii, "seeds": seeds,
        "wall_time_s": time.perf_counter() - started, "torch_threads": torch.get_num_threads(),
        "seed": seed})
    return finish(results, output, title="Digits: accuracy vs robustness over training",
                  summary=summary, verdicts=verdict_list)


@single_threaded
def run(options: CaseOptions) -> CaseOutput:
    """``scirobust reproduce digits`` (one torch thread: see `torch_threads`)."""
    settings = DigitsSettings.quick() if options.quick else DigitsSettings.full()
    root = str(options.data_root) if options.data_root else os.environ.get("SCIROBUST_DATA_ROOT")
    if root:
        settings = replace(settings, data_root=root, max_train=2000 if options.quick else 10000)
    return run_digits(settings, Path(options.output), seed=options.seed)


CASE = Case(NAME, "Digits: test vs robust accuracy over training (6 attacks, pixels and "
            "features)", "001 §2.1, §3.3 (Figs. 2, 5); 004 Figs. 1, 2", run)

__all__ = ["CASE", "DigitsSettings", "load_data", "make_network", "run", "run_digits"]
