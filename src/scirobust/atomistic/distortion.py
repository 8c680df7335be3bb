"""Distortions of fixed total L2 norm along the adversarial direction vs random directions.

Paper 002, Table 1: every configuration is moved by a distortion whose L2 norm over all 3N
coordinates is exactly ε (Å), either along its adversarial direction A (computed once at the
undistorted configuration) or along a random Gaussian direction (several draws), and the
energy error of the approximate model against the accurate one is measured at the new
positions as a per-atom RMSE over configurations (meV/atom).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scirobust.atomistic.calculators import as_evaluator
from scirobust.atomistic.direction import AtomsLike, DirectionData, compute_directions
from scirobust.atomistic.structures import random_unit_directions
from scirobust.errors import DataError
from scirobust.results import Record


def distort(positions: np.ndarray, directions: np.ndarray, eps_angstrom: float) -> np.ndarray:
    """Move each configuration by exactly ``eps_angstrom`` (total L2 norm over 3N) along its
    direction. Configurations with a zero direction are left where they are.

    ``positions`` and ``directions`` have shape (M, N, 3); returns (M, N, 3) Å.
    """
    if eps_angstrom < 0:
        raise DataError(f"eps must be >= 0 Å; got {eps_angstrom}.")
    norms = np.linalg.norm(directions.reshape(len(directions), -1), axis=1)
    unit = np.where(norms[:, None, None] > 0,
                    directions / np.where(norms > 0, norms, 1.0)[:, None, None], 0.0)
    return positions + eps_angstrom * unit


def rmse_mev_per_atom(errors_mev_per_atom: np.ndarray) -> tuple[float, float]:
    """RMSE over configurations and its delta-method standard error (meV/atom)."""
    sq = np.asarray(errors_mev_per_atom, dtype=np.float64) ** 2
    n = sq.size
    value = float(np.sqrt(sq.mean()))
    if n < 2 or value == 0:
        return value, float("nan")
    return value, float(sq.std(ddof=1) / np.sqrt(n) / (2 * value))


@dataclass
class DistortionSweep:
    """Per-atom energy RMSE (meV/atom) after distortions of norm ε, adversarial vs random.

    ``adversarial[e]`` and ``random[e]`` (draws, M) hold the signed per-configuration errors
    in meV/atom at ``epsilons[e]``; ``n_zero_direction`` configurations had A = 0 (models
    agree exactly) and were not moved by the adversarial distortion.
    """

    epsilons: list[float]
    clean: np.ndarray
    adversarial: list[np.ndarray]
    random: list[np.ndarray]
    n_zero_direction: int
    n_atoms: int
    energy_offset_ev: float
    settings: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, float]]:
        """One row per ε: RMSE (meV/atom) random (mean over draws, spread over draws, standard
        error over configurations) and adversarial (standard error), their ratio, and the
        median absolute errors (robust to a few configurations pushed into a wall)."""
        rows = []
        for k, eps in enumerate(self.epsilons):
            adv, adv_se = rmse_mev_per_atom(self.adversarial[k])
            per_draw = [rmse_mev_per_atom(d)[0] for d in self.random[k]]
            # standard error over configurations of the draw-averaged squared error
            per_config = np.sqrt((self.random[k] ** 2).mean(axis=0))
            _, pooled_se = rmse_mev_per_atom(per_config)
            rows.append({
                "epsilon_angstrom": eps,
                "random_mev_per_atom": float(np.mean(per_draw)),
                "random_spread": float(np.std(per_draw, ddof=1)) if len(per_draw) > 1 else
                float("nan"),
                "random_stderr": pooled_se,
                "adversarial_mev_per_atom": adv,
                "adversarial_stderr": adv_se,
                "ratio": adv / float(np.mean(per_draw)) if np.mean(per_draw) > 0 else
                float("nan"),
                "random_median_abs_mev_per_atom": float(np.median(np.abs(self.random[k]))),
                "adversarial_median_abs_mev_per_atom": float(np.median(np.abs(
                    self.adversarial[k]))),
            })
        return rows

    def to_records(self, case: str, model: str,
                   metric: str = "energy_error_mev_per_atom") -> list[Record]:
        """Tidy records: clean (ε = 0), random (mean over draws), adversarial, their ratio, and
        the median absolute errors (metric ``median_abs_<metric>``)."""
        n = int(self.clean.size)
        clean, clean_se = rmse_mev_per_atom(self.clean)
        out = [Record(case, model, "clean", 0.0, metric, clean, clean_se, n)]
        for row in self.table():
            eps = row["epsilon_angstrom"]
            out.append(Record(case, model, "random", eps, metric, row["random_mev_per_atom"],
                              row["random_stderr"], n, row["random_spread"]))
            out.append(Record(case, model, "adversarial", eps, metric,
                              row["adversarial_mev_per_atom"], row["adversarial_stderr"], n))
            out.append(Record(case, model, "adversarial", eps, f"{metric}_ratio", row["ratio"],
                              float("nan"), n, baseline="random"))
            out.append(Record(case, model, "random", eps, f"median_abs_{metric}",
                              row["random_median_abs_mev_per_atom"], float("nan"), n))
            out.append(Record(case, model, "adversarial", eps, f"median_abs_{metric}",
                              row["adversarial_median_abs_mev_per_atom"], float("nan"), n))
        return out


def distortion_sweep(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    epsilons: Sequence[float] = (0.0, 0.1, 0.3, 0.5),
    *,
    n_random: int = 5,
    seed: int = 0,
    energy_offset_ev: float | str = 0.0,
    data: DirectionData | None = None,
    batch_size: int = 16,
) -> DistortionSweep:
    """Error of ``approx`` against ``accurate`` after distortions of total L2 norm ε (Å).

    Args:
        atoms: configurations (one ``Atoms``, a list, or `Configurations`).
        approx, accurate: ASE calculators or torch energy models.
        epsilons: total L2 norms over all 3N coordinates, Å (paper: 0, 0.1, 0.3, 0.5).
        n_random: random Gaussian directions per configuration and ε (same norm).
        seed: seeds the random directions (NumPy ``default_rng``).
        energy_offset_ev: constant removed from E_acc - E_app (eV or ``"mean"``, fitted on
            the undistorted configurations and kept fixed).
        data: precomputed `compute_directions` on the same configurations.
    """
    if n_random < 1:
        raise DataError("n_random must be >= 1.")
    epsilons = [float(e) for e in epsilons]
    if any(e < 0 or not np.isfinite(e) for e in epsilons):
        raise DataError(f"epsilons must be finite and >= 0 Å; got {epsilons}.")
    if data is None:
        data = compute_directions(atoms, approx, accurate, energy_offset_ev=energy_offset_ev,
                                  batch_size=batch_size)
    configs = data.configurations
    app = as_evaluator(approx, configs.template, batch_size)
    acc = as_evaluator(accurate, configs.template, batch_size)
    offset = data.energy_offset_ev
    n_atoms = configs.n_atoms

    def errors(positions: np.ndarray) -> np.ndarray:
        return 1000.0 * (app.energies(positions) + offset - acc.energies(positions)) / n_atoms

    direction = data.direction
    norms = np.linalg.norm(direction.reshape(len(configs), -1), axis=1)
    clean = data.error_mev_per_atom
    rng = np.random.default_rng(seed)
    adversarial, random = [], []
    for eps in epsilons:
        if eps == 0:
            adversarial.append(clean.copy())
            random.append(np.repeat(clean[None], n_random, axis=0))
            # ε = 0 draws nothing, so the random directions of the other ε do not change
            continue
        adversarial.append(errors(distort(configs.positions, direction, eps)))
        draws = []
        for _ in range(n_random):
            d = random_unit_directions(len(configs), n_atoms, rng)
            draws.append(errors(distort(configs.positions, d, eps)))
        random.append(np.stack(draws))
    return DistortionSweep(
        epsilons, clean, adversarial, random, int((norms == 0).sum()), n_atoms, offset,
        {"n_random": n_random, "seed": seed, "n_configurations": len(configs)},
    )


__all__ = ["DistortionSweep", "distort", "distortion_sweep", "rmse_mev_per_atom"]
