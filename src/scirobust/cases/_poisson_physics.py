"""Physics of the Poisson case (problem and paper in `scirobust.cases.poisson`): exact solution
u = sin(4πx) sin(4πy) of −Δu = f on Ω = [−1, 1]², the randomized network with its least-squares
fit, and the PINN with its training. Float64 unless stated; all quantities dimensionless.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from rich.progress import track
from torch import Tensor, nn

if TYPE_CHECKING:
    from scirobust.cases.poisson import PoissonSettings

__all__ = ["F_SCALE", "PINN", "WAVENUMBER", "RandomizedNet", "fit_rnn", "grid",
           "relative_l2_error", "rnn_points", "sample_boundary", "source", "train_pinn", "u_exact"]

WAVENUMBER = 4.0 * math.pi
"""k in u = sin(kx) sin(ky); −Δu = 2k² u = 32π² u."""
F_SCALE = 2.0 * WAVENUMBER**2
"""32π² ≈ 315.8, the amplitude of f; used to scale the PDE residual to O(1)."""


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


def rnn_points(settings: PoissonSettings, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Interior points (a grid strictly inside Ω, or uniform random) and boundary points
    (``rnn_boundary_per_side`` on each side at segment midpoints, no corner twice)."""
    n = settings.rnn_interior_per_axis
    if settings.rnn_interior_layout == "grid":
        interior = grid(n + 2).reshape(n + 2, n + 2, 2)[1:-1, 1:-1].reshape(-1, 2)
    else:
        interior = torch.rand(n * n, 2, generator=generator, dtype=torch.float64) * 2 - 1
    per_side = settings.rnn_boundary_per_side
    s = -1.0 + (2.0 * torch.arange(per_side, dtype=torch.float64) + 1.0) / per_side
    one = torch.ones_like(s)
    sides = ((s, -one), (s, one), (-one, s), (one, s))
    return interior, torch.cat([torch.stack(p, dim=1) for p in sides])


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
    n_int, rank = interior.shape[0], solution.rank
    return {"system_shape": list(a.shape), "driver": driver,
            "rank": int(rank) if rank is not None and rank.numel() else None,
            "max_abs_coef": float(coef.abs().max()),
            "pde_residual_rms": float(residual[:n_int].pow(2).mean().sqrt()),
            "boundary_residual_rms": float((residual[n_int:] / penalty).pow(2).mean().sqrt()),
            "solve_seconds": time.perf_counter() - started}


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


def train_pinn(settings: PoissonSettings, seed: int, device: str = "cpu", quiet: bool = True,
               callback: Callable[[int, PINN], None] | None = None,
               ) -> tuple[PINN, dict[str, Any]]:
    """Train the PINN with Adam in float32; fresh uniform collocation points every iteration.

    Loss = [mean((Δu + f)²) + penalty² mean((u − g)²)] / (32π²)², so the PDE part is O(1);
    penalty = 100 is the RNN's boundary penalty, so both networks weight the boundary against
    the PDE the same way. Constant lr for the first ``pinn_decay_start`` of the iterations
    while the network leaves the u ≈ 0 plateau (decaying early delayed that escape by thousands
    of iterations), then exponential decay to lr × ``pinn_lr_final_factor``. Returns the model
    (float32, eval mode, frozen, on ``device``) and a dict with the training time (s), the loss
    history and the relative L2 error on the attack grid at the end. ``callback(iteration,
    model)`` runs after every optimiser step (e.g. to keep snapshots; it must not modify the
    model).
    """
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float32
    model = PINN(settings.pinn_width, settings.pinn_depth, settings.pinn_first_layer_scale,
                 generator=gen, dtype=dtype).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.pinn_lr)
    n_iter = settings.pinn_iterations
    start, factor = int(settings.pinn_decay_start * n_iter), settings.pinn_lr_final_factor
    penalty = settings.pinn_boundary_penalty
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 if step < start else
                                              factor ** ((step - start) / max(n_iter - start, 1)))
    eval_points = grid(settings.grid).to(device)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    log_every = max(1, n_iter // 20)
    for it in track(range(1, n_iter + 1), "training PINN", transient=True, disable=quiet):
        x_in = (torch.rand(settings.pinn_interior, 2, generator=gen, dtype=dtype) * 2 - 1)
        x_in, x_bd = x_in.to(device), sample_boundary(settings.pinn_boundary, gen, dtype).to(device)
        pde = ((model.value_and_laplacian(x_in)[1] + source(x_in)) / F_SCALE).pow(2).mean()
        bc = (model(x_bd) - u_exact(x_bd)).pow(2).mean() * (penalty / F_SCALE) ** 2
        loss = pde + bc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if callback is not None:
            callback(it, model)
        if it % log_every == 0 or it == n_iter:
            history.append({"iteration": it, "loss": loss.item(), "pde": pde.item(),
                            "boundary": bc.item(),
                            "relative_l2": relative_l2_error(model, eval_points),
                            "seconds": time.perf_counter() - started})
    model.eval().requires_grad_(False)
    return model, {"train_seconds": time.perf_counter() - started, "history": history,
                   "final_loss": history[-1]["loss"] if history else float("nan"),
                   "relative_l2": relative_l2_error(model, eval_points)}
