"""Feature attacks on a Hugging Face encoder with padding and attention masks (side inputs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from scirobust import Budget, ConfigError, DataError, attack, audit, objectives  # noqa: E402
from scirobust.layers import FeatureAttackModel, feature_audit  # noqa: E402

LAYER = "encoder.embeddings.word_embeddings"


class MaskedClassifier(nn.Module):
    """A tiny BERT (random weights, no download) + mean pooling over real tokens + a head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=32,
                                         max_position_embeddings=16)
        self.encoder = transformers.BertModel(config).eval()
        self.head = nn.Linear(16, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * weights).sum(1) / weights.sum(1))


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([8, 5, 3, 6, 8, 2, 7, 4])
    ids = torch.randint(1, 40, (8, 8), generator=gen)
    mask = (torch.arange(8)[None] < lengths[:, None]).long()
    ids = ids * mask  # 0 = padding token
    return ids, mask, torch.randint(0, 2, (8,), generator=gen)


def test_the_embedding_layer_is_a_cut_given_the_mask() -> None:
    model = MaskedClassifier()
    ids, mask, _ = _batch()
    # Deriving the mask from the ids inside the model breaks the cut (the placeholder ids are
    # all padding); the error names side inputs as the way out.
    with pytest.raises(ConfigError, match="side input"):
        FeatureAttackModel(_MaskFromIds(model), f"model.{LAYER}", ids)
    wrapped = FeatureAttackModel(model, LAYER, ids, example_side_inputs={"attention_mask": mask})
    feats = wrapped.features(ids, side_inputs={"attention_mask": mask})
    with torch.no_grad():
        assert torch.allclose(wrapped(feats, attention_mask=mask), model(ids, mask), atol=1e-6)


class _MaskFromIds(nn.Module):
    """How users first tried it: the mask derived from the ids, which the placeholder breaks."""

    def __init__(self, model: MaskedClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, (input_ids != 0).long())


def test_padding_a_sample_does_not_change_its_attack() -> None:
    model = MaskedClassifier()
    ids, mask, labels = _batch()
    wrapped = FeatureAttackModel(model, LAYER, ids, example_side_inputs={"attention_mask": mask})
    i, n = 1, 5  # sample 1 has 5 real tokens; alone it needs no padding
    alone_ids, alone_mask = ids[i:i + 1, :n], mask[i:i + 1, :n]
    alone = FeatureAttackModel(model, LAYER, alone_ids,
                               example_side_inputs={"attention_mask": alone_mask})

    def fgsm(w: FeatureAttackModel, x: torch.Tensor, m: torch.Tensor, y: torch.Tensor):
        feats = w.features(x, side_inputs={"attention_mask": m})
        bound = _Bound(w, m)
        adv = attack(bound, feats, objectives.cross_entropy(y), Budget(eps=0.1), "fgsm")
        with torch.no_grad():
            return adv, bound(adv)

    adv_batch, out_batch = fgsm(wrapped, ids, mask, labels)
    adv_alone, out_alone = fgsm(alone, alone_ids, alone_mask, labels[i:i + 1])
    assert torch.equal(adv_batch[i, :n], adv_alone[0])  # same steps on the real tokens
    assert torch.equal(adv_batch[i, n:], wrapped.features(ids, side_inputs={
        "attention_mask": mask})[i, n:])  # padding positions never move
    assert torch.allclose(out_batch[i], out_alone[0], atol=1e-5)


class _Bound(nn.Module):
    def __init__(self, wrapped: FeatureAttackModel, mask: torch.Tensor) -> None:
        super().__init__()
        self.wrapped, self.mask = wrapped, mask

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.wrapped(feats, attention_mask=self.mask)


def test_feature_audit_with_side_inputs_matches_the_model() -> None:
    model = MaskedClassifier()
    ids, mask, labels = _batch()
    side = {"attention_mask": mask}
    kw = {"task": "classification", "epsilons": [0.05, 0.5], "n_random": 2}
    res = feature_audit(model, LAYER, ids, labels, side_inputs=side, batch_size=3, **kw)
    with torch.no_grad():
        clean = float((model(ids, mask).argmax(1) == labels).float().mean())
    assert res.value(attack="clean", metric="accuracy") == clean
    # the same audit on the whole batch at once, the mask bound by hand: same numbers
    wrapped = FeatureAttackModel(model, LAYER, ids, example_side_inputs=side)
    feats = wrapped.features(ids, side_inputs=side)
    by_hand = audit(_Bound(wrapped, mask), feats, labels, batch_size=8, **kw)
    for rec in res:
        if rec.kind != "ratio":
            assert by_hand.value(attack=rec.attack, epsilon=rec.epsilon, metric=rec.metric,
                                 kind=rec.kind) == pytest.approx(rec.value, abs=1e-12)
    with pytest.raises(DataError, match="one row per sample"):
        audit(wrapped, feats, labels, side_inputs={"attention_mask": mask[:3]}, **kw)
