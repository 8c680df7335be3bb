"""Shallow-water trajectories on the rotating sphere: the laptop-scale stand-in for ERA5.

The spectral operators (spherical-harmonic transforms, Laplacian, Coriolis, hyperdiffusion)
are those of ``torch_harmonics.examples.ShallowWaterSolver`` (torch-harmonics 0.8.0); the
time step below is its third-order Adams–Bashforth scheme rewritten for a *batch* of
independent states ``(batch, 3, lmax, mmax)`` (geopotential, vorticity, divergence in
spectral space), so many trajectories integrate at the cost of a few.

Initial conditions (choice): random large-scale vorticity (spherical-harmonic degree ≤ 10)
with the geopotential of nonlinear balance, built like the solver's Galewsky test case, then
``spinup_hours`` of integration; the flow then evolves like mid-latitude weather (Rossby
waves, RMS wind ~20 m/s) rather than ringing with gravity waves as the solver's white-noise
``random_initial_condition`` does.

Fields written on the grid (``FIELDS``): geopotential height ``z`` (m, = Φ/g), zonal and
meridional wind ``u``, ``v`` (m/s) and relative vorticity ``vort`` (1/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

FIELDS = ("z", "u", "v", "vort")
UNITS = {"z": "m", "u": "m s⁻¹", "v": "m s⁻¹", "vort": "s⁻¹"}
LONG_NAMES = {
    "z": "geopotential height",
    "u": "zonal wind",
    "v": "meridional wind",
    "vort": "relative vorticity",
}


@dataclass(frozen=True)
class Trajectories:
    """Gridded trajectories: ``data`` (n_traj, n_times, 4, nlat, nlon) float64 in physical
    units, ``lat`` / ``lon`` in degrees (lat descending from 90 to −90), ``step_hours``."""

    data: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    step_hours: float
    fields: tuple[str, ...] = FIELDS


def _solver(nlat: int, nlon: int, dt_solver_s: float):
    from torch_harmonics.examples import ShallowWaterSolver

    return ShallowWaterSolver(nlat, nlon, dt_solver_s, grid="equiangular").double()


def _dudt(solver, uspec: Tensor) -> Tensor:
    """Batched copy of ``ShallowWaterSolver.dudtspec``: uspec ``(B, 3, l, m)``."""
    ugrid = solver.spec2grid(uspec)  # (B, 3, nlat, nlon): phi, vort, div
    uvgrid = solver.getuv(uspec[:, 1:])  # (B, 2, nlat, nlon)
    dudt = torch.zeros_like(uspec)
    tmp = uvgrid * (ugrid[:, 1:2] + solver.coriolis)
    tmpspec = solver.vrtdivspec(tmp)
    dudt[:, 2] = tmpspec[:, 0]
    dudt[:, 1] = -tmpspec[:, 1]
    tmp = solver.vrtdivspec(uvgrid * ugrid[:, 0:1])
    dudt[:, 0] = -tmp[:, 1]
    tmpspec = solver.grid2spec(ugrid[:, 0] + 0.5 * (uvgrid[:, 0] ** 2 + uvgrid[:, 1] ** 2))
    dudt[:, 2] = dudt[:, 2] - solver.lap * tmpspec
    return dudt


def _integrate(solver, uspec: Tensor, nsteps: int) -> Tensor:
    """``nsteps`` steps of AB3 (Euler, AB2 to start) + implicit hyperdiffusion, batched."""
    history: list[Tensor] = []
    dt = solver.dt
    for _ in range(nsteps):
        history.insert(0, _dudt(solver, uspec))
        del history[3:]
        new, now, old = history[0], history[min(1, len(history) - 1)], history[-1]
        uspec = uspec + dt * ((23.0 / 12.0) * new - (16.0 / 12.0) * now + (5.0 / 12.0) * old)
        uspec = torch.cat([uspec[:, :1], solver.hyperdiff * uspec[:, 1:]], dim=1)
    return uspec


def _to_grid(solver, uspec: Tensor) -> Tensor:
    """Spectral state → grid fields (B, 4, nlat, nlon): z (m), u, v (m/s), vort (1/s)."""
    grid = solver.spec2grid(uspec)
    uv = solver.getuv(uspec[:, 1:])
    z = grid[:, 0:1] / solver.gravity
    return torch.cat([z, uv, grid[:, 1:2]], dim=1)


def balanced_initial_condition(
    solver, generator: torch.Generator, *, rms_wind: float = 20.0, max_degree: int = 10
) -> Tensor:
    """Random balanced state in spectral space ``(3, lmax, mmax)``: vorticity with random
    spherical-harmonic coefficients of degree 1..``max_degree`` (amplitude ∝ 1/l), rescaled to
    an RMS wind of ``rms_wind`` m/s, zero divergence, and the geopotential of nonlinear balance
    (as in the solver's Galewsky initial condition), so the flow evolves like weather
    (Rossby waves) instead of ringing with gravity waves."""
    lmax, mmax = solver.lmax, solver.mmax
    ell = torch.arange(lmax, dtype=torch.float64).reshape(-1, 1).expand(lmax, mmax)
    em = torch.arange(mmax, dtype=torch.float64).reshape(1, -1).expand(lmax, mmax)
    keep = (ell >= 1) & (ell <= max_degree) & (em <= ell)
    re = torch.randn(lmax, mmax, generator=generator, dtype=torch.float64)
    im = torch.randn(lmax, mmax, generator=generator, dtype=torch.float64)
    im[:, 0] = 0.0
    amp = torch.where(keep, 1.0 / ell.clamp_min(1.0), torch.zeros_like(ell))
    vrt = torch.complex(re * amp, im * amp)
    vrtdiv = torch.stack([vrt, torch.zeros_like(vrt)])
    uv = solver.getuv(vrtdiv)
    scale = rms_wind / float(uv.pow(2).sum(dim=0).mean().sqrt())
    vrtdiv = vrtdiv * scale
    ugrid = solver.getuv(vrtdiv)
    vrtgrid = solver.spec2grid(vrtdiv[0])
    tmp = ugrid * (vrtgrid + solver.coriolis)
    tmpspec = solver.vrtdivspec(tmp)
    tmpspec[1] = solver.grid2spec(0.5 * torch.sum(ugrid**2, dim=0))
    phispec = solver.invlap * tmpspec[0] - tmpspec[1] + solver.grid2spec(
        solver.gravity * solver.havg * torch.ones_like(vrtgrid))
    uspec = torch.zeros(3, lmax, mmax, dtype=vrtdiv.dtype)
    uspec[0] = phispec
    uspec[1:] = vrtdiv
    return torch.tril(uspec)


def generate(
    n_traj: int,
    n_times: int,
    *,
    nlat: int = 32,
    nlon: int = 64,
    step_hours: float = 6.0,
    dt_solver_s: float = 150.0,
    spinup_hours: float = 12.0,
    rms_wind: float = 20.0,
    seed: int = 0,
) -> Trajectories:
    """Integrate ``n_traj`` trajectories and sample ``n_times`` states every ``step_hours``.

    Args:
        n_traj: independent trajectories (random balanced initial conditions).
        n_times: grid states kept per trajectory (the first after the spin-up).
        nlat, nlon: equiangular grid including the poles.
        step_hours: time between kept states (the forecast model's Δt; FourCastNet: 6 h).
        dt_solver_s: solver time step in seconds (150 s is stable at 32×64 and 64×128).
        spinup_hours: integration before the first kept state.
        rms_wind: RMS wind speed of the initial conditions (m/s).
        seed: seeds the initial conditions (the global torch RNG is left untouched).
    """
    nsub = round(step_hours * 3600.0 / dt_solver_s)
    if not math.isclose(nsub * dt_solver_s, step_hours * 3600.0):
        raise ValueError("step_hours * 3600 must be a multiple of dt_solver_s.")
    solver = _solver(nlat, nlon, dt_solver_s)
    gen = torch.Generator().manual_seed(int(seed))
    # one thread: the solver's tensors are small, and on a busy machine a second intra-op
    # thread cost ~100× more CPU in synchronisation than it saved (measured at 32×64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            uspec = torch.stack([
                balanced_initial_condition(solver, gen, rms_wind=rms_wind) for _ in range(n_traj)
            ])
            uspec = _integrate(solver, uspec, round(spinup_hours * 3600.0 / dt_solver_s))
            states = [_to_grid(solver, uspec)]
            for _ in range(n_times - 1):
                uspec = _integrate(solver, uspec, nsub)
                states.append(_to_grid(solver, uspec))
    finally:
        torch.set_num_threads(threads)
    data = torch.stack(states, dim=1).numpy()
    if not np.isfinite(data).all():
        raise FloatingPointError(
            "The shallow-water integration produced NaN/Inf; lower dt_solver_s or rms_wind."
        )
    lat = np.rad2deg(solver.lats.numpy())
    lon = np.rad2deg(solver.lons.numpy())
    return Trajectories(data, lat, lon, float(step_hours))
