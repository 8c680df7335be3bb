"""Generate the silicon data set of paper 002 §3.3 at laptop scale (issue #16, item 1).

Protocol (fixed before any model is trained): a 64-atom diamond Si cell (a = 5.43 Å, 2×2×2
conventional cells), Langevin molecular dynamics at 300, 600, 900 and 2000 K (the paper's
temperatures) with a 2 fs step and friction 0.01 fs⁻¹; per temperature 200 equilibration
steps, then one frame every 5 steps (``--frames`` per temperature). The DFT of the paper is
replaced by CHGNet 0.4 (a universal potential that ships its weights, stated in the output),
which also drives the MD; energies (eV) and forces (eV/Å) are CHGNet's. Writes
``src/scirobust/cases/data/silicon_chgnet.npz`` (positions and forces as float32) with a JSON
``meta`` (versions, protocol, timings).

    python scripts/make_silicon_data.py [--frames 50] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

TEMPERATURES_K = (300.0, 600.0, 900.0, 2000.0)
DEFAULT_OUTPUT = Path(__file__).parents[1] / "src/scirobust/cases/data/silicon_chgnet.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50, help="frames per temperature")
    parser.add_argument("--equilibration", type=int, default=200, help="MD steps before "
                        "sampling")
    parser.add_argument("--every", type=int, default=5, help="MD steps between frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    import ase
    import chgnet
    import torch
    from ase import units
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    torch.set_num_threads(1)
    started = time.perf_counter()
    calc = CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")
    base = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    positions, energies, forces, temperatures = [], [], [], []
    rng = np.random.default_rng(args.seed)
    timings = {}
    for temperature in TEMPERATURES_K:
        t0 = time.perf_counter()
        atoms = base.copy()
        atoms.calc = calc
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=temperature, friction=0.01 / units.fs,
                       rng=rng)
        dyn.run(args.equilibration)
        for _ in range(args.frames):
            dyn.run(args.every)
            positions.append(atoms.positions.copy())
            energies.append(atoms.get_potential_energy())
            forces.append(atoms.get_forces())
            temperatures.append(temperature)
        timings[f"{temperature:g}K_s"] = round(time.perf_counter() - t0, 1)
        print(f"{temperature:g} K: {args.frames} frames in {timings[f'{temperature:g}K_s']} s")
    meta = {
        "description": "64-atom diamond Si, Langevin MD with CHGNet at 300/600/900/2000 K; "
                       "CHGNet energies and forces stand in for the paper's DFT",
        "reference": f"CHGNet {chgnet.__version__} (pretrained weights shipped in its wheel)",
        "md": {"timestep_fs": 2.0, "friction_per_fs": 0.01, "equilibration_steps":
               args.equilibration, "steps_between_frames": args.every},
        "cell_angstrom": np.array(base.cell).tolist(), "seed": args.seed,
        "frames_per_temperature": args.frames, "ase_version": ase.__version__,
        "torch_version": torch.__version__, "wall_time_s": {**timings, "total": round(
            time.perf_counter() - started, 1)},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "script": "scripts/make_silicon_data.py",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp.npz")
    np.savez_compressed(tmp, positions=np.asarray(positions, dtype=np.float32),
                        numbers=base.numbers.astype(np.int64),
                        cell=np.array(base.cell, dtype=np.float64),
                        energy_ev=np.asarray(energies, dtype=np.float64),
                        forces_ev_per_angstrom=np.asarray(forces, dtype=np.float32),
                        temperature_k=np.asarray(temperatures, dtype=np.float64),
                        meta=np.array(json.dumps(meta)))
    tmp.replace(args.output)
    print(f"wrote {len(energies)} frames to {args.output} in {meta['wall_time_s']['total']} s")


if __name__ == "__main__":
    main()
