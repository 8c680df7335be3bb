"""Audits of energies *and* forces under coordinate attacks (paper 000 §2.2, Fig. 3).

An energy model becomes a module mapping flattened positions x (B, 3N) Å to one output row
per configuration, ``[E/N (eV/atom), F (3N values, eV/Å)]``, with the forces taken by
autograd with ``create_graph`` so that a gradient attack can differentiate a loss that
contains forces. The attack objective is DeePMD-kit's energy-and-force loss against the
labels of the clean configurations,

    L = p_e (ΔE/N)² + p_f mean(ΔF²)                  (eV²/atom², eV²/Å²; DeePMD-kit "ener")

and the errors are measured against a reference evaluated *at the perturbed positions*
(re-labelled, as the paper does with DFT), or against the clean labels when no reference is
given (then the "error" includes the true physical change of energy and forces, and the
results' metadata says so).

Metrics (per configuration, then over configurations): ``energy_rmse`` (meV/atom),
``force_rmse`` (eV/Å), ``energy_mse`` (meV²/atom²) and ``force_mse`` (eV²/Å²).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Unpack

import numpy as np
import torch
from ase import Atoms
from torch import Tensor, nn

from scirobust import objectives
from scirobust.atomistic.attack import energy_function
from scirobust.atomistic.calculators import Configurations, as_configurations, as_evaluator
from scirobust.atomistic.potential import DTYPE
from scirobust.audit import audit
from scirobust.budget import Budget
from scirobust.errors import DataError
from scirobust.metrics import (
    Metric,
    Reduced,
    Reduction,
    _mean_and_se,
    _sqrt_with_se,
)
from scirobust.results import Results
from scirobust.sweep import Sweep, SweepOptions

AUDIT_DEFAULTS: dict[str, Any] = {
    "attacks": ("random_sign", "fgsm"), "budget": Budget(norm="linf"), "n_random": 5,
    "batch_size": 8, "metrics": ("energy_rmse", "force_rmse"),
}


def _split(output: Tensor) -> tuple[Tensor, Tensor]:
    return output[:, :1], output[:, 1:]


class EnergyForceModel(nn.Module):
    """Positions x (B, 3N) Å → ``[E/N (eV/atom), F (eV/Å) × 3N]`` of shape (B, 1 + 3N).

    ``energy_fn`` maps positions (B, N, 3) Å to energies (B,) eV (a torch energy model, a
    `DeepMDPotential`, or an ASE calculator through `energy_function`). Forces are −∂E/∂R by
    autograd, kept differentiable when gradients are being taken.
    """

    def __init__(self, energy_fn: Callable[[Tensor], Tensor], n_atoms: int) -> None:
        super().__init__()
        self.energy_fn = energy_fn
        if isinstance(energy_fn, nn.Module):
            self.inner = energy_fn  # registered so eval()/parameter freezing reach it
        self.n_atoms = int(n_atoms)

    def forward(self, x: Tensor) -> Tensor:
        """Energy per atom (eV) and forces (eV/Å), (B, 1 + 3N)."""
        outer_grad = torch.is_grad_enabled() and x.requires_grad
        with torch.enable_grad():
            pos = x.reshape(x.shape[0], self.n_atoms, 3).to(DTYPE)
            if not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
            energies = self.energy_fn(pos).reshape(-1)
            (grad,) = torch.autograd.grad(energies.sum(), pos, create_graph=outer_grad)
        if not outer_grad:
            energies, grad = energies.detach(), grad.detach()
        per_atom = (energies / self.n_atoms).reshape(-1, 1)
        return torch.cat([per_atom, -grad.reshape(x.shape[0], -1)], dim=1).to(x.dtype)


def _describe_reference(reference: Any) -> str:
    """What identifies a reference for the audit's resume cache: a torch model's weights, a
    calculator's parameters, an evaluator's name."""
    if isinstance(reference, nn.Module):
        from scirobust._hashing import fingerprint_tensors

        state = reference.state_dict()
        return type(reference).__name__ + fingerprint_tensors([state[k] for k in sorted(state)])
    todict = getattr(reference, "todict", None)
    params = todict() if callable(todict) else {}
    return f"{type(reference).__name__}{sorted(params.items())!r}|{getattr(reference, 'name', '')}"


class _CalculatorRows(torch.autograd.Function):
    """Rows ``[E/N, F]`` of a calculator, differentiable: ∂E/∂x = −F, and the forces' part by
    a central finite-difference Hessian–vector product, H v ≈ −(F(x + h v̂) − F(x − h v̂))
    |v| / 2h (H is symmetric), two extra evaluations per configuration."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, ref: ReferenceEnergyForces) -> Tensor:
        rows = ref.rows(x)
        ctx.save_for_backward(x.detach(), rows)
        ctx.ref = ref
        return rows

    @staticmethod
    def backward(ctx: Any, grad_rows: Tensor) -> tuple[Tensor, None]:
        x, rows = ctx.saved_tensors
        ref: ReferenceEnergyForces = ctx.ref
        g_energy, g_forces = grad_rows[:, :1], grad_rows[:, 1:]
        grad = -g_energy * rows[:, 1:] / ref.n_atoms
        norm = g_forces.norm(dim=1, keepdim=True)
        moving = norm[:, 0] > 0
        if moving.any():
            unit = g_forces[moving] / norm[moving]
            h = ref.fd_step_angstrom
            plus = ref.rows(x[moving] + h * unit)[:, 1:]
            minus = ref.rows(x[moving] - h * unit)[:, 1:]
            grad[moving] += (plus - minus) / (2 * h) * norm[moving]
        return grad, None


class ReferenceEnergyForces(nn.Module):
    """A reference (ASE calculator, torch energy model or `Evaluator`) evaluated at any
    positions: x (B, 3N) Å → ``[E/N (eV/atom), F (eV/Å)]``, (B, 1 + 3N).

    Differentiable, so a gradient attack can follow the true error: torch energy models by
    autograd; calculators by their forces and a finite-difference Hessian–vector product
    (step ``fd_step_angstrom``, two extra evaluations per configuration and gradient).
    ``energy_offset_ev`` is added to the reference's energies (codes differ by a constant);
    ``calls`` counts the configurations evaluated.
    """

    def __init__(self, reference: Any, template: Atoms, *, energy_offset_ev: float = 0.0,
                 batch_size: int = 16, fd_step_angstrom: float = 1e-3) -> None:
        super().__init__()
        self.n_atoms = len(template)
        self.torch_model = (EnergyForceModel(energy_function(reference, template), self.n_atoms)
                            if isinstance(reference, nn.Module) else None)
        self.evaluator = (None if self.torch_model is not None else
                          as_evaluator(reference, template, batch_size=batch_size))
        self.energy_offset_ev = float(energy_offset_ev)
        self.fd_step_angstrom = float(fd_step_angstrom)
        self.calls = 0
        self.cache_fingerprint = (f"{type(self).__name__}({_describe_reference(reference)}, "
                                  f"offset={self.energy_offset_ev!r} eV, "
                                  f"fd_step={self.fd_step_angstrom!r} Å)")

    def rows(self, x: Tensor) -> Tensor:
        """Reference rows at positions x (B, 3N) Å, without a graph."""
        self.calls += x.shape[0]
        if self.torch_model is not None:
            out = self.torch_model(x.detach()).clone()
            out[:, 0] += self.energy_offset_ev / self.n_atoms
            return out
        assert self.evaluator is not None
        pos = x.detach().cpu().double().numpy().reshape(x.shape[0], self.n_atoms, 3)
        energies, forces = self.evaluator.energies_and_forces(pos)
        rows = np.concatenate([((np.asarray(energies) + self.energy_offset_ev)
                                / self.n_atoms)[:, None],
                               np.asarray(forces).reshape(len(pos), -1)], axis=1)
        return torch.as_tensor(rows, dtype=x.dtype, device=x.device)

    def forward(self, x: Tensor) -> Tensor:
        """Reference energy per atom (eV) and forces (eV/Å) at positions x (B, 3N) Å."""
        if not (torch.is_grad_enabled() and x.requires_grad):
            return self.rows(x)
        if self.torch_model is not None:
            self.calls += x.shape[0]
            out = self.torch_model(x)
            return out + torch.cat([torch.full_like(out[:, :1], self.energy_offset_ev
                                                    / self.n_atoms),
                                    torch.zeros_like(out[:, 1:])], dim=1)
        return _CalculatorRows.apply(x, self)


def _is_calculator(model: Any) -> bool:
    return not isinstance(model, nn.Module) and hasattr(model, "get_potential_energy")


def label_rows(energies_ev: np.ndarray, forces_ev_per_angstrom: np.ndarray) -> Tensor:
    """Labels (M,) eV and (M, N, 3) eV/Å → target rows ``[E/N, F]`` (M, 1 + 3N)."""
    energies = np.asarray(energies_ev, dtype=np.float64).reshape(-1)
    forces = np.asarray(forces_ev_per_angstrom, dtype=np.float64)
    if forces.ndim != 3 or forces.shape[0] != energies.shape[0] or forces.shape[2] != 3:
        raise DataError(f"Labels: energies (M,) and forces (M, N, 3) expected; got "
                        f"{energies.shape} and {forces.shape}.")
    n_atoms = forces.shape[1]
    return torch.as_tensor(np.concatenate([energies[:, None] / n_atoms,
                                           forces.reshape(len(forces), -1)], axis=1))


def energy_force_objective(pref_e: float = 1.0, pref_f: float = 1.0
                           ) -> Callable[[Tensor | None], objectives.Objective]:
    """Builder ``targets -> objective`` of DeePMD-kit's energy loss
    p_e (ΔE/N)² + p_f mean(ΔF²) per configuration (eV²); the tutorial's final prefactors are
    p_e = p_f = 1."""
    if pref_e < 0 or pref_f < 0 or pref_e + pref_f == 0:
        raise DataError(f"pref_e and pref_f must be >= 0 and not both 0; got {pref_e}, "
                        f"{pref_f}.")

    def build(targets: Tensor | None) -> objectives.Objective:
        if targets is None:
            raise DataError("The energy-and-force loss needs labels (targets).")

        def loss(output: Tensor, labels: Tensor) -> Tensor:
            if output.shape != labels.shape:
                raise DataError(f"model rows {tuple(output.shape)} vs labels "
                                f"{tuple(labels.shape)}: labels must be [E/N, F] per "
                                "configuration (see label_rows).")
            (e, f), (e0, f0) = _split(output), _split(labels)
            return pref_e * ((e - e0) ** 2)[:, 0] + pref_f * ((f - f0) ** 2).mean(dim=1)

        return objectives.TargetObjective("energy_force", targets.detach(), loss)

    build.__qualname__ = f"energy_force_objective(pref_e={pref_e}, pref_f={pref_f})"
    return build


def reference_energy_force_objective(reference: ReferenceEnergyForces, pref_e: float = 1.0,
                                     pref_f: float = 1.0
                                     ) -> Callable[[Tensor | None], objectives.Objective]:
    """Builder of the energy-and-force loss against ``reference`` evaluated (and
    differentiated) at the perturbed positions: the attack follows the true error."""
    energy_force_objective(pref_e, pref_f)  # same argument checks

    def build(_targets: Tensor | None) -> objectives.Objective:
        def loss(output: Tensor, x: Tensor) -> Tensor:
            (e, f), (e0, f0) = _split(output), _split(reference(x))
            return pref_e * ((e - e0) ** 2)[:, 0] + pref_f * ((f - f0) ** 2).mean(dim=1)

        return loss

    build.__qualname__ = (f"reference_energy_force_objective(pref_e={pref_e}, "
                          f"pref_f={pref_f})")
    return build


def _energy_sq(output: Tensor, truth: Tensor) -> Tensor:
    return ((1000.0 * (_split(output)[0] - _split(truth)[0])) ** 2).double()


def _force_sq(output: Tensor, truth: Tensor) -> Tensor:
    return ((_split(output)[1] - _split(truth)[1]) ** 2).mean(dim=1, keepdim=True).double()


def _rms(name: str) -> Callable[[np.ndarray], Reduced]:
    def reduce(c: np.ndarray) -> Reduced:
        return [Reduction(name, *_sqrt_with_se(*_mean_and_se(c[:, 0])))]
    return reduce


def _ms(name: str) -> Callable[[np.ndarray], Reduced]:
    def reduce(c: np.ndarray) -> Reduced:
        return [Reduction(name, *_mean_and_se(c[:, 0]))]
    return reduce


ENERGY_FORCE_METRICS: dict[str, Metric] = {
    "energy_rmse": Metric("energy_rmse", _energy_sq, _rms("energy_rmse"),
                          description="energy RMSE per atom, meV/atom"),
    "force_rmse": Metric("force_rmse", _force_sq, _rms("force_rmse"),
                         description="force RMSE over all components, eV/Å"),
    "energy_mse": Metric("energy_mse", _energy_sq, _ms("energy_mse"),
                         description="energy MSE per atom, meV²/atom²"),
    "force_mse": Metric("force_mse", _force_sq, _ms("force_mse"),
                        description="force MSE over all components, eV²/Å²"),
}
UNITS = {"energy_rmse": "meV/atom", "force_rmse": "eV/Å", "energy_mse": "meV²/atom²",
         "force_mse": "eV²/Å²"}


def atom_mask(template: Atoms, *, elements: Sequence[str] | None = None,
              indices: Sequence[int] | None = None) -> Tensor | None:
    """Budget mask (3N,) over flattened coordinates: True for the atoms that may move (those
    of ``elements`` and/or at ``indices``); None (all atoms) when neither is given."""
    if elements is None and indices is None:
        return None
    n = len(template)
    chosen = np.zeros(n, dtype=bool)
    symbols = np.array(template.get_chemical_symbols())
    if elements is not None:
        unknown = sorted(set(elements) - set(symbols))
        if unknown:
            raise DataError(f"mask elements {unknown} are not in the structure (it has "
                            f"{sorted(set(symbols))}).")
        chosen |= np.isin(symbols, list(elements))
    if indices is not None:
        idx = np.asarray(list(indices), dtype=int)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise DataError(f"mask indices must lie in [0, {n}); got {idx.tolist()}.")
        chosen[idx] = True
    if not chosen.any():
        raise DataError("The atom mask selects no atom: nothing could be perturbed.")
    return torch.as_tensor(np.repeat(chosen, 3))


def audit_energy_forces(
    structures: Atoms | Sequence[Atoms] | Configurations,
    model: Any,
    sweep: Sweep | None = None,
    *,
    reference: Any = None,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
    pref_e: float = 1.0,
    pref_f: float = 1.0,
    energy_offset_ev: float = 0.0,
    attack_target: str | None = None,
    case: str = "atoms",
    model_name: str = "model",
    keep_perturbed: bool = False,
    progress: bool = False,
    **options: Unpack[SweepOptions],
) -> Results:
    """Paired audit of a potential's energies and forces under coordinate attacks.

    ``model``: torch energy model (positions (B, N, 3) or (N, 3) Å → eV) or ASE calculator
    (gradient attacks need autograd; an ASE calculator's forces serve only first-order
    attacks on the energy, not the force loss). ``labels``: (energies (M,) eV, forces
    (M, N, 3) eV/Å) of the clean structures; without labels the ``reference`` labels the
    clean structures. ``reference``: ASE calculator or torch energy model evaluated at every
    perturbed geometry (``energy_offset_ev`` added to its energies); without one, errors are
    measured against the clean labels. ``attack_target``: ``"labels"`` (the loss against the
    fixed clean labels, as in paper 000 §2.2 and DeePMD-kit's training loop) or
    ``"reference"`` (the loss against the reference at the perturbed positions, differentiated
    through it: the attack follows the true error); default ``"reference"`` when a reference
    is given. ``sweep`` (or its keywords): epsilons in Å per coordinate with the default
    L-inf budget (the paper's ±0.05 Å), attacks (default ``random_sign`` and ``fgsm``),
    metrics from `ENERGY_FORCE_METRICS`.
    """
    configs = as_configurations(structures)
    if labels is None and reference is None:
        raise DataError("Give labels (energies, forces) of the structures, a reference "
                        "calculator, or both.")
    sweep = Sweep.resolve(sweep, defaults=AUDIT_DEFAULTS, **options)
    metrics = [ENERGY_FORCE_METRICS.get(m, m) if isinstance(m, str) else m
               for m in sweep.metrics or AUDIT_DEFAULTS["metrics"]]
    unknown = [m for m in metrics if isinstance(m, str)]
    if unknown:
        raise DataError(f"Unknown metrics {unknown} for energies and forces; use "
                        f"{sorted(ENERGY_FORCE_METRICS)}.")
    sweep = sweep.replace(metrics=tuple(metrics))
    if _is_calculator(model) and pref_f > 0 and sweep.adversarial_runs:
        raise DataError(
            f"The model is an ASE calculator ({type(model).__name__}): its forces cannot be "
            "differentiated w.r.t. the positions, so a gradient attack on the force loss would "
            "use a wrong gradient. Attack the energy only (pref_f=0, pref_e > 0), or give the "
            "potential as a torch energy model (e.g. DeepMDPotential)."
        )
    n = configs.n_atoms
    net = EnergyForceModel(energy_function(model, configs.template), n)
    ref = (ReferenceEnergyForces(reference, configs.template, energy_offset_ev=energy_offset_ev,
                                 batch_size=sweep.batch_size)
           if reference is not None else None)
    x = torch.as_tensor(configs.positions.reshape(len(configs), 3 * n), dtype=DTYPE)
    if labels is not None:
        targets = label_rows(*labels)
        if targets.shape != (len(configs), 1 + 3 * n):
            raise DataError(f"labels describe {targets.shape[0]} structures of "
                            f"{(targets.shape[1] - 1) // 3} atoms; the structures are "
                            f"{len(configs)} of {n} atoms.")
        targets[:, 0] += energy_offset_ev / n
    else:
        assert ref is not None
        targets = ref(x)
    target = attack_target or ("reference" if ref is not None else "labels")
    if target not in ("labels", "reference") or (target == "reference" and ref is None):
        raise DataError(f"attack_target must be 'labels' or 'reference' (which needs a "
                        f"reference); got {attack_target!r}.")
    objective = (energy_force_objective(pref_e, pref_f) if target == "labels" else
                 reference_energy_force_objective(ref, pref_e, pref_f))
    results = audit(net, x, targets, sweep, objective=objective, reference=ref, case=case,
                    model_name=model_name, keep_perturbed=keep_perturbed, progress=progress)
    results.metadata.update({
        "epsilon_units": ("Å per coordinate" if sweep.budget.norm == "linf"
                          else "Å, total L2 norm over the attacked coordinates"),
        "epsilon_label": ("perturbation size ε (L∞, Å per coordinate)"
                          if sweep.budget.norm == "linf" else
                          "perturbation size ε (L2 over the attacked coordinates, Å)"),
        "units": {**UNITS, "mean_abs_cos_theta": "dimensionless"},
        "errors_against": ("the reference re-evaluated at every perturbed geometry"
                           if ref is not None else
                           "the clean labels (no reference: includes the true change of "
                           "energy and forces)"),
        "attack_loss": f"{pref_e}·(ΔE/N)² + {pref_f}·mean(ΔF²) against " + (
            "the clean labels" if target == "labels" else
            "the reference at the perturbed positions (differentiated through it)"),
        "attack_target": target,
        "n_atoms": n,
        "reference_evaluations": ref.calls if ref is not None else 0,
    })
    return results


__all__ = [
    "ENERGY_FORCE_METRICS",
    "EnergyForceModel",
    "ReferenceEnergyForces",
    "atom_mask",
    "audit_energy_forces",
    "energy_force_objective",
    "label_rows",
    "reference_energy_force_objective",
]
