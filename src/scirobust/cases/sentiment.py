"""Input–gradient cosine similarity of a word sentiment classifier (paper 001 §3.4, Fig. 6).

Data: a hand-written list of English words labelled positive / negative / neutral, shipped
with scirobust (``cases/data/sentiment_words.csv``; the paper mixed English and Chinese words).
Model: a learned embedding per word (``embedding``, sizes 2, 8 and 32) followed by fully
connected layers (``mlp``); all words are trained on (the paper reports accuracy on the words
themselves; the embedding size controls how well the network can fit them).

Per recorded epoch and word: the cosine between the word's embedding vector (the input of the
fully connected part) and the gradient of the cross-entropy loss with respect to it, computed
through `scirobust.layers.FeatureAttackModel` on the ``embedding`` layer and
`scirobust.uncertainty.input_gradient_cosine`; averaged over correctly and incorrectly
classified words, then over seeds (mean ± standard error over seeds).

The papers' expectation, stated before running: the cosine of correctly classified words tends
to 0; incorrectly classified words keep a larger |cosine|, more so for the more accurate
(larger-embedding) networks. The notes state, from the numbers, whether that is seen.

After training, the seed-0 network of each size is audited with a random-sign control and
FGSM on its embedding layer (`scirobust.layers.feature_audit`) at eps 0.01 (the embedding
attack size of paper 001 §2.2) and 0.1, in embedding units; these are the standard records.
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
from torch import Tensor, nn

from scirobust.cases import Case, CaseOptions, CaseOutput, single_threaded
from scirobust.errors import DataError
from scirobust.layers import FeatureAttackModel, feature_audit
from scirobust.results import Record, Results

NAME = "sentiment"
LABELS = ("negative", "neutral", "positive")


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
    audit_epsilons: tuple[float, ...] = (0.01, 0.1)

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
    if path is None:
        text = (resources.files("scirobust.cases") / "data" / "sentiment_words.csv").read_text(
            encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = list(csv.DictReader(lines))
    words, labels = [], []
    for row in rows:
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


def _cosines(model: WordClassifier, ids: Tensor, labels: Tensor) -> tuple[float, float, float,
                                                                         float, float]:
    """(accuracy, mean cos correct, mean cos incorrect, mean |cos| correct, |cos| incorrect)."""
    from scirobust.uncertainty import input_gradient_cosine

    wrapped = FeatureAttackModel(model, "embedding", ids[:8], check=False)
    emb = wrapped.features(ids)
    cos, correct = input_gradient_cosine(wrapped, emb, labels)
    cos = cos.double()

    def mean(t: Tensor) -> float:
        return float(t.mean()) if t.numel() else float("nan")

    return (float(correct.double().mean()), mean(cos[correct]), mean(cos[~correct]),
            mean(cos[correct].abs()), mean(cos[~correct].abs()))


SERIES = ("accuracy", "cos_correct", "cos_incorrect", "abs_cos_correct", "abs_cos_incorrect")


def _train_one(dim: int, seed: int, ids: Tensor, labels: Tensor, s: SentimentSettings
               ) -> tuple[WordClassifier, dict[int, tuple[float, ...]]]:
    torch.manual_seed(seed)
    model = WordClassifier(ids.shape[0], dim, s.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    gen = torch.Generator().manual_seed(seed)
    out: dict[int, tuple[float, ...]] = {}
    for epoch in range(1, s.epochs + 1):
        model.train()
        order = torch.randperm(ids.shape[0], generator=gen)
        for start in range(0, ids.shape[0], s.batch_size):
            idx = order[start:start + s.batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(model(ids[idx]), labels[idx]).backward()
            opt.step()
        if epoch == 1 or epoch % s.every == 0:
            model.eval()
            out[epoch] = _cosines(model, ids, labels)
    return model, out


def _seed_stats(values: list[float]) -> tuple[float, float, int]:
    arr = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan"), 0
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return float(arr.mean()), se, int(arr.size)


def _plot(rows: list[dict], sizes: tuple[int, ...], directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scirobust.report import COLORS, save_figure

    colors = [COLORS["blue"], COLORS["orange"], COLORS["vermillion"], COLORS["bluish_green"]]
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.3))
    for color, dim in zip(colors, sizes, strict=False):
        sub = sorted((r for r in rows if r["embedding_size"] == dim), key=lambda r: r["epoch"])
        ep = np.array([r["epoch"] for r in sub])
        for ax, key in ((axes[0], "accuracy"), (axes[1], "cos_correct"),
                        (axes[2], "cos_incorrect")):
            m = np.array([r[key] for r in sub], dtype=float)
            e = np.nan_to_num(np.array([r[key + "_se"] for r in sub], dtype=float))
            ax.plot(ep, m, color=color, lw=1.5, label=f"embedding size {dim}",
                    ls="-" if key != "cos_incorrect" else "--")
            ax.fill_between(ep, m - e, m + e, color=color, alpha=0.2, lw=0)
    titles = ("accuracy on the words", "cos(input, gradient): correct words",
              "cos(input, gradient): incorrect words")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (fraction correct)")
    axes[1].set_ylabel("cosine similarity (dimensionless)")
    axes[2].set_ylabel("cosine similarity (dimensionless)")
    for ax in axes[1:]:
        ax.axhline(0, color=COLORS["grey"], lw=0.8, ls=":")
        ax.set_xlim(axes[0].get_xlim())  # the same epochs in every panel
    axes[0].legend(fontsize=7)
    fig.suptitle("Word sentiment classifier: input–gradient cosine (paper 001 Fig. 6); "
                 "mean ± s.e. over seeds", fontsize=10)
    fig.tight_layout()
    save_figure(fig, directory, "fig6_cosine")
    plt.close(fig)


def run_sentiment(settings: SentimentSettings, output: Path, *, seed: int = 0,
                  quiet: bool = True) -> CaseOutput:
    """Train every (embedding size, seed), record cosines over epochs, audit, report."""
    from scirobust.report import write_report

    started = time.perf_counter()
    output = Path(output)
    words, labels = load_words()
    ids = torch.arange(len(words))
    per_size: dict[int, dict[int, list[tuple[float, ...]]]] = {}
    results = Results()
    for dim in settings.embedding_sizes:
        per_size[dim] = {}
        for k in range(settings.seeds):
            model, series = _train_one(dim, seed * 1000 + k, ids, labels, settings)
            for epoch, values in series.items():
                per_size[dim].setdefault(epoch, []).append(values)
            if k == 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = feature_audit(model, "embedding", ids, labels,
                                        epsilons=list(settings.audit_epsilons),
                                        attacks=["random_sign", "fgsm"], task="classification",
                                        metrics=["accuracy"], n_random=5, seed=seed, case=NAME,
                                        model_name=f"emb{dim}", keep_per_sample=False)
                results.extend(res)
                if not results.metadata:
                    results.metadata = dict(res.metadata)

    rows: list[dict] = []
    for dim, by_epoch in per_size.items():
        for epoch in sorted(by_epoch):
            row: dict = {"embedding_size": dim, "epoch": epoch}
            for j, key in enumerate(SERIES):
                mean, se, n = _seed_stats([v[j] for v in by_epoch[epoch]])
                row[key], row[key + "_se"], row[key + "_n_seeds"] = mean, se, n
            rows.append(row)
    # final-epoch numbers as records (model label emb<d>@epoch=<last>, attack "clean")
    for row in rows:
        if row["epoch"] != settings.epochs:
            continue
        for key in SERIES:
            results.records.append(Record(
                NAME, f"emb{row['embedding_size']}@epoch={row['epoch']}", "clean", 0.0,
                key, row[key], row[key + "_se"], row[key + "_n_seeds"]))

    tables = output / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    with (tables / "cosine_over_epochs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v)
                             for k, v in row.items()})
    fig_dir = output / "figures" / "case"
    _plot(rows, settings.embedding_sizes, fig_dir)
    (fig_dir / "fig6_cosine.txt").write_text(
        "Accuracy on the words and the mean cosine between each word's embedding and the "
        "gradient of its loss, for correctly (solid) and incorrectly (dashed) classified words, "
        f"over epochs, for embedding sizes {list(settings.embedding_sizes)}; mean ± s.e. over "
        f"{settings.seeds} seeds.", encoding="utf-8")

    # ------------------------------------------------------------ notes from the numbers
    notes = [f"{len(words)} words ({', '.join(f'{int((labels == i).sum())} {name}' for i, name in enumerate(LABELS))}); "  # noqa: E501
             f"{settings.seeds} seeds, {settings.epochs} epochs, Adam lr {settings.lr}."]
    last: dict[int, dict] = {}
    for dim in settings.embedding_sizes:
        sub = sorted((r for r in rows if r["embedding_size"] == dim), key=lambda r: r["epoch"])
        first, end = sub[0], sub[-1]
        last[dim] = end
        notes.append(
            f"emb{dim}: accuracy {first['accuracy']:.3f} → {end['accuracy']:.3f}; final mean "
            f"cosine correct {end['cos_correct']:+.4f} ± {end['cos_correct_se']:.4f}, "
            f"incorrect {end['cos_incorrect']:+.4f} ± {end['cos_incorrect_se']:.4f} "
            f"(|cos| {end['abs_cos_correct']:.4f} vs {end['abs_cos_incorrect']:.4f}; incorrect "
            f"words in {end['cos_incorrect_n_seeds']} of {settings.seeds} seeds).")
    # Over the recorded epochs at which some seed still has incorrect words: mean |cos|.
    gap: dict[int, tuple[float, float, int]] = {}
    for dim in settings.embedding_sizes:
        both = [r for r in rows if r["embedding_size"] == dim
                and not np.isnan(r["abs_cos_incorrect"]) and not np.isnan(r["abs_cos_correct"])]
        if both:
            gap[dim] = (float(np.mean([r["abs_cos_correct"] for r in both])),
                        float(np.mean([r["abs_cos_incorrect"] for r in both])), len(both))
    for dim, (c, i, n) in gap.items():
        notes.append(
            f"emb{dim}: averaged over the {n} recorded epochs with incorrect words, |cos| "
            f"correct {c:.4f} vs incorrect {i:.4f} — incorrect words "
            + ("are more aligned with their gradients, as paper 001 Fig. 6 expects."
               if i > c else "are NOT more aligned with their gradients than correct ones."))
    by_acc = sorted(gap, key=lambda d: last[d]["accuracy"])
    final_acc = [last[d]["accuracy"] for d in by_acc]
    if len(by_acc) >= 2 and max(final_acc) - min(final_acc) < 0.005:
        notes.append(
            f"All embedding sizes end at the same accuracy ({final_acc[0]:.3f}), so the size "
            "does not control accuracy here and the paper's comparison across accuracies "
            "cannot be made at the last epoch; see the curves for the training phase.")
    elif len(by_acc) >= 2:
        mono = all(gap[a][1] <= gap[b][1] for a, b in itertools.pairwise(by_acc))
        notes.append(
            "Ordered by final accuracy (" + ", ".join(
                f"emb{d} {last[d]['accuracy']:.3f}" for d in by_acc) + "), the epoch-averaged "
            "|cos| of incorrect words " + (
                "increases with accuracy, as paper 001 expects." if mono else
                "does NOT increase monotonically with accuracy."))
    corr_final = {d: last[d]["cos_correct"] for d in settings.embedding_sizes}
    notes.append(
        "Final mean cosine of correct words: " + ", ".join(
            f"emb{d} {v:+.3f}" for d, v in corr_final.items())
        + " (paper 001: tends to 0 for all models"
        + ("; seen" if all(abs(v) < 0.1 for v in corr_final.values()) else
           "; NOT seen here: |mean| ≥ 0.1 for at least one size") + ").")
    wall = time.perf_counter() - started
    notes.append(f"Wall time {wall:.0f} s; torch threads {torch.get_num_threads()}.")
    results.metadata.update({
        # records are per training epoch at one eps: the case figures tell the story
        "standard_figures": False,
        "description": (
            "Paper 001 Fig. 6: a word-level sentiment classifier (learned embedding + fully "
            "connected layers) with three embedding sizes; cosine similarity between each "
            "word's embedding and its loss gradient for correctly vs incorrectly classified "
            "words over epochs, averaged over seeds (tables/cosine_over_epochs.csv, "
            "figures/case/fig6_cosine). Records: final-epoch accuracy and cosines "
            "(model 'emb<d>@epoch=<last>', attack 'clean') and a random-sign vs FGSM audit "
            "of the embedding layer of the seed-0 network of each size (model 'emb<d>')."),
        "notes": notes,
        "settings": asdict(settings),
        "wall_time_s": wall,
        "seed": seed,
    })
    results.save(output)
    report = write_report(results, output, title="Sentiment words: input–gradient cosine")
    summary = [["embedding", "accuracy", "cos correct", "cos incorrect"]]
    for dim in settings.embedding_sizes:
        end = last[dim]
        summary.append([str(dim), f"{end['accuracy']:.3f}", f"{end['cos_correct']:+.4f}",
                        f"{end['cos_incorrect']:+.4f}"])
    return CaseOutput(results, Path(report), summary)


@single_threaded
def run(options: CaseOptions) -> CaseOutput:
    """Entry point of ``scirobust reproduce sentiment``: quick or full settings.

    Runs on one intra-op thread (restored afterwards): the networks are so small that
    thread hand-offs cost more than they save, especially on a shared machine.
    """
    return _run(options)


def _run(options: CaseOptions) -> CaseOutput:
    settings = SentimentSettings.quick() if options.quick else SentimentSettings.full()
    return run_sentiment(settings, options.output, seed=options.seed, quiet=options.quiet)


CASE = Case(
    name=NAME,
    title="Word sentiment classifier: input–gradient cosine over training",
    paper="001 §3.4 (Fig. 6)",
    run=run,
)

__all__ = ["CASE", "SentimentSettings", "WordClassifier", "load_words", "run",
           "run_sentiment"]
