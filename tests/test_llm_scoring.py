"""lm-eval-style multiple-choice scoring: encoding, log-likelihoods, acc / acc_norm, batching."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

pytest.importorskip("transformers", reason="the llm extra (transformers) is needed")

from scirobust import ConfigError, DataError
from scirobust.llm import ChoiceLogLikelihood, evaluate_multiple_choice
from scirobust.llm.scoring import (
    ChoiceBatch,
    batches,
    encode_pair,
    encode_question,
    mc_correct,
)
from scirobust.llm.synthetic import build_word_tokenizer, tiny_llama
from scirobust.llm.tasks import MCQuestion, Task, read_task_file

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data" / "llm"


pytestmark = pytest.mark.usefixtures("no_network")  # see conftest.py


class BigramLM(nn.Module):
    """Next-token logits at position t = ``table[token t]`` (one-hot embeddings), so every
    log-probability can be written down by hand."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        v = table.shape[0]
        self.embed = nn.Embedding(v, v, dtype=torch.float64)
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(v, dtype=torch.float64))
        self.table = nn.Parameter(table.double())
        self.config = SimpleNamespace(max_position_embeddings=32)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> SimpleNamespace:
        return SimpleNamespace(logits=self.embed(input_ids) @ self.table)


@pytest.fixture(scope="module")
def word_tokenizer():
    return build_word_tokenizer(["a b c d e"])  # <unk> <pad> <s> </s> a b c d e


@pytest.fixture(scope="module")
def toy_llama():
    texts = [path.read_text() for path in DATA.glob("*.jsonl")]
    tok = build_word_tokenizer(texts)
    return tiny_llama(tok, hidden_size=32, intermediate_size=64, seed=3).double(), tok


def test_encode_pair_as_lm_eval(word_tokenizer) -> None:
    tok = word_tokenizer
    ids = {w: tok.convert_tokens_to_ids(w) for w in "abcde"}
    bos = tok.bos_token_id
    # the BOS of the tokenizer's template is part of the context; the whole string is split
    assert encode_pair(tok, "a b", " c") == ([bos, ids["a"], ids["b"]], [ids["c"]])
    # trailing spaces of the context move to the continuation
    assert encode_pair(tok, "a b ", "c d") == ([bos, ids["a"], ids["b"]], [ids["c"], ids["d"]])
    # empty context: the BOS token is the context
    assert encode_pair(tok, "", " d e") == ([bos], [ids["d"], ids["e"]])
    assert encode_pair(tok, "a", " b", add_special_tokens=False) == ([ids["a"]], [ids["b"]])


def test_scores_equal_a_hand_computation_on_two_choices(word_tokenizer) -> None:
    tok = word_tokenizer
    ids = {w: tok.convert_tokens_to_ids(w) for w in "abcde"}
    table = torch.zeros(len(tok), len(tok))
    table[ids["b"], ids["c"]], table[ids["b"], ids["d"]] = 1.0, 2.0
    table[ids["d"], ids["e"]] = 0.5
    lm = BigramLM(table)
    question = MCQuestion((("a b", " c"), ("a b", " d e")), gold=1, choices=("c", "d e"))
    v = len(tok)
    log_z_b = math.log(v - 2 + math.e + math.e ** 2)  # row b: two entries 1 and 2, rest 0
    ll_c = 1.0 - log_z_b
    ll_de = (2.0 - log_z_b) + (0.5 - math.log(v - 1 + math.exp(0.5)))
    assert ll_c > ll_de and ll_c / 1 < ll_de / 3  # acc picks c (wrong), acc_norm "d e" (right)

    encoded = encode_question(question, tok)
    assert encoded.inputs == ((ids_of(tok, "<s> a b")), ids_of(tok, "<s> a b d"))
    batch = ChoiceBatch.collate([encoded], pad_id=tok.pad_token_id)
    scorer = ChoiceLogLikelihood(lm, batch)
    lls, greedy = scorer.scores(scorer.embeddings())
    assert lls[0].tolist() == pytest.approx([ll_c, ll_de], abs=1e-12)
    # greedy: "d" is the argmax after "b" and "e" after "d"; "c" is not
    assert greedy[0].tolist() == [False, True]
    acc, acc_norm = mc_correct(lls, batch.gold, batch.choice_lengths)
    assert acc.tolist() == [0.0] and acc_norm.tolist() == [1.0]
    # the engine gives the same numbers as records
    task = Task("toy", "arc", (question,))
    res = evaluate_multiple_choice(lm, tok, [task], attacks=["random_sign"], n_random=2)
    assert res.value(attack="clean", metric="acc", variable="toy") == 0.0
    assert res.value(attack="clean", metric="acc_norm", variable="toy") == 1.0
    assert res.value(attack="clean", metric="error_rate", variable="toy") == 1.0
    assert res.metadata["chance"] == {"toy": 0.5}


def ids_of(tok, text: str) -> tuple[int, ...]:
    return tuple(tok.convert_tokens_to_ids(w) for w in text.split())


def test_padding_and_batching_do_not_change_scores(toy_llama) -> None:
    lm, tok = toy_llama
    task = read_task_file(DATA / "arc_challenge.jsonl")
    encoded = [encode_question(q, tok, task=task.name) for q in task.questions]

    def scores(questions):
        batch = ChoiceBatch.collate(questions, pad_id=tok.pad_token_id)
        scorer = ChoiceLogLikelihood(lm, batch)
        return scorer.scores(scorer.embeddings())[0]

    together = scores([encoded[0], encoded[2]])  # both 4 choices, padded to the longer
    for k, q in enumerate((encoded[0], encoded[2])):
        assert torch.allclose(together[k], scores([q])[0], atol=1e-10)


def test_truncation_keeps_the_last_tokens_as_lm_eval(word_tokenizer) -> None:
    tok = word_tokenizer
    question = MCQuestion((("a b c d", " e"), ("a b c d", " a")), 0, ("e", "a"))
    encoded = encode_question(question, tok, max_length=3)
    assert encoded.inputs[0] == ids_of(tok, "c d")[:0] + ids_of(tok, "b c d")
    assert encoded.continuations[0] == ids_of(tok, "e")
    with pytest.raises(DataError, match="more than the model's 1"):
        encode_question(MCQuestion((("a", " b c"), ("a", " d")), 0, ("b c", "d")), tok,
                        max_length=1)


def test_batches_group_by_choices_and_rows() -> None:
    qs = [SimpleNamespace(n_choices=n, length=k) for n, k in
          [(4, 5), (2, 9), (4, 7), (4, 3), (2, 1)]]
    plan = list(batches(qs, max_rows=8))  # type: ignore[arg-type]
    assert plan == [[1, 4], [2, 0], [3]]  # 2-choice first; longest first; <= 8 rows
    assert sorted(i for b in plan for i in b) == list(range(5))
    assert next(iter(batches(qs, max_rows=1))) == [1]  # one question even if it exceeds
    with pytest.raises(ConfigError, match="batch_size"):
        list(batches(qs, max_rows=0))  # type: ignore[arg-type]


def test_loglikelihoods_equal_lm_evals_hflm(toy_llama) -> None:
    """lm-eval's own HFLM, given the same live model and tokenizer, returns the same
    log-likelihoods and greedy flags for every request."""
    pytest.importorskip("lm_eval", reason="lm-eval[hf] is an optional dependency")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm, tok = toy_llama
    hflm = HFLM(pretrained=lm, tokenizer=tok, batch_size=5, device="cpu")
    for name in ("hellaswag", "winogrande", "piqa"):
        task = read_task_file(DATA / f"{name}.jsonl")
        instances = [Instance("loglikelihood", {}, req, i, (name, q.doc_id, 1))
                     for q in task.questions for i, req in enumerate(q.requests)]
        theirs = hflm.loglikelihood(instances, disable_tqdm=True)
        encoded = [encode_question(q, tok, task=name) for q in task.questions]
        batch = ChoiceBatch.collate(encoded, pad_id=tok.pad_token_id)
        scorer = ChoiceLogLikelihood(lm, batch)
        lls, greedy = scorer.scores(scorer.embeddings())
        ours = [(float(lls[i, j]), bool(greedy[i, j])) for i in range(len(encoded))
                for j in range(encoded[i].n_choices)]
        assert [g for _, g in ours] == [g for _, g in theirs]
        assert [ll for ll, _ in ours] == pytest.approx([ll for ll, _ in theirs], abs=1e-9)
