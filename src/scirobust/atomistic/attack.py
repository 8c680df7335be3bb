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

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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
from scirobust.audit import AttackRun, audit
from scirobust.budget import Budget
from scirobust.results import Record, Results


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
    epsilons: Sequence[float],
    *,
    attacks: Sequence[str | Mapping[str, Any] | AttackRun] = (
        "random_sign", {"name": "fgsm", "label": "fgsm_sign"}),
    norm: str = "linf",
    eps_is_total_l2: bool = True,
    energy_offset_ev: float = 0.0,
    n_random: int = 5,
    seed: int = 0,
    batch_size: int = 8,
    case: str = "atoms",
    model_name: str = "approx",
    metric: str = "energy_error_mev_per_atom",
) -> Results:
    """`scirobust.audit` of the per-atom energy error under coordinate attacks.

    With ``norm="linf"`` and ``eps_is_total_l2`` each ε is the total L2 norm (Å) of a sign
    perturbation: every coordinate moves by ε/√(3N), so FGSM and ``random_sign`` match the
    L2 size of the paper's distortions; otherwise ε is per coordinate (L-inf) or total (L2)
    as the budget says. Records: metric ``energy_error_mev_per_atom`` (RMSE over
    configurations of the per-atom error, meV/atom) and its adversarial/random ratio.
    """
    configs, model, reference, x = _setup(atoms, approx, accurate, energy_offset_ev)
    unit = 1.0
    if norm == "linf" and eps_is_total_l2:
        unit = 1.0 / math.sqrt(3 * configs.n_atoms)
    results = audit(
        model, x, None, reference=reference, epsilons=list(epsilons), attacks=attacks,
        budget=Budget(eps=unit, norm=norm), metrics=["rmse"], n_random=n_random,
        batch_size=batch_size, seed=seed, case=case, model_name=model_name,
    )
    renamed = []
    for r in results.records:
        name = r.metric.replace("rmse", metric, 1) if r.metric.startswith("rmse") else r.metric
        renamed.append(Record(r.case, r.model, r.attack, r.epsilon, name, r.value, r.stderr,
                              r.n, r.spread, r.n_dropped, r.baseline))
    results.records = renamed
    results.metadata["epsilon_units"] = (
        "total L2 norm over 3N coordinates, Å" if (norm == "l2" or eps_is_total_l2)
        else "per coordinate, Å")
    return results


__all__ = [
    "PerAtomEnergy",
    "audit_coordinates",
    "coordinate_attack",
    "energy_function",
]
