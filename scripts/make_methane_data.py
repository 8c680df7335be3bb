"""Generate the shipped CH₄ data set: 200 thermal geometries labelled by PBE/def2-SVP (PySCF).

Protocol (fixed before any result was seen):

1. tetrahedral CH₄ with C–H 1.09 Å, relaxed with ASE BFGS on PySCF RKS PBE/def2-SVP to
   fmax 0.01 eV/Å;
2. Hessian by central finite differences of the forces (ASE ``Vibrations``, delta 0.01 Å; the
   displaced geometries are computed in parallel first, so ``Vibrations`` reads them from the
   cache); translations and rotations projected out (Eckart);
3. 200 geometries from the classical harmonic Boltzmann distribution at T = 1000 K in the 9
   normal modes (`thermal_samples`, seed 0): the distribution of
   ``ase.md.velocitydistribution.PhononHarmonics(quantum=False)``, drawn so that a free
   molecule's rotations are not excited and the draws do not depend on LAPACK's arbitrary
   basis of the degenerate (T2, E) modes. 1000 K puts the thermal C–H spread (~0.05 Å) at the
   size of the paper's 0.05 Å perturbations;
4. energies and forces of all geometries with `label_configurations` (2 processes).

Writes ``src/scirobust/cases/data/methane_pbe_def2svp.npz`` with ``positions`` (M, 5, 3) Å,
``numbers`` (5,), ``energy_ev`` (M,), ``forces_ev_per_angstrom`` (M, 5, 3) and ``meta`` (a JSON
string: method, versions, protocol, seed, wall times, date).

Usage: ``python scripts/make_methane_data.py [--n 200] [--processes 2] [--cache-dir DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import ase
import numpy as np
from ase import Atoms, units
from ase.optimize import BFGS
from ase.vibrations import Vibrations

from scirobust.atomistic.calculators import Configurations
from scirobust.atomistic.pyscf_reference import PySCFCalculator, label_configurations
from scirobust.results import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "src" / "scirobust" / "cases" / "data" / "methane_pbe_def2svp.npz"
XC, BASIS = "pbe", "def2-svp"
CH_BOND_ANGSTROM = 1.09
FMAX_EV_PER_ANGSTROM = 0.01
VIB_DELTA_ANGSTROM = 0.01
TEMPERATURE_K = 1000.0
SEED = 0


def tetrahedral_methane(bond_angstrom: float = CH_BOND_ANGSTROM) -> Atoms:
    """CH₄ with carbon at the origin and four H at C–H distance ``bond_angstrom`` (Å)."""
    corners = np.array([[1, 1, 1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1]], dtype=float)
    positions = np.vstack([np.zeros(3), corners * bond_angstrom / np.sqrt(3.0)])
    return Atoms("CH4", positions=positions, pbc=False)


def ch_distances(positions: np.ndarray) -> np.ndarray:
    """C–H distances (..., 4) in Å (carbon is atom 0)."""
    return np.linalg.norm(positions[..., 1:, :] - positions[..., :1, :], axis=-1)


def rigid_motion_basis(atoms: Atoms) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations (3N, 6) of a molecule."""
    masses = atoms.get_masses()
    rel = atoms.positions - atoms.get_center_of_mass()
    vectors = []
    for k in range(3):
        axis = np.zeros(3)
        axis[k] = 1.0
        vectors.append((np.broadcast_to(axis, rel.shape) * np.sqrt(masses)[:, None]).ravel())
        vectors.append((np.cross(axis, rel) * np.sqrt(masses)[:, None]).ravel())
    q, _ = np.linalg.qr(np.array(vectors).T)
    return q


def normal_modes(hessian: np.ndarray, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Vibrational ω² (3N-6,) in eV/(Å² amu) and mass-weighted modes (3N, 3N-6).

    The mass-weighted Hessian is Eckart-projected (translations and rotations removed) first.
    """
    sqrt_m = np.sqrt(np.repeat(atoms.get_masses(), 3))
    d = hessian / np.outer(sqrt_m, sqrt_m)
    rigid = rigid_motion_basis(atoms)
    projector = np.eye(len(d)) - rigid @ rigid.T
    d = projector @ (0.5 * (d + d.T)) @ projector
    w2, modes = np.linalg.eigh(d)
    order = np.argsort(np.abs(w2))  # the six smallest in magnitude are the rigid motions
    vib = np.sort(order[6:])
    if np.abs(w2[order[:6]]).max() > 1e-6 * np.abs(w2).max() or w2[vib].min() <= 0:
        raise RuntimeError(f"Hessian is not a minimum's: eigenvalues {np.sort(w2)}")
    return w2[vib], modes[:, vib]


def thermal_samples(
    hessian: np.ndarray, atoms: Atoms, temperature_k: float, n: int, seed: int
) -> np.ndarray:
    """n positions (n, N, 3) Å from the classical harmonic Boltzmann distribution.

    Same distribution as ``PhononHarmonics(quantum=False)`` (displacement
    M^-1/2 Σ_s X_s sqrt(kT)/ω_s ξ_s, ξ_s standard normal) but for a free molecule (PhononHarmonics
    skips only three zero modes, so rotations would get infinite amplitude) and independent of
    the arbitrary eigenvector basis of degenerate modes: ξ = Xᵀ z with z ~ N(0, I_3N), i.e.
    displacement = M^-1/2 · X diag(sqrt(kT)/ω) Xᵀ · z. The result is continuous in the Hessian,
    so reruns with round-off-level different forces give the same geometries (to ~1e-8 Å).
    """
    w2, modes = normal_modes(hessian, atoms)
    kt_ev = units.kB * temperature_k
    sqrt_cov = modes @ np.diag(np.sqrt(kt_ev / w2)) @ modes.T  # symmetric square root
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(atoms.get_masses(), 3))
    z = np.random.default_rng(seed).standard_normal((n, 3 * len(atoms)))
    displacements = (z @ sqrt_cov) * inv_sqrt_m  # sqrt_cov is symmetric
    return atoms.positions[None] + displacements.reshape(n, len(atoms), 3)


def wavenumbers_cm(w2: np.ndarray) -> np.ndarray:
    """Wavenumbers (cm⁻¹) of mass-weighted Hessian eigenvalues ω² in eV/(Å² amu)."""
    omega_per_s = np.sqrt(w2 * units._e / units._amu) * 1e10
    return omega_per_s / (2 * np.pi * units._c * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of geometries")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep PySCF results here (default: a temporary directory)")
    parser.add_argument("--compare-serial", type=int, default=0, metavar="K",
                        help="also time processes=1 on the first K geometries (no cache)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or Path(tmp) / "pyscf-cache"
        t_total = time.perf_counter()
        calc = PySCFCalculator(xc=XC, basis=BASIS, cache_dir=cache_dir)

        # 1. relax
        atoms = tetrahedral_methane()
        atoms.calc = calc
        t0 = time.perf_counter()
        optimizer = BFGS(atoms, logfile="-")
        optimizer.run(fmax=FMAX_EV_PER_ANGSTROM, steps=200)
        relax_s = time.perf_counter() - t0
        relaxed = atoms.copy()
        relaxed.calc = None
        e_min = atoms.get_potential_energy()
        print(f"relaxed in {optimizer.nsteps} steps, {relax_s:.1f} s: E = {e_min:.6f} eV, "
              f"C–H = {ch_distances(relaxed.positions).mean():.5f} Å")

        # 2. Hessian: displaced geometries in parallel into the cache, then ASE Vibrations
        t0 = time.perf_counter()
        displaced = []
        for a in range(len(relaxed)):
            for i in range(3):
                for sign in (-1.0, 1.0):
                    p = relaxed.positions.copy()
                    p[a, i] += sign * VIB_DELTA_ANGSTROM
                    displaced.append(p)
        label_configurations(Configurations(relaxed, np.array(displaced)), calc,
                             processes=args.processes)
        vib_atoms = relaxed.copy()
        vib_atoms.calc = calc
        vib = Vibrations(vib_atoms, name=str(Path(tmp) / "vib"), delta=VIB_DELTA_ANGSTROM,
                         nfree=2)
        vib.run()
        hessian = vib.get_vibrations().get_hessian_2d()
        hessian = 0.5 * (hessian + hessian.T)
        hessian_s = time.perf_counter() - t0
        wavenumbers = wavenumbers_cm(normal_modes(hessian, relaxed)[0])  # 9 vibrations
        print(f"Hessian in {hessian_s:.1f} s; vibrations (cm⁻¹): "
              + " ".join(f"{w:.0f}" for w in wavenumbers))

        # 3. thermal sampling in normal modes
        positions = thermal_samples(hessian, relaxed, TEMPERATURE_K, args.n, SEED)
        configs = Configurations(relaxed, positions)

        # optional: processes=1 (in-process, all cores as threads) on a fresh cache
        serial_s_per_geometry = None
        if args.compare_serial > 0:
            k = min(args.compare_serial, args.n)
            serial = label_configurations(
                configs.subset(slice(0, k)), {"xc": XC, "basis": BASIS}, processes=1
            )
            serial_s_per_geometry = serial.wall_time_s / k
            print(f"processes=1: {k} geometries in {serial.wall_time_s:.1f} s "
                  f"({serial_s_per_geometry:.2f} s/geometry)")

        # 4. label
        labels = label_configurations(configs, calc, processes=args.processes)
        energies, forces = labels
        per_geometry = labels.wall_time_s / max(labels.computed, 1)
        print(f"processes={labels.processes}: {args.n} geometries ({labels.computed} computed, "
              f"{labels.cache_hits} cached) in {labels.wall_time_s:.1f} s "
              f"({per_geometry:.2f} s/geometry)")

    ch = ch_distances(positions)
    displacement = positions - relaxed.positions
    rms_disp = float(np.sqrt((displacement**2).sum(-1).mean()))
    rel_e = energies - e_min
    force_rms = float(np.sqrt((forces**2).mean()))
    print(f"energy above minimum (eV): mean {rel_e.mean():.4f}, std {rel_e.std():.4f}, "
          f"min {rel_e.min():.4f}, max {rel_e.max():.4f}")
    print(f"C–H (Å): mean {ch.mean():.4f}, std {ch.std():.4f}, min {ch.min():.4f}, "
          f"max {ch.max():.4f}; per-atom displacement RMS {rms_disp:.4f} Å; "
          f"force component RMS {force_rms:.3f} eV/Å")

    import pyscf

    meta = {
        "description": "CH4 thermal geometries, PySCF energies and forces (scirobust)",
        "method": "RKS", "xc": XC, "basis": BASIS, "conv_tol_hartree": calc.settings.conv_tol,
        "grid_response": calc.settings.grid_response, "pyscf_version": pyscf.__version__,
        "ase_version": ase.__version__, "numpy_version": np.__version__,
        "units": {"positions": "angstrom", "energy_ev": "eV", "forces": "eV/angstrom"},
        "sampling": (
            "tetrahedral CH4 (C-H 1.09 A) relaxed with ASE BFGS to fmax 0.01 eV/A; Hessian by "
            "central finite differences (ASE Vibrations, delta 0.01 A), translations projected "
            "and rotations projected out (Eckart); classical harmonic Boltzmann distribution in "
            "the 9 normal modes (as ase PhononHarmonics with quantum=False), drawn basis-"
            "independently: displacement = M^-1/2 X diag(sqrt(kT)/w) X^T z, "
            "z = numpy.random.default_rng(seed).standard_normal((n, 15)); one independent draw "
            "per geometry"
        ),
        "temperature_K": TEMPERATURE_K,
        "temperature_reason": (
            "1000 K makes the thermal geometry spread (C-H std ~0.05 A) comparable with the "
            "0.05 A coordinate perturbations of the paper"
        ),
        "seed": SEED, "n_geometries": int(args.n),
        "relaxed_positions_angstrom": relaxed.positions.tolist(),
        "relaxed_energy_ev": float(e_min), "relax_steps": int(optimizer.nsteps),
        "vibrational_wavenumbers_cm-1": [round(float(w), 1) for w in wavenumbers],
        "ch_distance_angstrom": {"mean": float(ch.mean()), "std": float(ch.std()),
                                 "min": float(ch.min()), "max": float(ch.max())},
        "displacement_rms_angstrom": rms_disp,
        "energy_above_minimum_ev": {"mean": float(rel_e.mean()), "std": float(rel_e.std()),
                                    "min": float(rel_e.min()), "max": float(rel_e.max())},
        "processes": labels.processes,
        "wall_time_s": {"relax": round(relax_s, 1), "hessian": round(hessian_s, 1),
                        "labelling": round(labels.wall_time_s, 1),
                        "total": round(time.perf_counter() - t_total, 1)},
        "seconds_per_geometry": round(per_geometry, 3),
        "seconds_per_geometry_processes_1": (None if serial_s_per_geometry is None
                                             else round(serial_s_per_geometry, 3)),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared: wall times indicative)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "script": "scripts/make_methane_data.py",
    }
    buffer = io.BytesIO()
    np.savez(
        buffer,
        positions=positions.astype(np.float64),
        numbers=relaxed.numbers.astype(np.int64),
        energy_ev=energies.astype(np.float64),
        forces_ev_per_angstrom=forces.astype(np.float64),
        meta=np.array(json.dumps(meta, indent=1)),
    )
    atomic_write_bytes(args.output, buffer.getvalue())
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
