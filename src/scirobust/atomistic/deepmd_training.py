"""DeePMD-kit data folders and training through DeePMD-kit's own command line.

* `write_deepmd_npy` / `read_deepmd_npy`: the ``deepmd/npy`` system format (``type.raw``,
  ``type_map.raw``, ``set.000/{coord,energy,force,box}.npy``, ``nopbc`` for molecules), in
  Å, eV and eV/Å, so labelled structures go straight into a user's DeePMD-kit training and a
  DeePMD data folder can be audited.
* `train_deepmd`: ``dp --pt train`` then ``dp --pt freeze`` in a work folder, as a DeePMD-kit
  user does; a finished run with the same input is reused, not repeated.
* `read_learning_curve`: DeePMD-kit's ``lcurve.out`` as named columns.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from scirobust.errors import ConfigError, DataError
from scirobust.results import atomic_write_text

SE_E2_A_CH4: dict[str, Any] = {
    "type_map": ["H", "C"],
    "descriptor": {"type": "se_e2_a", "sel": [4, 1], "rcut_smth": 0.5, "rcut": 6.0,
                   "neuron": [10, 20, 40], "resnet_dt": False, "axis_neuron": 4},
    "fitting_net": {"neuron": [100, 100, 100], "resnet_dt": True},
}
"""DeePMD-kit's public CH₄ tutorial model: se_e2_a, rcut 6 Å, embedding [10, 20, 40],
axis_neuron 4, fitting [100, 100, 100]."""

TUTORIAL_LOSS: dict[str, Any] = {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1,
                                 "start_pref_f": 1000, "limit_pref_f": 1,
                                 "start_pref_v": 0, "limit_pref_v": 0}
TUTORIAL_LEARNING_RATE: dict[str, Any] = {"type": "exp", "decay_steps": 50,
                                          "start_lr": 0.001, "stop_lr": 3.51e-8}


def write_deepmd_npy(directory: str | Path, structures: Sequence[Atoms], energies_ev: np.ndarray,
                     forces_ev_per_angstrom: np.ndarray, type_map: Sequence[str]) -> Path:
    """Write labelled structures (same atoms in the same order) as one ``deepmd/npy`` system.

    Energies (M,) in eV, forces (M, N, 3) in eV/Å; molecules (pbc False) get a ``nopbc``
    marker and a placeholder box. Returns the folder.
    """
    directory = Path(directory)
    first = structures[0]
    symbols = first.get_chemical_symbols()
    if any(a.get_chemical_symbols() != symbols for a in structures):
        raise DataError("A DeePMD-kit system holds one set of atoms in one order; write "
                        "structures with different atoms as separate systems.")
    missing = sorted(set(symbols) - set(type_map))
    if missing:
        raise DataError(f"Elements {missing} are not in type_map {list(type_map)}.")
    m = len(structures)
    energies = np.asarray(energies_ev, dtype=np.float64).reshape(m)
    forces = np.asarray(forces_ev_per_angstrom, dtype=np.float64).reshape(m, -1)
    periodic = bool(np.all(first.pbc))
    sets = directory / "set.000"
    sets.mkdir(parents=True, exist_ok=True)
    np.save(sets / "coord.npy", np.stack([a.positions for a in structures]).reshape(m, -1))
    np.save(sets / "energy.npy", energies)
    np.save(sets / "force.npy", forces)
    box = (np.stack([np.array(a.cell).reshape(9) for a in structures]) if periodic
           else np.tile(np.eye(3).reshape(9) * 100.0, (m, 1)))
    np.save(sets / "box.npy", box)
    atomic_write_text(directory / "type.raw",
                      " ".join(str(list(type_map).index(s)) for s in symbols) + "\n")
    atomic_write_text(directory / "type_map.raw", "\n".join(type_map) + "\n")
    if periodic:
        (directory / "nopbc").unlink(missing_ok=True)
    else:
        atomic_write_text(directory / "nopbc", "")
    return directory


def read_deepmd_npy(directory: str | Path) -> tuple[list[Atoms], np.ndarray | None,
                                                     np.ndarray | None]:
    """Structures, energies (M,) eV and forces (M, N, 3) eV/Å of a ``deepmd/npy`` system
    (all ``set.*`` folders in order; labels None where the files are absent)."""
    directory = Path(directory)
    type_raw, map_raw = directory / "type.raw", directory / "type_map.raw"
    if not type_raw.is_file() or not map_raw.is_file():
        raise DataError(f"{directory} is not a DeePMD-kit system: type.raw and type_map.raw "
                        "are needed.")
    types = np.loadtxt(type_raw, dtype=int, ndmin=1)
    type_map = map_raw.read_text().split()
    if types.max() >= len(type_map):
        raise DataError(f"{type_raw} uses type {types.max()} but type_map.raw names only "
                        f"{len(type_map)} types.")
    symbols = [type_map[t] for t in types]
    sets = sorted(directory.glob("set.*"))
    if not sets:
        raise DataError(f"{directory} has no set.* folder.")
    periodic = not (directory / "nopbc").exists()
    atoms: list[Atoms] = []
    energies: list[np.ndarray] = []
    forces: list[np.ndarray] = []
    for folder in sets:
        coord = np.load(folder / "coord.npy", allow_pickle=False).reshape(-1, len(types), 3)
        box = (np.load(folder / "box.npy", allow_pickle=False).reshape(-1, 3, 3)
               if periodic else None)
        for k, pos in enumerate(coord):
            atoms.append(Atoms(symbols, positions=pos, cell=None if box is None else box[k],
                               pbc=periodic))
        for name, store in (("energy.npy", energies), ("force.npy", forces)):
            if (folder / name).exists():
                store.append(np.load(folder / name, allow_pickle=False))
    e = np.concatenate(energies).reshape(-1) if len(energies) == len(sets) else None
    f = (np.concatenate(forces).reshape(-1, len(types), 3) if len(forces) == len(sets)
         else None)
    return atoms, e, f


@dataclass
class DeepMDRun:
    """A finished DeePMD-kit training: the frozen model, the work folder, the learning curve
    (``lcurve.out`` columns) and the training wall time in s (0 when reused)."""

    frozen_model: Path
    workdir: Path
    learning_curve: dict[str, np.ndarray]
    wall_s: float
    reused: bool


def read_learning_curve(path: str | Path) -> dict[str, np.ndarray]:
    """DeePMD-kit's ``lcurve.out`` as {column name: values}: step, rmse_e_trn (eV/atom in
    DeePMD-kit 3), rmse_f_trn (eV/Å), their ``_val`` twins, lr."""
    path = Path(path)
    lines = path.read_text().splitlines()
    header = next((ln for ln in lines if ln.startswith("#") and "step" in ln), None)
    if header is None:
        raise DataError(f"{path}: no header line with 'step'; not a DeePMD-kit lcurve.out.")
    names = header.lstrip("#").split()
    data = np.loadtxt(path, comments="#", ndmin=2)
    return {name: data[:, i] for i, name in enumerate(names)}


def _dp_command() -> list[str]:
    dp = Path(sys.executable).with_name("dp")
    if dp.exists():
        return [str(dp)]
    found = shutil.which("dp")
    if found is None:
        from scirobust.atomistic.deepmd import DEEPMD_INSTALL

        raise ConfigError(f"DeePMD-kit's `dp` command was not found. {DEEPMD_INSTALL}")
    return [found]


def train_deepmd(workdir: str | Path, train_system: str | Path, valid_system: str | Path, *,
                 model: dict[str, Any] | None = None, steps: int = 10_000, seed: int = 1,
                 threads: int = 1, disp_freq: int | None = None) -> DeepMDRun:
    """Train and freeze a DeePMD-kit model with ``dp --pt train`` and ``dp --pt freeze``.

    ``model`` defaults to `SE_E2_A_CH4`; the loss and learning-rate schedule are the
    tutorial's (`TUTORIAL_LOSS`, `TUTORIAL_LEARNING_RATE`, the rate decays to stop_lr over
    ``steps``). The run is reused when ``workdir`` already holds a frozen model made from the
    same input. Threads are pinned to ``threads`` (DeePMD-kit's small models gain little).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    params = json.loads(json.dumps(model or SE_E2_A_CH4))
    params["descriptor"].setdefault("seed", seed)
    params["fitting_net"].setdefault("seed", seed)
    config = {
        "model": params,
        "learning_rate": dict(TUTORIAL_LEARNING_RATE),
        "loss": dict(TUTORIAL_LOSS),
        "training": {
            "training_data": {"systems": [str(Path(train_system).resolve())],
                              "batch_size": "auto"},
            "validation_data": {"systems": [str(Path(valid_system).resolve())],
                                "batch_size": "auto", "numb_btch": 1},
            "numb_steps": int(steps), "seed": int(seed), "disp_file": "lcurve.out",
            "disp_freq": int(disp_freq or max(1, steps // 50)), "save_freq": int(steps),
        },
    }
    text = json.dumps(config, indent=1, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    frozen = workdir / "frozen_model.pth"
    stamp = workdir / "trained.sha256"
    if frozen.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return DeepMDRun(frozen, workdir, read_learning_curve(workdir / "lcurve.out"), 0.0,
                         True)
    atomic_write_text(workdir / "input.json", text)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "DP_INTRA_OP_PARALLELISM_THREADS": str(threads),
           "DP_INTER_OP_PARALLELISM_THREADS": "1"}
    started = time.perf_counter()
    dp = _dp_command()
    for args, log in ((["--pt", "train", "input.json", "--skip-neighbor-stat"], "train.log"),
                      (["--pt", "freeze", "-o", frozen.name], "freeze.log")):
        with open(workdir / log, "w") as out:
            done = subprocess.run([*dp, *args], cwd=workdir, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            tail = (workdir / log).read_text().strip().splitlines()[-3:]
            raise DataError(f"`dp {' '.join(args)}` failed (exit {done.returncode}); see "
                            f"{workdir / log}. Last lines: {' | '.join(tail)}")
    wall = time.perf_counter() - started
    atomic_write_text(stamp, digest + "\n")
    return DeepMDRun(frozen, workdir, read_learning_curve(workdir / "lcurve.out"), wall, False)


__all__ = [
    "SE_E2_A_CH4",
    "DeepMDRun",
    "read_deepmd_npy",
    "read_learning_curve",
    "train_deepmd",
    "write_deepmd_npy",
]
