"""Accuracy vs robustness over training on 8×8 digits (paper 001 Figs. 2 and 5; paper 004 Fig. 2).

Data: scikit-learn's bundled 8×8 digits (1797 images, no download), pixels scaled to [0, 1];
a stratified split of 360 test images. If ``data_root`` (or the environment variable
``SCIROBUST_DATA_ROOT``) holds MNIST (``MNIST/raw/*-ubyte[.gz]``) or CIFAR-10
(``cifar-10-batches-py/``) in the torchvision layout, that data set is used instead (CIFAR-10
with the papers' eps = 8/255); nothing is ever downloaded.

Networks: a 4-layer CNN (2 conv + 2 dense), a ResNet-style network (two residual blocks) and an
Inception-style network (one block of 1×1 / 3×3 / 5×5 / pool branches). Each is
``classifier(features(x))``; ``features`` is the layer attacked in the feature experiment.

Settings fixed from the papers before any run (SCIENCE.md §8): eps = 0.1 on [0, 1] pixels;
PGD with step 0.25·eps, 4 steps, random start (paper 004); one-step targeted (towards a fixed
random wrong class) and non-targeted FGSM with one full step; BIM and ILLC with the library
defaults (10 steps of 0.25·eps); SparseFool inside the same L-inf box. One random-sign control
of the same size. Feature attacks use the same eps = 0.1 in feature units (no bounds); the
features' standard deviation is reported so eps can be read against it. Δx, Δp per class of
the CNN (paper 004 Fig. 2) by scrambled-Sobol quasi-Monte Carlo over the pixel box [0, 1]^d
with jackknife standard errors (`scirobust.uncertainty.class_spreads`).
"""

from __future__ import annotations

import csv
import gzip
import os
import pickle
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from scirobust.budget import Budget
from scirobust.cases import Case, CaseOptions, CaseOutput, single_threaded
from scirobust.errors import ConfigError, DataError
from scirobust.results import Results
from scirobust.training import ENVELOPE, RobustnessTracker, fit, history

NAME = "digits"
ATTACK_LABELS = {
    "fgsm_targeted": "one-step targeted",
    "fgsm": "one-step non-targeted",
    "bim": "BIM",
    "illc": "ILLC",
    "pgd_linf": "PGD",
    "sparsefool": "SparseFool",
    "random_sign": "random sign (control)",
}


# --------------------------------------------------------------------------- settings
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
        """The 8×8-digits version of the published figure (20 epochs, 359 test images;
        5–10 min on one free CPU thread, ~17 min on a heavily shared one)."""
        return cls()

    def attacks(self) -> list[dict]:
        return [
            {"name": "random_sign"},
            {"name": "fgsm_targeted"},
            {"name": "fgsm"},
            {"name": "bim", "steps": self.iter_steps, "step_size": 0.25},
            {"name": "illc", "steps": self.iter_steps, "step_size": 0.25},
            {"name": "pgd_linf", "steps": self.pgd_steps, "step_size": self.pgd_step_size,
             "random_start": True},
            {"name": "sparsefool", "steps": self.sparsefool_iter},
        ]


# --------------------------------------------------------------------------- data
def _stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    test: list[int] = []
    classes = np.unique(y)
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        test.extend(idx[: round(n_test * len(idx) / len(y))].tolist())
    test_idx = np.array(sorted(test))
    train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
    return train_idx, test_idx


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(raw: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (raw / name).is_file():
            return raw / name
    return None


def load_mnist(root: str | Path) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """MNIST from a torchvision-layout folder (``root/MNIST/raw``), or None if absent."""
    raw = Path(root) / "MNIST" / "raw"
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = [_find(raw, s) for s in stems]
    if any(p is None for p in paths):
        return None
    xtr, ytr, xte, yte = (_read_idx(p) for p in paths if p is not None)
    return (torch.tensor(xtr, dtype=torch.float32)[:, None] / 255.0, torch.tensor(ytr).long(),
            torch.tensor(xte, dtype=torch.float32)[:, None] / 255.0, torch.tensor(yte).long())


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and NumPy arrays (the CIFAR-10 python batches)."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"CIFAR-10 batch refers to {module}.{name}; only NumPy arrays are "
                        "accepted (is this the original cifar-10-python archive?).")


def load_cifar10(root: str | Path) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (torchvision layout), or None if absent.

    The batches are pickles; they are read with an unpickler that builds NumPy arrays only.
    """
    folder = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all((folder / n).is_file() for n in names):
        return None
    parts = []
    for name in names:
        with (folder / name).open("rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="latin1").load()
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        parts.append((torch.tensor(data, dtype=torch.float32) / 255.0,
                      torch.tensor(np.asarray(batch["labels"])).long()))
    xtr = torch.cat([p[0] for p in parts[:5]])
    ytr = torch.cat([p[1] for p in parts[:5]])
    return xtr, ytr, parts[5][0], parts[5][1]


def load_data(settings: DigitsSettings, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """(x_train, y_train, x_test, y_test, description); images (N, C, H, W) in [0, 1].

    With ``data_root``: MNIST if present there, else CIFAR-10 if present, else the bundled
    8×8 digits. `run_digits` then uses the papers' eps 8/255 for CIFAR-10.
    """
    root = settings.data_root or os.environ.get("SCIROBUST_DATA_ROOT")
    if root:
        for loader, desc in ((load_mnist, "MNIST (28×28)"), (load_cifar10, "CIFAR-10 (32×32)")):
            found = loader(root)
            if found is None:
                continue
            xtr, ytr, xte, yte = found
            gen = torch.Generator().manual_seed(seed)
            if settings.max_train is not None:
                keep = torch.randperm(xtr.shape[0], generator=gen)[: settings.max_train]
                xtr, ytr = xtr[keep], ytr[keep]
            pick = torch.randperm(xte.shape[0], generator=gen)[: settings.n_test]
            return xtr, ytr, xte[pick], yte[pick], f"{desc} from {root}"
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "The digits case needs scikit-learn for its bundled 8×8 digits "
            "(pip install scikit-learn; nothing is downloaded), or MNIST files in a local "
            "folder given as data_root / SCIROBUST_DATA_ROOT."
        ) from exc
    digits = load_digits()
    x = digits.images.astype(np.float32) / 16.0
    y = digits.target.astype(np.int64)
    train_idx, test_idx = _stratified_split(y, 360, seed)
    test_idx = test_idx[np.random.default_rng(seed + 1).permutation(len(test_idx))]
    test_idx = np.sort(test_idx[: settings.n_test])
    xt = torch.from_numpy(x)[:, None]
    yt = torch.from_numpy(y)
    return (xt[train_idx], yt[train_idx], xt[test_idx], yt[test_idx],
            "scikit-learn 8×8 digits (1797 images, pixels/16)")


# --------------------------------------------------------------------------- networks
class _Net(nn.Module):
    """``classifier(features(x))``: ``features`` is the attacked feature layer."""

    def __init__(self, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


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
        self.b3 = nn.Sequential(nn.Conv2d(cin, branch, 1), nn.ReLU(),
                                nn.Conv2d(branch, branch, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(cin, branch, 1), nn.ReLU(),
                                nn.Conv2d(branch, branch, 5, padding=2))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(cin, branch, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1))


def make_network(name: str, in_channels: int = 1, n_classes: int = 10) -> nn.Module:
    """``cnn`` (4 layers), ``resnet`` (2 residual blocks) or ``inception`` (1 block)."""
    if name == "cnn":
        features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )
        classifier = nn.Sequential(nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, n_classes))
    elif name == "resnet":
        features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(),
            _ResBlock(16), _ResBlock(16), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        classifier = nn.Linear(16 * 4, n_classes)
    elif name == "inception":
        features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(),
            _Inception(16, 8), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        classifier = nn.Linear(32 * 4, n_classes)
    else:
        raise ConfigError(f"Unknown network {name!r}; use cnn, resnet or inception.")
    return _Net(features, classifier)


# --------------------------------------------------------------------------- analysis
def _trend(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (per epoch)."""
    if len(values) < 2:
        return float("nan")
    t = np.arange(len(values), dtype=float)
    return float(np.polyfit(t, np.asarray(values, dtype=float), 1)[0])


def _spearman(a: list[float], b: list[float]) -> float:
    if len(a) < 3:
        return float("nan")
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _trend_rows(results: Results, labels: list[str], eps: float) -> list[dict]:
    rows = []
    for label in labels:
        clean = history(results, "clean", model_name=label)
        env = history(results, ENVELOPE, epsilon=eps, model_name=label)
        if not clean or not env:
            continue
        cv, ev = [v for _, v in clean], [v for _, v in env]
        # After the initial learning "kick" (paper 004): from the first epoch whose clean
        # accuracy reaches 95 % of its maximum. Added after the first full run, which showed
        # the envelope rising with the clean accuracy during the first epochs.
        k = next(i for i, v in enumerate(cv) if v >= 0.95 * max(cv))
        rows.append({
            "model": label, "epochs": f"{clean[0][0]}-{clean[-1][0]}",
            "clean_first": cv[0], "clean_last": cv[-1], "clean_max": max(cv),
            "envelope_first": ev[0], "envelope_last": ev[-1],
            "envelope_slope_per_epoch": _trend(ev), "clean_slope_per_epoch": _trend(cv),
            "spearman_clean_vs_envelope": _spearman(cv, ev),
            "tradeoff_seen": bool(cv[-1] > cv[0] and ev[-1] < ev[0]),
            "kick_epoch": clean[k][0], "clean_at_kick": cv[k], "envelope_at_kick": ev[k],
            "envelope_slope_after_kick": _trend(ev[k:]),
            "clean_slope_after_kick": _trend(cv[k:]),
            "tradeoff_after_kick": bool(len(cv) - k >= 3 and _trend(cv[k:]) >= 0
                                        and _trend(ev[k:]) < 0),
        })
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v)
                             for k, v in row.items()})


# --------------------------------------------------------------------------- figures
def _plot_tracking(results: Results, labels: list[str], eps: float, title: str,
                   directory: Path, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from scirobust.report import COLORS, save_figure

    colors = {
        "fgsm_targeted": COLORS["orange"], "fgsm": COLORS["vermillion"],
        "bim": COLORS["sky_blue"], "illc": COLORS["reddish_purple"],
        "pgd_linf": COLORS["bluish_green"], "sparsefool": COLORS["yellow"],
        "random_sign": COLORS["blue"],
    }
    fig, axes = plt.subplots(1, len(labels), figsize=(max(3.6 * len(labels), 8.0), 3.1),
                             squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        clean = history(results, "clean", model_name=label)
        if clean:
            ax.plot(*zip(*clean, strict=True), color=COLORS["clean"], lw=2.2, marker="o", ms=3,
                    label="test accuracy (clean)")
        for attack, color in colors.items():
            h = history(results, attack, epsilon=eps, model_name=label)
            if h:
                ls = ":" if attack == "random_sign" else "-"
                ax.plot(*zip(*h, strict=True), color=color, lw=1.2, ls=ls, marker=".",
                        label=ATTACK_LABELS[attack])
        env = history(results, ENVELOPE, epsilon=eps, model_name=label)
        if env:
            ax.plot(*zip(*env, strict=True), color=COLORS["grey"], lw=3, ls="--", alpha=0.8,
                    label="envelope (min over attacks)")
        ax.set_title(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (fraction correct)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=5, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    save_figure(fig, directory, stem)
    plt.close(fig)


def _plot_uncertainty(rows: list[dict], directory: Path, stem: str, network: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scirobust.report import COLORS, save_figure

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    palette = [COLORS[c] for c in ("black", "orange", "sky_blue", "bluish_green", "yellow",
                                   "blue", "grey", "reddish_purple", "vermillion", "black")]
    classes = sorted({r["class"] for r in rows})
    for k in classes:
        sub = sorted((r for r in rows if r["class"] == k), key=lambda r: r["epoch"])
        ep = [r["epoch"] for r in sub]
        style = {"lw": 2.4 if k == 8 else 1.0, "color": palette[k % len(palette)],
                 "ls": "-" if k < 5 else "--"}
        for ax, key in zip(axes, ("delta_x", "delta_p", "product"), strict=True):
            ax.errorbar(ep, [r[key] for r in sub], yerr=[r[key + "_stderr"] for r in sub],
                        label=f"class {k}", capsize=2, **style)
    for ax, name in zip(axes, ("Δx (pixel units)", "Δp (1/pixel units)", "Δx·Δp"),
                        strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"Δx and Δp per class over training ({network}; class 8 thick; "
                 "QMC ±1 s.e.)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, directory, stem)
    plt.close(fig)


# --------------------------------------------------------------------------- run
def run_digits(settings: DigitsSettings, output: Path, *, seed: int = 0,
               quiet: bool = True) -> CaseOutput:
    """Train every network, track (pixel and feature) robust accuracy and Δx/Δp per epoch."""
    from scirobust.report import write_report
    from scirobust.uncertainty import Box, class_spreads

    started = time.perf_counter()
    output = Path(output)
    xtr, ytr, xte, yte, data_desc = load_data(settings, seed)
    if data_desc.startswith("CIFAR") and settings.eps == DigitsSettings.eps:
        settings = replace(settings, eps=8 / 255)  # the papers' CIFAR-10 eps (SCIENCE.md §8)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    in_channels = xtr.shape[1]
    pixel_std = float(xte.double().std())
    results = Results()
    pixel_labels: list[str] = []
    feature_labels: list[str] = []
    feature_scales: dict[str, list[float]] = {}
    unc_rows: list[dict] = []
    attacks = settings.attacks()
    timings: dict[str, float] = {}

    for i, net in enumerate(settings.networks):
        t0 = time.perf_counter()
        torch.manual_seed(seed * 1000 + i)
        model = make_network(net, in_channels, n_classes)
        pixel = RobustnessTracker(
            xte, yte, attacks=attacks, epsilons=[settings.eps],
            budget=Budget(bounds=(0.0, 1.0)), model_name=net, case=NAME, seed=seed,
            batch_size=512,
        )
        trackers = [pixel]
        if net in settings.feature_networks:
            trackers.append(RobustnessTracker(
                xte, yte, attacks=attacks, epsilons=[settings.eps], layer="features",
                model_name=f"{net}:features", case=NAME, seed=seed, batch_size=512,
            ))
            if settings.feature_relative:
                # Secondary series, added after the first full run: the same eps *relative
                # to the spread* as on pixels (eps/std(pixels) feature standard deviations).
                trackers.append(RobustnessTracker(
                    xte, yte, attacks=attacks, epsilons=[settings.eps], layer="features",
                    feature_scale="std", budget=Budget(eps=1.0 / pixel_std),
                    model_name=f"{net}:features-rel", case=NAME, seed=seed, batch_size=512,
                ))
        domain = Box(torch.zeros(xte.shape[1:]), torch.ones(xte.shape[1:]))

        def on_epoch(m: nn.Module, epoch: int, net: str = net, trackers=trackers,
                     domain=domain) -> None:
            for tr in trackers:
                tr.record(m, epoch)
            if net == settings.uncertainty_network and epoch % settings.uncertainty_every == 0:
                gen = torch.Generator().manual_seed(seed * 7919 + epoch)
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    spreads = class_spreads(m, list(range(n_classes)), domain, method="qmc",
                                            n=settings.uncertainty_n, batch_size=512,
                                            generator=gen)
                for k, s in spreads.items():
                    unc_rows.append({
                        "network": net, "epoch": epoch, "class": k,
                        "delta_x": s.delta_x, "delta_x_stderr": s.delta_x_stderr,
                        "delta_p": s.delta_p, "delta_p_stderr": s.delta_p_stderr,
                        "product": s.product, "product_stderr": s.product_stderr,
                        "n_evaluations": s.n_evaluations,
                    })

        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        fit(model, opt, (xtr, ytr), epochs=settings.epochs, batch_size=settings.batch_size,
            generator=torch.Generator().manual_seed(seed + i), on_epoch=on_epoch)
        for tr in trackers:
            tr_res = tr.results
            results.extend(tr_res)
            if tr.layer is not None:
                feature_labels.append(tr.model_name)
                feature_scales[tr.model_name] = [
                    e["features"]["std"] for e in tr_res.metadata["tracking"]["records"]]
            else:
                pixel_labels.append(tr.model_name)
            if not results.metadata:
                results.metadata = {k: v for k, v in tr_res.metadata.items() if k != "tracking"}
        timings[net] = time.perf_counter() - t0

    # ------------------------------------------------------------ tables and trends
    fig_dir = output / "figures" / "case"
    tables = output / "tables"
    pixel_trends = _trend_rows(results, pixel_labels, settings.eps)
    feature_trends = _trend_rows(results, feature_labels, settings.eps)
    _write_csv(tables / "trends_pixels.csv", pixel_trends)
    if feature_trends:
        _write_csv(tables / "trends_features.csv", feature_trends)
    acc_rows = [
        {"model": r.model, "attack": r.attack, "epsilon": r.epsilon, "accuracy": r.value,
         "stderr": r.stderr, "n": r.n}
        for r in results.records if r.metric == "accuracy"
    ]
    _write_csv(tables / "accuracy_over_epochs.csv", acc_rows)
    if unc_rows:
        _write_csv(tables / "uncertainty_per_class.csv", unc_rows)

    _plot_tracking(results, pixel_labels, settings.eps,
                   f"Test and robust accuracy over training, attacks on pixels (ε = "
                   f"{settings.eps}) — paper 001 Fig. 2", fig_dir, "fig2_pixels")
    (fig_dir / "fig2_pixels.txt").write_text(
        "Test accuracy (black) and robust accuracy under six gradient attacks and a random-"
        "sign control of the same size, after every epoch; grey dashed: envelope (lowest "
        "robust accuracy over the six attacks).", encoding="utf-8")
    if feature_labels:
        _plot_tracking(results, feature_labels, settings.eps,
                       f"Attacks on the feature layer (ε = {settings.eps} in feature units) — "
                       "paper 001 Fig. 5", fig_dir, "fig5_features")
        (fig_dir / "fig5_features.txt").write_text(
            "As Fig. 2 but every attack perturbs the output of the network's feature extractor "
            "(the input of its classifier); the input images are untouched.", encoding="utf-8")
    if unc_rows:
        _plot_uncertainty(unc_rows, fig_dir, "fig_uncertainty", settings.uncertainty_network)
        (fig_dir / "fig_uncertainty.txt").write_text(
            "Δx, Δp and Δx·Δp of the neural packet of every class over training (paper 004 "
            "Fig. 2), QMC over the pixel box with jackknife standard errors.", encoding="utf-8")

    # ------------------------------------------------------------ notes computed from numbers
    notes = [f"Data: {data_desc}; {xtr.shape[0]} training and {xte.shape[0]} test images."]
    for row in pixel_trends + feature_trends:
        verdict = ("shows the papers' trade-off (clean accuracy up, envelope down)"
                   if row["tradeoff_seen"] else
                   "does NOT show the papers' trade-off between first and last epoch")
        notes.append(
            f"{row['model']}: clean accuracy {row['clean_first']:.3f} → {row['clean_last']:.3f}, "
            f"robust-accuracy envelope {row['envelope_first']:.3f} → {row['envelope_last']:.3f} "
            f"(slope {row['envelope_slope_per_epoch']:+.4f}/epoch) over epochs "
            f"{row['epochs']}: {verdict}. After the learning kick (epoch {row['kick_epoch']}, "
            f"clean {row['clean_at_kick']:.3f}): envelope {row['envelope_at_kick']:.3f} → "
            f"{row['envelope_last']:.3f}, slopes clean {row['clean_slope_after_kick']:+.4f} and "
            f"envelope {row['envelope_slope_after_kick']:+.4f} per epoch: "
            + ("trade-off seen (clean not falling, envelope falling)."
               if row["tradeoff_after_kick"] else "no trade-off (envelope not falling, or too "
               "few epochs)."))
    for flabel in feature_labels:
        base = flabel.split(":")[0]
        pix = [v for _, v in history(results, ENVELOPE, epsilon=settings.eps, model_name=base)]
        fea = [v for _, v in history(results, ENVELOPE, epsilon=settings.eps,
                                     model_name=flabel)]
        if pix and fea and flabel.endswith("-rel"):
            stronger = np.mean(fea) < np.mean(pix)
            notes.append(
                f"{base}: with eps of the same size relative to the spread (eps/std(pixels) = "
                f"{settings.eps / pixel_std:.3f} feature standard deviations; secondary series "
                f"'{flabel}', added after the first full run), mean envelope over epochs "
                f"{np.mean(pix):.3f} on pixels vs {np.mean(fea):.3f} on features — feature "
                f"attacks {'hurt more, as in paper 001 Fig. 5' if stronger else 'do NOT hurt more'}"
                f"; last epoch {pix[-1]:.3f} vs {fea[-1]:.3f}.")
        elif pix and fea:
            stronger = np.mean(fea) < np.mean(pix)
            notes.append(
                f"{base}: mean envelope over epochs {np.mean(pix):.3f} on pixels vs "
                f"{np.mean(fea):.3f} on features — feature attacks "
                f"{'hurt more, as in paper 001 Fig. 5' if stronger else 'do NOT hurt more'}. "
                f"Feature std per epoch: "
                f"{', '.join(f'{s:.3g}' for s in feature_scales.get(flabel, []))} "
                f"(eps = {settings.eps} in these units; pixels span [0, 1]). Relative to the "
                f"spread, eps is {settings.eps / pixel_std:.0%} of the test pixels' std but "
                f"{settings.eps / feature_scales[flabel][-1]:.1%} of the final features' std, "
                "so at equal eps the features are perturbed much less in relative terms.")
    if unc_rows:
        epochs = sorted({r["epoch"] for r in unc_rows})
        mean_dx = [np.mean([r["delta_x"] for r in unc_rows if r["epoch"] == e]) for e in epochs]
        mean_dp = [np.mean([r["delta_p"] for r in unc_rows if r["epoch"] == e]) for e in epochs]
        r8 = sorted((r for r in unc_rows if r["class"] == 8), key=lambda r: r["epoch"])
        dx_down, dp_up = mean_dx[-1] < mean_dx[0], mean_dp[-1] > mean_dp[0]
        notes.append(
            f"Δx/Δp ({settings.uncertainty_network}, mean over classes): Δx "
            f"{mean_dx[0]:.4f} → {mean_dx[-1]:.4f} ({'down' if dx_down else 'NOT down'}), Δp "
            f"{mean_dp[0]:.3f} → {mean_dp[-1]:.3f} ({'up' if dp_up else 'NOT up'}); paper 004 "
            f"expects Δx down and Δp up. Class 8: Δx {r8[0]['delta_x']:.4f} → "
            f"{r8[-1]['delta_x']:.4f}, Δp {r8[0]['delta_p']:.3f} → {r8[-1]['delta_p']:.3f}. "
            f"For reference, a flat packet on the box gives Δx = √(d/12) = "
            f"{np.sqrt(xte[0].numel() / 12):.4f}."
            if r8 else "")
    wall = time.perf_counter() - started
    notes.append(f"Wall time {wall:.0f} s (" + ", ".join(
        f"{k} {v:.0f} s" for k, v in timings.items()) + f"); torch threads "
        f"{torch.get_num_threads()}.")
    results.metadata.update({
        # records are per training epoch at one eps: the case figures tell the story
        "standard_figures": False,
        "description": (
            "Paper 001 Fig. 2/5 and paper 004 Fig. 2 on 8×8 digits: test accuracy, robust "
            "accuracy under six gradient attacks (one-step targeted, one-step non-targeted, "
            "BIM, ILLC, PGD, SparseFool) and a random-sign control of the same size, and their "
            f"envelope after every epoch at eps = {settings.eps}; the same with attacks on the "
            "feature layer; Δx and Δp per class over epochs. Model labels are "
            "'<network>@epoch=<k>' (pixels) and '<network>:features@epoch=<k>'."),
        "notes": [n for n in notes if n],
        "settings": asdict(settings),
        "uncertainty": unc_rows,
        "wall_time_s": wall,
        "seed": seed,
    })
    results.save(output)
    report = write_report(results, output, title="Digits: accuracy vs robustness over training")
    summary = [["model", "clean first→last", "envelope first→last", "trade-off seen"]]
    for row in pixel_trends + feature_trends:
        summary.append([row["model"], f"{row['clean_first']:.3f}→{row['clean_last']:.3f}",
                        f"{row['envelope_first']:.3f}→{row['envelope_last']:.3f}",
                        str(row["tradeoff_seen"])])
    return CaseOutput(results, Path(report), summary)


@single_threaded
def run(options: CaseOptions) -> CaseOutput:
    """Entry point of ``scirobust reproduce digits``: quick or full settings.

    Runs on one intra-op thread (restored afterwards): the networks are so small that
    thread hand-offs cost more than they save, especially on a shared machine.
    """
    return _run(options)


def _run(options: CaseOptions) -> CaseOutput:
    settings = DigitsSettings.quick() if options.quick else DigitsSettings.full()
    root = str(options.data_root) if options.data_root else os.environ.get("SCIROBUST_DATA_ROOT")
    if root:
        settings = replace(settings, data_root=root, max_train=10000 if not options.quick
                           else 2000)
    return run_digits(settings, options.output, seed=options.seed, quiet=options.quiet)


CASE = Case(
    name=NAME,
    title="Digits: test vs robust accuracy over training (6 attacks, pixels and features)",
    paper="001 §2.1, §3.3 (Figs. 2, 5); 004 Fig. 2",
    run=run,
)

__all__ = ["CASE", "DigitsSettings", "load_data", "make_network", "run", "run_digits"]

