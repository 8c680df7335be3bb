"""SparseFool (Modas, Moosavi-Dezfooli & Frossard, CVPR 2019) inside an L-inf box.

SparseFool looks for a perturbation that changes few input elements: DeepFool finds a nearby
point of the (linearised) decision boundary, the boundary's normal there defines a hyperplane,
and a greedy linear solver crosses that hyperplane moving one coordinate at a time, largest
normal component first, each coordinate kept inside its box. The box is the budget's L-inf ball
around the clean input intersected with the domain bounds, so SparseFool results sit in the
same eps sweep as every other attack.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scirobust.budget import Budget
from scirobust.errors import AttackError


def _class_gradients(model, x: Tensor) -> tuple[Tensor, Tensor]:
    """Logits (batch, C) and their input-gradients (batch, C, n_features)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        grads = [
            torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k < logits.shape[1] - 1)[0]
            for k in range(logits.shape[1])
        ]
    return logits.detach(), torch.stack(grads, dim=1).reshape(x.shape[0], logits.shape[1], -1)


def _deepfool_boundary(
    model, x: Tensor, labels: Tensor, lower: Tensor, upper: Tensor, overshoot: float,
    max_iter: int = 50,
) -> tuple[Tensor, Tensor]:
    """DeepFool boundary points and the boundary normal there, both flat (batch, n)."""
    batch = x.shape[0]
    shape = x.shape
    rows = torch.arange(batch, device=x.device)
    x_flat0 = x.reshape(batch, -1)
    r_total = torch.zeros_like(x_flat0)
    x_adv = x
    for _ in range(max_iter):
        logits, grads = _class_gradients(model, x_adv)
        still = logits.argmax(dim=1) == labels
        if not still.any():
            break
        f = logits - logits[rows, labels][:, None]
        w = grads - grads[rows, labels][:, None, :]
        dist = f.abs() / torch.linalg.vector_norm(w, dim=2).clamp_min(1e-12)
        dist[rows, labels] = float("inf")
        k = dist.argmin(dim=1)
        wk = w[rows, k]
        step = (f[rows, k].abs() + 1e-4) / (wk.pow(2).sum(dim=1).clamp_min(1e-12))
        r_total = r_total + still[:, None] * step[:, None] * wk
        x_adv = torch.clamp(
            (x_flat0 + (1 + overshoot) * r_total).reshape(shape), lower, upper
        )
    logits, grads = _class_gradients(model, x_adv)
    masked = logits.clone()
    masked[rows, labels] = -float("inf")
    runner_up = torch.where(logits.argmax(dim=1) == labels, masked.argmax(dim=1), logits.argmax(1))
    normal = grads[rows, runner_up] - grads[rows, labels]
    return x_adv.reshape(batch, -1), normal


def _linear_solver(
    x: Tensor, normal: Tensor, boundary: Tensor, lower: Tensor, upper: Tensor
) -> Tensor:
    """Cross the hyperplane ``normal·(z - boundary) = 0`` changing one coordinate at a time."""
    x = x.clone()
    coords = normal.clone()
    side = torch.sign(((x - boundary) * normal).sum(dim=1))
    beta = 1e-3 * side
    active = (side != 0) & (coords != 0).any(dim=1)
    rows = torch.arange(x.shape[0], device=x.device)
    for _ in range(x.shape[1]):
        if not active.any():
            break
        f = ((x - boundary) * normal).sum(dim=1) + beta
        j = coords.abs().argmax(dim=1)
        wj = coords[rows, j]
        move = -f / torch.where(wj == 0, torch.ones_like(wj), wj)
        move = torch.where(active & (wj != 0), move, torch.zeros_like(move))
        new = (x[rows, j] + move).clamp(lower[rows, j], upper[rows, j])
        x[rows, j] = torch.where(active, new, x[rows, j])
        coords[rows, j] = 0.0
        crossed = torch.sign(((x - boundary) * normal).sum(dim=1)) != side
        active = active & ~crossed & (coords != 0).any(dim=1)
    return x


def sparsefool(
    model,
    x0: Tensor,
    objective,
    budget: Budget,
    *,
    max_iter: int = 20,
    lambda_: float = 3.0,
    overshoot: float = 0.02,
) -> Tensor:
    """SparseFool restricted to the L-inf box of ``budget`` (and the domain bounds).

    ``objective`` must be `objectives.cross_entropy(labels)` (the true labels are read from it).
    ``lambda_`` pushes the DeepFool point beyond the boundary (1: onto the boundary; paper
    default 3); samples that are misclassified already, or once fooled, are left as they are.
    """
    labels = getattr(objective, "targets", None)
    if getattr(objective, "name", None) != "cross_entropy" or labels is None:
        raise AttackError(
            "sparsefool attacks classifiers: pass objectives.cross_entropy(labels)."
        )
    if budget.norm != "linf":
        raise AttackError("sparsefool works in an L-inf box: use Budget(norm='linf').")
    labels = labels.to(x0.device)
    radius = budget.linf_radius(x0)
    lower, upper = x0 - radius, x0 + radius
    if budget.bounds is not None and budget.outside == "clip":
        lo, hi = (b.to(x0.device, x0.dtype) for b in budget.bounds)
        lower, upper = torch.maximum(lower, lo), torch.minimum(upper, hi)
    x = x0.clone()
    with torch.no_grad():
        active = model(x0).argmax(dim=1) == labels
    for _ in range(max_iter):
        if not active.any():
            break
        idx = active.nonzero().squeeze(1)
        boundary, normal = _deepfool_boundary(
            model, x[idx], labels[idx], lower[idx], upper[idx], overshoot
        )
        x_flat0 = x0[idx].reshape(len(idx), -1)
        # As in the paper: aim at x_i + lambda * r_DF, measured from the point DeepFool started
        # from (lambda = 1 is the boundary itself), not (1 + lambda) times from x0.
        x_i = x[idx].reshape(len(idx), -1)
        boundary = x_i + lambda_ * (boundary - x_i)
        lo_flat, hi_flat = lower[idx].reshape(len(idx), -1), upper[idx].reshape(len(idx), -1)
        solved = _linear_solver(x[idx].reshape(len(idx), -1), normal, boundary, lo_flat, hi_flat)
        solved = x_flat0 + (1 + overshoot) * (solved - x_flat0)
        solved = torch.minimum(torch.maximum(solved, lo_flat), hi_flat)
        x[idx] = solved.reshape(x[idx].shape)
        with torch.no_grad():
            active[idx] = model(x[idx]).argmax(dim=1) == labels[idx]
    return x.detach()
