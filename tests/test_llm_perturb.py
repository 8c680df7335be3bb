"""Perturbing the embedding output of a causal LM: only that tensor moves, by the amplitude."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("transformers", reason="the llm extra (transformers) is needed")

from scirobust import ConfigError, objectives
from scirobust.llm import (
    ChoiceLogLikelihood,
    embedding_budget,
    embedding_noise,
    embedding_scale,
    evaluate_multiple_choice,
    perturb_embeddings,
    replaced_embedding_output,
)
from scirobust.llm.scoring import ChoiceBatch, encode_question
from scirobust.llm.synthetic import build_word_tokenizer, tiny_llama
from scirobust.llm.tasks import read_task_file

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data" / "llm"
EPS = 0.01


pytestmark = pytest.mark.usefixtures("no_network")  # see conftest.py


@pytest.fixture(scope="module")
def toy():
    """A float64 tiny Llama, its tokenizer and a batch of three ARC questions (3-4 choices:
    the 4-choice ones batched, so padding occurs)."""
    tok = build_word_tokenizer([p.read_text() for p in DATA.glob("*.jsonl")])
    lm = tiny_llama(tok, hidden_size=32, intermediate_size=64, seed=1).double()
    task = read_task_file(DATA / "arc_challenge.jsonl")
    encoded = [encode_question(q, tok, task=task.name) for q in task.questions]
    return lm, tok, encoded


def _batch(encoded, tok, which=(0, 2)) -> ChoiceBatch:
    return ChoiceBatch.collate([encoded[i] for i in which], pad_id=tok.pad_token_id)


def _first_layer_input(lm: nn.Module, run) -> torch.Tensor:
    """The hidden states entering the first decoder layer during ``run()``."""
    seen: list[torch.Tensor] = []
    handle = lm.model.layers[0].register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append((args[0] if args else kwargs["hidden_states"])
                                             .detach().clone()), with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0]


def test_the_hook_perturbs_only_the_embedding_output(toy) -> None:
    lm, tok, encoded = toy
    batch = _batch(encoded, tok)
    scorer = ChoiceLogLikelihood(lm, batch)
    clean = scorer.embeddings()
    b, c, t, d = clean.shape
    ids = batch.input_ids.reshape(b * c, t)
    ids_before = ids.clone()
    state = {k: v.clone() for k, v in lm.state_dict().items()}
    with torch.no_grad():
        plain = lm(input_ids=ids).logits
        # the clean embeddings through the hook: bit for bit the model's own output
        with replaced_embedding_output(lm, clean.reshape(b * c, t, d)):
            same = lm(input_ids=ids).logits
    assert torch.equal(plain, same)
    delta = torch.full_like(clean, EPS)
    entering = _first_layer_input(lm, lambda: scorer.scores(clean + delta))
    # what enters the first decoder layer is exactly the perturbed embedding output
    assert torch.equal(entering, (clean + delta).reshape(b * c, t, d))
    assert not lm.get_input_embeddings()._forward_hooks  # removed afterwards
    # FGSM: parameters, their gradients and the token ids are untouched
    adv = perturb_embeddings(scorer, clean, embedding_budget(EPS), "fgsm")
    assert torch.equal(ids, ids_before)
    assert all(torch.equal(v, state[k]) for k, v in lm.state_dict().items())
    assert all(p.grad is None for p in lm.parameters())
    assert not (adv - clean).abs().eq(0).all()


def test_embedding_noise_for_any_forward_pass(toy) -> None:
    lm, _, encoded = toy
    ids = torch.tensor([list(encoded[0].inputs[0])])
    clean = lm.get_input_embeddings()(ids).detach()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad(), embedding_noise(lm, embedding_budget(EPS), generator=gen):
        entering = _first_layer_input(lm, lambda: lm(input_ids=ids))
    assert torch.allclose((entering - clean).abs(), torch.full_like(clean, EPS), atol=1e-15)
    assert not lm.get_input_embeddings()._forward_hooks


@pytest.mark.parametrize("method", ["random_sign", "fgsm", "bim"])
def test_amplitude_is_respected(toy, method: str) -> None:
    lm, tok, encoded = toy
    batch = _batch(encoded, tok)
    scorer = ChoiceLogLikelihood(lm, batch)
    clean = scorer.embeddings()
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    adv = perturb_embeddings(scorer, clean, embedding_budget(EPS), method, generators=gens)
    delta = (adv - clean).abs()
    valid = batch.valid.unsqueeze(-1).expand_as(delta)
    assert delta.max() <= EPS * (1 + 1e-12)
    assert delta[~valid].eq(0).all()  # padding positions never move
    if method in ("random_sign", "fgsm"):  # every real element moves by exactly ±eps
        moved = delta[valid]
        assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], EPS),
                              atol=1e-15)
        assert (moved > 0).float().mean() > (0.99 if method == "random_sign" else 0.5)
    # the attacks raise the cross-entropy of the choices against the gold answers
    loss = objectives.cross_entropy(batch.gold)
    with torch.no_grad():
        before, after = loss(scorer(clean), clean), loss(scorer(adv), adv)
    if method != "random_sign":
        assert (after > before).all()


def test_relative_amplitude_is_in_units_of_the_embedding_std(toy) -> None:
    lm, tok, encoded = toy
    batch = _batch(encoded, tok, which=(1,))
    scorer = ChoiceLogLikelihood(lm, batch)
    clean = scorer.embeddings()
    budget = embedding_budget(0.5, relative=True, lm=lm)
    adv = perturb_embeddings(scorer, clean, budget, "fgsm")
    scale = embedding_scale(lm)
    weight = lm.get_input_embeddings().weight.detach()
    assert scale == pytest.approx(float(weight.double().std()))
    assert (adv - clean).abs().max() == pytest.approx(0.5 * scale, rel=1e-12)
    with pytest.raises(ConfigError, match="needs the model"):
        embedding_budget(0.5, relative=True)


def test_a_questions_noise_does_not_depend_on_its_batch(toy) -> None:
    lm, tok, encoded = toy

    def noise(which, seeds):
        batch = _batch(encoded, tok, which)
        scorer = ChoiceLogLikelihood(lm, batch)
        clean = scorer.embeddings()
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return (perturb_embeddings(scorer, clean, embedding_budget(EPS), "random_sign",
                                   generators=gens) - clean), batch

    together, _ = noise((0, 2), (7, 8))
    alone, _ = noise((2,), (8,))
    n = encoded[2].length
    assert torch.equal(together[1, :, :n], alone[0, :, :n])


def test_clear_errors(toy) -> None:
    lm, tok, encoded = toy
    batch = _batch(encoded, tok)
    scorer = ChoiceLogLikelihood(lm, batch)
    clean = scorer.embeddings()
    with pytest.raises(ConfigError, match="not an untargeted gradient attack"):
        perturb_embeddings(scorer, clean, embedding_budget(EPS), "illc")
    with pytest.raises(ConfigError, match="get_input_embeddings"):
        embedding_scale(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="amplitude"):
        embedding_budget(-1.0)
    task = read_task_file(DATA / "piqa.jsonl")
    with pytest.raises(ConfigError, match="sparsefool"):
        evaluate_multiple_choice(lm, tok, [task], attacks=["random_sign", "sparsefool"])

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(4, 2)

        def get_input_embeddings(self) -> nn.Module:
            return self.embed

        def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> torch.Tensor:
            return self.embed(input_ids) + self.embed(input_ids)

    model = Twice()
    with pytest.raises(ConfigError, match="ran 2 times"), \
            replaced_embedding_output(model, torch.zeros(1, 3, 2)):
        model(torch.zeros(1, 3, dtype=torch.long))


def test_engine_records_are_reproducible_and_tidy(toy) -> None:
    lm, tok, _ = toy
    tasks = [read_task_file(DATA / "winogrande.jsonl"), read_task_file(DATA / "hellaswag.jsonl")]
    kw = {"epsilons": [EPS, 0.5], "attacks": ["random_sign", "fgsm", "bim"], "n_random": 2,
          "seed": 3, "batch_size": 4}
    first = evaluate_multiple_choice(lm, tok, tasks, **kw)
    again = evaluate_multiple_choice(lm, tok, tasks, **kw)
    assert [r.to_dict() for r in first] == [r.to_dict() for r in again]
    assert set(first.kinds().values()) == {"clean", "random", "adversarial"}
    assert {r.variable for r in first} == {"winogrande", "hellaswag"}
    assert {r.metric for r in first} == {"acc", "acc_norm", "error_rate"}
    ratios = first.select(kind="ratio")
    assert ratios and all(r.metric == "error_rate" and r.baseline == "random_sign"
                          for r in ratios)
    rand = first.select(attack="random_sign", epsilon=0.5, metric="acc", variable="winogrande")
    assert rand[0].n == 3 and rand[0].kind == "random"
    for r in first.select(metric="acc"):
        err = first.value(attack=r.attack, epsilon=r.epsilon, metric="error_rate",
                          variable=r.variable, kind=r.kind)
        assert r.value + err == pytest.approx(1.0)
    assert first.metadata["chance"] == {"winogrande": 0.5, "hellaswag": 0.25}
    assert first.metadata["config"]["budget"]["norm"] == "linf"
