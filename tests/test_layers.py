"""Feature-level attacks: only the named layer moves, the input and the model stay untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scirobust import Budget, attack, audit, objectives
from scirobust.errors import ConfigError
from scirobust.layers import FeatureAttackModel, feature_audit, layer_output, split_at

torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Skip(Net):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x) + x.sum(dim=1, keepdim=True))


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def _n_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_feature_attack_perturbs_only_the_named_layer() -> None:
    model = Net().eval()
    x, y = _data()
    x_before = x.clone()
    params_before = [p.detach().clone() for p in model.parameters()]
    wrapped = FeatureAttackModel(model, "features", x[:4])
    feats = wrapped.features(x)
    torch.testing.assert_close(wrapped(feats), model(x).detach())

    seen: dict[str, torch.Tensor] = {}
    budget = Budget(eps=0.1)
    adv = attack(wrapped, feats, objectives.cross_entropy(y), budget, "fgsm")
    # the attack moved the features, by at most eps, and not the input
    delta = adv - feats
    assert delta.abs().max() <= 0.1 + 1e-6 and delta.abs().max() > 0.05
    assert torch.equal(x, x_before)
    # the first layer's input is the placeholder (never the perturbed tensor); the layer
    # after the hooked one receives exactly the perturbed features
    h1 = model.features[0].register_forward_hook(lambda m, i, o: seen.__setitem__("in0", i[0]))
    h2 = model.classifier[0].register_forward_hook(lambda m, i, o: seen.__setitem__("in1", i[0]))
    try:
        out = wrapped(adv)
    finally:
        h1.remove()
        h2.remove()
    torch.testing.assert_close(seen["in1"], adv)
    assert torch.count_nonzero(seen["in0"]) == 0
    assert not torch.allclose(out, model(x))
    # parameters unchanged, hooks removed, mode kept
    for p, q in zip(model.parameters(), params_before, strict=True):
        assert torch.equal(p, q)
    assert _n_hooks(model) == 0
    assert not model.training


def test_hook_removed_even_when_the_forward_fails() -> None:
    model = Net()
    x, _ = _data()
    wrapped = FeatureAttackModel(model, "features", x[:4])
    with pytest.raises(ConfigError, match="shape"):
        wrapped(torch.zeros(3, 5))
    assert _n_hooks(model) == 0


def test_feature_audit_equals_audit_of_the_split_model() -> None:
    model = Net().eval()
    x, y = _data()
    res = feature_audit(model, "features", x, y, epsilons=[0.2], attacks=["random_sign", "fgsm"],
                        task="classification", n_random=2)
    seq = nn.Sequential(model.features, model.classifier)
    head, tail = split_at(seq, "0")
    torch.testing.assert_close(tail(head(x)), model(x))
    ref = audit(tail, head(x).detach(), y, epsilons=[0.2], attacks=["random_sign", "fgsm"],
                task="classification", n_random=2)
    assert [(r.attack, r.value) for r in res] == [(r.attack, r.value) for r in ref]
    assert res.metadata["feature_layer"]["name"] == "features"


def test_embedding_layer_and_errors() -> None:
    emb = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 3))
    ids = torch.randint(0, 10, (5, 2), generator=torch.Generator().manual_seed(0))
    wrapped = FeatureAttackModel(emb, "0", ids)
    vecs = wrapped.features(ids)
    assert vecs.shape == (5, 2, 4) and vecs.dtype == torch.float32
    torch.testing.assert_close(wrapped(vecs), emb(ids))
    with pytest.raises(ConfigError, match="no submodule"):
        FeatureAttackModel(emb, "nope", ids)
    x, _ = _data()
    with pytest.raises(ConfigError, match="not a cut"):
        FeatureAttackModel(Skip(), "features", x[:4])
    assert layer_output(Net(), "features", x).shape == (24, 8)
