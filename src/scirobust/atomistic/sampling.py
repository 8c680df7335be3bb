"""New training configurations where a potential is weakest (paper 002, "Avoiding adversarial
directions").

A user who has found adversarial directions in a potential asks which configurations to label
next. `adversarial_samples` steps every structure by a fixed total displacement (L2 norm over
all 3N coordinates, Å) along

* ``"adversarial"``: A = 2(E_ref − E_model)(F_model − F_ref), the direction in which the
  squared energy error grows fastest (paper 002, Eq. 2);
* ``"model_forces"``: the model's own forces (where a simulation with the model goes next);
* ``"random"``: a Gaussian direction (the control with the same label budget),

labels the new configurations with the reference, and returns them as ``Atoms`` with
single-point energies (eV) and forces (eV/Å) attached, ready for `write_samples` (extxyz or a
DeePMD-kit folder) and the user's own training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from scirobust.atomistic.calculators import Configurations, as_configurations, as_evaluator
from scirobust.atomistic.direction import compute_directions
from scirobust.atomistic.distortion import distort
from scirobust.atomistic.structures import random_unit_directions
from scirobust.errors import DataError

Along = Literal["adversarial", "model_forces", "random"]
ALONG: tuple[str, ...] = ("adversarial", "model_forces", "random")


def sampling_directions(structures: Atoms | Sequence[Atoms] | Configurations, approx: Any,
                        reference: Any, along: Along, *, energy_offset_ev: float | str = 0.0,
                        seed: int = 0) -> np.ndarray:
    """Directions (M, N, 3) along which `adversarial_samples` steps (not normalised; a zero
    direction, where the two models agree exactly, leaves that structure in place)."""
    if along not in ALONG:
        raise DataError(f"along must be one of {', '.join(ALONG)}; got {along!r}.")
    configs = as_configurations(structures)
    if along == "random":
        return random_unit_directions(len(configs), configs.n_atoms,
                                      np.random.default_rng(seed))
    if along == "model_forces":
        return as_evaluator(approx, configs.template).energies_and_forces(configs.positions)[1]
    data = compute_directions(configs, approx, reference, energy_offset_ev=energy_offset_ev)
    return data.direction


def adversarial_samples(
    structures: Atoms | Sequence[Atoms] | Configurations,
    approx: Any,
    reference: Any,
    *,
    step_angstrom: float,
    along: Along = "adversarial",
    energy_offset_ev: float | str = 0.0,
    seed: int = 0,
) -> list[Atoms]:
    """New configurations, one per structure, moved by ``step_angstrom`` (total L2 norm over
    3N coordinates, Å) along ``along`` and labelled by ``reference``.

    ``approx`` and ``reference`` are ASE calculators or torch energy models (or evaluators).
    ``energy_offset_ev`` (or ``"mean"``) removes a constant between the two models' energies
    before A is formed. Each returned ``Atoms`` carries the reference's energy (eV) and forces
    (eV/Å) as a single-point calculator and ``info`` entries ``sampled_along``,
    ``step_angstrom`` and ``source_index``.
    """
    if not np.isfinite(step_angstrom) or step_angstrom <= 0:
        raise DataError(f"step_angstrom must be a positive length in Å; got {step_angstrom}.")
    configs = as_configurations(structures)
    directions = sampling_directions(configs, approx, reference, along,
                                     energy_offset_ev=energy_offset_ev, seed=seed)
    positions = distort(configs.positions, directions, float(step_angstrom))
    energies, forces = as_evaluator(reference, configs.template).energies_and_forces(positions)
    samples = []
    for k, (pos, energy, f) in enumerate(zip(positions, energies, forces, strict=True)):
        atoms = configs.atoms(k)
        atoms.positions = pos
        atoms.info.update({"sampled_along": along, "step_angstrom": float(step_angstrom),
                           "source_index": k})
        atoms.calc = SinglePointCalculator(atoms, energy=float(energy), forces=np.array(f))
        samples.append(atoms)
    return samples


def write_samples(samples: Sequence[Atoms], path: str | Path, *,
                  format: Literal["extxyz", "deepmd"] = "extxyz",
                  type_map: Sequence[str] | None = None) -> Path:
    """Write labelled samples as one extxyz file, or as a DeePMD-kit ``deepmd/npy`` folder
    (``type_map`` defaults to the elements in order of first appearance)."""
    path = Path(path)
    if not samples:
        raise DataError("No samples to write.")
    if format == "extxyz":
        import ase.io

        from scirobust.results import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.extxyz")
        ase.io.write(tmp, list(samples), format="extxyz")
        atomic_write_text(path, tmp.read_text())
        tmp.unlink()
        return path
    if format != "deepmd":
        raise DataError(f"format must be 'extxyz' or 'deepmd'; got {format!r}.")
    from scirobust.atomistic.deepmd_training import write_deepmd_npy

    symbols = samples[0].get_chemical_symbols()
    energies = np.array([a.get_potential_energy() for a in samples])
    forces = np.stack([a.get_forces() for a in samples])
    return write_deepmd_npy(path, samples, energies, forces,
                            type_map or list(dict.fromkeys(symbols)))


__all__ = ["ALONG", "adversarial_samples", "sampling_directions", "write_samples"]
