"""Training and validation of the weather case's AFNO (helpers of `scirobust.cases.weather`).

Schedule (fixed in code before any attack is run; chosen on validation loss only): AdamW
(weight decay 1e-4) on the one-step MSE in normalised units, learning rate warmed up linearly
over the first 5 % of ``iterations`` then cosine-decayed to zero at ``iterations``; every
``eval_every`` iterations the one-step MSE on the validation trajectories (independent of the
training and test trajectories) is measured, the weights with the lowest validation MSE are
kept, and training stops early after ``patience`` evaluations without a 0.5 % improvement.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scirobust.rollout import lat_weighted_rmse, latitude_weights, rollout

WARMUP_FRACTION = 0.05
MIN_IMPROVEMENT = 0.005  # relative drop of the validation MSE that resets the patience


def _lr_factor(it: int, total: int) -> float:
    """Linear warm-up then cosine decay to zero (multiplies the base learning rate)."""
    warm = max(1, round(WARMUP_FRACTION * total))
    if it < warm:
        return (it + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * (it - warm) / max(1, total - warm)))


def _mse(model: torch.nn.Module, x: Tensor, y: Tensor, batch: int = 32) -> float:
    """One-step MSE (normalised units²) over all pairs, in batches, without gradients."""
    with torch.no_grad():
        total = sum(float(torch.nn.functional.mse_loss(model(x[i:i + batch]), y[i:i + batch],
                                                       reduction="sum"))
                    for i in range(0, x.shape[0], batch))
    return total / y.numel()


def train(model: torch.nn.Module, x: Tensor, y: Tensor, xv: Tensor, yv: Tensor, *,
          iterations: int, batch_size: int, lr: float, eval_every: int, patience: int,
          seed: int) -> dict[str, Any]:
    """Train ``model`` on pairs ``x → y`` with the schedule of the module docstring, keeping
    the weights of lowest validation MSE on ``xv → yv`` (all normalised, ``(N, C, lat, lon)``).

    Returns loss summaries (normalised units²), the iteration reached, and the validation
    curve ``curve = [(iteration, train batch MSE mean since last eval, validation MSE)]``.
    """
    if iterations < 1 or eval_every < 1 or patience < 1:
        raise ValueError("iterations, eval_every and patience must be positive integers.")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: _lr_factor(it, iterations))
    started = time.perf_counter()
    losses: list[float] = []
    curve: list[tuple[int, float, float]] = []
    best, best_state, best_it, stale, it = math.inf, None, 0, 0, 0
    model.train()
    for it in range(1, iterations + 1):
        idx = torch.randint(0, x.shape[0], (min(batch_size, x.shape[0]),), generator=gen)
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if it % eval_every == 0 or it == iterations:
            model.eval()
            val = _mse(model, xv, yv)
            model.train()
            curve.append((it, float(np.mean(losses[-eval_every:])), val))
            if val < best * (1.0 - MIN_IMPROVEMENT):
                stale = 0
            else:
                stale += 1
            if val < best:
                best, best_state, best_it = val, copy.deepcopy(model.state_dict()), it
            if stale >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    tail = max(1, len(losses) // 10)
    return {"first_loss": losses[0], "final_batch_loss_mean_last10pct": float(np.mean(
        losses[-tail:])), "train_mse_all_pairs": _mse(model, x, y), "val_mse_best": best,
        "best_iteration": best_it, "iterations_run": it, "stopped_early": it < iterations,
        "train_time_s": time.perf_counter() - started, "curve": curve}


def skill_at(model: torch.nn.Module, val: Tensor, lead: int, lat: np.ndarray,
             climatology: Tensor, std: np.ndarray) -> dict[str, np.ndarray]:
    """Latitude-weighted RMSE per variable (physical units, ``× std``) at ``lead`` model steps
    on the validation trajectories ``val (n_traj, n_times, C, lat, lon)`` (normalised), for the
    model's clean rollout, persistence (the initial state) and climatology (``climatology``,
    the training mean state); every state with ``lead`` later states is an initial condition."""
    starts = val[:, :val.shape[1] - lead].reshape(-1, *val.shape[2:])
    truth = val[:, lead:].reshape(-1, *val.shape[2:])
    w = latitude_weights(lat)
    with torch.no_grad():
        pred = torch.cat([rollout(model, starts[i:i + 32], lead)[:, -1]
                          for i in range(0, starts.shape[0], 32)])
    scale = torch.as_tensor(std, dtype=torch.float64)

    def rmse(p: Tensor) -> np.ndarray:
        mse = lat_weighted_rmse(p.double(), truth.double(), w).square().mean(dim=0)
        return (mse.sqrt() * scale).numpy()

    return {"model": rmse(pred), "persistence": rmse(starts),
            "climatology": rmse(climatology.expand_as(truth))}


def stripe_index(model: torch.nn.Module, x: Tensor, y: Tensor, patch: int) -> float:
    """Patch-stripe diagnostic of one-step predictions (dimensionless): mean |jump| of the
    error ``model(x) − y`` between neighbouring pixels across a ``patch`` tile edge over the
    mean |jump| between neighbours inside a tile, both directions pooled; ≈ 1 without stripes,
    > 1 when the error jumps at tile edges."""
    with torch.no_grad():
        err = torch.cat([model(x[i:i + 32]) - y[i:i + 32] for i in range(0, x.shape[0], 32)])
    edge, inner = [], []
    for dim in (-2, -1):
        jump = err.diff(dim=dim).abs()
        at_edge = (torch.arange(jump.shape[dim]) + 1) % patch == 0
        edge.append(jump.index_select(dim, at_edge.nonzero().flatten()).flatten())
        inner.append(jump.index_select(dim, (~at_edge).nonzero().flatten()).flatten())
    return float(torch.cat(edge).mean() / torch.cat(inner).mean())


def training_figure(directory: Any, curves: dict[str, list[tuple[int, float, float]]]) -> None:
    """Training (batch mean since the last evaluation) and validation one-step MSE against
    iteration for every model, log scale: the convergence check of the case."""
    from matplotlib.figure import Figure

    from scirobust.report import save_case_figure

    fig = Figure(figsize=(6.0, 3.4), layout="constrained")
    ax = fig.subplots()
    for (name, curve), color in zip(curves.items(), ("#0072B2", "#D55E00", "#009E73"),
                                    strict=False):
        it, tr, va = (np.array(c) for c in zip(*curve, strict=True))
        ax.plot(it, tr, color=color, ls="--", lw=1, label=f"{name}, training")
        ax.plot(it, va, color=color, marker="o", ms=3, label=f"{name}, validation")
        best = int(np.argmin(va))
        ax.plot(it[best], va[best], "k*", ms=9)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("one-step MSE (normalised units²)")
    ax.legend(fontsize=7)
    ax.set_title("Training to convergence (★: weights kept)", fontsize=10)
    save_case_figure(fig, directory, "weather_4_training",
                     "One-step MSE of the AFNO forecasters on the training batches (dashed) and "
                     "on the independent validation trajectories (solid); the star marks the "
                     "weights kept (lowest validation MSE).")
