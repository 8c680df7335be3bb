"""The sentiment case (paper 001 Fig. 6) at a tiny size, and its shipped word list."""

from __future__ import annotations

from dataclasses import replace

import torch

from scirobust import cases
from scirobust.cases.sentiment import SentimentSettings, load_words, run_sentiment
from scirobust.results import Results

torch.set_num_threads(1)


def test_word_list_is_shipped_and_balanced_enough() -> None:
    words, labels = load_words()
    assert len(words) >= 300 and len(set(words)) == len(words)
    counts = torch.bincount(labels, minlength=3)
    assert (counts >= 100).all()
    assert cases.get_case("sentiment").name == "sentiment"
    assert SentimentSettings.full().seeds == 10 and SentimentSettings.full().epochs == 1000


def test_tiny_run(tmp_path) -> None:
    settings = replace(SentimentSettings.quick(), embedding_sizes=(2, 8), seeds=2, epochs=6,
                       every=3)
    out = run_sentiment(settings, tmp_path, seed=0)
    res = Results.load(tmp_path)
    assert {"emb2", "emb8", "emb2@epoch=6"} <= {r.model for r in res}
    assert {"random_sign", "fgsm"} <= set(res.attacks)
    acc = res.value(model="emb8@epoch=6", metric="accuracy")
    assert 0.0 <= acc <= 1.0
    table = (tmp_path / "tables" / "cosine_over_epochs.csv").read_text().splitlines()
    assert table[0].startswith("embedding_size,epoch,accuracy")
    assert len(table) == 1 + 2 * 3  # epochs 1, 3, 6 for two sizes
    assert (tmp_path / "figures" / "case" / "fig6_cosine.png").is_file()
    assert (tmp_path / "report.html").is_file()
    assert any("cosine" in n.lower() or "|cos|" in n for n in out.results.metadata["notes"])
