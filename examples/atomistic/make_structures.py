"""Write ``cu38.extxyz``: 12 thermally rattled Cu₃₈ clusters labelled with ASE's EMT.

Run once before ``scirobust audit examples/atomistic/audit.yaml``; takes a second.
"""

from pathlib import Path

import ase.io
import numpy as np
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Octahedron

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(0)
    base = Octahedron("Cu", 4, cutoff=1)  # truncated octahedron, 38 atoms
    frames = []
    for _ in range(12):
        atoms = base.copy()
        atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)  # Å
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    ase.io.write(HERE / "cu38.extxyz", frames)
    print(f"wrote {len(frames)} structures of {len(base)} atoms to {HERE / 'cu38.extxyz'}")


if __name__ == "__main__":
    main()
