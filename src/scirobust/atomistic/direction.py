"""Adversarial directions of an approximate energy model and their alignment with its forces.

Paper 002, Eq. (2-3): for configurations R the adversarial direction of E_app against a more
accurate E_acc is

    A(R) = ∇_R (E_acc - E_app)² = 2 (E_acc - E_app) (F_app - F_acc)        [eV²/Å]

from energies (eV) and forces (eV/Å) alone, so any two ASE calculators can be compared without
autograd. ``energy_offset_ev`` subtracts a constant from E_acc - E_app first (energies of two
models are defined up to a constant; ``"mean"`` fits it as the mean difference).

Eq. (5): cos θ = A·F_app / (|A| |F_app|) over all 3N components. When E_acc = E_app
(identical models, or a configuration where they agree exactly) or F_app = 0, A or F_app is
zero and cos θ is undefined: we report cos θ = 0 with ``defined = False`` and count those
configurations, never NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ase import Atoms
from torch import Tensor

from scirobust.atomistic.calculators import (
    Configurations,
    as_configurations,
    as_evaluator,
)
from scirobust.errors import DataError

AtomsLike = Atoms | Sequence[Atoms] | Configurations


@dataclass
class DirectionData:
    """Energies, forces and adversarial directions of M configurations of N atoms.

    ``energy_*_ev`` (M,), ``forces_*_ev_per_angstrom`` (M, N, 3), ``direction`` (M, N, 3) in
    eV²/Å, ``energy_offset_ev`` the constant removed from E_acc - E_app.
    """

    configurations: Configurations
    energy_app_ev: np.ndarray
    energy_acc_ev: np.ndarray
    forces_app_ev_per_angstrom: np.ndarray
    forces_acc_ev_per_angstrom: np.ndarray
    energy_offset_ev: float

    @property
    def energy_difference_ev(self) -> np.ndarray:
        """E_acc - E_app - offset (M,) in eV."""
        return self.energy_acc_ev - self.energy_app_ev - self.energy_offset_ev

    @property
    def error_mev_per_atom(self) -> np.ndarray:
        """Signed error (E_app + offset - E_acc) / N in meV/atom (M,)."""
        return -1000.0 * self.energy_difference_ev / self.configurations.n_atoms

    @property
    def direction(self) -> np.ndarray:
        """A = 2 (E_acc - E_app - offset)(F_app - F_acc), (M, N, 3) eV²/Å."""
        diff = self.forces_app_ev_per_angstrom - self.forces_acc_ev_per_angstrom
        return 2.0 * self.energy_difference_ev[:, None, None] * diff


def resolve_offset(offset: float | str, e_acc: np.ndarray, e_app: np.ndarray,
                   n_atoms: int = 1) -> float:
    """A float offset (eV) from a number or ``"mean"`` (mean of E_acc - E_app).

    Energies of two codes are defined up to a constant (e.g. BKS vs a universal potential
    differ by ~100 eV per cell); left in, that constant dominates E_acc - E_app and so the
    adversarial direction. ``"mean"`` on a single structure is refused (it would make the
    difference, and A, exactly zero); a numeric offset that leaves a mean gap far larger than
    its spread over structures (or above 1 eV/atom) is warned about.
    """
    gap = np.asarray(e_acc, dtype=np.float64) - np.asarray(e_app, dtype=np.float64)
    if isinstance(offset, str):
        if offset != "mean":
            raise DataError(f"energy_offset_ev must be a number (eV) or 'mean'; got {offset!r}.")
        if gap.size < 2:
            raise DataError(
                "energy_offset_ev='mean' needs several structures: on one structure the fitted "
                "offset makes E_acc - E_app, and so the adversarial direction, exactly zero. "
                "Fit the offset on a set of structures and pass it as a number (eV)."
            )
        return float(np.mean(gap))
    rest = gap - float(offset)
    mean, spread = float(np.mean(rest)), float(np.std(rest)) if rest.size > 1 else 0.0
    if abs(mean) > 1.0 * n_atoms or (rest.size > 1 and abs(mean) > 10 * spread > 0):
        warnings.warn(
            f"The two models' energies differ by {mean:.4g} eV on average (spread "
            f"{spread:.3g} eV over {rest.size} structure(s)) after the offset "
            f"{float(offset):g} eV: their energy zeros probably differ, and the constant "
            "dominates the adversarial direction. Pass energy_offset_ev='mean' (several "
            "structures) or the known offset in eV.", stacklevel=3)
    return float(offset)


def compute_directions(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    *,
    energy_offset_ev: float | str = 0.0,
    batch_size: int = 16,
) -> DirectionData:
    """Energies, forces and adversarial directions of both models on every configuration.

    ``approx`` and ``accurate`` are ASE calculators or torch energy models (positions Å →
    energy eV; forces by autograd) or `Evaluator`s.
    """
    configs = as_configurations(atoms)
    app = as_evaluator(approx, configs.template, batch_size)
    acc = as_evaluator(accurate, configs.template, batch_size)
    e_app, f_app = app.energies_and_forces(configs.positions)
    e_acc, f_acc = acc.energies_and_forces(configs.positions)
    offset = resolve_offset(energy_offset_ev, e_acc, e_app, configs.n_atoms)
    return DirectionData(configs, e_app, e_acc, f_app, f_acc, offset)


def adversarial_direction(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    *,
    energy_offset_ev: float | str = 0.0,
) -> np.ndarray:
    """A = 2 (E_acc - E_app)(F_app - F_acc) in eV²/Å: (N, 3) for one ``Atoms``, else (M, N, 3).

    Works with any two ASE calculators (energies and forces only) and with torch energy models
    (forces by autograd). Zero where the two models agree exactly.
    """
    data = compute_directions(atoms, approx, accurate, energy_offset_ev=energy_offset_ev)
    direction = data.direction
    return direction[0] if isinstance(atoms, Atoms) else direction


def adversarial_direction_autograd(
    positions: Tensor, approx: torch.nn.Module, accurate: torch.nn.Module,
    energy_offset_ev: float = 0.0,
) -> Tensor:
    """∇_R (E_acc - E_app - offset)² by autograd for torch energy models, positions (…, N, 3) Å.

    The same quantity as `adversarial_direction` through a different code path (used to check
    Eq. 3 in the tests).
    """
    with torch.enable_grad():
        pos = positions.detach().clone().requires_grad_(True)
        loss = ((accurate(pos) - approx(pos) - energy_offset_ev) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, pos)
    return grad


def cosine(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine between a[k] and b[k] over all their components, and whether it is defined.

    Returns (cos (M,), defined (M,)); undefined (a zero vector) gives cos = 0, not NaN.
    """
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    defined = (na > 0) & (nb > 0)
    dot = (a * b).sum(axis=1)
    cos = np.where(defined, dot / np.where(defined, na * nb, 1.0), 0.0)
    return np.clip(cos, -1.0, 1.0), defined


@dataclass
class Alignment:
    """cos θ between the adversarial direction and F_app, per configuration (paper 002, Eq. 5).

    ``cos_theta`` (M,) is 0 where undefined (``defined`` False: the models agree exactly or
    F_app = 0); ``energy_above_min_ev`` = E_acc - E_min (eV) with E_min the given reference
    (e.g. the relaxed structure) or the lowest E_acc in the set.
    """

    data: DirectionData
    cos_theta: np.ndarray
    defined: np.ndarray
    energy_above_min_ev: np.ndarray
    reference_energy_ev: float

    @property
    def n_undefined(self) -> int:
        """Configurations where cos θ is undefined (reported as 0)."""
        return int((~self.defined).sum())

    def stats(self) -> dict[str, float | int]:
        """Summary statistics of cos θ over configurations where it is defined."""
        c = self.cos_theta[self.defined]
        n = int(c.size)
        if n == 0:
            return {"n": 0, "n_undefined": self.n_undefined, "mean_abs_cos": 0.0,
                    "median_abs_cos": 0.0, "fraction_abs_cos_above_0.5": 0.0,
                    "fraction_positive": 0.0, "mean_cos": 0.0,
                    "random_vector_abs_cos": 0.0}
        dim = 3 * self.data.configurations.n_atoms
        return {
            "n": n,
            "n_undefined": self.n_undefined,
            "mean_abs_cos": float(np.abs(c).mean()),
            "median_abs_cos": float(np.median(np.abs(c))),
            "fraction_abs_cos_above_0.5": float((np.abs(c) > 0.5).mean()),
            "fraction_positive": float((c > 0).mean()),
            "mean_cos": float(c.mean()),
            # E|cos| of two independent random directions in 3N dimensions ≈ sqrt(2/(π·3N))
            "random_vector_abs_cos": float(np.sqrt(2.0 / (np.pi * dim))),
        }

    def binned(self, bin_size: int = 50) -> dict[str, np.ndarray]:
        """Mean |cos θ| in consecutive bins of ``bin_size`` configurations sorted by ΔE.

        Returns arrays ``energy_above_min_ev`` (bin means), ``mean_abs_cos``, ``stderr``, ``n``.
        The last, incomplete bin is merged into the previous one.
        """
        if bin_size < 1:
            raise DataError("bin_size must be >= 1.")
        idx = np.nonzero(self.defined)[0]
        idx = idx[np.argsort(self.energy_above_min_ev[idx], kind="stable")]
        n_bins = max(1, len(idx) // bin_size)
        groups = np.array_split(idx, n_bins) if len(idx) else []
        rows = {"energy_above_min_ev": [], "mean_abs_cos": [], "stderr": [], "n": []}
        for g in groups:
            c = np.abs(self.cos_theta[g])
            rows["energy_above_min_ev"].append(self.energy_above_min_ev[g].mean())
            rows["mean_abs_cos"].append(c.mean())
            rows["stderr"].append(c.std(ddof=1) / np.sqrt(len(g)) if len(g) > 1 else np.nan)
            rows["n"].append(len(g))
        return {k: np.asarray(v) for k, v in rows.items()}

    def summary(self) -> str:
        """Human-readable summary."""
        s = self.stats()
        rmse = float(np.sqrt(np.mean(self.data.error_mev_per_atom**2)))
        return (
            f"{len(self.cos_theta)} configurations of {self.data.configurations.n_atoms} atoms: "
            f"energy RMSE {rmse:.3g} meV/atom; cos θ(A, F_app) defined for {s['n']} "
            f"({s['n_undefined']} undefined: models agree exactly or F_app = 0); "
            f"mean |cos θ| = {s['mean_abs_cos']:.3f} (random directions: "
            f"{s['random_vector_abs_cos']:.3f}), |cos θ| > 0.5 for "
            f"{100 * s['fraction_abs_cos_above_0.5']:.0f} %, cos θ > 0 for "
            f"{100 * s['fraction_positive']:.0f} %."
        )


def force_alignment(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    *,
    reference_energy_ev: float | None = None,
    energy_offset_ev: float | str = 0.0,
    data: DirectionData | None = None,
) -> Alignment:
    """cos θ between A and F_app for every configuration, with the energy above the minimum.

    Args:
        atoms: one ``Atoms``, a list of them, or `Configurations`.
        approx, accurate: ASE calculators or torch energy models.
        reference_energy_ev: E_acc of the minimum (eV); default the lowest E_acc in the set.
        energy_offset_ev: constant removed from E_acc - E_app (number in eV or ``"mean"``).
        data: precomputed `compute_directions` result (skips the evaluations).
    """
    if data is None:
        data = compute_directions(atoms, approx, accurate, energy_offset_ev=energy_offset_ev)
    cos, defined = cosine(data.direction, data.forces_app_ev_per_angstrom)
    e_min = float(data.energy_acc_ev.min()) if reference_energy_ev is None else float(
        reference_energy_ev)
    return Alignment(data, cos, defined, data.energy_acc_ev - e_min, e_min)


__all__ = [
    "Alignment",
    "DirectionData",
    "adversarial_direction",
    "adversarial_direction_autograd",
    "compute_directions",
    "cosine",
    "force_alignment",
    "resolve_offset",
]
