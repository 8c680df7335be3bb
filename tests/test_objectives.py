"""Objectives: per-sample values, validation, and refusal of targets that stall every attack."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import LinearModel
from scirobust import Budget, ObjectiveError, attack, objectives

X = torch.zeros(3, 2)  # the objectives below ignore x unless stated


# --------------------------------------------------------------------------- values
def test_mse_per_sample_mean_and_weights() -> None:
    out = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    tgt = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 1.0]])
    torch.testing.assert_close(objectives.mse(tgt)(out, X), torch.tensor([2.5, 1.0, 2.0]))
    weighted = objectives.mse(tgt, weights=torch.tensor([1.0, 0.0]))(out, X)
    torch.testing.assert_close(weighted, torch.tensor([0.5, 0.5, 0.0]))


def test_relative_l2_value_and_zero_target_refusal() -> None:
    out = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    tgt = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    value = objectives.relative_l2(tgt[1:])(out[1:], X[1:])
    torch.testing.assert_close(value, torch.tensor([1.0]))
    with pytest.raises(ObjectiveError, match="exactly zero"):
        objectives.relative_l2(tgt)(out, X)


def test_cross_entropy_and_targeted_sign() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    ce = objectives.cross_entropy(labels)(logits, X[:2])
    torch.testing.assert_close(ce, F.cross_entropy(logits, labels, reduction="none"))
    # targeted objectives are ascended by attacks, so they return minus the loss to the target
    tg = objectives.targeted(labels)(logits, X[:2])
    torch.testing.assert_close(tg, -ce)
    assert objectives.targeted(labels).targeted and not objectives.cross_entropy(labels).targeted


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (torch.zeros(2, 3), torch.tensor([0.0, 1.0]), "integers"),
        (torch.zeros(2, 3), torch.tensor([0, 3]), r"lie in \[0, 2\]"),
        (torch.zeros(2, 3), torch.tensor([0, 1, 2]), r"shape \(batch,\)"),
        (torch.zeros(2, 3, 4), torch.tensor([0, 1]), r"\(batch, n_classes\)"),
    ],
)
def test_label_validation(logits: torch.Tensor, labels: torch.Tensor, match: str) -> None:
    with pytest.raises(ObjectiveError, match=match):
        objectives.cross_entropy(labels)(logits, X[:2])


def test_least_likely_needs_prepare_and_targets_argmin() -> None:
    ll = objectives.least_likely()
    logits = torch.tensor([[2.0, -3.0, 0.0], [-1.0, 0.0, 5.0]])
    with pytest.raises(ObjectiveError, match="prepare"):
        ll(logits, X[:2])
    prepared = ll.prepare(logits, X[:2])
    assert prepared.targeted and prepared.targets.tolist() == [1, 0]


def test_against_reference_is_evaluated_at_the_perturbed_input() -> None:
    ref = objectives.against_reference(lambda x: x.sum(dim=1, keepdim=True))
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    out = torch.tensor([[1.0], [1.0]])
    torch.testing.assert_close(ref(out, x), torch.tensor([4.0, 4.0]))
    with pytest.raises(ObjectiveError, match="callable"):
        objectives.against_reference(3.0)  # type: ignore[arg-type]
    bad = objectives.against_reference(lambda x: x.sum().item())
    with pytest.raises(ObjectiveError, match="expected a tensor"):
        bad(out, x)


# --------------------------------------------------------------------------- shape checks
def test_wrong_shaped_targets_name_both_shapes() -> None:
    model = LinearModel(torch.tensor([1.0, -1.0]))
    x = torch.randn(4, 2)
    with pytest.raises(ObjectiveError, match=r"\(4, 1\).*\(4,\)"):
        attack(model, x, objectives.mse(torch.zeros(4)), Budget(eps=0.1))
    with pytest.raises(ObjectiveError, match=r"\(4, 1\).*\(4, 2\)"):
        attack(model, x, objectives.relative_l2(torch.ones(4, 2)), Budget(eps=0.1))


def test_loss_of_wrong_shape_is_refused() -> None:
    model = LinearModel(torch.tensor([1.0, -1.0]))
    x = torch.randn(4, 2)

    def summed(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return ((output - 1.0) ** 2).sum()  # one number for the batch: wrong

    with pytest.raises(ObjectiveError, match=r"one loss per sample, shape \(4,\); got \(\)"):
        attack(model, x, summed, Budget(eps=0.1))
    with pytest.raises(ObjectiveError, match=r"got \(4, 1\)"):
        attack(model, x, lambda out, x: (out - 1.0) ** 2, Budget(eps=0.1))


# --------------------------------------------------------------------------- refusal
@pytest.mark.parametrize("method", ["fgsm", "bim", "pgd_linf", "pgd_l2"])
@pytest.mark.parametrize("builder", [objectives.mse, objectives.relative_l2])
def test_own_prediction_as_target_is_refused(method: str, builder) -> None:
    # PGD starts from a random point, where the own-prediction loss is not zero; it must be
    # refused all the same (the docs promise it, and FGSM/PGD rows must not disagree).
    model = LinearModel(torch.tensor([1.0, -2.0, 0.5]), b=1.0)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    own = builder(model(x).detach())
    with pytest.raises(ObjectiveError, match="own prediction"):
        attack(model, x, own, Budget(eps=0.1), method,
               generator=torch.Generator().manual_seed(0))


def test_identically_zero_user_objective_is_refused() -> None:
    model = LinearModel(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.randn(5, 3)

    def zero(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return 0.0 * output.sum(dim=1)  # depends on the input, but its gradient is zero

    for method in ("fgsm", "pgd_linf"):
        with pytest.raises(ObjectiveError, match="exactly zero"):
            attack(model, x, zero, Budget(eps=0.1), method,
                   generator=torch.Generator().manual_seed(0))


def test_targets_close_to_prediction_are_accepted() -> None:
    # Refusal must be exact equality only: a target that differs slightly is a valid target.
    model = LinearModel(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.randn(5, 3)
    target = model(x).detach() + 1e-3
    x_adv = attack(model, x, objectives.mse(target), Budget(eps=0.1))
    assert not torch.equal(x_adv, x)
