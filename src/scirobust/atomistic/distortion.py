"""Distortions of fixed total L2 norm along the adversarial direction vs random directions.

Paper 002, Table 1: every configuration is moved by a distortion whose L2 norm over all 3N
coordinates is exactly ε (Å), either along its adversarial direction A (computed once at the
undistorted configuration; attack label ``adversarial_force``) or by a random control of the
same norm (registry attacks under an L2 budget, ``random_gaussian`` by default: a Gaussian
direction rescaled to norm ε; several draws seeded by `Sweep.generator`), and the energy error
of the approximate model against the accurate one is measured at the new positions as a
per-atom RMSE over configurations (meV/atom).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Unpack

import numpy as np
import torch

from scirobust.atomistic.calculators import as_evaluator
from scirobust.atomistic.direction import Alignment, AtomsLike, DirectionData, compute_directions
from scirobust.attacks import attack
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.results import Record, ratio_records
from scirobust.sweep import Sweep, SweepOptions

ADVERSARIAL_FORCE = "adversarial_force"
"""Attack label of the distortion along A/|A| (kind ``adversarial``)."""

DEFAULTS: dict[str, Any] = {"attacks": ("random_gaussian",), "budget": Budget(norm="l2"),
                            "n_random": 5, "batch_size": 16}


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


def participation(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many atoms a distortion along each direction (M, N, 3) really moves.

    Returns (atoms (M,), share (M,)): the participation ratio (Σ|d_i|²)² / Σ|d_i|⁴ of the
    per-atom lengths |d_i| (N for a uniform move, 1 when one atom carries it all; 0 for a zero
    direction), and the largest single atom's share max|d_i| / |d| (so that atom moves by
    share·ε under a total L2 norm ε, Å).
    """
    d = np.asarray(directions, dtype=np.float64)
    if d.ndim != 3 or d.shape[-1] != 3:
        raise DataError(f"directions must have shape (M, N, 3); got {d.shape}.")
    sq = (d**2).sum(axis=-1)
    total, fourth = sq.sum(axis=1), (sq**2).sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    atoms = np.where(fourth > 0, total**2 / np.where(fourth > 0, fourth, 1.0), 0.0)
    return atoms, np.where(total > 0, np.sqrt(sq.max(axis=1) / safe), 0.0)


def rmse_mev_per_atom(errors_mev_per_atom: np.ndarray) -> tuple[float, float]:
    """RMSE over configurations and its delta-method standard error (meV/atom)."""
    sq = np.asarray(errors_mev_per_atom, dtype=np.float64) ** 2
    n = sq.size
    value = float(np.sqrt(sq.mean()))
    if n < 2 or value == 0:
        return value, float("nan")
    return value, float(sq.std(ddof=1) / np.sqrt(n) / (2 * value))


def alignment_records(case: str, model: str, alignment: Alignment, *,
                      stderr: bool = True) -> list[Record]:
    """Engine records of `force_alignment` (paper 002, Fig. 1), over the configurations where
    cos θ(A, F_app) is defined: ``mean_abs_cos_theta`` (with its standard error over
    configurations unless ``stderr`` is False), ``fraction_abs_cos_theta_above_0.5`` and
    ``fraction_cos_theta_positive`` as kind ``clean``; and cos θ's random control, E|cos θ|
    of two random directions in 3N dimensions, as ``mean_abs_cos_theta`` of attack
    ``random_direction`` (kind ``random``)."""
    st, c = alignment.stats(), np.abs(alignment.cos_theta[alignment.defined])
    se = float(c.std(ddof=1) / np.sqrt(c.size)) if stderr and c.size > 1 else float("nan")
    n = int(st["n"])
    return [Record(case, model, "clean", 0.0, "mean_abs_cos_theta", st["mean_abs_cos"], se, n,
                   kind="clean"),
            Record(case, model, "clean", 0.0, "fraction_abs_cos_theta_above_0.5",
                   st["fraction_abs_cos_above_0.5"], n=n, kind="clean"),
            Record(case, model, "clean", 0.0, "fraction_cos_theta_positive",
                   st["fraction_positive"], n=n, kind="clean"),
            Record(case, model, "random_direction", 0.0, "mean_abs_cos_theta",
                   st["random_vector_abs_cos"], kind="random")]


def _random_summary(draws: np.ndarray) -> tuple[float, float, float]:
    """Random-control RMSE (meV/atom) from errors (draws, M): mean over draws of the per-draw
    RMSE, standard error over configurations of the draw-pooled RMSE, spread over draws."""
    per_draw = [rmse_mev_per_atom(d)[0] for d in draws]
    _, pooled_se = rmse_mev_per_atom(np.sqrt((draws ** 2).mean(axis=0)))
    spread = float(np.std(per_draw, ddof=1)) if len(per_draw) > 1 else float("nan")
    return float(np.mean(per_draw)), pooled_se, spread


@dataclass
class DistortionSweep:
    """Signed per-configuration errors (meV/atom) after distortions of norm ε.

    ``clean`` (M,); ``adversarial[k]`` (M,) along A at ``sweep.epsilons[k]``;
    ``random[label][k]`` (draws, M) for each random control of ``sweep``. ``n_zero_direction``
    configurations had A = 0 (models agree exactly) and were not moved along A.
    """

    sweep: Sweep
    clean: np.ndarray
    adversarial: list[np.ndarray]
    random: dict[str, list[np.ndarray]]
    n_zero_direction: int
    n_atoms: int
    energy_offset_ev: float

    @property
    def epsilons(self) -> list[float]:
        """Total L2 norms of the distortions (Å)."""
        return list(self.sweep.epsilons)

    def table(self) -> list[dict[str, float]]:
        """One row per ε: RMSE (meV/atom) of the baseline random control (mean over draws,
        spread over draws, standard error over configurations) and along A (standard error),
        their ratio, and the median absolute errors (robust to a few configurations pushed
        into a wall)."""
        rows = []
        for k, eps in enumerate(self.epsilons):
            draws = self.random[str(self.sweep.baseline)][k]
            rand, rand_se, spread = _random_summary(draws)
            adv, adv_se = rmse_mev_per_atom(self.adversarial[k])
            rows.append({
                "epsilon_angstrom": eps, "random_mev_per_atom": rand, "random_spread": spread,
                "random_stderr": rand_se, "adversarial_mev_per_atom": adv,
                "adversarial_stderr": adv_se,
                "ratio": adv / rand if rand > 0 else float("nan"),
                "random_median_abs_mev_per_atom": float(np.median(np.abs(draws))),
                "adversarial_median_abs_mev_per_atom": float(np.median(np.abs(
                    self.adversarial[k]))),
            })
        return rows

    def to_records(self, case: str, model: str,
                   metric: str = "energy_error_mev_per_atom") -> list[Record]:
        """Engine records: ``metric`` (RMSE, meV/atom) and ``median_abs_<metric>`` for the
        clean configurations, every random control and ``adversarial_force`` at every ε, and
        the adversarial/random ratio rows of ``metric`` from `ratio_records`."""
        n = int(self.clean.size)
        median = f"median_abs_{metric}"

        def rows(label: str, eps: float, kind: str, errors: np.ndarray, value: float,
                 stderr: float, spread: float = float("nan")) -> list[Record]:
            return [Record(case, model, label, eps, metric, value, stderr, n, spread, kind=kind),
                    Record(case, model, label, eps, median, float(np.median(np.abs(errors))),
                           float("nan"), n, kind=kind)]

        out = rows("clean", 0.0, "clean", self.clean, *rmse_mev_per_atom(self.clean))
        for k, eps in enumerate(self.epsilons):
            for label, per_eps in self.random.items():
                out += rows(label, eps, "random", per_eps[k], *_random_summary(per_eps[k]))
            adv = self.adversarial[k]
            out += rows(ADVERSARIAL_FORCE, eps, "adversarial", adv, *rmse_mev_per_atom(adv))
        return out + ratio_records(out, {metric}, baseline=self.sweep.baseline)


def _check(sweep: Sweep) -> None:
    if sweep.adversarial_runs or sweep.metrics is not None:
        raise ConfigError(
            "A distortion sweep measures the per-atom energy RMSE of random controls and of "
            f"its own '{ADVERSARIAL_FORCE}' direction: give random controls only (e.g. "
            "attacks=['random_gaussian']) and no metrics; run gradient attacks on the "
            "coordinates with audit_coordinates."
        )
    if sweep.budget.describe() != DEFAULTS["budget"].describe():
        raise ConfigError(
            "A distortion sweep moves every configuration by exactly ε Å (total L2 norm over "
            "its 3N coordinates): use budget=Budget(norm='l2') (the default); masks, bounds, "
            "relative or scaled budgets need audit_coordinates."
        )


def distortion_sweep(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    sweep: Sweep | None = None,
    *,
    energy_offset_ev: float | str = 0.0,
    data: DirectionData | None = None,
    **options: Unpack[SweepOptions],
) -> DistortionSweep:
    """Error of ``approx`` against ``accurate`` after distortions of total L2 norm ε (Å).

    Args:
        atoms: configurations (one ``Atoms``, a list, or `Configurations`).
        approx, accurate: ASE calculators, torch energy models or evaluators.
        sweep: a `Sweep` whose epsilons are total L2 norms over all 3N coordinates (Å;
            paper: 0, 0.1, 0.3, 0.5), whose attacks are random controls (default
            ``random_gaussian``; the first is the ratio baseline) with ``n_random`` draws
            (default 5) seeded by `Sweep.generator`, budget ``Budget(norm="l2")`` and
            ``batch_size`` configurations per model call (default 16); or those as keywords.
            ``device`` and ``cache_dir`` are not used.
        energy_offset_ev: constant removed from E_acc - E_app (eV or ``"mean"``, fitted on
            the undistorted configurations and kept fixed).
        data: precomputed `compute_directions` on the same configurations.
    """
    sweep = Sweep.resolve(sweep, defaults=DEFAULTS, **options)
    _check(sweep)
    if data is None:
        data = compute_directions(atoms, approx, accurate, energy_offset_ev=energy_offset_ev,
                                  batch_size=sweep.batch_size)
    configs = data.configurations
    app = as_evaluator(approx, configs.template, sweep.batch_size)
    acc = as_evaluator(accurate, configs.template, sweep.batch_size)
    offset, n_atoms, shape = data.energy_offset_ev, configs.n_atoms, configs.positions.shape

    def errors(positions: np.ndarray) -> np.ndarray:
        return 1000.0 * (app.energies(positions) + offset - acc.energies(positions)) / n_atoms

    flat = torch.as_tensor(configs.positions.reshape(len(configs), -1), dtype=torch.float64)
    clean = data.error_mev_per_atom
    adversarial: list[np.ndarray] = []
    random: dict[str, list[np.ndarray]] = {r.key: [] for r in sweep.random_runs}
    for eps in sweep.epsilons:
        if eps == 0:  # nothing moves: the clean errors, without evaluating the models again
            adversarial.append(clean.copy())
            for per_eps in random.values():
                per_eps.append(np.repeat(clean[None], sweep.n_random, axis=0))
            continue
        adversarial.append(errors(distort(configs.positions, data.direction, eps)))
        for run in sweep.random_runs:
            # the registry's own random control; it never calls the model, so none is passed
            moved = [attack(None, flat, None, sweep.budget.scaled(eps), run.name,
                            generator=sweep.generator(run.key, eps, d)).numpy().reshape(shape)
                     for d in range(sweep.n_random)]
            random[run.key].append(np.stack([errors(p) for p in moved]))
    norms = np.linalg.norm(data.direction.reshape(len(configs), -1), axis=1)
    return DistortionSweep(sweep, clean, adversarial, random, int((norms == 0).sum()),
                           n_atoms, offset)


__all__ = ["ADVERSARIAL_FORCE", "DistortionSweep", "alignment_records", "distort",
           "distortion_sweep", "participation",
           "rmse_mev_per_atom"]
