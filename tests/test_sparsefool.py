"""SparseFool inside an L-inf box: few changed elements, the box and domain respected,
and the paper's meaning of ``lambda_`` on a linear classifier where everything is exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make_blobs, train_mlp
from scirobust import AttackError, Budget, attack, objectives
from scirobust.attacks.sparsefool import sparsefool


@pytest.fixture(scope="module")
def sparse_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """20 features of which 3 carry the class: a sparse attack has something to find."""
    x, y = make_blobs(n_features=20, n_informative=3, seed=1)
    return train_mlp(x, y, seed=1), x, y


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_lowers_accuracy_with_few_changed_elements(sparse_problem) -> None:
    model, x, y = sparse_problem
    budget = Budget(eps=3.0)
    obj = objectives.cross_entropy(y)
    x_sf = attack(model, x, obj, budget, "sparsefool")
    x_pgd = attack(model, x, obj, budget, "pgd_linf", generator=torch.Generator().manual_seed(0))
    assert _accuracy(model, x, y) == 1.0
    assert _accuracy(model, x_sf, y) < 0.2
    changed_sf = (x_sf != x).sum(dim=1).float().mean()
    changed_pgd = (x_pgd != x).sum(dim=1).float().mean()
    # PGD moves essentially every feature; SparseFool should need a small fraction of them.
    assert changed_pgd > 18
    assert changed_sf < 0.4 * changed_pgd
    assert ((x_sf - x).abs() <= 3.0 * (1 + 1e-6)).all()


def test_respects_box_and_domain_bounds(sparse_problem) -> None:
    model, x, y = sparse_problem
    lower, upper = x.min(dim=0).values - 0.2, x.max(dim=0).values + 0.2
    budget = Budget(eps=2.0, bounds=(lower, upper))
    x_sf = attack(model, x, objectives.cross_entropy(y), budget, "sparsefool")
    assert ((x_sf - x).abs() <= 2.0 * (1 + 1e-6)).all()
    assert (x_sf >= lower).all() and (x_sf <= upper).all()
    assert _accuracy(model, x_sf, y) < 0.5


def test_misclassified_samples_are_left_alone(sparse_problem) -> None:
    model, x, y = sparse_problem
    wrong = y.clone()
    wrong[:5] = (y[:5] + 1) % 3  # these samples are "misclassified" already
    x_sf = attack(model, x[:10], objectives.cross_entropy(wrong[:10]), Budget(eps=3.0),
                  "sparsefool")
    assert torch.equal(x_sf[:5], x[:5])
    assert not torch.equal(x_sf[5:], x[5:])


def _linear_classifier() -> nn.Module:
    model = nn.Linear(5, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0],
                                         [0.5, -3.0, 1.0, 0.2, -0.1]]))
        model.bias.copy_(torch.tensor([0.0, -2.0]))
    return model


@pytest.mark.parametrize("lambda_", [1.0, 3.0])
def test_lambda_scales_the_deepfool_step_as_in_the_paper(lambda_: float) -> None:
    # Linear two-class model: logit difference f = w·x + b with w = (0.5, -3, 1, 0.2, -0.1).
    # The sparsest crossing moves the coordinate with the largest |w_j| (j = 1) by |f|/|w_j|.
    # SparseFool aims at x + lambda * r_DeepFool, so lambda = 1 lands just past the boundary
    # and lambda = 3 (the paper's default) about three times as far.
    model = _linear_classifier()
    x = torch.tensor([[0.1, -0.2, 0.3, 0.0, 0.5]], dtype=torch.float64)
    label = torch.tensor([0])
    w = model.weight[1] - model.weight[0]
    f = (model(x)[0, 1] - model(x)[0, 0]).item()
    assert f < 0  # correctly classified as 0
    x_sf = sparsefool(model, x, objectives.cross_entropy(label), Budget(eps=100.0),
                      lambda_=lambda_)
    changed = (x_sf != x)[0]
    assert changed.tolist() == [False, True, False, False, False]
    minimal = abs(f) / abs(w[1].item())
    ratio = abs((x_sf - x)[0, 1].item()) / minimal
    assert lambda_ <= ratio <= lambda_ * 1.1
    assert model(x_sf).argmax(1).item() == 1


def test_needs_cross_entropy_and_linf(sparse_problem) -> None:
    model, x, y = sparse_problem
    with pytest.raises(AttackError, match="cross_entropy"):
        attack(model, x, objectives.targeted(y), Budget(), "sparsefool")
    with pytest.raises(AttackError, match="L-inf"):
        attack(model, x, objectives.cross_entropy(y), Budget(norm="l2"), "sparsefool")
