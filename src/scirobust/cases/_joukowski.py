"""Exact inviscid potential flow around Joukowski airfoils (the airfoil case's reference).

Circle plane ζ: a circle of centre ``μ`` and radius ``R = |1 − μ|`` through ζ = 1; the map
``z = ζ + 1/ζ`` sends it to an airfoil whose cusped trailing edge is z = 2. With free-stream
speed ``U`` at angle of attack ``α`` (radians here) and circulation ``Γ`` fixed by the Kutta
condition, the complex velocity in the circle plane is

    dw/dζ = U e^{−iα} − U R² e^{iα}/(ζ − μ)² + iΓ / (2π (ζ − μ)),   Γ = 4π U R sin(α + β),

with ``1 − μ = R e^{−iβ}``; the velocity in the airfoil plane is ``W = (dw/dζ) / (1 − 1/ζ²)``
and the pressure coefficient ``Cp = 1 − |W|²/U²``. Lengths are in units of the circle-plane
scale (chord ≈ 4); `to_chord_frame` maps to chord-normalised coordinates (x ≈ 0 at the leading
edge, x = 1 at the trailing edge) in which the PINN takes its inputs.

Everything is torch (complex128 / float64) so it can serve as a differentiable reference.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "FRAME_SCALE",
    "FRAME_SHIFT",
    "airfoil_velocity",
    "chord_length",
    "circle_cp",
    "circle_geometry",
    "circle_velocity",
    "circulation",
    "from_chord_frame",
    "integrated_lift_coefficient",
    "inverse_joukowski",
    "kutta_joukowski_lift_coefficient",
    "surface_cp",
    "surface_points",
    "to_chord_frame",
    "trailing_edge_angle",
]

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


def circle_cp(theta: Tensor, alpha_rad: Tensor | float, mu: complex | Tensor) -> Tensor:
    """Pressure coefficient on the circle itself (before the map): ``1 − |dw/dζ|²/U²``.

    For μ = 0, α = 0 this is the cylinder's ``1 − 4 sin²θ``.
    """
    zeta, _ = surface_points(theta, mu)
    return 1.0 - circle_velocity(zeta, alpha_rad, mu).abs() ** 2


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


def _offset_angles(mu: complex | Tensor, n: int) -> Tensor:
    """``n`` angles uniform on the circle, half a step away from the trailing edge."""
    theta_te = trailing_edge_angle(mu)
    return theta_te + 2.0 * math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n


def chord_length(mu: complex | Tensor, n: int = 20_001) -> float:
    """Chord (trailing edge z = 2 to the leftmost surface point), circle-plane units."""
    _, z = surface_points(_offset_angles(mu, n), mu)
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
    theta = _offset_angles(mu, n)
    zeta, _ = surface_points(theta, mu)
    dz_dtheta = (1.0 - 1.0 / zeta**2) * 1j * (zeta - _complex(mu))
    cp = surface_cp(theta, alpha_rad, mu)
    force = 1j * (cp * dz_dtheta).sum() * (2.0 * math.pi / n)
    lift_dir = 1j * complex(math.cos(alpha_rad), math.sin(alpha_rad))
    lift = (force * complex(lift_dir).conjugate()).real
    return float(lift) / chord_length(mu)
