"""Bridges between ASE calculators, torch energy models and batches of configurations.

* `Configurations`: one template ``Atoms`` (species, cell, pbc, masses) and positions (M, N, 3)
  in Å — the data every analysis here runs on.
* `TorchCalculator`: any torch energy model (positions Å → energy eV) as an ASE calculator
  (energy, forces by autograd, stress by autograd through a strain for `PeriodicPotential`).
* `as_evaluator`: one interface, ``energies_and_forces(positions (B, N, 3))``, over ASE
  calculators (looped, no autograd needed) and torch models (batched, autograd).
* `calculator_energy_function`: an ASE calculator as a differentiable torch function
  (backward = -forces), so the core attacks can use any calculator as reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from torch import Tensor, nn

from scirobust.atomistic.potential import DTYPE, PeriodicPotential, energy_and_forces
from scirobust.errors import DataError


# --------------------------------------------------------------------------- configurations
@dataclass
class Configurations:
    """M configurations of the same N atoms: a template ``Atoms`` and positions (M, N, 3) Å."""

    template: Atoms
    positions: np.ndarray

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        if pos.ndim == 2:
            pos = pos[None]
        if pos.ndim != 3 or pos.shape[1:] != (len(self.template), 3):
            raise DataError(
                f"positions must have shape (M, {len(self.template)}, 3) for this template; got "
                f"{np.shape(self.positions)}."
            )
        if not np.isfinite(pos).all():
            raise DataError("positions contain NaN or Inf.")
        self.positions = pos

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_atoms(self) -> int:
        """Atoms per configuration N."""
        return len(self.template)

    def with_positions(self, positions: np.ndarray) -> Configurations:
        """Same atoms, new positions (M', N, 3) Å."""
        return Configurations(self.template, positions)

    def subset(self, index: Sequence[int] | np.ndarray | slice) -> Configurations:
        """Configurations at the given indices."""
        return Configurations(self.template, self.positions[index])

    def atoms(self, k: int) -> Atoms:
        """Configuration ``k`` as a fresh ``Atoms`` (no calculator attached)."""
        atoms = self.template.copy()
        atoms.calc = None
        atoms.positions = self.positions[k]
        return atoms

    def to_atoms_list(self) -> list[Atoms]:
        """All configurations as ``Atoms`` objects."""
        return [self.atoms(k) for k in range(len(self))]


def as_configurations(atoms: Atoms | Sequence[Atoms] | Configurations) -> Configurations:
    """Accept one ``Atoms``, a list of ``Atoms`` with the same species and cell, or
    `Configurations`."""
    if isinstance(atoms, Configurations):
        return atoms
    if isinstance(atoms, Atoms):
        template = atoms.copy()
        template.calc = None
        return Configurations(template, atoms.positions[None].copy())
    items = list(atoms)
    if not items or not all(isinstance(a, Atoms) for a in items):
        raise DataError("Give an ase.Atoms, a non-empty list of ase.Atoms, or Configurations.")
    first = items[0]
    for a in items[1:]:
        if (len(a) != len(first) or not np.array_equal(a.numbers, first.numbers)
                or not np.allclose(np.array(a.cell), np.array(first.cell))
                or not np.array_equal(a.pbc, first.pbc)):
            raise DataError(
                "All configurations must have the same atoms (species in the same order), cell "
                "and pbc; analyse configurations with different cells separately."
            )
    template = first.copy()
    template.calc = None
    return Configurations(template, np.stack([a.positions for a in items]))


# --------------------------------------------------------------------------- ASE calculator
class TorchCalculator(Calculator):
    """ASE calculator around a torch energy model (positions (N, 3) Å → energy eV).

    Forces are ``-dE/dR`` by autograd. For a `PeriodicPotential` the cell and pbc follow the
    ``Atoms`` (changed cells are passed on) and the stress is ``(1/V) dE/dε`` by autograd.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: nn.Module, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        model = self.model
        if isinstance(model, PeriodicPotential):
            if not np.array_equal(self.atoms.numbers, model.numbers.numpy()):
                raise DataError(
                    "This TorchCalculator's model was built for other atoms (species or order "
                    "differ); build the model from these Atoms."
                )
            cell = np.array(self.atoms.cell)
            if (not np.allclose(cell, model.cell.numpy(), rtol=0, atol=1e-12)
                    or tuple(self.atoms.pbc) != model.pbc):
                model.set_cell(cell, tuple(self.atoms.pbc))
        positions = torch.as_tensor(self.atoms.positions, dtype=DTYPE)
        periodic = isinstance(model, PeriodicPotential) and all(self.atoms.pbc)
        if "stress" in properties and not periodic:
            raise DataError("Stress needs a PeriodicPotential and a fully periodic cell.")
        if periodic:
            # one pass gives forces and stress: gradients w.r.t. positions and a zero strain
            with torch.enable_grad():
                pos = positions.clone().requires_grad_(True)
                strain = torch.zeros(3, 3, dtype=DTYPE, requires_grad=True)
                energy = model(pos, strain=strain)
                grad_pos, grad_strain = torch.autograd.grad(energy, (pos, strain))
            forces = -grad_pos
            volume = abs(float(torch.linalg.det(model.cell)))
            s = (0.5 * (grad_strain + grad_strain.T) / volume).numpy()
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
            )
        else:
            energy, forces = energy_and_forces(model, positions)
        self.results["energy"] = float(energy.detach())
        self.results["free_energy"] = float(energy.detach())
        self.results["forces"] = forces.detach().numpy().copy()


# --------------------------------------------------------------------------- evaluators
class Evaluator(Protocol):
    """Energies (eV) and forces (eV/Å) of a batch of positions (B, N, 3) Å."""

    name: str

    def energies(self, positions: np.ndarray) -> np.ndarray: ...

    def energies_and_forces(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchEvaluator:
    """Evaluate a torch energy model in batches (forces by autograd)."""

    def __init__(self, model: nn.Module | Callable[[Tensor], Tensor], batch_size: int = 16,
                 name: str | None = None) -> None:
        self.model = model
        self.batch_size = int(batch_size)
        self.batched = bool(getattr(model, "supports_batch", False))
        self.name = name or type(model).__name__

    def _chunks(self, n: int) -> list[slice]:
        size = self.batch_size if self.batched else 1
        return [slice(k, min(k + size, n)) for k in range(0, n, size)]

    def _call(self, pos: Tensor) -> Tensor:
        if self.batched:
            return self.model(pos)
        return torch.stack([self.model(p) for p in pos])

    def energies(self, positions: np.ndarray) -> np.ndarray:
        """Energies (B,) in eV."""
        pos = torch.as_tensor(np.asarray(positions), dtype=DTYPE)
        out = []
        with torch.no_grad():
            for sl in self._chunks(pos.shape[0]):
                out.append(self._call(pos[sl]).reshape(-1))
        return torch.cat(out).numpy().astype(np.float64)

    def energies_and_forces(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energies (B,) in eV and forces (B, N, 3) in eV/Å."""
        from scirobust.attacks import preserved_model_state

        pos = torch.as_tensor(np.asarray(positions), dtype=DTYPE)
        energies, forces = [], []
        # parameters frozen while differentiating w.r.t. positions only (restored afterwards)
        with preserved_model_state(self.model, eval_mode=False):
            for sl in self._chunks(pos.shape[0]):
                with torch.enable_grad():
                    p = pos[sl].clone().requires_grad_(True)
                    e = self._call(p).reshape(-1)
                    (g,) = torch.autograd.grad(e.sum(), p)
                energies.append(e.detach())
                forces.append(-g)
        return torch.cat(energies).numpy(), torch.cat(forces).numpy()


class CalculatorEvaluator:
    """Evaluate any ASE calculator configuration by configuration (no autograd needed)."""

    def __init__(self, calc: Calculator, template: Atoms, name: str | None = None) -> None:
        self.calc = calc
        self.template = template
        self.name = name or type(calc).__name__

    def _atoms(self, pos: np.ndarray) -> Atoms:
        atoms = self.template.copy()
        atoms.positions = pos
        atoms.calc = self.calc
        return atoms

    def energies(self, positions: np.ndarray) -> np.ndarray:
        """Energies (B,) in eV."""
        return np.array([self._atoms(p).get_potential_energy() for p in positions])

    def energies_and_forces(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energies (B,) in eV and forces (B, N, 3) in eV/Å."""
        energies, forces = [], []
        for p in positions:
            atoms = self._atoms(p)
            energies.append(atoms.get_potential_energy())
            forces.append(atoms.get_forces())
        return np.array(energies, dtype=np.float64), np.array(forces, dtype=np.float64)


def as_evaluator(model: Any, template: Atoms, batch_size: int = 16) -> Evaluator:
    """An `Evaluator` for an ASE calculator, a torch model, or an existing evaluator."""
    if hasattr(model, "energies_and_forces") and hasattr(model, "energies"):
        return model
    if isinstance(model, Calculator) or (
        hasattr(model, "get_potential_energy") and hasattr(model, "get_forces")
    ):
        return CalculatorEvaluator(model, template)
    if isinstance(model, nn.Module) or callable(model):
        return TorchEvaluator(model, batch_size=batch_size)
    raise DataError(
        f"Cannot evaluate {type(model).__name__}: give an ASE calculator (get_potential_energy/"
        "get_forces) or a torch energy model mapping positions (N, 3) Å to an energy in eV."
    )


# --------------------------------------------------------------------------- torch bridge
class _CalculatorEnergy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, positions: Tensor, evaluator: CalculatorEvaluator) -> Tensor:
        energies, forces = evaluator.energies_and_forces(positions.detach().cpu().numpy())
        ctx.save_for_backward(torch.as_tensor(-forces, dtype=positions.dtype))
        return torch.as_tensor(energies, dtype=positions.dtype, device=positions.device)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        (gradient,) = ctx.saved_tensors
        return grad_output[:, None, None] * gradient.to(grad_output.device), None


def calculator_energy_function(calc: Calculator, template: Atoms) -> Callable[[Tensor], Tensor]:
    """Positions (B, N, 3) Å → energies (B,) eV from an ASE calculator, differentiable in torch
    (the gradient is minus the calculator's forces)."""
    evaluator = CalculatorEvaluator(calc, template)

    def energy(positions: Tensor) -> Tensor:
        return _CalculatorEnergy.apply(positions, evaluator)

    energy.supports_batch = True  # type: ignore[attr-defined]
    return energy


__all__ = [
    "CalculatorEvaluator",
    "Configurations",
    "Evaluator",
    "TorchCalculator",
    "TorchEvaluator",
    "as_configurations",
    "as_evaluator",
    "calculator_energy_function",
]
