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
    assert {r.model for r in res} == {"emb2", "emb8"}
    assert {"random_sign", "fgsm"} <= set(res.attacks)
    assert res.kinds()["random_sign"] == "random" and res.kinds()["fgsm"] == "adversarial"
    # final-epoch cosines: clean rows at step 6, over the two seeds
    final = res.select(model="emb8", step=6)
    assert {r.metric for r in final} == {"accuracy", "cos_correct", "cos_incorrect",
                                         "abs_cos_correct", "abs_cos_incorrect"}
    assert all(r.kind == "clean" for r in final) and res.metadata["step_label"] == "epoch"
    acc = res.value(model="emb8", step=6, metric="accuracy")
    assert 0.0 <= acc <= 1.0 and res.select(model="emb8", step=6, metric="accuracy")[0].n == 2
    # the embedding audit of the trained seed-0 network: no step
    audit = res.select(model="emb8", step=None)
    assert sorted({r.epsilon for r in audit}) == [0.0, 0.01, 0.1]
    assert {r.kind for r in audit} == {"clean", "random", "adversarial"}
    table = (tmp_path / "tables" / "cosine_over_epochs.csv").read_text().splitlines()
    assert table[0].startswith("embedding_size,epoch,accuracy")
    assert len(table) == 1 + 2 * 3  # epochs 1, 3, 6 for two sizes
    assert (tmp_path / "figures" / "case" / "fig6_cosine.png").is_file()
    assert (tmp_path / "report.html").is_file()
    outcomes = [v["outcome"] for v in res.metadata["verdicts"]]
    assert 2 <= len(outcomes) <= 3 and "cosine" in res.metadata["verdicts"][0]["claim"]
    assert all(v["paper"] and v["ours"] and v["stand_in"] for v in res.metadata["verdicts"])
    assert out.summary[0][0] == "embedding" and len(out.summary) == 1 + 2
