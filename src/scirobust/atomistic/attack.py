"""Coordinate attacks on atoms through the core `Budget`/`attack`/`audit` machinery.

The approximate model becomes a module mapping flattened positions (batch, 3N) Å to its energy
per atom (batch, 1) in meV, and the accurate model the reference of
`objectives.against_reference`. The loss is then (E_app - E_acc)² per atom, whose gradient is
the adversarial direction of paper 002 (up to a positive factor), so

* ``fgsm`` with an L-inf budget is the FGSM coordinate attack ``R + ε sign(A)``,
* ``fgsm`` with an L2 budget is the paper's distortion ``R + ε A/|A|``,
* ``random_sign`` / ``random_gaussian`` are the random controls of the same size,

and `scirobust.audit` gives the standard tidy records, ratios and checks for atoms too. ASE
calculators take part through `calculator_energy_function` (gradient = minus their forces).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Unpack

import numpy as np
import torch
from ase.calculators.calculator import Calculator
from torch import Tensor, nn

from scirobust import objectives
from scirobust.atomistic.calculators import (
    Configurations,
    as_configurations,
    calculator_energy_function,
)
from scirobust.atomistic.direction import AtomsLike
from scirobust.atomistic.potential import DTYPE
from scirobust.attacks import attack
from scirobust.audit import audit
from scirobust.budget import Budget
from scirobust.results import Results
from scirobust.sweep import Sweep, SweepOptions

AUDIT_DEFAULTS: dict[str, Any] = {
    "attacks": ("random_sign", {"name": "fgsm", "label": "fgsm_sign"}),
    "metrics": ("rmse",), "n_random": 5, "batch_size": 8,
}


def energy_function(model: Any, template) -> Callable[[Tensor], Tensor]:
    """Positions (B, N, 3) Å → energies (B,) eV, differentiable, from a torch model or an ASE
    calculator."""
    if isinstance(model, Calculator) or (
        hasattr(model, "get_potential_energy") and not isinstance(model, nn.Module)
    ):
        return calculator_energy_function(model, template)
    if getattr(model, "supports_batch", False):
        return model
    return lambda pos: torch.stack([model(p) for p in pos])


class PerAtomEnergy(nn.Module):
    """Flattened positions (batch, 3N) Å → (E + shift_ev) / N in meV, shape (batch, 1)."""

    def __init__(self, energy_fn: Callable[[Tensor], Tensor], n_atoms: int,
                 shift_ev: float = 0.0) -> None:
        super().__init__()
        self.energy_fn = energy_fn
        if isinstance(energy_fn, nn.Module):
            self.inner = energy_fn  # registered so eval()/requires_grad handling reaches it
        self.n_atoms = int(n_atoms)
        self.shift_ev = float(shift_ev)

    def forward(self, x: Tensor) -> Tensor:
        """Energy per atom in meV, (batch, 1)."""
        energies = self.energy_fn(x.reshape(x.shape[0], self.n_atoms, 3).to(DTYPE))
        return (1000.0 * (energies + self.shift_ev) / self.n_atoms).reshape(-1, 1)


def _setup(atoms: AtomsLike, approx: Any, accurate: Any, energy_offset_ev: float
           ) -> tuple[Configurations, PerAtomEnergy, PerAtomEnergy, Tensor]:
    configs = as_configurations(atoms)
    n = configs.n_atoms
    model = PerAtomEnergy(energy_function(approx, configs.template), n, energy_offset_ev)
    reference = PerAtomEnergy(energy_function(accurate, configs.template), n)
    x = torch.as_tensor(configs.positions.reshape(len(configs), 3 * n), dtype=DTYPE)
    return configs, model, reference, x


def coordinate_attack(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    eps_angstrom: float,
    *,
    norm: str = "linf",
    method: str = "fgsm",
    energy_offset_ev: float = 0.0,
    steps: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Attacked positions (M, N, 3) Å from `scirobust.attack` on the atomic coordinates.

    ``norm="linf"``: every coordinate moves by at most ``eps_angstrom`` (FGSM: exactly ±eps
    along sign(A)); ``norm="l2"``: the total displacement has L2 norm ``eps_angstrom`` (FGSM:
    along A/|A|, the paper's distortion). ``method`` is any name in `scirobust.ATTACKS`.
    """
    configs, model, reference, x = _setup(atoms, approx, accurate, energy_offset_ev)
    out = attack(
        model, x, objectives.against_reference(reference),
        Budget(eps=float(eps_angstrom), norm=norm), method,
        steps=steps, generator=torch.Generator().manual_seed(seed),
    )
    return out.detach().numpy().reshape(configs.positions.shape)


def audit_coordinates(
    atoms: AtomsLike,
    approx: Any,
    accurate: Any,
    sweep: Sweep | None = None,
    *,
    eps_is_total_l2: bool = True,
    energy_offset_ev: float = 0.0,
    case: str = "atoms",
    model_name: str = "approx",
    metric: str = "energy_error_mev_per_atom",
    keep_perturbed: bool = False,
    **options: Unpack[SweepOptions],
) -> Results:
    """`scirobust.audit` of the per-atom energy error under coordinate attacks.

    ``sweep`` (or its keywords, see `Sweep`) gives the attacks (default ``random_sign`` and
    FGSM labelled ``fgsm_sign``), epsilons (Å), budget (default L-inf), n_random (default 5),
    seed and batch_size (default 8 configurations). With an L-inf budget and
    ``eps_is_total_l2`` each ε is the total L2 norm (Å) of a sign perturbation: every
    coordinate moves by ε/√(3N), so FGSM and ``random_sign`` match the L2 size of the paper's
    distortions; otherwise ε is per coordinate (L-inf) or total (L2) as the budget says.
    Records: ``metric`` (RMSE over configurations of the per-atom error, meV/atom) and its
    adversarial/random ratio; ``keep_perturbed`` keeps the attacked coordinates (see `audit`).
    """
    configs, model, reference, x = _setup(atoms, approx, accurate, energy_offset_ev)
    sweep = Sweep.resolve(sweep, defaults=AUDIT_DEFAULTS, **options)
    total_l2 = sweep.budget.norm == "l2" or eps_is_total_l2
    if sweep.budget.norm == "linf" and eps_is_total_l2:
        sweep = sweep.replace(budget=sweep.budget.scaled(1.0 / math.sqrt(3 * configs.n_atoms)))
    results = audit(model, x, None, sweep, reference=reference, case=case,
                    model_name=model_name, keep_perturbed=keep_perturbed)
    results.records = [dataclasses.replace(r, metric=metric) if r.metric == "rmse" else r
                       for r in results.records]
    results.metadata["epsilon_units"] = ("total L2 norm over 3N coordinates, Å" if total_l2
                                         else "per coordinate, Å")
    return results


__all__ = [
    "PerAtomEnergy",
    "audit_coordinates",
    "coordinate_attack",
    "energy_function",
]
