"""SiO₂ structures, relaxation and random displacements (Å, eV).

Structure choice: α-cristobalite (space group P4₁2₁2, Z = 4, 12 atoms per cell) repeated
2×2×2 gives exactly 96 atoms (32 Si, 64 O) in a tetragonal cell of about 10 × 10 × 14 Å with a
diagonal supercell. α-quartz (9 atoms per cell) cannot make 96 atoms, and ideal β-cristobalite
(24 atoms, Fd-3m) needs a 2×2×1 slab that is only 7 Å thick. Lattice parameters and
positions: Pluth, Smith & Faber, J. Appl. Phys. 57, 1045 (1985): a = 4.9717 Å, c = 6.9223 Å,
Si (0.30028, 0.30028, 0), O (0.23976, 0.10324, 0.17844).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms


def alpha_cristobalite(repeat: tuple[int, int, int] = (2, 2, 2)) -> Atoms:
    """α-cristobalite SiO₂ (experimental cell), repeated; 2×2×2 gives 96 atoms."""
    from ase.spacegroup import crystal

    unit = crystal(
        ["Si", "O"],
        basis=[(0.30028, 0.30028, 0.0), (0.23976, 0.10324, 0.17844)],
        spacegroup=92,
        cellpar=[4.9717, 4.9717, 6.9223, 90, 90, 90],
    )
    atoms = unit.repeat(repeat)
    order = np.argsort(-atoms.numbers, kind="stable")  # Si first, then O
    return atoms[order]


def relax(
    atoms: Atoms,
    calc,
    *,
    cell: bool = True,
    fmax: float = 1e-3,
    steps: int = 2000,
) -> tuple[Atoms, dict]:
    """Relax positions (and the cell, with `ase.filters.FrechetCellFilter`) with ASE's BFGS,
    falling back on FIRE if BFGS has not converged. Returns a relaxed copy and a dict with
    the final energy (eV), max force (eV/Å), steps and cell (Å).

    Call it with single-threaded BLAS on a busy machine (`threadpoolctl`): BFGS diagonalises
    a (3N+9)² matrix each step.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE

    relaxed = atoms.copy()
    relaxed.calc = calc
    target = FrechetCellFilter(relaxed) if cell else relaxed
    n_steps = 0
    for optimizer in (BFGS, FIRE):
        opt = optimizer(target, logfile=None)
        converged = opt.run(fmax=fmax, steps=steps)
        n_steps += opt.nsteps
        if converged:
            break
    info = {
        "energy_ev": float(relaxed.get_potential_energy()),
        "max_force_ev_per_angstrom": float(np.linalg.norm(relaxed.get_forces(), axis=1).max()),
        "optimizer_steps": n_steps,
        "cell_angstrom": np.array(relaxed.cell).tolist(),
    }
    relaxed.calc = None
    return relaxed, info


def random_unit_directions(
    n: int, n_atoms: int, generator: np.random.Generator
) -> np.ndarray:
    """``n`` random directions (n, N, 3), Gaussian in every component, unit total L2 norm."""
    g = generator.standard_normal((n, n_atoms, 3))
    return g / np.linalg.norm(g.reshape(n, -1), axis=1)[:, None, None]


def random_displacements(
    positions: np.ndarray,
    n: int,
    generator: np.random.Generator,
    norm_range_angstrom: tuple[float, float] = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Displace ``positions`` (N, 3) Å ``n`` times along random Gaussian directions with total
    L2 norm (over all 3N components) uniform in ``norm_range_angstrom``, as in paper 002.

    Returns positions (n, N, 3) Å and the norms (n,) Å.
    """
    positions = np.asarray(positions, dtype=np.float64)
    low, high = norm_range_angstrom
    norms = generator.uniform(low, high, size=n)
    directions = random_unit_directions(n, len(positions), generator)
    return positions[None] + norms[:, None, None] * directions, norms


__all__ = ["alpha_cristobalite", "random_displacements", "random_unit_directions", "relax"]
