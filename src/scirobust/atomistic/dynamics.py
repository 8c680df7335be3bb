"""Following the approximate forces: one Newton step and a relaxation (paper 002, Fig. 2).

* `newton_step`: one velocity-Verlet step of ``dt_fs`` (default 1 fs) with the approximate
  forces, from rest or given velocities, masses from ASE (amu):
  ``R(t+dt) = R + v dt + F_app/(2m) dt²``; the error against the accurate model before and
  after the step, and its relative change (%), per configuration.
* `relaxation_error`: ``n_steps`` of gradient descent ``R ← R + γ F_app(R)`` (γ in Å²/eV) or
  ASE's FIRE with the approximate forces, evaluating the accurate energy at every step.

Both give engine records (`NewtonStep.to_records`, `RelaxationTrace.to_records`) of kind
``adversarial``: following F_app is the attack.

Units: positions Å, energies eV, forces eV/Å, masses amu, time fs; velocities in ASE units
(Å per ASE time unit, as `Atoms.get_velocities`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import units
from torch import nn

from scirobust.atomistic.calculators import TorchCalculator, as_evaluator
from scirobust.atomistic.direction import Alignment, AtomsLike, DirectionData, compute_directions
from scirobust.atomistic.distortion import rmse_mev_per_atom
from scirobust.errors import DataError
from scirobust.results import Record

NAN = float("nan")


@dataclass
class NewtonStep:
    """Errors (meV/atom, signed: E_app + offset - E_acc per atom) before and after one step.

    ``max_displacement_angstrom``: largest move of one atom; ``mean_displacement_angstrom``:
    mean over configurations of the total L2 norm of the step over all 3N coordinates.
    """

    positions_after: np.ndarray
    velocities_after: np.ndarray | None
    error_before_mev_per_atom: np.ndarray
    error_after_mev_per_atom: np.ndarray
    dt_fs: float
    max_displacement_angstrom: float
    mean_displacement_angstrom: float

    @property
    def relative_change_percent(self) -> np.ndarray:
        """100 (|err_after| - |err_before|) / |err_before| per configuration (NaN if
        the error before is exactly zero)."""
        before = np.abs(self.error_before_mev_per_atom)
        after = np.abs(self.error_after_mev_per_atom)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(before > 0, 100.0 * (after - before) / before, np.nan)

    def sign_agreement(self, alignment: Alignment) -> dict[str, float | int]:
        """Paper 002, Fig. 2a, from `force_alignment` on the same configurations: ``n_up``
        configurations with cos θ(A, F_app) > 0 and the fraction ``frac_up_pos`` of them whose
        |error| rose in the step; ``n_down`` and ``frac_down_neg`` for cos θ < 0 and a fall.
        Configurations with cos θ undefined or a zero error before are left out; a fraction
        of no configuration is NaN."""
        change, cos = self.relative_change_percent, alignment.cos_theta
        ok = alignment.defined & np.isfinite(change)
        up, down = change[ok & (cos > 0)] > 0, change[ok & (cos < 0)] < 0
        return {"n_up": int(up.size), "frac_up_pos": float(up.mean()) if up.size else NAN,
                "n_down": int(down.size),
                "frac_down_neg": float(down.mean()) if down.size else NAN}

    def to_records(self, case: str, model: str,
                   alignment: Alignment | None = None) -> list[Record]:
        """Records of attack ``newton_step_<dt>fs`` (kind ``adversarial``; epsilon = the mean
        total displacement of the step, Å): ``energy_error_after_<dt>fs_step_mev_per_atom``
        (RMSE over configurations, meV/atom) and, given ``alignment``, the two fractions of
        `sign_agreement` (``fraction_error_up_if_cos_positive``,
        ``fraction_error_down_if_cos_negative``)."""
        dt, n = f"{self.dt_fs:g}fs", int(self.error_after_mev_per_atom.size)
        rows = [(f"energy_error_after_{dt}_step_mev_per_atom",
                 *rmse_mev_per_atom(self.error_after_mev_per_atom), n)]
        if alignment is not None:
            agree = self.sign_agreement(alignment)
            rows += [("fraction_error_up_if_cos_positive", agree["frac_up_pos"], NAN,
                      agree["n_up"]), ("fraction_error_down_if_cos_negative",
                                       agree["frac_down_neg"], NAN, agree["n_down"])]
        return [Record(case, model, f"newton_step_{dt}", self.mean_displacement_angstrom, metric,
                       value, stderr, count, kind="adversarial")
                for metric, value, stderr, count in rows]


def newton_step(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    *,
    dt_fs: float = 1.0,
    velocities: np.ndarray | None = None,
    energy_offset_ev: float | str = 0.0,
    complete_velocities: bool = False,
    data: DirectionData | None = None,
    batch_size: int = 16,
) -> NewtonStep:
    """One velocity-Verlet step of ``dt_fs`` fs with the approximate forces.

    ``velocities`` (M, N, 3) or (N, 3) in ASE units (default: from rest). The positions after
    the step need only F_app at the start; with ``complete_velocities`` the velocities after
    the step are completed with F_app at the new positions (one more force evaluation).
    """
    if dt_fs <= 0:
        raise DataError(f"dt_fs must be > 0; got {dt_fs}.")
    if data is None:
        data = compute_directions(atoms, approx, accurate, energy_offset_ev=energy_offset_ev,
                                  batch_size=batch_size)
    configs = data.configurations
    masses = configs.template.get_masses()[None, :, None]
    dt = dt_fs * units.fs
    v0 = np.zeros_like(configs.positions) if velocities is None else np.broadcast_to(
        np.asarray(velocities, dtype=np.float64), configs.positions.shape)
    f0 = data.forces_app_ev_per_angstrom
    new_positions = configs.positions + v0 * dt + 0.5 * f0 / masses * dt * dt
    app = as_evaluator(approx, configs.template, batch_size)
    acc = as_evaluator(accurate, configs.template, batch_size)
    v1 = None
    if complete_velocities:
        e_app, f1 = app.energies_and_forces(new_positions)
        v1 = v0 + 0.5 * (f0 + f1) / masses * dt
    else:
        e_app = app.energies(new_positions)
    e_acc = acc.energies(new_positions)
    after = 1000.0 * (e_app + data.energy_offset_ev - e_acc) / configs.n_atoms
    moved = new_positions - configs.positions
    return NewtonStep(new_positions, v1, data.error_mev_per_atom, after, dt_fs,
                      float(np.linalg.norm(moved, axis=-1).max()),
                      float(np.linalg.norm(moved.reshape(len(moved), -1), axis=1).mean()))


@dataclass
class RelaxationTrace:
    """Errors along a relaxation with the approximate forces.

    ``errors_mev_per_atom`` (n_steps + 1, M) signed; ``energy_app_ev``/``energy_acc_ev`` the
    same shape; ``rmse_mev_per_atom`` (n_steps + 1,) and its standard error.
    """

    errors_mev_per_atom: np.ndarray
    energy_app_ev: np.ndarray
    energy_acc_ev: np.ndarray
    method: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def rmse_mev_per_atom(self) -> np.ndarray:
        """RMSE over configurations at each step (meV/atom)."""
        return np.array([rmse_mev_per_atom(e)[0] for e in self.errors_mev_per_atom])

    @property
    def rmse_stderr(self) -> np.ndarray:
        """Delta-method standard error of the RMSE at each step (meV/atom)."""
        return np.array([rmse_mev_per_atom(e)[1] for e in self.errors_mev_per_atom])

    def to_records(self, case: str, model: str, metric: str | None = None) -> list[Record]:
        """One record per step ``k`` (in ``step``, epsilon 0) of attack ``gradient_descent``
        (``method="gd"``) or ``fire``, kind ``adversarial``: the RMSE over configurations and
        its standard error (meV/atom), as ``metric`` (default
        ``energy_error_mev_per_atom_vs_<method>_step``)."""
        attack = "gradient_descent" if self.method == "gd" else self.method
        metric = metric or f"energy_error_mev_per_atom_vs_{self.method}_step"
        n = self.errors_mev_per_atom.shape[1]
        return [Record(case, model, attack, 0.0, metric, float(value), float(stderr), n,
                       kind="adversarial", step=k)
                for k, (value, stderr) in enumerate(zip(self.rmse_mev_per_atom,
                                                        self.rmse_stderr, strict=True))]


def relaxation_error(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    *,
    n_steps: int = 30,
    method: str = "gd",
    step_size_angstrom2_per_ev: float = 0.01,
    max_step_angstrom: float = 0.1,
    energy_offset_ev: float | str = 0.0,
    batch_size: int = 16,
) -> RelaxationTrace:
    """Relax with the approximate forces for ``n_steps`` and measure the error at every step.

    ``method="gd"``: gradient descent ``R ← R + γ F_app`` with γ = ``step_size_angstrom2_per_ev``
    (batched over configurations; no atom moves more than ``max_step_angstrom`` per step).
    ``method="fire"``: ASE's FIRE (``maxstep = max_step_angstrom``) on each configuration, with
    the approximate model as calculator (a torch model is wrapped in `TorchCalculator`).
    """
    if n_steps < 0:
        raise DataError("n_steps must be >= 0.")
    if method not in ("gd", "fire"):
        raise DataError(f"method must be 'gd' or 'fire'; got {method!r}.")
    data = compute_directions(atoms, approx, accurate, energy_offset_ev=energy_offset_ev,
                              batch_size=batch_size)
    configs = data.configurations
    offset = data.energy_offset_ev
    app = as_evaluator(approx, configs.template, batch_size)
    acc = as_evaluator(accurate, configs.template, batch_size)
    e_app_steps = [data.energy_app_ev]
    e_acc_steps = [data.energy_acc_ev]
    if method == "gd":
        pos = configs.positions.copy()
        forces = data.forces_app_ev_per_angstrom
        for step in range(n_steps):
            move = step_size_angstrom2_per_ev * forces
            length = np.linalg.norm(move, axis=-1, keepdims=True)
            move = np.where(length > max_step_angstrom,
                            move * max_step_angstrom / np.maximum(length, 1e-300), move)
            pos = pos + move
            last = step == n_steps - 1
            if last:
                e_app = app.energies(pos)
            else:
                e_app, forces = app.energies_and_forces(pos)
            e_app_steps.append(e_app)
            e_acc_steps.append(acc.energies(pos))
    else:
        from ase.optimize import FIRE

        calc = TorchCalculator(approx) if isinstance(approx, nn.Module) else approx
        per_step_app = np.zeros((n_steps, len(configs)))
        per_step_acc = np.zeros((n_steps, len(configs)))
        for k in range(len(configs)):
            atoms_k = configs.atoms(k)
            atoms_k.calc = calc
            opt = FIRE(atoms_k, maxstep=max_step_angstrom, logfile=None)
            for step in range(n_steps):
                opt.step()
                per_step_app[step, k] = atoms_k.get_potential_energy()
                per_step_acc[step, k] = acc.energies(atoms_k.positions[None])[0]
        e_app_steps += list(per_step_app)
        e_acc_steps += list(per_step_acc)
    e_app_arr = np.stack(e_app_steps)
    e_acc_arr = np.stack(e_acc_steps)
    errors = 1000.0 * (e_app_arr + offset - e_acc_arr) / configs.n_atoms
    return RelaxationTrace(errors, e_app_arr, e_acc_arr, method, {
        "n_steps": n_steps, "step_size_angstrom2_per_ev": step_size_angstrom2_per_ev,
        "max_step_angstrom": max_step_angstrom, "energy_offset_ev": offset,
    })


__all__ = ["NewtonStep", "RelaxationTrace", "newton_step", "relaxation_error"]
