"""The sentiment case (paper 001 Fig. 6) at a tiny size, and its shipped word list."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from scirobust import cases
from scirobust.cases.sentiment import (
    SERIES,
    SentimentSettings,
    WordClassifier,
    _cosines,
    load_words,
    run_sentiment,
)
from scirobust.results import Results

torch.set_num_threads(1)


def test_word_list_is_shipped_and_balanced_enough() -> None:
    words, labels = load_words()
    assert len(words) >= 300 and len(set(words)) == len(words)
    counts = torch.bincount(labels, minlength=3)
    assert (counts >= 100).all()
    assert cases.get_case("sentiment").name == "sentiment"
    full = SentimentSettings.full()
    assert full.seeds == 10 and full.epochs == 1000
    assert full.embedding_sizes == (2, 4, 8) and not full.train_embedding  # capacity rule


def test_both_readings_on_an_untrained_network() -> None:
    words, labels = load_words()
    torch.manual_seed(0)
    values = dict(zip(SERIES, _cosines(WordClassifier(len(words), 2), torch.arange(len(words)),
                                       labels), strict=True))
    assert 0.0 < values["accuracy"] < 1.0  # so both groups of reading A exist
    for key, value in values.items():
        assert math.isfinite(value), key
        assert -1.0 <= value <= 1.0 and (value >= 0 if key.startswith("abs_") else True)


def test_tiny_run(tmp_path) -> None:
    settings = replace(SentimentSettings.quick(), embedding_sizes=(2, 8), seeds=2, epochs=6,
                       every=3)
    out = run_sentiment(settings, tmp_path, seed=0)
    res = Results.load(tmp_path)
    assert {r.model for r in res} == {"emb2", "emb8"}
    assert {"random_sign", "fgsm"} <= set(res.attacks)
    assert res.kinds()["random_sign"] == "random" and res.kinds()["fgsm"] == "adversarial"
    # final-epoch cosines of both readings: clean rows at step 6, over the two seeds, finite
    final = res.select(model="emb2", step=6)
    assert {r.metric for r in final} == set(SERIES) and {
        "cosine_correct_words", "cosine_incorrect_words", "cosine_true_label_gradient",
        "cosine_wrong_label_gradient"} <= set(SERIES)
    assert all(r.kind == "clean" and math.isfinite(r.value) and r.n == 2 for r in final)
    assert res.metadata["step_label"] == "epoch"
    # the capacity rule (fixed random word vectors): the smallest network stays below 100 %
    assert 0.0 < res.value(model="emb2", step=6, metric="accuracy") < 1.0
    # the embedding audit of the trained seed-0 network: no step
    audit = res.select(model="emb8", step=None)
    assert sorted({r.epsilon for r in audit}) == [0.0, 0.01, 0.1]
    assert {r.kind for r in audit} == {"clean", "random", "adversarial"}
    table = (tmp_path / "tables" / "cosine_over_epochs.csv").read_text().splitlines()
    assert table[0].startswith("embedding_size,epoch,accuracy")
    assert "cosine_wrong_label_gradient" in table[0]
    assert len(table) == 1 + 2 * 3  # epochs 1, 3, 6 for two sizes
    assert (tmp_path / "figures" / "case" / "fig6_cosine.png").is_file()
    assert (tmp_path / "report.html").is_file()
    verdicts = res.metadata["verdicts"]
    claims = [v["claim"] for v in verdicts]
    assert any(c.startswith("(A)") for c in claims) and any(c.startswith("(B)") for c in claims)
    assert 4 <= len(verdicts) <= 6 and "cosine" in claims[0]
    assert all(v["paper"] and v["ours"] and v["stand_in"] for v in verdicts)
    assert all(v["outcome"] in ("reproduced", "partly", "not reproduced") for v in verdicts)
    assert out.summary[0][0] == "embedding" and len(out.summary) == 1 + 2
