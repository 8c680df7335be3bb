"""Joukowski airfoils: the exact inviscid potential flow and the body-fitted PINN.

Exact flow. Circle plane ζ: a circle of centre ``μ`` and radius ``R = |1 − μ|`` through ζ = 1;
the map ``z = ζ + 1/ζ`` sends it to an airfoil whose cusped trailing edge is z = 2. With
free-stream speed ``U`` at angle of attack ``α`` (radians here) and circulation ``Γ`` fixed by
the Kutta condition, the complex velocity in the circle plane is

    dw/dζ = U e^{−iα} − U R² e^{iα}/(ζ − μ)² + iΓ / (2π (ζ − μ)),   Γ = 4π U R sin(α + β),

with ``1 − μ = R e^{−iβ}``; the velocity in the airfoil plane is ``W = (dw/dζ) / (1 − 1/ζ²)``
and the pressure coefficient ``Cp = 1 − |W|²/U²``. Lengths are in units of the circle-plane
scale (chord ≈ 4); `to_chord_frame` maps to chord-normalised coordinates (x ≈ 0 at the leading
edge, x = 1 at the trailing edge) in which the PINN takes its inputs. All torch (complex128 /
float64), so the reference is differentiable.

PINN (`JoukowskiPinn`). The chord-frame input (x, y) is mapped exactly to the circle plane,
``ζ = J⁻¹(z)``, ``ζ − μ = R e^{s + iθ}`` (s = 0 on the wall), where Laplace's equation stays
``ψ_ss + ψ_θθ = 0``. The free stream is built into ``ψ = U R [e^{s} sin(θ − α) + N(s, θ, α, μ)]``;
the network N learns the rest from the PDE residual on s ∈ [0, s_max], the wall streamline
``ψ_θ = 0`` at s = 0, the far field ``N_θ = 0`` at s_max and the Kutta condition ``ψ_s = 0``
at the trailing edge. The surface speed is ``|W| = |dw/dσ| / (|ζ − μ| |1 − 1/ζ²|)`` with
``|dw/dσ|² = ψ_s² + ψ_θ²``. Derivatives of N are propagated through the MLP in closed form
(forward mode), so training needs one backward pass and an attack differentiates Cp in x, y.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import track
from torch import Tensor, nn

__all__ = ["FRAME_SCALE", "FRAME_SHIFT", "ExactStream", "JoukowskiPinn", "PinnSettings",
           "StreamNet", "airfoil_velocity", "chord_length", "circle_geometry", "circle_velocity",
           "circulation", "from_chord_frame", "integrated_lift_coefficient", "inverse_joukowski",
           "kutta_joukowski_lift_coefficient", "pinn_losses", "surface_angles", "surface_cp",
           "surface_points", "to_chord_frame", "trailing_edge_angle", "train_pinn"]

FRAME_SHIFT = 2.0
FRAME_SCALE = 4.0
"""Chord frame: ``x = (Re z + 2)/4``, ``y = Im z / 4`` (trailing edge at x = 1, y = 0)."""


def _complex(mu: complex | Tensor) -> Tensor:
    return torch.as_tensor(mu, dtype=torch.complex128)


def circle_geometry(mu: complex | Tensor) -> tuple[Tensor, Tensor]:
    """Radius ``R = |1 − μ|`` and angle ``β`` with ``1 − μ = R e^{−iβ}`` (radians)."""
    one_minus = 1.0 - _complex(mu)
    return one_minus.abs(), -torch.angle(one_minus)


def trailing_edge_angle(mu: complex | Tensor) -> Tensor:
    """Polar angle of the trailing edge ζ = 1 on the circle, seen from its centre: ``−β``."""
    return -circle_geometry(mu)[1]


def circulation(alpha_rad: Tensor | float, mu: complex | Tensor, speed: float = 1.0) -> Tensor:
    """Kutta circulation ``Γ = 4π U R sin(α + β)`` (circle-plane length × speed)."""
    radius, beta = circle_geometry(mu)
    return 4.0 * math.pi * speed * radius * torch.sin(torch.as_tensor(alpha_rad) + beta)


def circle_velocity(
    zeta: Tensor, alpha_rad: Tensor | float, mu: complex | Tensor, speed: float = 1.0
) -> Tensor:
    """Complex velocity ``dw/dζ = u − iv`` of the Kutta flow past the circle (complex128)."""
    mu = _complex(mu)
    alpha = torch.as_tensor(alpha_rad, dtype=torch.float64)
    radius, _ = circle_geometry(mu)
    gamma = circulation(alpha, mu, speed)
    rel = zeta - mu
    e_ia = torch.polar(torch.ones_like(alpha), alpha)
    return speed / e_ia - speed * radius**2 * e_ia / rel**2 + 1j * gamma / (2 * math.pi * rel)


def surface_points(theta: Tensor, mu: complex | Tensor) -> tuple[Tensor, Tensor]:
    """Circle point ``ζ = μ + R e^{iθ}`` and airfoil point ``z = ζ + 1/ζ`` for angles θ."""
    mu = _complex(mu)
    radius, _ = circle_geometry(mu)
    zeta = mu + radius * torch.polar(torch.ones_like(theta, dtype=torch.float64),
                                     theta.to(torch.float64))
    return zeta, zeta + 1.0 / zeta


def airfoil_velocity(zeta: Tensor, alpha_rad: Tensor | float, mu: complex | Tensor) -> Tensor:
    """Complex velocity in the airfoil plane ``W = (dw/dζ)/(1 − 1/ζ²)`` (U = 1).

    0/0 exactly at the trailing edge ζ = 1 (finite limit); evaluate off that point.
    """
    return circle_velocity(zeta, alpha_rad, mu) / (1.0 - 1.0 / zeta**2)


def surface_cp(theta: Tensor, alpha_rad: Tensor | float, mu: complex | Tensor) -> Tensor:
    """Exact surface ``Cp`` of the Joukowski airfoil at circle angles θ (not exactly −β)."""
    zeta, _ = surface_points(theta, mu)
    return 1.0 - airfoil_velocity(zeta, alpha_rad, mu).abs() ** 2


def inverse_joukowski(z: Tensor, mu: complex | Tensor) -> Tensor:
    """Pre-image ζ of ``z = ζ + 1/ζ`` on the side of the circle's exterior.

    Of the two roots ``(z ± √(z² − 4))/2`` (whose product is 1) the one farther from μ: the
    exterior root for points outside the airfoil; for points inside it (both roots inside the
    circle) the one nearer the circle, so small excursions into the body map continuously.
    Differentiable (complex autograd) except at the branch points z = ±2.
    """
    q = torch.sqrt(z * z - 4.0)
    plus, minus = 0.5 * (z + q), 0.5 * (z - q)
    mu = _complex(mu)
    return torch.where((plus - mu).abs() >= (minus - mu).abs(), plus, minus)


def to_chord_frame(z: Tensor) -> tuple[Tensor, Tensor]:
    """Chord-frame coordinates ``(x, y)`` (float64) of complex airfoil-plane points."""
    return (z.real + FRAME_SHIFT) / FRAME_SCALE, z.imag / FRAME_SCALE


def from_chord_frame(x: Tensor, y: Tensor) -> Tensor:
    """Complex airfoil-plane point of chord-frame coordinates (inverse of `to_chord_frame`)."""
    return torch.complex(x * FRAME_SCALE - FRAME_SHIFT, y * FRAME_SCALE)


def surface_angles(mu: complex | Tensor, n: int) -> Tensor:
    """``n`` circle angles θ (radians), uniform, half a step away from the trailing edge."""
    theta_te = trailing_edge_angle(mu)
    return theta_te + 2.0 * math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n


def chord_length(mu: complex | Tensor, n: int = 20_001) -> float:
    """Chord (trailing edge z = 2 to the leftmost surface point), circle-plane units."""
    _, z = surface_points(surface_angles(mu, n), mu)
    return float(FRAME_SHIFT - z.real.min())


def kutta_joukowski_lift_coefficient(alpha_rad: float, mu: complex | Tensor) -> float:
    """``C_l = 2Γ/(U c)`` with the chord ``c`` (Kutta–Joukowski theorem, L = ρUΓ)."""
    return float(2.0 * circulation(alpha_rad, mu) / chord_length(mu))


def integrated_lift_coefficient(alpha_rad: float, mu: complex | Tensor, n: int = 4096) -> float:
    """``C_l`` from integrating the exact surface Cp around the airfoil (trapezoidal rule).

    Force coefficient ``C_F = −∮ Cp n ds = i ∮ Cp dz`` (counter-clockwise contour, outward
    normal ``n ds = −i dz``); lift is its component along ``i e^{iα}``, divided by the chord.
    The integrand is smooth and periodic in θ, so the rule converges spectrally.
    """
    theta = surface_angles(mu, n)
    zeta, _ = surface_points(theta, mu)
    dz_dtheta = (1.0 - 1.0 / zeta**2) * 1j * (zeta - _complex(mu))
    cp = surface_cp(theta, alpha_rad, mu)
    force = 1j * (cp * dz_dtheta).sum() * (2.0 * math.pi / n)
    lift_dir = 1j * complex(math.cos(alpha_rad), math.sin(alpha_rad))
    lift = (force * complex(lift_dir).conjugate()).real
    return float(lift) / chord_length(mu)


# --------------------------------------------------------------------------- PINN
@dataclass(frozen=True)
class PinnSettings:
    """Network, collocation points, loss weights and optimiser of the PINN (defaults: full
    mode). Angles in degrees; circle-centre coordinates and s_max in circle-plane units."""

    iterations: int = 3000
    lbfgs_iterations: int = 2000
    lbfgs_points_factor: int = 4
    learning_rate: float = 2e-3
    final_learning_rate: float = 2e-5
    hidden: int = 48
    depth: int = 4
    n_interior: int = 1024
    n_wall: int = 512
    n_far: int = 256
    n_kutta: int = 128
    weight_pde: float = 1.0
    weight_wall: float = 10.0
    weight_far: float = 1.0
    weight_kutta: float = 10.0
    s_max: float = math.log(50.0)
    alpha_range_deg: tuple[float, float] = (0.0, 8.0)
    mu_x_range: tuple[float, float] = (-0.15, -0.05)
    mu_y_range: tuple[float, float] = (0.0, 0.10)


class StreamNet(nn.Module):
    """MLP ``N(s, θ, α, μx, μy)`` with its s- and θ-derivatives propagated in closed form.

    Features: ``(2s/s_max − 1, cos θ, sin θ, α̃, μ̃x, μ̃y)`` (parameters scaled to [−1, 1]);
    tanh hidden layers. `derivatives` returns N, N_s, N_θ and (``second=True``) N_ss, N_θθ,
    all differentiable in the parameters and in the inputs.
    """

    def __init__(self, settings: PinnSettings) -> None:
        super().__init__()
        widths = [6] + [settings.hidden] * settings.depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.head = nn.Linear(settings.hidden, 1)
        self.s_max = settings.s_max
        ranges = (settings.alpha_range_deg, settings.mu_x_range, settings.mu_y_range)
        self.register_buffer("centre", torch.tensor([(a + b) / 2 for a, b in ranges]))
        self.register_buffer("span", torch.tensor([(b - a) / 2 for a, b in ranges]))

    def derivatives(
        self, s: Tensor, theta: Tensor, params: Tensor, second: bool = False
    ) -> tuple[Tensor, ...]:
        """``(N, N_s, N_θ[, N_ss, N_θθ])`` at ``s, θ`` (shape (n,)) and ``params`` (n, 3)."""
        p = (params - self.centre) / self.span
        cos, sin = torch.cos(theta), torch.sin(theta)
        zero = torch.zeros_like(s)
        h = torch.cat([torch.stack([2 * s / self.s_max - 1, cos, sin], -1), p], -1)
        d_s = torch.zeros_like(h)
        d_s[:, 0] = 2.0 / self.s_max
        d_t = torch.stack([zero, -sin, cos, zero, zero, zero], -1)
        streams = [d_s, d_t]
        if second:
            streams += [torch.zeros_like(h), torch.stack([zero, -cos, -sin, zero, zero, zero],
                                                         -1)]
        n = s.shape[0]
        for layer in self.hidden:
            z = layer(h)
            dz = F.linear(torch.cat(streams), layer.weight).split(n)
            a = torch.tanh(z)
            a1 = 1.0 - a * a
            h = a
            if second:
                a2 = -2.0 * a * a1
                streams = [a1 * dz[0], a1 * dz[1], a2 * dz[0] ** 2 + a1 * dz[2],
                           a2 * dz[1] ** 2 + a1 * dz[3]]
            else:
                streams = [a1 * dz[0], a1 * dz[1]]
        out = [self.head(h)[:, 0]]
        out += [F.linear(d, self.head.weight)[:, 0] for d in streams]
        return tuple(out)


class ExactStream(nn.Module):
    """The exact ``N`` of the Joukowski flow, ``−e^{−s} sin(θ − α) + 2 sin(α + β) s``.

    Same interface as `StreamNet`; used to check the Cp pipeline and as the physical control
    (how much the *true* surface Cp changes when the coordinates move).
    """

    def derivatives(
        self, s: Tensor, theta: Tensor, params: Tensor, second: bool = False
    ) -> tuple[Tensor, ...]:
        alpha = torch.deg2rad(params[:, 0])
        _, beta = circle_geometry(torch.complex(params[:, 1], params[:, 2]))
        a = 2.0 * torch.sin(alpha + beta)
        decay = torch.exp(-s)
        sin, cos = torch.sin(theta - alpha), torch.cos(theta - alpha)
        out = (-decay * sin + a * s, decay * sin + a, -decay * cos)
        if second:
            out += (-decay * sin, decay * sin)
        return out


def circle_polar(zeta: Tensor, mu: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(s, θ, ζ)`` of circle-plane points: ``ζ − μ = R e^{s + iθ}`` (R from `circle_geometry`)."""
    rel = zeta - mu
    s = torch.log(rel.abs() / circle_geometry(mu)[0])
    return s, torch.atan2(rel.imag, rel.real), zeta


def stream_cp(stream: nn.Module, s: Tensor, theta: Tensor, params: Tensor, alpha_deg: Tensor,
              metric: Tensor) -> Tensor:
    """Incompressible Cp (n,) from the circle-plane stream function
    ``U R [e^{s} sin(θ − α) + N]`` (``N`` and its derivatives from ``stream`` at ``params``),
    with ``metric`` = |dz/dζ|² of the map from the circle to the airfoil plane."""
    _, n_s, n_t = stream.derivatives(s, theta, params)
    alpha = torch.deg2rad(alpha_deg)
    grow = torch.exp(s)
    psi_s = grow * torch.sin(theta - alpha) + n_s
    psi_t = grow * torch.cos(theta - alpha) + n_t
    return 1.0 - torch.exp(-2.0 * s) * (psi_s**2 + psi_t**2) / metric


class JoukowskiPinn(nn.Module):
    """Surface/field pressure coefficient from chord-frame inputs (x, y, α°, μx, μy).

    ``forward(X)`` with ``X`` of shape (n, 5) returns Cp of shape (n, 1). The inputs go through
    the exact body-fitted map to circle-plane coordinates (s, θ), the stream function is
    ``U R [e^{s} sin(θ − α) + N]`` with ``N`` from ``stream`` (`StreamNet` or `ExactStream`).
    """

    def __init__(self, stream: nn.Module) -> None:
        super().__init__()
        self.stream = stream

    @staticmethod
    def circle_coordinates(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(s, θ, ζ)`` of each input point: ``ζ − μ = R e^{s + iθ}``."""
        mu = torch.complex(x[:, 3], x[:, 4])
        return circle_polar(inverse_joukowski(from_chord_frame(x[:, 0], x[:, 1]), mu), mu)

    def forward(self, x: Tensor) -> Tensor:
        s, theta, zeta = self.circle_coordinates(x)
        metric = (1.0 - 1.0 / zeta**2).abs() ** 2
        return stream_cp(self.stream, s, theta, x[:, 2:], x[:, 2], metric)[:, None]


# --------------------------------------------------------------------------- training
def _sample_params(settings: PinnSettings, n: int, gen: torch.Generator) -> Tensor:
    u = torch.rand(n, 3, generator=gen, dtype=torch.float64)
    ranges = torch.tensor([settings.alpha_range_deg, settings.mu_x_range, settings.mu_y_range],
                          dtype=torch.float64)
    return ranges[:, 0] + u * (ranges[:, 1] - ranges[:, 0])


def pinn_losses(
    net: StreamNet, settings: PinnSettings, gen: torch.Generator
) -> dict[str, Tensor]:
    """The four unweighted loss terms on freshly sampled collocation points.

    ``pde``: (N_ss + N_θθ)² inside; ``wall``: ψ_θ/(UR) = cos(θ − α) + N_θ at s = 0;
    ``far``: N_θ at s = s_max; ``kutta``: ψ_s/(UR) = sin(θ_TE − α) + N_s at the trailing edge.
    Interior points are denser near the wall (s = s_max u², u uniform).
    """
    def angles(n: int) -> Tensor:
        return 2.0 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)

    p = _sample_params(settings, settings.n_interior, gen)
    s = settings.s_max * torch.rand(settings.n_interior, generator=gen, dtype=torch.float64) ** 2
    _, _, _, n_ss, n_tt = net.derivatives(s, angles(s.shape[0]), p, second=True)
    pde = ((n_ss + n_tt) ** 2).mean()

    p = _sample_params(settings, settings.n_wall, gen)
    theta = angles(settings.n_wall)
    _, _, n_t = net.derivatives(torch.zeros_like(theta), theta, p)
    wall = ((torch.cos(theta - torch.deg2rad(p[:, 0])) + n_t) ** 2).mean()

    p = _sample_params(settings, settings.n_far, gen)
    theta = angles(settings.n_far)
    _, _, n_t = net.derivatives(torch.full_like(theta, settings.s_max), theta, p)
    far = (n_t**2).mean()

    p = _sample_params(settings, settings.n_kutta, gen)
    theta = trailing_edge_angle(torch.complex(p[:, 1], p[:, 2]))
    _, n_s, _ = net.derivatives(torch.zeros_like(theta), theta, p)
    kutta = ((torch.sin(theta - torch.deg2rad(p[:, 0])) + n_s) ** 2).mean()
    return {"pde": pde, "wall": wall, "far": far, "kutta": kutta}


def train_pinn(
    settings: PinnSettings, seed: int, quiet: bool = True
) -> tuple[JoukowskiPinn, dict[str, Any]]:
    """Train the stream-function network without labels.

    Stage 1: Adam with a cosine learning rate on fresh collocation points every iteration.
    Stage 2 (as NNfoil-C, which uses L-BFGS): L-BFGS with a strong-Wolfe line search on one
    fixed set of ``lbfgs_points_factor`` times as many points. Returns the model (eval mode)
    and a dict with the final loss terms, the weights and the wall time (s).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = StreamNet(settings).double()
    gen = torch.Generator().manual_seed(seed + 1)
    weights = {"pde": settings.weight_pde, "wall": settings.weight_wall,
               "far": settings.weight_far, "kutta": settings.weight_kutta}

    def total(terms: dict[str, Tensor]) -> Tensor:
        return sum(weights[k] * v for k, v in terms.items())  # type: ignore[return-value]

    opt = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, max(settings.iterations, 1), eta_min=settings.final_learning_rate
    )
    started = time.perf_counter()
    for _ in track(range(settings.iterations), "training airfoil PINN (Adam)", disable=quiet):
        opt.zero_grad(set_to_none=True)
        total(pinn_losses(net, settings, gen)).backward()
        opt.step()
        sched.step()

    factor = settings.lbfgs_points_factor
    fixed = dataclasses.replace(
        settings, n_interior=factor * settings.n_interior, n_wall=factor * settings.n_wall,
        n_far=factor * settings.n_far, n_kutta=factor * settings.n_kutta)
    if settings.lbfgs_iterations > 0:
        lbfgs = torch.optim.LBFGS(
            net.parameters(), lr=1.0, max_iter=settings.lbfgs_iterations, history_size=50,
            line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)

        def closure() -> Tensor:
            lbfgs.zero_grad(set_to_none=True)
            # the same fixed points at every evaluation (L-BFGS needs a deterministic loss)
            loss = total(pinn_losses(net, fixed, torch.Generator().manual_seed(seed + 3)))
            loss.backward()
            return loss

        if not quiet:
            Console(stderr=True).print(
                f"training airfoil PINN (L-BFGS, {settings.lbfgs_iterations} iterations)")
        lbfgs.step(closure)
    net.zero_grad(set_to_none=True)
    final = {k: float(v.detach()) for k, v in
             pinn_losses(net, settings, torch.Generator().manual_seed(seed + 4)).items()}
    model = JoukowskiPinn(net).eval()
    return model, {"final_losses": final, "train_seconds": time.perf_counter() - started,
                   "weights": weights}
