"""Objectives: what the attacker maximises, one loss value per sample.

An objective is any callable ``objective(output, x) -> loss`` where ``output`` is the model's
output at the (perturbed) input ``x`` and ``loss`` has shape ``(batch,)``. Most objectives ignore
``x``; a physical reference must be evaluated where the input now is, so
`against_reference` uses it. Attacks always *ascend* the objective, so targeted objectives
return the negative loss towards their target.

Objectives never take the model's own prediction as target: the gradient of the error with
respect to the input is then exactly zero at the start point and every gradient attack stalls.
`scirobust.attack` refuses such an objective with an `ObjectiveError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from scirobust.errors import ObjectiveError

__all__ = [
    "Objective",
    "against_reference",
    "cross_entropy",
    "least_likely",
    "mse",
    "relative_l2",
    "targeted",
]


class Objective(Protocol):
    """Callable ``(output, x) -> per-sample loss`` of shape ``(batch,)``."""

    def __call__(self, output: Tensor, x: Tensor) -> Tensor: ...


def _per_sample_mean(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).mean(dim=1)


def _check_same_shape(output: Tensor, targets: Tensor, name: str) -> None:
    if output.shape != targets.shape:
        raise ObjectiveError(
            f"{name}: model output has shape {tuple(output.shape)} but targets have shape "
            f"{tuple(targets.shape)}. Reshape the targets to match the output exactly "
            f"(silent broadcasting would give a wrong loss)."
        )


@dataclass(frozen=True, eq=False)
class TargetObjective:
    """An objective comparing the output with fixed per-sample targets.

    ``targets`` is kept so attacks can refuse the model's own prediction as target.
    ``targeted`` objectives steer towards their target (they return minus the loss).
    """

    name: str
    targets: Tensor
    loss: Callable[[Tensor, Tensor], Tensor] = field(repr=False)
    targeted: bool = False

    def __call__(self, output: Tensor, x: Tensor) -> Tensor:
        value = self.loss(output, self.targets.to(output.device))
        return -value if self.targeted else value


def mse(targets: Tensor, weights: Tensor | None = None) -> TargetObjective:
    """Squared error against ``targets``, averaged over the non-batch dimensions.

    ``weights`` (broadcastable to one output sample) weight each output variable, e.g. the
    inverse variance of each physical field. Units: output units squared.
    """
    targets = torch.as_tensor(targets).detach()

    def loss(output: Tensor, t: Tensor) -> Tensor:
        _check_same_shape(output, t, "mse")
        sq = (output - t) ** 2
        if weights is not None:
            sq = sq * torch.as_tensor(weights, device=output.device, dtype=output.dtype)
        return _per_sample_mean(sq)

    return TargetObjective("mse", targets, loss)


def relative_l2(targets: Tensor) -> TargetObjective:
    """Per-sample relative L2 error ``||output - target||_2 / ||target||_2`` (dimensionless)."""
    targets = torch.as_tensor(targets).detach()

    def loss(output: Tensor, t: Tensor) -> Tensor:
        _check_same_shape(output, t, "relative_l2")
        diff = (output - t).reshape(output.shape[0], -1)
        ref = t.reshape(t.shape[0], -1)
        ref_norm = torch.linalg.vector_norm(ref, dim=1)
        if (ref_norm == 0).any():
            raise ObjectiveError(
                "relative_l2: some targets are exactly zero, so the relative error is "
                "undefined. Use mse(targets) for those samples."
            )
        return torch.linalg.vector_norm(diff, dim=1) / ref_norm

    return TargetObjective("relative_l2", targets, loss)


def _check_labels(output: Tensor, labels: Tensor, name: str) -> None:
    if output.dim() != 2:
        raise ObjectiveError(
            f"{name}: a classifier must output logits of shape (batch, n_classes); got "
            f"{tuple(output.shape)}."
        )
    if labels.shape != output.shape[:1] or labels.dtype.is_floating_point:
        raise ObjectiveError(
            f"{name}: labels must be integers of shape (batch,) = ({output.shape[0]},); got "
            f"{labels.dtype} of shape {tuple(labels.shape)}."
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= output.shape[1]):
        raise ObjectiveError(
            f"{name}: labels must lie in [0, {output.shape[1] - 1}] for {output.shape[1]} classes."
        )


def cross_entropy(labels: Tensor) -> TargetObjective:
    """Untargeted cross-entropy of the logits against the true ``labels`` (nats)."""
    labels = torch.as_tensor(labels).detach()

    def loss(output: Tensor, t: Tensor) -> Tensor:
        _check_labels(output, t, "cross_entropy")
        return F.cross_entropy(output, t, reduction="none")

    return TargetObjective("cross_entropy", labels, loss)


def targeted(target_labels: Tensor) -> TargetObjective:
    """Steer towards ``target_labels``: minus the cross-entropy to the target class (nats)."""
    target_labels = torch.as_tensor(target_labels).detach()

    def loss(output: Tensor, t: Tensor) -> Tensor:
        _check_labels(output, t, "targeted")
        return F.cross_entropy(output, t, reduction="none")

    return TargetObjective("targeted", target_labels, loss, targeted=True)


@dataclass(frozen=True)
class LeastLikely:
    """Targeted objective towards each sample's least likely class at the clean input.

    The target depends on the clean output, so attacks call `prepare` once at the start.
    """

    name: str = "least_likely"
    targeted: bool = True

    def prepare(self, clean_output: Tensor, x0: Tensor) -> TargetObjective:
        """Fix the target as the arg-min of the clean logits."""
        return targeted(clean_output.detach().argmin(dim=1))

    def __call__(self, output: Tensor, x: Tensor) -> Tensor:
        raise ObjectiveError(
            "least_likely() needs the clean output to choose its target; use it through "
            "scirobust.attack (which calls .prepare) or call .prepare(clean_output, x) first."
        )


def least_likely() -> LeastLikely:
    """Iterative least-likely-class objective (ILLC): steer towards the clean arg-min class."""
    return LeastLikely()


@dataclass(frozen=True, eq=False)
class ReferenceObjective:
    """Squared error against a reference function evaluated at the perturbed input."""

    reference: Callable[[Tensor], Tensor] = field(repr=False)
    name: str = "against_reference"

    def __call__(self, output: Tensor, x: Tensor) -> Tensor:
        ref = self.reference(x)
        if not isinstance(ref, Tensor):
            raise ObjectiveError(
                f"against_reference: the reference returned {type(ref).__name__}, "
                "expected a tensor."
            )
        _check_same_shape(output, ref, "against_reference")
        return _per_sample_mean((output - ref) ** 2)


def against_reference(fn: Callable[[Tensor], Tensor]) -> ReferenceObjective:
    """Squared error against ``fn(x)`` at the perturbed input ``x`` (output units squared).

    ``fn`` is an exact solution or a more accurate model; it must be differentiable in torch
    when its own slope matters (the attack then pushes the model away from the truth, not the
    input away from its old point).
    """
    if not callable(fn):
        raise ObjectiveError("against_reference needs a callable fn(x) -> reference output.")
    return ReferenceObjective(fn)
