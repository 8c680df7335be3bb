"""Input–gradient cosine similarity of a word sentiment classifier (paper 001 §3.4, Fig. 6).

Data: a hand-written list of English words labelled positive / negative / neutral, shipped
with scirobust (``cases/data/sentiment_words.csv``; the paper mixed English and Chinese words).
Model: a learned embedding per word (``embedding``, sizes 2, 8 and 32) followed by fully
connected layers (``mlp``), trained on all words (the paper reports accuracy on the words).

Per recorded epoch and word: the cosine between the word's embedding (the input of the fully
connected part) and the gradient of its cross-entropy loss with respect to it
(`scirobust.uncertainty.input_gradient_cosine` on the ``embedding`` layer); averaged over
correctly and incorrectly classified words, then over seeds (mean ± standard error).
Expected, stated before running: the cosine of correct words tends to 0; incorrect words keep
a larger |cosine|, more so for the more accurate (larger-embedding) networks.

Records: final-epoch accuracy and cosines (``kind="clean"``, model ``emb<d>``, ``step`` =
epoch, value = mean over seeds, stderr over seeds, n = seeds); and a random-sign control and
FGSM on the embedding layer of each size's seed-0 network (`scirobust.layers.feature_audit`,
no step) at eps 0.01 (paper 001 §2.2) and 0.1 embedding units.
"""

from __future__ import annotations

import csv
import itertools
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from scirobust.cases import (
    Case,
    CaseOptions,
    CaseOutput,
    Verdict,
    finish,
    outcome,
    single_threaded,
)
from scirobust.errors import DataError
from scirobust.layers import FeatureAttackModel, feature_audit
from scirobust.report import COLORS, save_case_figure, write_case_table
from scirobust.results import Record, Results
from scirobust.sweep import Sweep
from scirobust.training import fit
from scirobust.uncertainty import input_gradient_cosine

NAME = "sentiment"
LABELS = ("negative", "neutral", "positive")
PAPER = (  # paper 001 §3.4 and Fig. 6 (curves only: no number given; 10 seeds, 1000 epochs)
    "the similarity between correct inputs and their gradients tends to zero for all models "
    "(Fig. 6; no number given)",
    "inputs not identified correctly share more features with their gradients than correct "
    "ones, whose cosine tends to zero (§3.4, Fig. 6; no number given)",
    "more accurate networks (accuracy set by the embedding size) show a more pronounced "
    "similarity between incorrect inputs and their gradients (Fig. 6; no number given)")
SERIES = ("accuracy", "cos_correct", "cos_incorrect", "abs_cos_correct", "abs_cos_incorrect")


@dataclass(frozen=True)
class SentimentSettings:
    """Size of the run; the optimiser and architecture are fixed before any run."""

    embedding_sizes: tuple[int, ...] = (2, 8, 32)
    seeds: int = 10
    epochs: int = 1000
    every: int = 10  # record the cosines every k epochs (and at epoch 1)
    hidden: int = 32
    batch_size: int = 128
    lr: float = 1e-3
    audit_epsilons: tuple[float, ...] = (0.01, 0.1)  # embedding units

    @classmethod
    def quick(cls) -> SentimentSettings:
        """Under a minute on one CPU thread."""
        return cls(seeds=2, epochs=100, every=5)

    @classmethod
    def full(cls) -> SentimentSettings:
        """The paper's 1000 epochs and 10 seeds (~10 min on one CPU thread)."""
        return cls()


def load_words(path: str | Path | None = None) -> tuple[list[str], Tensor]:
    """Words and integer labels (0 negative, 1 neutral, 2 positive) of the shipped list."""
    source = resources.files("scirobust.cases") / "data" / "sentiment_words.csv" \
        if path is None else Path(path)
    lines = [line for line in source.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    words, labels = [], []
    for row in csv.DictReader(lines):
        if row.get("label") not in LABELS:
            raise DataError(f"Word list row {row} has a label outside {LABELS}.")
        words.append(row["word"])
        labels.append(LABELS.index(row["label"]))
    if len(set(words)) != len(words):
        raise DataError("The word list contains duplicate words.")
    return words, torch.tensor(labels)


class WordClassifier(nn.Module):
    """``mlp(embedding(ids))``: one learned vector per word, then fully connected layers."""

    def __init__(self, n_words: int, dim: int, hidden: int = 32, n_classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_words, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, ids: Tensor) -> Tensor:
        return self.mlp(self.embedding(ids))


def _cosines(model: WordClassifier, ids: Tensor, labels: Tensor) -> tuple[float, ...]:
    """The `SERIES` of one network: accuracy, mean cosine of correct and of incorrect words,
    mean |cosine| of correct and of incorrect words (NaN where there are no such words)."""
    wrapped = FeatureAttackModel(model, "embedding", ids[:8], check=False)
    cos, correct = input_gradient_cosine(wrapped, wrapped.features(ids), labels)
    cos = cos.double()

    def mean(t: Tensor) -> float:
        return float(t.mean()) if t.numel() else float("nan")

    return (float(correct.double().mean()), mean(cos[correct]), mean(cos[~correct]),
            mean(cos[correct].abs()), mean(cos[~correct].abs()))


def _seed_stats(values: list[float]) -> tuple[float, float, int]:
    """Mean, standard error and count over seeds of the finite values."""
    arr = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan"), 0
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return float(arr.mean()), se, int(arr.size)


def _plot(rows: list[dict], sizes: tuple[int, ...]) -> Figure:
    colors = [COLORS["blue"], COLORS["orange"], COLORS["vermillion"], COLORS["bluish_green"]]
    fig = Figure(figsize=(11.5, 3.3), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)  # the same epochs in every panel
    for color, dim in zip(colors, sizes, strict=False):
        sub = sorted((r for r in rows if r["embedding_size"] == dim), key=lambda r: r["epoch"])
        for ax, key in zip(axes, ("accuracy", "cos_correct", "cos_incorrect"), strict=True):
            m = np.array([r[key] for r in sub], dtype=float)
            e = np.nan_to_num(np.array([r[key + "_se"] for r in sub], dtype=float))
            ax.plot([r["epoch"] for r in sub], m, color=color, lw=1.5,
                    label=f"embedding size {dim}", ls="--" if key == "cos_incorrect" else "-")
            ax.fill_between([r["epoch"] for r in sub], m - e, m + e, color=color, alpha=0.2,
                            lw=0)
    for ax, title in zip(axes, ("accuracy on the words", "cos(input, gradient): correct words",
                                "cos(input, gradient): incorrect words"), strict=True):
        ax.set(title=title, xlabel="epoch", ylabel="cosine similarity (dimensionless)")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    for ax in axes[1:]:
        ax.axhline(0, color=COLORS["grey"], lw=0.8, ls=":")
    axes[0].set_ylabel("accuracy (fraction correct)")
    axes[0].legend(fontsize=7)
    fig.suptitle("Word sentiment classifier: input–gradient cosine (paper 001 Fig. 6); "
                 "mean ± s.e. over seeds", fontsize=10)
    return fig


def run_sentiment(settings: SentimentSettings, output: Path, *, seed: int = 0,
                  quiet: bool = True) -> CaseOutput:
    """Train every (embedding size, seed), record cosines over epochs, audit, report."""
    started, output = time.perf_counter(), Path(output)
    words, labels = load_words()
    ids = torch.arange(len(words))
    sweep = Sweep(epsilons=settings.audit_epsilons, attacks=("random_sign", "fgsm"),
                  metrics=("accuracy",), n_random=5, seed=seed)
    results = Results()
    by_epoch: dict[tuple[int, int], list[tuple[float, ...]]] = {}  # (size, epoch) -> per seed
    for dim in settings.embedding_sizes:
        for k in range(settings.seeds):
            torch.manual_seed(seed * 1000 + k)
            model = WordClassifier(len(words), dim, settings.hidden)

            def on_epoch(m: nn.Module, epoch: int, dim: int = dim) -> None:
                if epoch == 1 or epoch % settings.every == 0:
                    by_epoch.setdefault((dim, epoch), []).append(_cosines(m, ids, labels))

            fit(model, torch.optim.Adam(model.parameters(), lr=settings.lr), (ids, labels),
                epochs=settings.epochs, batch_size=settings.batch_size, on_epoch=on_epoch,
                generator=torch.Generator().manual_seed(seed * 1000 + k))
            if k == 0:
                with warnings.catch_warnings():  # the audit's checks on a tiny embedding
                    warnings.simplefilter("ignore")
                    res = feature_audit(model, "embedding", ids, labels, sweep,
                                        task="classification", case=NAME, model_name=f"emb{dim}",
                                        keep_per_sample=False)
                results.extend(res)
                results.metadata = results.metadata or dict(res.metadata)

    rows: list[dict] = []
    for (dim, epoch), values in by_epoch.items():  # sizes in order, epochs ascending
        row: dict = {"embedding_size": dim, "epoch": epoch}
        for j, key in enumerate(SERIES):
            row[key], row[key + "_se"], row[key + "_n_seeds"] = _seed_stats([v[j] for v in values])
        rows.append(row)
    last = {r["embedding_size"]: r for r in rows}  # the last recorded epoch of each size
    results.extend(Record(NAME, f"emb{dim}", "clean", 0.0, key, row[key], row[key + "_se"],
                          row[key + "_n_seeds"], kind="clean", step=row["epoch"])
                   for dim, row in last.items() for key in SERIES)

    write_case_table(output / "tables" / "cosine_over_epochs.csv", list(rows[0]),
                     [list(r.values()) for r in rows])
    save_case_figure(
        _plot(rows, settings.embedding_sizes), output, "fig6_cosine",
        "Accuracy on the words and the mean cosine between each word's embedding and the "
        "gradient of its loss, for correctly (solid) and incorrectly (dashed) classified words, "
        f"over epochs, for embedding sizes {list(settings.embedding_sizes)}; mean ± s.e. over "
        f"{settings.seeds} seeds.")

    # ------------------------------------------------------------ notes and verdicts
    counts = ", ".join(f"{int((labels == i).sum())} {name}" for i, name in enumerate(LABELS))
    notes = [f"{len(words)} words ({counts}); {settings.seeds} seeds, {settings.epochs} "
             f"epochs, Adam lr {settings.lr}; curves per epoch in tables/cosine_over_epochs.csv."]
    # |cos| averaged over the recorded epochs at which some seed still has incorrect words
    gap = {}
    for dim in settings.embedding_sizes:
        both = [r for r in rows if r["embedding_size"] == dim
                and not np.isnan(r["abs_cos_incorrect"]) and not np.isnan(r["abs_cos_correct"])]
        if both:
            gap[dim] = (float(np.mean([r["abs_cos_correct"] for r in both])),
                        float(np.mean([r["abs_cos_incorrect"] for r in both])), len(both))
    final = {d: last[d]["cos_correct"] for d in settings.embedding_sizes}
    stand_in = (f"a shipped list of {len(words)} labelled English words, embedding sizes "
                f"{list(settings.embedding_sizes)}, {settings.seeds} seeds × {settings.epochs} "
                "epochs; the paper: English and Chinese words, three embedding sizes (not given), "
                "10 seeds × 1000 epochs")
    verdicts = [
        Verdict("The mean cosine of correctly classified words tends to 0 over training.",
                "|final mean cosine of correct words| < 0.1 for every embedding size",
                outcome([abs(v) < 0.1 for v in final.values()]),
                ", ".join(f"emb{d} {v:+.3f}" for d, v in final.items()) + ".", PAPER[0],
                "cosine (dimensionless) of correct words at the last epoch, mean ± s.e. over "
                "seeds: " + ", ".join(
                    f"emb{d} {v:+.3f} ± {last[d]['cos_correct_se']:.3f} (epoch "
                    f"{last[d]['epoch']})" for d, v in final.items()), stand_in),
        Verdict("Incorrectly classified words keep a larger |cosine| than correct ones.",
                "|cos| of incorrect words > that of correct words, averaged over the recorded "
                "epochs with incorrect words, per embedding size",
                outcome([i > c for c, i, _ in gap.values()]), "; ".join(
                    f"emb{d}: {c:.4f} correct vs {i:.4f} incorrect over {n} epochs"
                    for d, (c, i, n) in gap.items()) + ".", PAPER[1],
                "mean |cos| (dimensionless) over the recorded epochs with incorrect words, correct "
                "vs incorrect: " + "; ".join(f"emb{d} {c:.3f} vs {i:.3f}"
                                             for d, (c, i, _) in gap.items()), stand_in),
    ]
    by_acc = sorted(gap, key=lambda d: last[d]["accuracy"])
    accuracies = ", ".join(f"emb{d} {last[d]['accuracy']:.3f}" for d in by_acc)
    if len(by_acc) >= 2 and np.ptp([last[d]["accuracy"] for d in by_acc]) < 0.005:
        notes.append(f"All embedding sizes end at the same accuracy ({accuracies}), so the "
                     "paper's comparison across accuracies cannot be made at the last epoch.")
    elif len(by_acc) >= 2:
        verdicts.append(Verdict(
            "The |cosine| of incorrect words is larger for more accurate networks.",
            "epoch-averaged |cos| of incorrect words increases monotonically with final accuracy",
            outcome([all(gap[a][1] <= gap[b][1] for a, b in itertools.pairwise(by_acc))]),
            f"Ordered by final accuracy ({accuracies}): "
            + ", ".join(f"{gap[d][1]:.4f}" for d in by_acc) + ".", PAPER[2],
            "final accuracy → epoch-averaged |cos| (dimensionless) of incorrect words: "
            + ", ".join(f"emb{d} {last[d]['accuracy']:.1%} → {gap[d][1]:.3f}" for d in by_acc),
            stand_in))
    wall = time.perf_counter() - started
    notes.append(f"Wall time {wall:.0f} s; torch threads {torch.get_num_threads()}.")
    results.metadata.update({
        "standard_figures": False,  # records per epoch and two eps: the case figure tells it
        "step_label": "epoch",
        "description": (
            "Paper 001 Fig. 6: cosine between each word's embedding and its loss gradient for "
            "correctly vs incorrectly classified words over epochs, for three embedding sizes, "
            "mean over seeds (tables/cosine_over_epochs.csv, figures/case/fig6_cosine). "
            "Records: final-epoch accuracy and cosines (model 'emb<d>', kind clean, step = "
            "epoch) and a random-sign vs FGSM audit of the embedding layer of each size's "
            "seed-0 network (model 'emb<d>', no step)."),
        "notes": notes, "settings": asdict(settings), "wall_time_s": wall, "seed": seed})
    summary = [["embedding", "accuracy", "cos correct ± s.e.", "cos incorrect ± s.e.",
                "seeds with incorrect words"]] + [
        [str(d), f"{r['accuracy']:.3f}", f"{r['cos_correct']:+.4f} ± {r['cos_correct_se']:.4f}",
         f"{r['cos_incorrect']:+.4f} ± {r['cos_incorrect_se']:.4f}",
         f"{r['cos_incorrect_n_seeds']} of {settings.seeds}"] for d, r in last.items()]
    return finish(results, output, title="Sentiment words: input–gradient cosine",
                  summary=summary, verdicts=verdicts)


@single_threaded
def run(options: CaseOptions) -> CaseOutput:
    """``scirobust reproduce sentiment`` on one intra-op thread (tiny networks)."""
    settings = SentimentSettings.quick() if options.quick else SentimentSettings.full()
    return run_sentiment(settings, options.output, seed=options.seed, quiet=options.quiet)


CASE = Case(NAME, "Word sentiment classifier: input–gradient cosine over training",
            "001 §3.4 (Fig. 6)", run)

__all__ = ["CASE", "SentimentSettings", "WordClassifier", "load_words", "run",
           "run_sentiment"]
