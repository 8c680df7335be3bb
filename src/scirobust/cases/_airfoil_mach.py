"""Kármán–Trefftz airfoils at subsonic Mach: the 7-input airfoil setting closer to NNfoil-C.

Shape. The Kármán–Trefftz map sends the circle of centre ``μ`` through ζ = 1 (radius
``R = |1 − μ|``) to an airfoil with a finite trailing-edge angle ``τ``:

    (z − n)/(z + n) = ((ζ − 1)/(ζ + 1))ⁿ,   n = 2 − τ/π,

so ``z = n (1 + tⁿ)/(1 − tⁿ)`` with ``t = (ζ − 1)/(ζ + 1)``; τ = 0 (n = 2) is the Joukowski map
``z = ζ + 1/ζ`` of `scirobust.cases._joukowski`. The trailing edge is z = n. The circle-plane
flow (free stream, doublet, Kutta circulation at ζ = 1) is the same for every n, so the stream
function the PINN learns in the circle plane does not depend on τ; τ enters through the map
alone, ``W = (dw/dζ)/(dz/dζ)`` with ``dz/dζ = 4n² tⁿ / (t (1 − tⁿ)² (ζ + 1)²)``. The power
``tⁿ`` is taken on the branch continuous over the circle's exterior, whose image in the t-plane
is a disc touching t = 0 inside the half-plane ``Re(t e^{iβ}) > 0`` (``1 − μ = R e^{−iβ}``).

Compressibility. The incompressible surface pressure coefficient ``Cp₀`` is corrected for the
free-stream Mach number ``M`` in closed form. Kármán–Tsien (used here):
``Cp = Cp₀ / (√(1 − M²) + M²/(1 + √(1 − M²)) · Cp₀/2)``; Prandtl–Glauert (the simpler rule):
``Cp = Cp₀/√(1 − M²)``. Prandtl–Glauert scales the model's and the reference's Cp by the same
factor, so it leaves every *relative* Cp error unchanged; Kármán–Tsien weighs suction
(Cp₀ < 0) more than pressure, which is how Mach can change the error. Both hold for
subcritical flow only (local Mach < 1 everywhere on the surface); `critical_mach` gives the
limit for a given minimum ``Cp₀``.

Inputs of `MachPinn`: chord-frame ``(x, y)`` (x = (Re z + n)/(2n), y = Im z/(2n); trailing edge
at x = 1), Mach, angle of attack (degrees), circle centre ``(μx, μy)`` and trailing-edge angle
``τ`` (degrees): seven, against NNfoil-C's sixteen (x, y, Mach, α, 12 CST shape parameters).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from scirobust.cases._joukowski import (
    circle_geometry,
    circle_polar,
    circle_velocity,
    stream_cp,
    surface_angles,
)
from scirobust.errors import ConfigError

__all__ = ["GAMMA", "INPUTS_MACH", "MachPinn", "critical_mach", "critical_pressure_coefficient",
           "exponent", "inverse_karman_trefftz", "karman_trefftz", "karman_trefftz_derivative",
           "karman_tsien", "mach_chord_frame", "mach_surface_batch", "mach_surface_cp",
           "prandtl_glauert"]

GAMMA = 1.4
"""Ratio of specific heats of air (dimensionless)."""

INPUTS_MACH = ("x", "y", "mach", "alpha_deg", "mu_x", "mu_y", "te_angle_deg")
"""Model inputs: chord-frame (x, y), free-stream Mach, angle of attack (degrees), circle
centre, Kármán–Trefftz trailing-edge angle (degrees)."""


# --------------------------------------------------------------------------- compressibility
def _check_mach(mach: Tensor | float) -> None:
    m = torch.as_tensor(mach)
    if not bool(((m >= 0) & (m < 1)).all()):
        raise ConfigError(f"Mach number must lie in [0, 1) (subsonic closed-form corrections); "
                          f"got {m.min().item():g} to {m.max().item():g}.")


def prandtl_glauert(cp0: Tensor, mach: Tensor | float) -> Tensor:
    """Prandtl–Glauert rule ``Cp = Cp₀/√(1 − M²)`` (both dimensionless; 0 ≤ M < 1)."""
    _check_mach(mach)
    return cp0 / torch.sqrt(1.0 - torch.as_tensor(mach, dtype=cp0.dtype) ** 2)


def karman_tsien(cp0: Tensor, mach: Tensor | float) -> Tensor:
    """Kármán–Tsien rule ``Cp = Cp₀ / (b + M²/(1 + b) · Cp₀/2)``, ``b = √(1 − M²)``.

    Dimensionless; 0 ≤ M < 1. The denominator vanishes for Cp₀ far below the critical value
    (the rule is meant for subcritical flow); there the result is infinite or of wrong sign.
    """
    _check_mach(mach)
    m2 = torch.as_tensor(mach, dtype=cp0.dtype) ** 2
    b = torch.sqrt(1.0 - m2)
    return cp0 / (b + m2 / (1.0 + b) * cp0 / 2.0)


def critical_pressure_coefficient(mach: float, gamma: float = GAMMA) -> float:
    """Isentropic ``Cp*`` at which the local Mach number is 1, for free-stream Mach ``M``:
    ``2/(γM²) [((2 + (γ−1)M²)/(γ+1))^{γ/(γ−1)} − 1]`` (dimensionless; −inf at M = 0)."""
    if not 0.0 <= mach < 1.0:
        raise ConfigError(f"critical_pressure_coefficient needs 0 <= Mach < 1; got {mach:g}.")
    if mach == 0.0:
        return -math.inf
    ratio = (2.0 + (gamma - 1.0) * mach**2) / (gamma + 1.0)
    return 2.0 / (gamma * mach**2) * (ratio ** (gamma / (gamma - 1.0)) - 1.0)


def critical_mach(cp0_min: float, gamma: float = GAMMA) -> float:
    """Free-stream Mach at which the Kármán–Tsien-corrected minimum ``Cp₀`` (< 0) reaches
    `critical_pressure_coefficient`: above it the flow is locally supersonic and the closed-form
    corrections no longer hold. Bisection to 1e-10."""
    if not cp0_min < 0.0:
        raise ConfigError(f"critical_mach needs a negative minimum Cp0; got {cp0_min:g}.")
    lo, hi = 1e-6, 1.0 - 1e-9
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        cp = float(karman_tsien(torch.tensor(cp0_min, dtype=torch.float64), mid))
        # cp ≥ 0 from a negative Cp₀: the rule's denominator has changed sign, past sonic too
        supersonic = cp >= 0.0 or not cp > critical_pressure_coefficient(mid, gamma)
        lo, hi = (lo, mid) if supersonic else (mid, hi)
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- Kármán–Trefftz
def exponent(te_angle_deg: Tensor | float) -> Tensor:
    """Map exponent ``n = 2 − τ/π`` of a trailing-edge angle τ given in degrees (float64)."""
    return 2.0 - torch.as_tensor(te_angle_deg, dtype=torch.float64) / 180.0


def _power_t(zeta: Tensor, n: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """``t = (ζ − 1)/(ζ + 1)`` and ``tⁿ`` on the branch continuous over the circle's exterior."""
    t = (zeta - 1.0) / (zeta + 1.0)
    log_t = torch.log(t * torch.polar(torch.ones_like(beta), beta)) - 1j * beta
    return t, torch.exp(n * log_t)


def karman_trefftz(zeta: Tensor, mu: complex | Tensor, n: Tensor | float) -> Tensor:
    """Airfoil-plane point ``z = n (1 + tⁿ)/(1 − tⁿ)`` of circle-plane points ζ (complex128)."""
    n = torch.as_tensor(n, dtype=torch.float64)
    _, tn = _power_t(zeta, n, circle_geometry(mu)[1])
    return n * (1.0 + tn) / (1.0 - tn)


def karman_trefftz_derivative(zeta: Tensor, mu: complex | Tensor, n: Tensor | float) -> Tensor:
    """``dz/dζ = 4n² tⁿ / (t (1 − tⁿ)² (ζ + 1)²)`` (complex128; 0/0 at the trailing edge ζ = 1,
    evaluate off it). Equals ``1 − 1/ζ²`` for n = 2."""
    n = torch.as_tensor(n, dtype=torch.float64)
    t, tn = _power_t(zeta, n, circle_geometry(mu)[1])
    return 4.0 * n**2 * tn / (t * (1.0 - tn) ** 2 * (zeta + 1.0) ** 2)


def inverse_karman_trefftz(z: Tensor, mu: complex | Tensor, n: Tensor | float) -> Tensor:
    """Exterior pre-image ζ of airfoil-plane points z: ``tⁿ = (z − n)/(z + n)``, the n-th root
    taken with ``arg(t e^{iβ})`` in (−π/2, π/2), ``ζ = (1 + t)/(1 − t)``.

    Points slightly inside the body map continuously to points slightly inside the circle;
    the root jumps only on the ray from the trailing edge through the middle of its wedge.
    """
    n = torch.as_tensor(n, dtype=torch.float64)
    beta = circle_geometry(mu)[1]
    rotated = (z - n) / (z + n) * torch.polar(torch.ones_like(beta), n * beta)
    t = torch.exp(torch.log(rotated) / n - 1j * beta)
    return (1.0 + t) / (1.0 - t)


def mach_chord_frame(z: Tensor, n: Tensor | float) -> tuple[Tensor, Tensor]:
    """Chord-frame ``(x, y) = ((Re z + n)/(2n), Im z/(2n))`` (trailing edge at (1, 0))."""
    n = torch.as_tensor(n, dtype=torch.float64)
    return (z.real + n) / (2.0 * n), z.imag / (2.0 * n)


def _from_frame(x: Tensor, y: Tensor, n: Tensor) -> Tensor:
    return torch.complex(2.0 * n * x - n, 2.0 * n * y)


def mach_surface_cp(
    theta: Tensor, alpha_rad: float, mu: complex, te_angle_deg: float, mach: float
) -> Tensor:
    """Exact incompressible surface Cp of the Kármán–Trefftz airfoil at circle angles θ
    (radians, not exactly at the trailing edge), Kármán–Tsien-corrected to Mach ``mach``."""
    radius, _ = circle_geometry(mu)
    zeta = mu + radius * torch.polar(torch.ones_like(theta, dtype=torch.float64),
                                     theta.to(torch.float64))
    speed = circle_velocity(zeta, alpha_rad, mu).abs() / karman_trefftz_derivative(
        zeta, mu, exponent(te_angle_deg)).abs()
    return karman_tsien(1.0 - speed**2, mach)


def mach_surface_batch(
    mach: float, alpha_deg: float, mu_x: float, mu_y: float, te_angle_deg: float, n: int
) -> tuple[Tensor, Tensor]:
    """``n`` surface points of one test case, uniform in circle angle, half a step off the
    trailing edge: model inputs (n, 7) in `INPUTS_MACH` order and the exact surface Cp (n, 1)."""
    _check_mach(mach)
    if not 0.0 <= te_angle_deg < 90.0:
        raise ConfigError(f"Trailing-edge angle must lie in [0, 90) degrees; got "
                          f"{te_angle_deg:g}.")
    mu = complex(mu_x, mu_y)
    theta = surface_angles(mu, n)
    radius, _ = circle_geometry(mu)
    zeta = mu + radius * torch.polar(torch.ones_like(theta), theta)
    x, y = mach_chord_frame(karman_trefftz(zeta, mu, exponent(te_angle_deg)),
                            exponent(te_angle_deg))
    params = torch.tensor([mach, alpha_deg, mu_x, mu_y, te_angle_deg],
                          dtype=torch.float64).expand(n, 5)
    inputs = torch.cat([torch.stack([x, y], -1), params], -1)
    return inputs, mach_surface_cp(theta, math.radians(alpha_deg), mu, te_angle_deg,
                                   mach)[:, None]


class MachPinn(nn.Module):
    """Cp at chord-frame points from the 7 inputs of `INPUTS_MACH`, through the exact
    Kármán–Trefftz body-fitted map, a circle-plane stream network and Kármán–Tsien.

    ``forward(X)``, ``X`` of shape (n, 7), returns Cp (n, 1). ``stream`` is the network of the
    5-input case (`StreamNet`, inputs s, θ, α, μx, μy) or `ExactStream`: the circle-plane
    flow is the same for every trailing-edge angle, so the same trained network serves both
    settings. ``incompressible_cp`` gives Cp₀ before the Mach correction.
    """

    def __init__(self, stream: nn.Module) -> None:
        super().__init__()
        self.stream = stream

    @staticmethod
    def circle_coordinates(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(s, θ, ζ)`` of each input point: ``ζ − μ = R e^{s + iθ}``."""
        mu = torch.complex(x[:, 4], x[:, 5])
        n = exponent(x[:, 6])
        return circle_polar(inverse_karman_trefftz(_from_frame(x[:, 0], x[:, 1], n), mu, n), mu)

    def incompressible_cp(self, x: Tensor) -> Tensor:
        """Incompressible Cp₀ (n,) at the inputs (Mach ignored)."""
        s, theta, zeta = self.circle_coordinates(x)
        mu = torch.complex(x[:, 4], x[:, 5])
        metric = karman_trefftz_derivative(zeta, mu, exponent(x[:, 6])).abs() ** 2
        return stream_cp(self.stream, s, theta, x[:, 3:6], x[:, 3], metric)

    def forward(self, x: Tensor) -> Tensor:
        m2 = x[:, 2] ** 2
        b = torch.sqrt(1.0 - m2)
        cp0 = self.incompressible_cp(x)
        # Kármán–Tsien inline: `karman_tsien` validates its Mach argument on the host,
        # which would sync on every attack step.
        return (cp0 / (b + m2 / (1.0 + b) * cp0 / 2.0))[:, None]
