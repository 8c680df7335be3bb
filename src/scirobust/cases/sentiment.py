"""Input–gradient cosine similarity of a word sentiment classifier (paper 001 §3.4, Fig. 6).

Data: a hand-written list of English words labelled positive / negative / neutral, shipped
with scirobust (``cases/data/sentiment_words.csv``; the paper mixed English and Chinese words).
Model: one vector per word (``embedding``, sizes 2, 4 and 8) followed by fully connected
layers (``mlp``, two hidden layers of 32 ReLU units), trained on all words with Adam (lr 1e-3,
batch 128) for the paper's 1000 epochs; accuracy is on the words (as in the paper).

Capacity rule (fixed from accuracy alone, before any cosine was looked at): the word vectors
are a fixed random encoding (N(0, 1), seeded), not trained; only the fully connected layers
learn (``train_embedding=False``); hidden width 32 and 1000 epochs stay as before. The paper
trained "with different embedding sizes to control the model accuracy" and draws incorrect-
input curves for each of its three networks; a trained per-word vector memorises any labelling
at every size (earlier runs: 100 % at sizes 2, 8 and 32), so size controls nothing, while the
number of fixed random points a network can separate grows with their dimension. 2-seed,
1000-epoch accuracy-only pilot: trained vectors 100 % at sizes 2, 8, 32; Adam weight decay
1e-2–1e-1 jumps between 100 % and the majority class (40 %) rather than grading accuracy;
fixed vectors ~50 % (size 2), ~73 % (4), ~99 % (8), 100 % (16, 32). Sizes 2, 4, 8 are the
powers of two below 100 %, so every network keeps incorrect words to compare.

Two readings of the paper's "correct input vs correct gradient, incorrect input vs incorrect
gradient", both computed on the input of the fully connected part (the word vector ``e``)
with `scirobust.uncertainty.input_gradient_cosine` at every recorded epoch, averaged over
words, then over seeds (mean ± standard error):

- (A) ``cosine_correct_words`` / ``cosine_incorrect_words``: cos(e, ∇_e CE(f(e), y_true))
  averaged over the correctly / incorrectly classified words (NaN where a seed has none);
- (B) ``cosine_true_label_gradient`` / ``cosine_wrong_label_gradient``: over all words,
  cos(e, ∇_e CE(f(e), y_true)) vs cos(e, ∇_e CE(f(e), y_wrong)) averaged over both wrong
  labels ("incorrect gradient" = the gradient of the loss for a wrong label).

``abs_`` in front of a name: the same mean of |cosine|. Expected, stated before running: the
correct-label cosine tends to 0; incorrect words (A) or wrong-label gradients (B) keep a larger
|cosine|, more so for the more accurate (larger-embedding) networks.

Records: final-epoch accuracy and cosines (``kind="clean"``, model ``emb<d>``, ``step`` =
epoch, value = mean over seeds, stderr over seeds, n = seeds); and a random-sign control and
FGSM on the embedding layer of each size's seed-0 network (`scirobust.layers.feature_audit`,
no step) at eps 0.01 (paper 001 §2.2) and 0.1 embedding units.
"""

from __future__ import annotations

import csv
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from scirobust.cases import Case, CaseOptions, CaseOutput, finish, single_threaded
from scirobust.cases._sentiment_verdicts import (
    A,
    B,
    build_notes,
    build_verdicts,
    epoch_averaged_abs_cosines,
    stand_in_text,
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
SERIES = ("accuracy", *A, *(f"abs_{k}" for k in A), *B, *(f"abs_{k}" for k in B))
DESCRIPTION = (
    "Paper 001 Fig. 6: cosine between each word's vector and a loss gradient over "
    "epochs for three embedding sizes, mean over seeds, in two readings: (A) "
    f"{A[0]} / {A[1]} (true-label gradient, split by the prediction); (B) {B[0]} / "
    f"{B[1]} (all words, gradient of the true vs a wrong label); abs_ = mean |cos| "
    "(tables/cosine_over_epochs.csv, figures/case/fig6_cosine). Records: final-epoch "
    "accuracy and cosines (model 'emb<d>', kind clean, step = epoch) and a random-sign "
    "vs FGSM audit of the embedding layer of each size's seed-0 network (no step).")


@dataclass(frozen=True)
class SentimentSettings:
    """Size of the run; optimiser, architecture and capacity rule are fixed before any run."""

    embedding_sizes: tuple[int, ...] = (2, 4, 8)
    seeds: int = 10
    epochs: int = 1000
    every: int = 10  # record the cosines every k epochs (and at epoch 1)
    hidden: int = 32
    batch_size: int = 128
    lr: float = 1e-3
    train_embedding: bool = False  # capacity rule: fixed random word vectors (module docstring)
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
    """``mlp(embedding(ids))``: one vector per word, then fully connected layers."""

    def __init__(self, n_words: int, dim: int, hidden: int = 32, n_classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_words, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, ids: Tensor) -> Tensor:
        return self.mlp(self.embedding(ids))


def _cosines(model: WordClassifier, ids: Tensor, labels: Tensor) -> tuple[float, ...]:
    """The `SERIES` of one network (NaN where there are no words of a kind)."""
    wrapped = FeatureAttackModel(model, "embedding", ids[:8], check=False)
    feats = wrapped.features(ids)
    cos, correct = input_gradient_cosine(wrapped, feats, labels)
    n_classes = len(LABELS)  # reading B: the gradient of the loss for each wrong label
    wrong = torch.cat([(labels + s) % n_classes for s in range(1, n_classes)])
    cos_wrong, _ = input_gradient_cosine(wrapped, feats.repeat(n_classes - 1, 1), wrong)
    cos, cos_wrong = cos.double(), cos_wrong.double()

    def mean(t: Tensor) -> float:
        return float(t.mean()) if t.numel() else float("nan")

    return (float(correct.double().mean()), mean(cos[correct]), mean(cos[~correct]),
            mean(cos[correct].abs()), mean(cos[~correct].abs()),
            mean(cos), mean(cos_wrong), mean(cos.abs()), mean(cos_wrong.abs()))


def _seed_stats(values: list[float]) -> tuple[float, float, int]:
    """Mean, standard error and count over seeds of the finite values."""
    arr = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan"), 0
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return float(arr.mean()), se, int(arr.size)


def _plot(rows: list[dict], sizes: tuple[int, ...]) -> Figure:
    colors = [COLORS["blue"], COLORS["orange"], COLORS["vermillion"], COLORS["bluish_green"]]
    fig = Figure(figsize=(14, 3.4), layout="constrained")
    axes = fig.subplots(1, 4, sharex=True)  # the same epochs in every panel
    panels = (("accuracy",), A[:1], A[1:], B)
    for color, dim in zip(colors, sizes, strict=False):
        sub = sorted((r for r in rows if r["embedding_size"] == dim), key=lambda r: r["epoch"])
        epochs = [r["epoch"] for r in sub]
        for ax, keys in zip(axes, panels, strict=True):
            for key in keys:
                m = np.array([r[key] for r in sub], dtype=float)
                e = np.nan_to_num(np.array([r[key + "_se"] for r in sub], dtype=float))
                label = (f"emb{dim}: final accuracy {sub[-1]['accuracy']:.3f}"
                         if key == "accuracy" else None)
                ax.plot(epochs, m, color=color, lw=1.4, label=label,
                        ls="--" if key in (A[1], B[1]) else "-")
                ax.fill_between(epochs, m - e, m + e, color=color, alpha=0.2, lw=0)
    titles = ("accuracy on the words", "(A) cos(e, ∇e loss): correct words",
              "(A) cos(e, ∇e loss): incorrect words",
              "(B) true label (solid) vs wrong label (dashed)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set(title=title, xlabel="epoch", ylabel="cosine similarity (dimensionless)")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    for ax in axes[1:]:
        ax.axhline(0, color=COLORS["grey"], lw=0.8, ls=":")
    axes[0].set_ylabel("accuracy (fraction correct)")
    axes[0].legend(fontsize=7)
    fig.suptitle("Word sentiment classifier: cosine between the word vector e and the loss "
                 "gradient (paper 001 Fig. 6), two readings; mean ± s.e. over seeds",
                 fontsize=10)
    return fig


def _train_network(settings: SentimentSettings, ids: Tensor, labels: Tensor, dim: int,
                   network_seed: int) -> tuple[WordClassifier, dict[int, tuple[float, ...]]]:
    """A network with word vectors of size ``dim`` trained from ``network_seed``, and its
    `SERIES` (dimensionless) at every recorded epoch."""
    torch.manual_seed(network_seed)
    model = WordClassifier(len(ids), dim, settings.hidden)
    model.embedding.weight.requires_grad_(settings.train_embedding)
    curve: dict[int, tuple[float, ...]] = {}

    def on_epoch(m: nn.Module, epoch: int) -> None:
        if epoch == 1 or epoch % settings.every == 0:
            curve[epoch] = _cosines(m, ids, labels)

    params = [p for p in model.parameters() if p.requires_grad]
    fit(model, torch.optim.Adam(params, lr=settings.lr), (ids, labels),
        epochs=settings.epochs, batch_size=settings.batch_size, on_epoch=on_epoch,
        generator=torch.Generator().manual_seed(network_seed))
    return model, curve


def _train_and_audit(settings: SentimentSettings, labels: Tensor, seed: int,
                     ) -> tuple[dict[tuple[int, int], list[tuple[float, ...]]], Results]:
    """Train every (embedding size, seed): the `SERIES` of each seed per (size, epoch), sizes
    in order and epochs ascending, and the random-sign vs FGSM audit of the embedding layer
    of each size's seed-0 network."""
    ids = torch.arange(len(labels))
    sweep = Sweep(epsilons=settings.audit_epsilons, attacks=("random_sign", "fgsm"),
                  metrics=("accuracy",), n_random=5, seed=seed)
    results = Results()
    by_epoch: dict[tuple[int, int], list[tuple[float, ...]]] = {}
    for dim in settings.embedding_sizes:
        for k in range(settings.seeds):
            model, curve = _train_network(settings, ids, labels, dim, seed * 1000 + k)
            for epoch, values in curve.items():
                by_epoch.setdefault((dim, epoch), []).append(values)
            if k == 0:
                with warnings.catch_warnings():  # the audit's checks on a tiny embedding
                    warnings.simplefilter("ignore")
                    res = feature_audit(model, "embedding", ids, labels, sweep,
                                        task="classification", case=NAME, model_name=f"emb{dim}",
                                        keep_per_sample=False)
                results.extend(res)
                results.metadata = results.metadata or dict(res.metadata)
    return by_epoch, results


def _curve_rows(by_epoch: dict[tuple[int, int], list[tuple[float, ...]]]) -> list[dict]:
    """One row per (size, epoch): every `SERIES` as mean, standard error and count over seeds."""
    rows: list[dict] = []
    for (dim, epoch), values in by_epoch.items():
        row: dict = {"embedding_size": dim, "epoch": epoch}
        for j, key in enumerate(SERIES):
            row[key], row[key + "_se"], row[key + "_n_seeds"] = _seed_stats([v[j] for v in values])
        rows.append(row)
    return rows


def _write_curves(rows: list[dict], settings: SentimentSettings, output: Path) -> None:
    """Write the curves over epochs as ``tables/cosine_over_epochs.csv`` and the Fig. 6 figure."""
    write_case_table(output / "tables" / "cosine_over_epochs.csv", list(rows[0]),
                     [list(r.values()) for r in rows])
    save_case_figure(
        _plot(rows, settings.embedding_sizes), output, "fig6_cosine",
        "Accuracy on the words and the mean cosine between each word's vector e and a loss "
        "gradient over epochs: (A) the true-label gradient of correctly (solid) and incorrectly "
        "(dashed) classified words; (B) all words, the true-label (solid) vs wrong-label "
        f"(dashed) gradient; embedding sizes {list(settings.embedding_sizes)}; mean ± s.e. "
        f"over {settings.seeds} seeds.")


def _summary(last: dict[int, dict], seeds: int) -> list[list[str]]:
    """The report's summary table: final accuracy and cosines (mean ± s.e.) per size."""
    return [["embedding", "accuracy", "(A) correct words", "(A) incorrect words",
             "(B) true label", "(B) wrong label", "seeds with incorrect words"]] + [
        [str(d), f"{r['accuracy']:.3f}"]
        + [f"{r[k]:+.4f} ± {r[k + '_se']:.4f}" for k in (*A, *B)]
        + [f"{r[A[1] + '_n_seeds']} of {seeds}"] for d, r in last.items()]


def run_sentiment(settings: SentimentSettings, output: Path, *, seed: int = 0,
                  quiet: bool = True) -> CaseOutput:
    """Train every (embedding size, seed), record cosines over epochs, audit, report."""
    started, output = time.perf_counter(), Path(output)
    words, labels = load_words()
    by_epoch, results = _train_and_audit(settings, labels, seed)
    rows = _curve_rows(by_epoch)
    last = {r["embedding_size"]: r for r in rows}  # the last recorded epoch of each size
    results.extend(Record(NAME, f"emb{dim}", "clean", 0.0, key, row[key], row[key + "_se"],
                          row[key + "_n_seeds"], kind="clean", step=row["epoch"])
                   for dim, row in last.items() for key in SERIES)
    _write_curves(rows, settings, output)

    sizes = settings.embedding_sizes
    gap = epoch_averaged_abs_cosines(rows, sizes)
    verdicts = build_verdicts(last, gap, sizes, stand_in_text(len(words), settings))
    notes = build_notes(settings, labels, LABELS, last)
    wall = time.perf_counter() - started
    notes.append(f"Wall time {wall:.0f} s; torch threads {torch.get_num_threads()}.")
    results.metadata.update({
        "standard_figures": False,  # records per epoch and two eps: the case figure tells it
        "step_label": "epoch", "description": DESCRIPTION,
        "notes": notes, "settings": asdict(settings), "wall_time_s": wall, "seed": seed})
    return finish(results, output, title="Sentiment words: input–gradient cosine",
                  summary=_summary(last, settings.seeds), verdicts=verdicts)


@single_threaded
def run(options: CaseOptions) -> CaseOutput:
    """``scirobust reproduce sentiment`` on one intra-op thread (tiny networks)."""
    settings = SentimentSettings.quick() if options.quick else SentimentSettings.full()
    return run_sentiment(settings, options.output, seed=options.seed, quiet=options.quiet)


CASE = Case(NAME, "Word sentiment classifier: input–gradient cosine over training",
            "001 §3.4 (Fig. 6)", run)

__all__ = ["CASE", "SentimentSettings", "WordClassifier", "load_words", "run",
           "run_sentiment"]
