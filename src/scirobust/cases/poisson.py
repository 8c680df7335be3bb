"""Poisson equation: randomized neural network vs PINN under attack (paper 000 §3.3, §5.6, Table 1).

Problem: −Δu = f on Ω = [−1, 1]², u = g on ∂Ω, exact u(x, y) = sin(4πx) sin(4πy), so
f = 32π² u and g = 0 (all quantities dimensionless).

What is reproduced exactly (settings of paper 000 §5.6):
  * the randomized network (RNN): one hidden layer of 400 tanh neurons whose weights and biases
    are drawn once from U(−R, R) with R = 1 and frozen; the output layer solves, by least
    squares in float64, the 2900 × 400 system of 900 interior PDE rows (−Δφ·c = f, Laplacian of
    the tanh features analytic) and 2000 boundary rows (4 × 500, multiplied by the penalty 100);
  * the PINN (the paper's "DNN"): 5 hidden layers × 100, tanh, Adam with learning rate 8e-4;
  * the attack protocol: a 101 × 101 uniform grid over Ω, FGSM and random ±eps (same L-inf and
    L2 size) for eps ∈ {0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3}, perturbed points that leave Ω
    dropped; the attacker maximises the squared error against the exact solution evaluated
    where the input now is; Rel MSE = |MSE_attacked − MSE_clean| / MSE_clean.

Our choices (the paper does not give them; recorded in the results' notes):
  * RNN interior points on the 30 × 30 grid strictly inside Ω, boundary points at the midpoints
    of 500 equal segments of each side; least squares by SVD (``gelsd``), since the system is
    numerically rank-deficient;
  * PINN loss, collocation, initialisation (first-layer weights scaled up), iterations and
    learning-rate schedule (see `PoissonSettings`); the boundary term uses the RNN's penalty;
    the Laplacian is propagated exactly through the layers (equal to autograd's, faster);
  * MSE_clean is taken over the full grid (the paper drops only attacked points). The dropped
    points lie near ∂Ω, where the error need not be typical, so we also record the signed change
    (``rel_mse_signed``) and the signed change with both MSEs over the same kept points
    (``rel_mse_same_points``), for FGSM and the random control, and judge the paper's finding
    with both definitions (criteria `STRONG_EPS`, `FAR_MORE`, `BARELY`, fixed in advance).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scirobust import objectives
from scirobust.attacks import attack
from scirobust.audit import audit
from scirobust.budget import Budget
from scirobust.cases import Case, CaseOptions, CaseOutput
from scirobust.results import Record, Results, atomic_write_text

__all__ = [
    "CASE",
    "EPSILONS",
    "PAPER_TABLE1",
    "PINN",
    "PoissonSettings",
    "RandomizedNet",
    "fit_rnn",
    "grid",
    "relative_l2_error",
    "rnn_points",
    "run",
    "run_poisson",
    "source",
    "train_pinn",
    "u_exact",
]

CASE_NAME = "poisson"
WAVENUMBER = 4.0 * math.pi
"""k in u = sin(kx) sin(ky); −Δu = 2k² u = 32π² u."""
F_SCALE = 2.0 * WAVENUMBER**2
"""32π² ≈ 315.8, the amplitude of f; used to scale the PDE residual to O(1)."""

EPSILONS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
"""Attack sizes of Table 1 (L-inf, in the units of x and y)."""

PAPER_TABLE1: dict[str, tuple[float | None, ...]] = {
    # The text extraction of Table 1 reads "0.442 0.539 0.087 0.053 0.273 ± 0.234 [empty]
    # 0.379": the ± entry sits in the eps = 0.2 column and the eps = 0.25 cell is empty.
    "RNN": (0.442, 0.539, 0.087, 0.053, 0.273, None, 0.379),
    "DNN": (0.390, 1.459, 0.882, 2.092, 3.109, 3.304, 4.061),
}
"""Paper 000 Table 1, FGSM Rel MSE at `EPSILONS`; None where the text is unreadable."""
PAPER_RNN_SPREAD_EPS_0_2 = 0.234
"""The '± 0.234' printed beside the RNN value at eps = 0.2."""

STRONG_EPS = 0.15
"""Attacks with eps >= this count as 'strong' for the verdict (the paper: the difference 'is
more prominent under relatively strong attacks')."""
FAR_MORE = 2.0
"""PINN/RNN ratio of the mean FGSM change over strong attacks needed to call the gap 'far'."""
BARELY = 0.5
"""|Random change| at most this fraction of the FGSM one (every eps) counts as 'barely moves'."""

POOR_FIT = 0.5
"""Clean relative L2 error above which a network is flagged as not having learned u."""


# --------------------------------------------------------------------------- exact solution
def u_exact(x: Tensor) -> Tensor:
    """Exact solution u(x, y) = sin(4πx) sin(4πy) at points ``x`` of shape (N, 2) → (N, 1).

    Plain torch, so it is differentiable (the attack needs its slope at perturbed points).
    """
    return torch.sin(WAVENUMBER * x[:, 0:1]) * torch.sin(WAVENUMBER * x[:, 1:2])


def source(x: Tensor) -> Tensor:
    """Right-hand side f = −Δu = 32π² u at points ``x`` (N, 2) → (N, 1)."""
    return F_SCALE * u_exact(x)


def grid(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The n × n uniform grid over Ω including its boundary, shape (n², 2), x varying slowest."""
    t = torch.linspace(-1.0, 1.0, n, dtype=dtype)
    return torch.stack(torch.meshgrid(t, t, indexing="ij"), dim=-1).reshape(-1, 2)


def boundary_midpoints(per_side: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """``per_side`` points on each of the 4 sides at segment midpoints (no corner twice)."""
    s = -1.0 + (2.0 * torch.arange(per_side, dtype=dtype) + 1.0) / per_side
    one = torch.ones_like(s)
    return torch.cat([torch.stack(p, dim=1) for p in
                      ((s, -one), (s, one), (-one, s), (one, s))])


def sample_boundary(n: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """``n`` points uniform on ∂Ω (side chosen uniformly, position uniform on it)."""
    s = torch.rand(n, 1, generator=generator, dtype=dtype) * 2 - 1
    side = torch.randint(0, 4, (n, 1), generator=generator)
    pm = torch.where(side % 2 == 0, -1.0, 1.0).to(dtype)
    return torch.where(side < 2, torch.cat([s, pm], 1), torch.cat([pm, s], 1))


# --------------------------------------------------------------------------- randomized network
class RandomizedNet(nn.Module):
    """u(x) = Σ_j c_j tanh(w_j·x + b_j) with w_j, b_j ~ U(−R, R) frozen; c by least squares.

    Float64 throughout (the least-squares coefficients are large and cancel, see `fit_rnn`).
    All tensors are buffers: nothing here is trained by gradient descent.
    """

    def __init__(self, n_hidden: int = 400, radius: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        f64 = torch.float64
        self.radius = float(radius)
        self.register_buffer(
            "weight", (torch.rand(n_hidden, 2, generator=generator, dtype=f64) * 2 - 1) * radius)
        self.register_buffer(
            "bias", (torch.rand(n_hidden, generator=generator, dtype=f64) * 2 - 1) * radius)
        self.register_buffer("coef", torch.zeros(n_hidden, 1, dtype=f64))

    def features(self, x: Tensor) -> Tensor:
        """tanh(w_j·x + b_j), shape (N, n_hidden)."""
        return torch.tanh(x.to(self.weight.dtype) @ self.weight.T + self.bias)

    def feature_laplacian(self, x: Tensor) -> Tensor:
        """Analytic Δ tanh(w·x + b) = −2 t (1 − t²) |w|², t = tanh(w·x + b); (N, n_hidden)."""
        t = self.features(x)
        return -2.0 * t * (1.0 - t * t) * (self.weight**2).sum(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """u(x) for x of shape (N, 2) → (N, 1), float64."""
        return self.features(x) @ self.coef

    def laplacian(self, x: Tensor) -> Tensor:
        """Δu(x), (N, 1)."""
        return self.feature_laplacian(x) @ self.coef


def rnn_points(settings: PoissonSettings, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Interior (30 × 30 grid strictly inside Ω, or uniform random) and boundary points."""
    f64 = torch.float64
    n = settings.rnn_interior_per_axis
    if settings.rnn_interior_layout == "grid":
        t = torch.linspace(-1.0, 1.0, n + 2, dtype=f64)[1:-1]
        interior = torch.stack(torch.meshgrid(t, t, indexing="ij"), dim=-1).reshape(-1, 2)
    else:
        interior = torch.rand(n * n, 2, generator=generator, dtype=f64) * 2 - 1
    return interior, boundary_midpoints(settings.rnn_boundary_per_side)


def fit_rnn(model: RandomizedNet, interior: Tensor, boundary: Tensor, penalty: float = 100.0,
            driver: str = "gelsd") -> dict[str, Any]:
    """Solve the output layer: rows −Δφ(x_i)·c = f(x_i) and penalty·φ(x_b)·c = penalty·g(x_b).

    The system is (n_interior + n_boundary) × n_hidden; with R = 1 the features are smooth and
    the matrix is numerically rank-deficient, so the SVD-based driver ``gelsd`` (cut-off at
    machine precision × max size) is used: ``gelsy`` (QR) returned a useless fit here.
    Returns the fit's diagnostics (seconds, rank, largest |c|, residual norms).
    """
    started = time.perf_counter()
    a = torch.cat([-model.feature_laplacian(interior), penalty * model.features(boundary)])
    rhs = torch.cat([source(interior), penalty * u_exact(boundary)])
    solution = torch.linalg.lstsq(a.cpu(), rhs.cpu(), driver=driver)
    coef = solution.solution.to(model.coef)
    with torch.no_grad():
        model.coef.copy_(coef)
    residual = (a @ coef - rhs.to(coef)).squeeze(1)
    n_int = interior.shape[0]
    return {
        "system_shape": list(a.shape),
        "driver": driver,
        "rank": int(solution.rank) if solution.rank is not None and solution.rank.numel() else None,
        "max_abs_coef": float(coef.abs().max()),
        "pde_residual_rms": float(residual[:n_int].pow(2).mean().sqrt()),
        "boundary_residual_rms": float((residual[n_int:] / penalty).pow(2).mean().sqrt()),
        "solve_seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- PINN
class PINN(nn.Module):
    """Fully connected tanh network (2 → width × depth → 1), the paper's "DNN".

    Weights Xavier-normal, biases zero; the first layer's weights are multiplied by
    ``first_layer_scale`` (choice): u has 4 periods across Ω in each direction, and from
    tanh features of Xavier scale (|w| ≈ 0.14) Adam at lr 8e-4 (steps ~lr per weight) needed
    many thousands of iterations just to leave the u ≈ 0 plateau.
    """

    def __init__(self, width: int = 100, depth: int = 5, first_layer_scale: float = 1.0,
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        sizes = [2] + [width] * depth + [1]
        self.layers = nn.ModuleList(
            nn.Linear(a, b, dtype=dtype) for a, b in itertools.pairwise(sizes))
        with torch.no_grad():
            for layer in self.layers:
                nn.init.xavier_normal_(layer.weight, generator=generator)
                nn.init.zeros_(layer.bias)
            self.layers[0].weight.mul_(first_layer_scale)

    def forward(self, x: Tensor) -> Tensor:
        """u(x) for x of shape (N, 2) → (N, 1)."""
        h = x
        for layer in self.layers[:-1]:
            h = torch.tanh(layer(h))
        return self.layers[-1](h)

    def value_and_laplacian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """u(x) and Δu(x), each (N, 1), by propagating ∂h/∂x_i and ∂²h/∂x_i² through the layers.

        Exact (the chain rule written out: h' = tanh(z), ∂h' = s ∂z, ∂²h' = s ∂²z − 2 t s (∂z)²
        with t = tanh z, s = 1 − t²) and differentiable in the parameters; it matches
        torch.autograd's double backward (tests) at about a third of its cost.
        """
        n = x.shape[0]
        h = x
        d = torch.eye(2, dtype=x.dtype, device=x.device).unsqueeze(1).expand(2, n, 2)
        dd = torch.zeros(2, n, 2, dtype=x.dtype, device=x.device)
        for layer in self.layers[:-1]:
            z = layer(h)
            dz = d @ layer.weight.T
            ddz = dd @ layer.weight.T
            t = torch.tanh(z)
            s = 1.0 - t * t
            h, d, dd = t, s * dz, s * ddz - 2.0 * t * s * dz * dz
        last = self.layers[-1]
        return last(h), (dd @ last.weight.T).sum(dim=0)


def relative_l2_error(model: nn.Module, points: Tensor) -> float:
    """||u_model − u||_2 / ||u||_2 over ``points`` (dimensionless)."""
    with torch.no_grad():
        ref = u_exact(points)
        out = model(points.to(next(iter(model.state_dict().values())).dtype)).to(ref.dtype)
        return float((out - ref).norm() / ref.norm())


def pinn_loss(model: PINN, interior: Tensor, boundary: Tensor,
              penalty: float) -> tuple[Tensor, Tensor, Tensor]:
    """(total, PDE part, boundary part) of the PINN loss, all scaled by 1/(32π²)².

    Total = mean((Δu + f)²) + penalty² mean((u − g)²), divided by (32π²)² so the PDE part is
    O(1) (dimensionless); penalty = 100 is the RNN's boundary penalty, so both networks weight
    the boundary against the PDE the same way.
    """
    _, lap = model.value_and_laplacian(interior)
    pde = ((lap + source(interior)) / F_SCALE).pow(2).mean()
    bc = (model(boundary) - u_exact(boundary)).pow(2).mean() * (penalty / F_SCALE) ** 2
    return pde + bc, pde, bc


def train_pinn(settings: PoissonSettings, seed: int, device: str = "cpu",
               quiet: bool = True) -> tuple[PINN, dict[str, Any]]:
    """Train the PINN with Adam; fresh uniform collocation points every iteration.

    Returns the model (float32, on ``device``) and a dict with the training time (s), the
    loss history and the relative L2 error on the attack grid at the end.
    """
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float32
    model = PINN(settings.pinn_width, settings.pinn_depth, settings.pinn_first_layer_scale,
                 generator=gen, dtype=dtype).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.pinn_lr)
    n_iter = settings.pinn_iterations
    # Constant lr while the network leaves the u ≈ 0 plateau (decaying early delayed that
    # escape by thousands of iterations), then exponential decay to lr × final factor.
    start = int(settings.pinn_decay_start * n_iter)
    factor = settings.pinn_lr_final_factor

    def lr_factor(step: int) -> float:
        return 1.0 if step < start else factor ** ((step - start) / max(n_iter - start, 1))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    eval_points = grid(settings.grid).to(device)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    progress = _Progress(n_iter, "training PINN", quiet)
    log_every = max(1, n_iter // 20)
    for it in range(1, n_iter + 1):
        x_in = (torch.rand(settings.pinn_interior, 2, generator=gen, dtype=dtype) * 2 - 1)
        x_bd = sample_boundary(settings.pinn_boundary, gen, dtype)
        loss, pde, bc = pinn_loss(model, x_in.to(device), x_bd.to(device),
                                  settings.pinn_boundary_penalty)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % log_every == 0 or it == n_iter:
            history.append({"iteration": it, "loss": loss.item(), "pde": pde.item(),
                            "boundary": bc.item(),
                            "relative_l2": relative_l2_error(model, eval_points),
                            "seconds": time.perf_counter() - started})
        progress.advance()
    progress.close()
    train_seconds = time.perf_counter() - started
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, {
        "train_seconds": train_seconds,
        "history": history,
        "final_loss": history[-1]["loss"] if history else float("nan"),
        "relative_l2": relative_l2_error(model, eval_points),
    }


class _Progress:
    """A rich progress bar, or nothing when quiet."""

    def __init__(self, total: int, label: str, quiet: bool) -> None:
        self._bar: Any = None
        if not quiet:
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class PoissonSettings:
    """All settings of the Poisson case, fixed before any result was looked at.

    Lengths (eps, coordinates) are in the units of x and y (Ω = [−1, 1]²).
    """

    grid: int = 101
    """Attack grid: grid × grid uniform points over Ω including ∂Ω (paper: 101)."""
    epsilons: tuple[float, ...] = EPSILONS
    n_random: int = 10
    """Draws of the random-sign control per eps (mean and spread reported)."""
    rnn_hidden: int = 400
    rnn_radius: float = 1.0
    """Fixed weights and biases ~ U(−R, R); the paper's R = 1."""
    rnn_interior_per_axis: int = 30
    rnn_interior_layout: str = "grid"
    """'grid' (30 × 30 strictly inside Ω) or 'random' (uniform)."""
    rnn_boundary_per_side: int = 500
    rnn_penalty: float = 100.0
    rnn_driver: str = "gelsd"
    pinn_width: int = 100
    pinn_depth: int = 5
    pinn_lr: float = 8e-4
    pinn_lr_final_factor: float = 0.02
    """Learning rate decays exponentially to lr × this at the last iteration (1 = constant)."""
    pinn_decay_start: float = 0.3
    """Fraction of the iterations run at the constant lr before the decay starts."""
    pinn_iterations: int = 30_000
    pinn_interior: int = 1000
    """Interior collocation points, redrawn uniformly every iteration."""
    pinn_boundary: int = 400
    """Boundary points, redrawn uniformly on ∂Ω every iteration."""
    pinn_boundary_penalty: float = 100.0
    pinn_first_layer_scale: float = 10.0
    """Multiplier of the Xavier-normal first-layer weights (choice, see `PINN`)."""
    num_threads: int = 1
    """torch intra-op threads during the run (restored afterwards)."""
    field_eps: float = 0.1
    """eps of the FGSM perturbation drawn in the field figure."""

    @classmethod
    def full(cls) -> PoissonSettings:
        """Published-scale run (≈ 20–30 min on two CPU cores)."""
        return cls()

    @classmethod
    def quick(cls) -> PoissonSettings:
        """`scirobust demo` / ``reproduce poisson --quick``: ≈ 2–4 min on two CPU cores."""
        return cls(pinn_iterations=9000, pinn_interior=500, pinn_boundary=200, n_random=5,
                   pinn_decay_start=0.6, pinn_lr_final_factor=0.1)


# --------------------------------------------------------------------------- analysis
def _rel_mse_records(results: Results, model: str) -> list[Record]:
    """Rel MSE = |MSE_attacked − MSE_clean| / MSE_clean for every non-clean mse record.

    Also ``rel_mse_signed`` (the same without the absolute value: negative when the attacked
    points have a lower error than the clean grid). MSE_clean is the full-grid clean MSE;
    stderr and spread are those of the attacked MSE divided by MSE_clean (the clean MSE is a
    fixed number of the grid, not a random draw).
    """
    clean = results.value(model=model, attack="clean", metric="mse")
    out = []
    for rec in results.select(model=model, metric="mse"):
        if rec.attack == "clean":
            continue
        signed = (rec.value - clean) / clean
        for metric, value in (("rel_mse", abs(signed)), ("rel_mse_signed", signed)):
            out.append(Record(
                rec.case, rec.model, rec.attack, rec.epsilon, metric, value,
                rec.stderr / clean, rec.n, rec.spread / clean, rec.n_dropped, "clean",
            ))
    return out


def _same_points(model: nn.Module, points: Tensor, budget: Budget, epsilons: Sequence[float],
                 n_random: int, seed: int) -> dict[str, dict[float, dict[str, Any]]]:
    """FGSM and random sign once more per eps, comparing with the clean MSE on the kept points.

    The audit compares the attacked MSE (over the points that stay in Ω) with the full-grid
    clean MSE; here both MSEs are over the same kept points, which separates the effect of
    the perturbation from that of dropping. Random draws come from their own generator
    (``seed``), not the audit's. Returns ``{attack: {eps: info}}``; info holds the signed
    relative change per draw (``signed``), the kept mask and perturbed points of the last
    draw, and MSE_attacked / MSE_clean on the kept points (means over draws).
    """
    objective = objectives.against_reference(u_exact)
    with torch.no_grad():
        clean_sq = (model(points) - u_exact(points)).pow(2).squeeze(1)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, dict[float, dict[str, Any]]] = {"fgsm": {}, "random_sign": {}}
    for eps in epsilons:
        b = budget.scaled(eps)
        for name, draws in (("fgsm", 1), ("random_sign", n_random)):
            signed, att, cln = [], [], []
            for _ in range(draws):
                x_new = attack(model, points, objective if name == "fgsm" else None, b, name,
                               generator=gen)
                kept = b.inside(x_new)
                with torch.no_grad():
                    new_sq = (model(x_new) - u_exact(x_new)).pow(2).squeeze(1)
                att.append(float(new_sq[kept].mean()))
                cln.append(float(clean_sq[kept].mean()))
                signed.append((att[-1] - cln[-1]) / cln[-1])
            out[name][eps] = {
                "x_new": x_new, "kept": kept, "signed": np.array(signed),
                "mse_attacked": float(np.mean(att)), "mse_clean_kept": float(np.mean(cln)),
            }
    return out


def _same_points_rel(info: dict[str, Any]) -> float:
    """Signed relative change of the MSE on the kept points, mean over draws."""
    return float(info["signed"].mean())


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


TableRows = list[tuple[str, list[float | None]]]


def _table_rows(results: Results, epsilons: Sequence[float]) -> TableRows:
    def ours(model: str, atk: str) -> list[float | None]:
        vals: list[float | None] = []
        for eps in epsilons:
            found = results.select(model=model, attack=atk, epsilon=eps, metric="rel_mse")
            vals.append(found[0].value if found else None)
        return vals

    def paper(key: str) -> list[float | None]:
        lookup = dict(zip(EPSILONS, PAPER_TABLE1[key], strict=True))
        return [lookup.get(e) for e in epsilons]

    return [
        ("RNN ours FGSM", ours("RNN", "fgsm")),
        ("RNN ours random", ours("RNN", "random_sign")),
        ("RNN paper", paper("RNN")),
        ("DNN ours FGSM", ours("PINN", "fgsm")),
        ("DNN ours random", ours("PINN", "random_sign")),
        ("DNN paper", paper("DNN")),
    ]


def _write_table(path: Path, epsilons: Sequence[float], rows: TableRows) -> None:
    lines = [",".join(["row"] + [f"eps={e:g}" for e in epsilons])]
    for name, vals in rows:
        lines.append(",".join([name] + ["" if v is None else f"{v:.6g}" for v in vals]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _verdict(results: Results, epsilons: Sequence[float]) -> tuple[list[str], dict[str, Any]]:
    """Whether the paper's finding shows, from the numbers (criteria fixed in the constants).

    Judged twice: with the paper's Rel MSE (``rel_mse``: |change| against the full-grid clean
    MSE) and with the same-points change (``rel_mse_same_points``: signed, both MSEs over the
    points that stay in Ω), which is free of the selection made by dropping.
    """
    eps = np.asarray(epsilons)
    strong = eps >= STRONG_EPS - 1e-12
    eps_text = ", ".join(f"{e:g}" for e in epsilons)
    notes: list[str] = []
    facts: dict[str, Any] = {}
    for metric, label in (("rel_mse", "paper's Rel MSE"),
                          ("rel_mse_same_points", "same-points change")):
        def rel(model: str, atk: str, metric: str = metric) -> np.ndarray:
            return np.array([results.value(model=model, attack=atk, epsilon=e, metric=metric)
                             for e in epsilons])

        pinn_f, rnn_f = rel("PINN", "fgsm"), rel("RNN", "fgsm")
        f: dict[str, Any] = {}
        if strong.any():
            p_mean, r_mean = float(pinn_f[strong].mean()), float(rnn_f[strong].mean())
            ratio = p_mean / r_mean if r_mean > 0 else float("inf")
            f.update(pinn_mean_strong=p_mean, rnn_mean_strong=r_mean, pinn_over_rnn=ratio,
                     pinn_far_more=bool(ratio >= FAR_MORE),
                     pinn_above_rnn=int((pinn_f[strong] > rnn_f[strong]).sum()))
            notes.append(
                f"[{label}] PINN vs RNN under strong FGSM (eps >= {STRONG_EPS:g}): mean "
                f"{p_mean:.3g} vs {r_mean:.3g}, ratio {ratio:.2f}, PINN higher at "
                f"{f['pinn_above_rnn']} of {int(strong.sum())} eps: paper's finding "
                + ("REPRODUCED" if f["pinn_far_more"] else "NOT reproduced")
                + f" (criterion: ratio >= {FAR_MORE:g}).")
        for name, fg in (("RNN", rnn_f), ("PINN", pinn_f)):
            rd = rel(name, "random_sign")
            barely = bool((np.abs(rd) <= BARELY * fg).all())
            f[f"{name}_random_barely_moves"] = barely
            notes.append(
                f"[{label}] {name}: random sign {', '.join(_fmt(v) for v in rd)} vs FGSM "
                f"{', '.join(_fmt(v) for v in fg)} (eps {eps_text}); |random| "
                + ("stays below" if barely else "is NOT below")
                + f" {BARELY:g}× FGSM at every eps.")
        f["holds"] = bool(f.get("pinn_far_more")) and all(
            f[f"{n}_random_barely_moves"] for n in ("RNN", "PINN"))
        facts[metric] = f
        notes.append(
            f"[{label}] 'The PINN degrades far more than the RNN under FGSM while random noise "
            f"barely moves either': {'HOLDS' if f['holds'] else 'does NOT hold'}.")
    for name in ("RNN", "PINN"):
        for atk in ("fgsm", "random_sign"):
            neg = [e for e in epsilons
                   if results.value(model=name, attack=atk, epsilon=e, metric="rel_mse_signed") < 0]
            facts[f"{name}_{atk}_mse_below_clean_at"] = neg
            if neg:
                notes.append(
                    f"{name} {atk}: the attacked MSE is BELOW the full-grid clean MSE at eps "
                    f"{', '.join(f'{e:g}' for e in neg)}; the paper's |·| counts these decreases "
                    "as degradation (see rel_mse_signed).")
    return notes, facts


# --------------------------------------------------------------------------- figures
def _figures(directory: Path, results: Results, settings: PoissonSettings,
             fields: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from scirobust.report import COLORS, save_figure

    folder = directory / "figures" / "case"
    eps = list(settings.epsilons)

    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, model, paper_key in zip(axes, ("RNN", "PINN"), ("RNN", "DNN"), strict=True):
        for atk, style, label in (("fgsm", "-", "FGSM (ours)"),
                                  ("random_sign", "--", "random sign (ours)")):
            recs = sorted(results.select(model=model, attack=atk, metric="rel_mse"),
                          key=lambda r: r.epsilon)
            x = np.array([r.epsilon for r in recs])
            y = np.array([r.value for r in recs])
            color = COLORS.fgsm if atk == "fgsm" else COLORS.random
            ax.plot(x, np.maximum(y, 1e-4), style, color=color, marker="o", ms=3, label=label)
            if atk == "random_sign":
                s = np.nan_to_num(np.array([r.spread for r in recs]))
                ax.fill_between(x, np.maximum(y - s, 1e-4), y + s, color=color, alpha=0.15,
                                lw=0)
        px = [e for e, v in zip(EPSILONS, PAPER_TABLE1[paper_key], strict=True)
              if v is not None and e in eps]
        py = [v for e, v in zip(EPSILONS, PAPER_TABLE1[paper_key], strict=True)
              if v is not None and e in eps]
        ax.plot(px, py, "D", color=COLORS.clean, mfc="none", ms=6,
                label=f"paper Table 1 ({paper_key}, FGSM)")
        ax.set_yscale("log")
        ax.set_xlabel("perturbation eps (L-inf, units of x, y)")
        ax.set_title({"RNN": "randomized network (RNN)", "PINN": "PINN (paper: DNN)"}[model])
        ax.grid(alpha=0.3, which="both", lw=0.5)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("Rel MSE (dimensionless)")
    # The random band's lower edge can reach zero; keep the axis on the plotted values.
    lows = [r.value for r in results.select(metric="rel_mse") if r.value > 0]
    if lows:
        axes[0].set_ylim(bottom=max(min(lows) / 3, 1e-4))
    save_figure(fig, folder, "rel_mse_vs_eps")
    atomic_write_text(folder / "rel_mse_vs_eps.txt",
                      "Rel MSE against eps on the attack grid: FGSM (solid), random sign "
                      "(dashed, band = std over draws), paper's Table 1 FGSM values (open "
                      "diamonds; RNN at eps = 0.25 unreadable in the paper's text). Values "
                      "below 1e-4 drawn at 1e-4.")

    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, model in zip(axes, ("RNN", "PINN"), strict=True):
        ax.axhline(0.0, color=COLORS.clean, lw=0.8)
        for metric, marker, lw, what in (("rel_mse_signed", "o", 1.0, "vs full-grid clean"),
                                         ("rel_mse_same_points", "s", 2.0, "same points")):
            for atk, style in (("fgsm", "-"), ("random_sign", "--")):
                recs = sorted(results.select(model=model, attack=atk, metric=metric),
                              key=lambda r: r.epsilon)
                ax.plot([r.epsilon for r in recs], [r.value for r in recs], style,
                        color=COLORS.fgsm if atk == "fgsm" else COLORS.random, marker=marker,
                        ms=3, lw=lw,
                        label=f"{'FGSM' if atk == 'fgsm' else 'random'}, {what}")
        ax.set_xlabel("perturbation eps (L-inf, units of x, y)")
        ax.set_title({"RNN": "randomized network (RNN)", "PINN": "PINN (paper: DNN)"}[model])
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=6.5)
    axes[0].set_ylabel("(MSE_att − MSE_clean) / MSE_clean")
    save_figure(fig, folder, "rel_mse_signed_vs_eps")
    atomic_write_text(folder / "rel_mse_signed_vs_eps.txt",
                      "Signed relative change of the MSE: against the full-grid clean MSE "
                      "(thin, circles; the paper's Rel MSE is its absolute value) and with both "
                      "MSEs over the same points that stay in Ω (thick, squares). Below zero "
                      "the perturbed points have a smaller error than the clean ones.")

    n = settings.grid
    fig = Figure(figsize=(8.0, 7.0), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    extent = (-1, 1, -1, 1)
    panels = [("exact u = sin(4πx) sin(4πy)", fields["u_exact"], "RdBu_r"),
              ("PINN error u_PINN − u", fields["err_pinn"], "PuOr_r"),
              ("RNN error u_RNN − u", fields["err_rnn"], "PuOr_r")]
    for ax, (title, data, cmap) in zip(axes[:3], panels, strict=False):
        # 99.5th percentile: a few corner points would otherwise wash out the colour scale.
        lim = float(np.percentile(np.abs(data), 99.5)) or 1.0
        im = ax.imshow(data.reshape(n, n).T, origin="lower", extent=extent, cmap=cmap,
                       vmin=-lim, vmax=lim)
        fig.colorbar(im, ax=ax, shrink=0.8, extend="both")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    ax = axes[3]
    err = np.abs(fields["err_pinn"]).reshape(n, n).T
    im = ax.imshow(err, origin="lower", extent=extent, cmap="Greys", vmin=0,
                   vmax=float(np.percentile(err, 99.5)) or 1.0)
    fig.colorbar(im, ax=ax, shrink=0.8, extend="max")
    step = max(1, round(n / 12))  # ~12 arrows per side stay readable
    pts = fields["grid"].reshape(n, n, 2)[::step, ::step].reshape(-1, 2)
    dlt = fields["delta_pinn"].reshape(n, n, 2)[::step, ::step].reshape(-1, 2)
    ax.quiver(pts[:, 0], pts[:, 1], dlt[:, 0], dlt[:, 1], color=COLORS.fgsm,
              angles="xy", scale_units="xy", scale=1.0, width=0.004)
    ax.set_title(f"FGSM step on the PINN, eps = {settings.field_eps:g}\n(over |PINN error|)",
                 fontsize=9)
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    save_figure(fig, folder, "fields")
    atomic_write_text(folder / "fields.txt",
                      "Exact solution, pointwise errors of both networks on the attack grid "
                      "(colour scales clipped at the 99.5th percentile of |value|), and the FGSM "
                      "perturbation of the PINN's inputs (arrows, true length; "
                      "every few grid points) over its absolute error.")


# --------------------------------------------------------------------------- the case
def run_poisson(options: CaseOptions, settings: PoissonSettings | None = None) -> CaseOutput:
    """Fit the RNN, train the PINN, attack both on the grid, write results, figures, report."""
    started = time.perf_counter()
    settings = settings or (PoissonSettings.quick() if options.quick else PoissonSettings.full())
    directory = Path(options.output)
    device = options.device
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.num_threads)
    try:
        gen = torch.Generator().manual_seed(options.seed)
        rnn = RandomizedNet(settings.rnn_hidden, settings.rnn_radius, generator=gen)
        interior, boundary = rnn_points(settings, gen)
        rnn_fit = fit_rnn(rnn, interior, boundary, settings.rnn_penalty, settings.rnn_driver)
        rnn.to(device)
        # A separate stream for the PINN, so its initial weights do not depend on RNN settings.
        pinn32, train_info = train_pinn(settings, options.seed + 1, device, options.quiet)
        # Attack in float64 for both: the same grid and reference; float32 → float64 changes
        # the trained function only at rounding level.
        pinn = PINN(settings.pinn_width, settings.pinn_depth, dtype=torch.float64)
        pinn.load_state_dict({k: v.double() for k, v in pinn32.state_dict().items()})
        pinn.to(device).eval()

        points = grid(settings.grid).to(device)
        budget = Budget(norm="linf", bounds=(-1.0, 1.0), outside="drop")
        results = Results()
        audits: dict[str, Any] = {}
        same_points: dict[str, dict[str, dict[float, dict[str, Any]]]] = {}
        consistency: dict[str, float] = {}
        for name, model in (("RNN", rnn), ("PINN", pinn)):
            res = audit(
                model, points, reference=u_exact, epsilons=settings.epsilons,
                attacks=["random_sign", "fgsm"], metrics=["mse", "relative_l2"],
                n_random=settings.n_random, budget=budget, batch_size=4096, seed=options.seed,
                device=device, case=CASE_NAME, model_name=name, progress=not options.quiet,
            )
            res.records.extend(_rel_mse_records(res, name))
            sp = _same_points(model, points, budget, settings.epsilons, settings.n_random,
                              options.seed + 2)
            same_points[name] = sp
            for atk, per_eps in sp.items():
                for eps, info in per_eps.items():
                    ref = res.select(attack=atk, epsilon=eps, metric="mse")[0]
                    spread = float(info["signed"].std(ddof=1)) if info["signed"].size > 1 \
                        else float("nan")
                    res.records.append(Record(
                        CASE_NAME, name, atk, eps, "rel_mse_same_points",
                        _same_points_rel(info), float("nan"), ref.n, spread, ref.n_dropped,
                        "clean on kept points"))
            # FGSM is deterministic: the re-run must give the audit's attacked MSE.
            consistency[name] = max(
                abs(info["mse_attacked"] / res.value(attack="fgsm", epsilon=eps, metric="mse")
                    - 1.0) for eps, info in sp["fgsm"].items())
            results.records.extend(res.records)
            results.per_sample.update({f"{name}|{k}": v for k, v in res.per_sample.items()})
            audits[name] = res.metadata

        with torch.no_grad():
            fields = {
                "grid": points.cpu().numpy(),
                "u_exact": u_exact(points).squeeze(1).cpu().numpy(),
                "err_pinn": (pinn(points) - u_exact(points)).squeeze(1).cpu().numpy(),
                "err_rnn": (rnn(points) - u_exact(points)).squeeze(1).cpu().numpy(),
            }
        field_eps = settings.field_eps
        fgsm_pinn = same_points["PINN"]["fgsm"]
        x_adv = (fgsm_pinn[field_eps]["x_new"] if field_eps in fgsm_pinn
                 else attack(pinn, points, objectives.against_reference(u_exact),
                             budget.scaled(field_eps), "fgsm"))
        fields["delta_pinn"] = (x_adv - points).cpu().numpy()
        results.per_sample.update({f"field|{k}": v for k, v in fields.items()})

        table_rows = _table_rows(results, settings.epsilons)
        _write_table(directory / "tables" / "table1_rel_mse.csv", settings.epsilons, table_rows)
        _figures(directory, results, settings, fields)
        verdict_notes, facts = _verdict(results, settings.epsilons)
        total = time.perf_counter() - started
        notes = _notes(results, settings, rnn_fit, train_info, same_points, total,
                       options.quick)
        # verdict right after the clean errors (and after a warning, if any)
        at = next(i for i, n in enumerate(notes) if n.startswith("Clean relative")) + 1
        notes[at:at] = verdict_notes
        results.metadata = {
            "case": CASE_NAME,
            "title": CASE.title,
            "paper": CASE.paper,
            "description": (
                "2D Poisson problem −Δu = 32π² sin(4πx) sin(4πy) on [−1, 1]², solved by a "
                "randomized network (400 frozen tanh features, output layer by least squares) "
                "and by a PINN (5 × 100 tanh, Adam). Both are attacked on a "
                f"{settings.grid} × {settings.grid} grid with FGSM and with random ±eps of the "
                "same size; points pushed out of the domain are dropped. Rel MSE = |MSE_att − "
                "MSE_clean| / MSE_clean as in the paper's Table 1."
            ),
            "notes": notes,
            "verdict": facts,
            "settings": dataclasses.asdict(settings),
            "seed": options.seed,
            "quick": options.quick,
            "device": str(device),
            "units": {"x": "dimensionless (Ω = [−1, 1]²)", "epsilon": "units of x (L-inf)",
                      "mse": "u² (dimensionless)", "rel_mse": "dimensionless"},
            "epsilon_label": "perturbation of (x, y), eps (L-inf)",
            "paper_table1": {k: list(v) for k, v in PAPER_TABLE1.items()},
            "paper_rnn_spread_eps_0.2": PAPER_RNN_SPREAD_EPS_0_2,
            "rnn_fit": rnn_fit,
            "pinn_training": {k: v for k, v in train_info.items()},
            "clean_relative_l2": {
                name: results.value(model=name, attack="clean", metric="relative_l2")
                for name in ("RNN", "PINN")},
            "audits": audits,
            "fgsm_rerun_max_relative_difference": consistency,
            "wall_time_s": total,
        }
        results.save(directory)
        from scirobust.report import write_report

        report = write_report(results, directory, title=CASE.title)
    finally:
        torch.set_num_threads(threads)
    summary = [["Rel MSE"] + [f"eps={e:g}" for e in settings.epsilons]]
    summary += [[name] + [_fmt(v) for v in vals] for name, vals in table_rows]
    return CaseOutput(results, report, summary)


def _notes(results: Results, settings: PoissonSettings, rnn_fit: dict[str, Any],
           train_info: dict[str, Any],
           same_points: dict[str, dict[str, dict[float, dict[str, Any]]]],
           total: float, quick: bool) -> list[str]:
    rl2 = {n: results.value(model=n, attack="clean", metric="relative_l2") for n in ("RNN", "PINN")}
    mse = {n: results.value(model=n, attack="clean", metric="mse") for n in ("RNN", "PINN")}
    s = settings
    notes = [
        f"Clean relative L2 error on the {s.grid} × {s.grid} grid: RNN {rl2['RNN']:.3g}, PINN "
        f"{rl2['PINN']:.3g} (clean MSE {mse['RNN']:.3g} and {mse['PINN']:.3g}). Rel MSE divides "
        "by each network's own clean MSE, so it compares relative growth of the error, not "
        "absolute error.",
        f"RNN: {s.rnn_hidden} tanh neurons, weights and biases ~ U(−{s.rnn_radius:g}, "
        f"{s.rnn_radius:g}) (paper: R = 1), {s.rnn_interior_per_axis}² interior points "
        f"({'grid strictly inside Ω' if s.rnn_interior_layout == 'grid' else 'uniform random'})"
        f" + 4 × {s.rnn_boundary_per_side} boundary points (segment midpoints), boundary rows "
        f"× {s.rnn_penalty:g}: a {rnn_fit['system_shape'][0]} × {rnn_fit['system_shape'][1]} "
        f"system solved by torch.linalg.lstsq (driver {rnn_fit['driver']}, float64, numerical "
        f"rank {rnn_fit['rank']}, largest |c| {rnn_fit['max_abs_coef']:.2g}) in "
        f"{rnn_fit['solve_seconds']:.2f} s. Laplacian of the features analytic.",
        f"PINN: {s.pinn_depth} × {s.pinn_width} tanh, Xavier-normal init with first-layer "
        f"weights × {s.pinn_first_layer_scale:g} (choice), Adam lr {s.pinn_lr:g}, constant for "
        f"the first {s.pinn_decay_start:.0%} of the iterations, then decaying exponentially to "
        f"{s.pinn_lr * s.pinn_lr_final_factor:g} (choice), "
        f"{s.pinn_iterations} iterations, {s.pinn_interior} interior + {s.pinn_boundary} "
        "boundary points redrawn uniformly each iteration; loss = mean((Δu + f)²) + "
        f"{s.pinn_boundary_penalty:g}² mean((u − g)²), scaled by 1/(32π²)² (the RNN's boundary "
        "penalty); Laplacian by exact forward propagation of first and second derivatives "
        "(equal to autograd's double backward, tested), parameter gradients by autograd; "
        f"trained in float32 in {train_info['train_seconds']:.0f} s, final loss "
        f"{train_info['final_loss']:.3g}; attacked as a float64 copy.",
        f"Attack: {s.grid} × {s.grid} uniform grid over Ω (paper: 101 × 101), FGSM and random "
        f"sign ({s.n_random} draws), eps {', '.join(f'{e:g}' for e in s.epsilons)} (L-inf); "
        "objective = squared error against the exact solution at the perturbed point "
        "(objectives.against_reference, u in torch); perturbed points outside Ω dropped "
        "(Budget outside='drop').",
        "Rel MSE (rel_mse, Table 1) uses the full-grid clean MSE (the paper drops only "
        "attacked points). Dropping changes which points (those near ∂Ω) enter the average, "
        "so part of it can be selection rather than attack; rel_mse_signed is the same without "
        "|·|, and rel_mse_same_points is the signed change with both MSEs over exactly the "
        "points that stay in Ω (random: mean over its own draws, spread = std over draws).",
    ]
    if rl2["PINN"] > POOR_FIT:
        notes.insert(0, (
            f"WARNING: the PINN's relative L2 error {rl2['PINN']:.2g} exceeds {POOR_FIT:g}: it "
            "has not learned the solution (still near the u ≈ 0 plateau), so its Rel MSE "
            "is not a meaningful robustness measure in this run. Train longer (full mode)."))
    for name in ("RNN", "PINN"):
        sp = same_points[name]["fgsm"]
        notes.append(
            f"{name}: points dropped by FGSM: "
            + ", ".join(f"{e:g}: {int((~v['kept']).sum())}" for e, v in sp.items())
            + f" of {s.grid ** 2} (eps: count).")
    notes += [
        "Paper Table 1: the RNN value at eps = 0.25 is unreadable in the text we have (stored "
        "as None); '0.273 ± 0.234' at eps = 0.2 is stored as 0.273 (± 0.234 in metadata).",
        "Exact: the PDE, exact solution, both architectures, the RNN's least-squares set-up, "
        "Adam lr, the attack grid, eps values, dropping and Rel MSE. Choices/stand-ins: PINN "
        "loss weights, collocation, initialisation, iterations and schedule (the paper gives "
        "none), RNN point layout and the random draws of both networks.",
        f"Mode: {'quick' if quick else 'full'}; total wall time {total:.0f} s on "
        f"{s.num_threads} intra-op thread(s).",
    ]
    return notes


def run(options: CaseOptions) -> CaseOutput:
    """Entry point of ``scirobust reproduce poisson [--quick]``."""
    return run_poisson(options)


CASE = Case(
    name=CASE_NAME,
    title="Poisson equation: randomized network vs PINN under FGSM",
    paper="000 §3.3, §5.6, Table 1",
    run=run,
)
