"""Physics of the QCD equation-of-state case: the HotQCD 2014 parametrisation and a
differentiable quasi-particle gas. Float64 throughout.

Units: temperatures and masses in GeV, ``ln Z / V`` in GeV³, pressure and energy density in
GeV⁴; the lattice literature quotes (and the case plots) the ratios ``p/T⁴``, ``ε/T⁴``,
``s/T³``. `hotqcd_p_over_t4` is the HotQCD parametrisation (Bazavov et al., PRD 90, 094503,
Eq. 16 and Table III; valid 130–400 MeV); `ln_z_over_v` the ideal gas of quasi-gluons and
quasi-quarks with temperature-dependent masses (Gauss–Laguerre quadrature, differentiable in
the masses and in ``T``); `thermodynamics` gives ``P``, ``ε`` (autograd) and ``s`` from it.
`DLQP` is the deep-learning quasi-particle model: that gas with masses from three MLPs;
`PressureOf` turns its ``p/T⁴`` into the pressure ``P`` (GeV⁴), the paper's attacked quantity;
`fit_pressure` trains it, `fit_quality`, `error_along_t`, `plot_eos` and `plot_masses` read it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from matplotlib.figure import Figure
from rich.progress import track
from torch import Tensor, nn

from scirobust.report import COLORS

# --------------------------------------------------------------------------- HotQCD 2014
HOTQCD_TC_GEV = 0.154
"""Pseudo-critical temperature used by the parametrisation, GeV (154 MeV)."""

P_IDEAL = 95.0 * math.pi**2 / 180.0
"""Stefan–Boltzmann limit of p/T⁴ for 3 massless flavours and gluons (= 47.5 π²/90)."""

_CT, _T0 = 3.8706, 0.9761
_A = (-8.7704, 3.9200, 0.0, 0.3419)
_B = (-1.2600, 0.8425, 0.0, -0.0475)

HOTQCD_VALID_GEV = (0.130, 0.400)
"""Range of temperatures (GeV) in which the parametrisation was fitted."""


def hotqcd_p_over_t4(temperature_gev: Tensor) -> Tensor:
    """HotQCD 2014 pressure ``p/T⁴`` (dimensionless) at ``temperature_gev`` (GeV).

    ``p/T⁴ = ½[1 + tanh(c_t (t − t₀))] (p_id + Σ aᵢ/tⁱ) / (1 + Σ bᵢ/tⁱ)``, ``t = T/T_c``,
    ``T_c = 154 MeV``. Differentiable in torch; any shape.
    """
    t = temperature_gev / HOTQCD_TC_GEV
    num = torch.full_like(t, P_IDEAL)
    den = torch.ones_like(t)
    for i, (a, b) in enumerate(zip(_A, _B, strict=True), start=1):
        num = num + a / t**i
        den = den + b / t**i
    return 0.5 * (1.0 + torch.tanh(_CT * (t - _T0))) * num / den


def _t_derivative(fn: Callable[[Tensor], Tensor], temperature_gev: Tensor) -> tuple[Tensor, Tensor]:
    """``fn(T)`` and ``dfn/dT`` (element-wise) by autograd; keeps the graph for higher orders."""
    with torch.enable_grad():
        t = temperature_gev
        if not t.requires_grad:
            t = t.detach().requires_grad_(True)
        value = fn(t)
        (d_dt,) = torch.autograd.grad(value.sum(), t, create_graph=True)
    return value, d_dt


def hotqcd_e_over_t4(temperature_gev: Tensor) -> Tensor:
    """Energy density ``ε/T⁴ = 3 p/T⁴ + T d(p/T⁴)/dT`` of the HotQCD parametrisation."""
    p, dp_dt = _t_derivative(hotqcd_p_over_t4, temperature_gev)
    return 3.0 * p + temperature_gev * dp_dt


# --------------------------------------------------------------------------- quasi-particles
D_G, D_UD, D_S = 16, 24, 12
"""Degeneracies: gluons 2 spins × 8 colours; u and d quarks with antiquarks 2 flavours × 2 spins
× 3 colours × 2; s quarks with antiquarks 2 spins × 3 colours × 2."""
SPECIES = (("g", D_G, -1), ("ud", D_UD, +1), ("s", D_S, +1))
"""Quasi-particle species: name, degeneracy and statistics (−1 bosons, +1 fermions)."""


@functools.cache
def laguerre_nodes(n: int) -> tuple[Tensor, Tensor]:
    """Gauss–Laguerre nodes and weights (float64): ``∫₀^∞ e^{-x} g(x) dx ≈ Σ wᵢ g(xᵢ)``."""
    x, w = np.polynomial.laguerre.laggauss(n)
    return torch.from_numpy(x), torch.from_numpy(w)


def momentum_integral(mass_over_t: Tensor, statistics: int, n_nodes: int = 64) -> Tensor:
    """``∫₀^∞ x² ln(1 + s e^{-√(x² + (m/T)²)}) dx`` with ``s = +1`` (fermions), ``-1`` (bosons).

    ``x = p/T``. Gauss–Laguerre with the weight ``e^{-x}`` moved into the integrand; exact to
    machine precision for massive particles and massless fermions, 6e-7 relative for the
    massless boson (whose integrand has a log singularity at x = 0) with 64 nodes.
    ``mass_over_t``: any shape; the result has the same shape.
    """
    x, w = (v.to(mass_over_t) for v in laguerre_nodes(n_nodes))
    energy = torch.sqrt(x**2 + mass_over_t.unsqueeze(-1) ** 2)
    integrand = torch.exp(x) * x**2 * torch.log1p(statistics * torch.exp(-energy))
    return (integrand * w).sum(dim=-1)


def ln_z_over_v(temperature_gev: Tensor, masses_gev: Tensor, n_nodes: int = 64) -> Tensor:
    """``ln Z / V`` (GeV³) of quasi-gluons, quasi-u/d and quasi-s quarks at temperature ``T``
    (shape (N, 1)); ``masses_gev`` (N, 3): columns g, ud, s (`SPECIES`).

    ``ln Z_g/V = −(d_g/2π²) ∫ p² ln(1 − e^{−E/T}) dp`` and
    ``ln Z_q/V = +(d_q/2π²) ∫ p² ln(1 + e^{−E/T}) dp`` with ``E = √(p² + m²)``; in terms of
    ``x = p/T`` each is ``T³ d/(2π²)`` times a dimensionless integral.
    """
    t3 = temperature_gev**3 / (2.0 * math.pi**2)
    return t3 * sum(stat * d * momentum_integral(masses_gev[..., i:i + 1] / temperature_gev,
                                                 stat, n_nodes)
                    for i, (_, d, stat) in enumerate(SPECIES))


def thermodynamics(ln_z_fn: Callable[[Tensor], Tensor],
                   temperature_gev: Tensor) -> dict[str, Tensor]:
    """Pressure, energy and entropy density from ``ln Z/V`` as a function of ``T`` (GeV).

    ``ln_z_fn(T)`` must be differentiable in ``T`` (masses that depend on ``T`` included).
    Returns ``p_over_t4``, ``e_over_t4``, ``s_over_t3`` (dimensionless) and ``pressure_gev4``,
    ``energy_gev4``, detached.
    """
    lnz, dlnz_dt = _t_derivative(ln_z_fn, temperature_gev)
    t = temperature_gev
    pressure, energy = t * lnz, t**2 * dlnz_dt
    out = {"pressure_gev4": pressure, "energy_gev4": energy, "p_over_t4": pressure / t**4,
           "e_over_t4": energy / t**4, "s_over_t3": (energy + pressure) / t**4}
    return {k: v.detach() for k, v in out.items()}


# --------------------------------------------------------------------------- DLQP model
class ResidualMLP(nn.Module):
    """Scalar function of the temperature: lift → residual tanh blocks → linear head."""

    def __init__(self, hidden: int, blocks: int, out_bias: float) -> None:
        super().__init__()
        self.lift = nn.Linear(1, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
            for _ in range(blocks)
        )
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, out_bias)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.lift(x))
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class DLQP(nn.Module):
    """Deep-learning quasi-particle model: ``T`` (GeV, shape (N, 1)) → ``p/T⁴`` (N, 1).

    Three residual MLPs give the masses (GeV, made positive by softplus) of quasi-gluons,
    quasi-u/d and quasi-s quarks; ``ln Z/V`` of the quasi-particle gas follows by quadrature.
    """

    species = tuple(name for name, _, _ in SPECIES)

    def __init__(self, hidden: int = 32, blocks: int = 2, n_quadrature: int = 64) -> None:
        super().__init__()
        # softplus(0.5) ≈ 0.97 GeV: start heavy, the pressure starts below the lattice one.
        self.mass_nets = nn.ModuleList(ResidualMLP(hidden, blocks, 0.5) for _ in range(3))
        self.n_quadrature = n_quadrature

    def masses(self, temperature_gev: Tensor) -> Tensor:
        """Quasi-particle masses (GeV), columns g, ud, s; shape (N, 3)."""
        x = (temperature_gev - 0.25) / 0.1
        return torch.cat([nn.functional.softplus(net(x)) for net in self.mass_nets], dim=-1)

    def ln_z_over_v(self, temperature_gev: Tensor) -> Tensor:
        """``ln Z / V`` in GeV³, shape (N, 1)."""
        return ln_z_over_v(temperature_gev, self.masses(temperature_gev), self.n_quadrature)

    def forward(self, temperature_gev: Tensor) -> Tensor:
        return self.ln_z_over_v(temperature_gev) / temperature_gev**3

    def thermodynamics(self, temperature_gev: Tensor) -> dict[str, Tensor]:
        """p/T⁴, ε/T⁴, s/T³ (and P, ε in GeV⁴) with ε from autograd (detached)."""
        return thermodynamics(self.ln_z_over_v, temperature_gev)


# --------------------------------------------------------------------------- pressure reading
def hotqcd_pressure_gev4(temperature_gev: Tensor) -> Tensor:
    """HotQCD 2014 pressure ``P = T⁴ · (p/T⁴)`` in GeV⁴ at ``temperature_gev`` (GeV)."""
    return temperature_gev**4 * hotqcd_p_over_t4(temperature_gev)


class PressureOf(nn.Module):
    """Wrap a ``T → p/T⁴`` model into ``T → P = T⁴ · (p/T⁴)`` (GeV⁴): the paper's quantity."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, temperature_gev: Tensor) -> Tensor:
        return temperature_gev**4 * self.model(temperature_gev)


def fit_quality(model: DLQP,
                t: Tensor) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float]]]:
    """Model and HotQCD p/T⁴, ε/T⁴ and the masses at temperatures ``t`` (GeV, (N, 1)), and
    the absolute and relative errors of p (trained) and ε (predicted)."""
    thermo = model.thermodynamics(t)
    with torch.no_grad():
        masses = model.masses(t).cpu().numpy()
    dense = {"t_gev": t, "p_model": thermo["p_over_t4"], "e_model": thermo["e_over_t4"],
             "p_ref": hotqcd_p_over_t4(t), "e_ref": hotqcd_e_over_t4(t).detach()}
    dense = {k: v[:, 0].cpu().numpy() for k, v in dense.items()} | {"masses_gev": masses}
    fit = {}
    for q in ("p", "e"):
        diff = dense[f"{q}_model"] - dense[f"{q}_ref"]
        rel = diff / dense[f"{q}_ref"]
        fit[q] = {"rms_abs": float(np.sqrt(np.mean(diff**2))), "max_abs": float(np.abs(diff).max()),
                  "rms_rel": float(np.sqrt(np.mean(rel**2))), "max_rel": float(np.abs(rel).max())}
    return dense, fit


def fit_pressure(model: nn.Module, t_train: Tensor, epochs: int, learning_rate: float,
                 final_learning_rate: float, quiet: bool = True) -> float:
    """Train ``model`` (T → p/T⁴) on HotQCD p/T⁴ at ``t_train`` (GeV, (N, 1)): full-batch
    Adam, cosine lr; leaves it in eval mode and returns the final p/T⁴ RMSE."""
    p_train = hotqcd_p_over_t4(t_train)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1),
                                                       eta_min=final_learning_rate)
    for _ in range(epochs) if quiet else track(range(epochs), description="training DLQP"):
        opt.zero_grad(set_to_none=True)
        ((model(t_train) - p_train) ** 2).mean().backward()
        opt.step()
        sched.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        return float(((model(t_train) - p_train) ** 2).mean().sqrt())


def error_along_t(model: nn.Module, t_c: float, half: float, power: int = 0,
                  device: str = "cpu") -> tuple[np.ndarray, np.ndarray, float]:
    """``|T^power · Δ(p/T⁴)|`` against HotQCD (power 4: ``|ΔP|`` in GeV⁴) at 201 temperatures
    in ``t_c ± half`` (GeV), and its slope at ``t_c`` (per GeV): the loss along the input."""
    t_line = torch.linspace(t_c - half, t_c + half, 201, dtype=torch.float64)[:, None].to(device)
    t_point = torch.tensor([[t_c]], dtype=torch.float64, device=device, requires_grad=True)

    def error(t: Tensor) -> Tensor:
        return (t**power * (model(t) - hotqcd_p_over_t4(t))).abs()

    with torch.enable_grad():
        (slope,) = torch.autograd.grad(error(t_point).sum(), t_point)
    with torch.no_grad():
        line = error(t_line)[:, 0].cpu().numpy()
    return t_line[:, 0].cpu().numpy(), line, float(slope)


# --------------------------------------------------------------------------- figures
def plot_eos(fig: Figure, dense: dict[str, np.ndarray], t_train: np.ndarray) -> None:
    """Paper Fig. 5B: model and HotQCD p/T⁴ (trained) and ε/T⁴ (predicted) from `fit_quality`'s
    ``dense`` columns, the training temperatures (GeV) and the differences below."""
    t_mev = dense["t_gev"] * 1e3
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    for q, name, what, c_ref, c_model in (("p", "p/T⁴", "trained", COLORS.clean, COLORS.fgsm),
                                          ("e", "ε/T⁴", "predicted", COLORS.random, COLORS.orange)):
        top.plot(t_mev, dense[f"{q}_ref"], color=c_ref, lw=1.5, label=f"HotQCD 2014 {name}")
        top.plot(t_mev, dense[f"{q}_model"], color=c_model, lw=1.5, ls="--",
                 label=f"DLQP {name} ({what})")
        bottom.plot(t_mev, dense[f"{q}_model"] - dense[f"{q}_ref"], color=c_model,
                    label=f"Δ({name})")
    top.plot(t_train * 1e3, hotqcd_p_over_t4(torch.as_tensor(t_train)).numpy(), "o", ms=3,
             color=COLORS.clean, mfc="none", label="training temperatures")
    top.set(ylabel="p/T⁴, ε/T⁴", title="DLQP model vs HotQCD parametrisation")
    top.legend(fontsize=8, loc="lower right")
    bottom.axhline(0, color=COLORS.grey, lw=0.8)
    bottom.set(xlabel="T (MeV)", ylabel="model − HotQCD")
    bottom.legend(fontsize=8)


def plot_masses(fig: Figure, dense: dict[str, np.ndarray]) -> None:
    """The quasi-particle masses (GeV) learned by the three MLPs against T (MeV)."""
    t_mev, colours = dense["t_gev"] * 1e3, (COLORS.clean, COLORS.random, COLORS.fgsm)
    ax = fig.subplots()
    for i, (name, colour) in enumerate(zip(DLQP.species, colours, strict=True)):
        ax.plot(t_mev, dense["masses_gev"][:, i], color=colour, label=f"m_{name}")
    ax.set(xlabel="T (MeV)", ylabel="quasi-particle mass (GeV)",
           title="Learned quasi-particle masses")
    ax.legend(fontsize=8)
