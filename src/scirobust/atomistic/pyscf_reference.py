"""A DFT reference for molecules: PySCF Kohn–Sham as an ASE calculator, with an on-disk cache
and a parallel labeller.

* `PySCFSettings`: the level of theory (xc, basis, charge, spin 2S, SCF tolerance in Hartree)
  and where results are cached — frozen, validated, picklable.
* `PySCFCalculator`: energy (eV) and forces (eV/Å) of a non-periodic ``Atoms`` by restricted
  (spin 0) or unrestricted Kohn–Sham. Forces are ``-dE/dR`` including the response of the
  integration grid, so they are the exact negative gradient of the returned energy. A
  non-converged SCF raises `DataError`: never a silently wrong number.
* `label_configurations`: a batch of geometries over worker processes sharing the cache;
  geometries already in the cache cost nothing; results come back in input order.

Needs ``pip install pyscf`` (imported on first use, so importing this module does not).

Units: PySCF works in Hartree and Bohr; everything here is converted at the boundary with
``ase.units`` (energy × Hartree → eV, gradient × Hartree/Bohr → eV/Å).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Bohr, Hartree

from scirobust.atomistic.calculators import Configurations, as_configurations
from scirobust.errors import ConfigError, DataError
from scirobust.results import atomic_write_bytes

logger = logging.getLogger(__name__)

#: Bump when the meaning of a cached entry changes (invalidates old cache files).
CACHE_SCHEMA = 1
#: Positions are rounded to this many decimals of Å for the cache key (1e-8 Å).
_KEY_DECIMALS = 8

_INSTALL_HINT = "PySCF is needed for the DFT reference: pip install pyscf"


def _import_pyscf() -> Any:
    try:
        import pyscf
    except ImportError as exc:  # pragma: no cover - exercised only without pyscf
        raise ImportError(_INSTALL_HINT) from exc
    return pyscf


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class PySCFSettings:
    """Level of theory and cache of a `PySCFCalculator` (validated on construction).

    Parameters
    ----------
    xc:
        Exchange–correlation functional as PySCF/libxc spells it (``"pbe"``, ``"b3lyp"``).
    basis:
        Basis set name (``"def2-svp"``, ``"6-31g*"``, ``"sto-3g"``).
    charge:
        Total charge of the molecule in units of e.
    spin:
        Number of unpaired electrons 2S (PySCF convention): 0 gives restricted KS (RKS),
        anything else unrestricted KS (UKS).
    conv_tol:
        SCF energy convergence threshold in Hartree.
    max_cycle:
        Most SCF iterations before the calculation is refused as non-converged.
    grid_response:
        Include the response of the DFT integration grid in the gradient (default True): the
        forces are then the exact negative gradient of the energy (without it they differ by
        ~5e-4 eV/Å for CH₄/def2-SVP and do not sum to zero). Costs little.
    cache_dir:
        Directory of the on-disk cache (one ``.npz`` per geometry), or None for none.
    threads:
        PySCF (OpenMP) and BLAS threads while computing, or None to leave them as they are.
    """

    xc: str = "pbe"
    basis: str = "def2-svp"
    charge: int = 0
    spin: int = 0
    conv_tol: float = 1e-9
    max_cycle: int = 100
    grid_response: bool = True
    cache_dir: Path | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.xc, str) or not self.xc.strip():
            raise ConfigError(f"xc must be a functional name such as 'pbe'; got {self.xc!r}.")
        if not isinstance(self.basis, str) or not self.basis.strip():
            raise ConfigError(
                f"basis must be a basis-set name such as 'def2-svp'; got {self.basis!r}."
            )
        for name in ("charge", "spin", "max_cycle"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(f"{name} must be an integer; got {value!r}.")
            object.__setattr__(self, name, int(value))
        if self.spin < 0:
            raise ConfigError(f"spin is 2S, the number of unpaired electrons (>= 0); got "
                              f"{self.spin}.")
        if self.max_cycle < 1:
            raise ConfigError(f"max_cycle must be at least 1; got {self.max_cycle}.")
        tol = float(self.conv_tol)
        if not np.isfinite(tol) or tol <= 0 or tol > 1e-3:
            raise ConfigError(
                f"conv_tol is the SCF energy threshold in Hartree, in (0, 1e-3]; got "
                f"{self.conv_tol!r} (1e-9 is a good default)."
            )
        object.__setattr__(self, "conv_tol", tol)
        if self.threads is not None:
            if isinstance(self.threads, bool) or not isinstance(self.threads, int | np.integer) \
                    or self.threads < 1:
                raise ConfigError(f"threads must be a positive integer or None; got "
                                  f"{self.threads!r}.")
            object.__setattr__(self, "threads", int(self.threads))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "grid_response", bool(self.grid_response))

    @property
    def method(self) -> str:
        """``"RKS"`` for spin 0, else ``"UKS"``."""
        return "RKS" if self.spin == 0 else "UKS"

    def cache_key(self, numbers: np.ndarray, positions_angstrom: np.ndarray) -> str:
        """SHA-256 (hex) of the species, positions rounded to 1e-8 Å and the level of theory.

        Geometries closer than ~5e-9 Å share a key (and a cached result).
        """
        numbers = np.ascontiguousarray(numbers, dtype=np.int64)
        rounded = np.rint(np.asarray(positions_angstrom, dtype=np.float64) * 10**_KEY_DECIMALS)
        grid = np.ascontiguousarray(rounded.astype(np.int64))  # integers: no -0.0 ambiguity
        header = json.dumps(
            {
                "schema": CACHE_SCHEMA,
                "xc": self.xc.strip().lower(),
                "basis": self.basis.strip().lower(),
                "charge": self.charge,
                "spin": self.spin,
                "conv_tol": repr(self.conv_tol),
                "grid_response": self.grid_response,
                "decimals": _KEY_DECIMALS,
            },
            sort_keys=True,
        )
        h = hashlib.sha256(header.encode())
        h.update(numbers.tobytes())
        h.update(grid.tobytes())
        return h.hexdigest()


def _as_settings(
    calculator: PySCFCalculator | PySCFSettings | Mapping[str, Any] | None,
) -> PySCFSettings:
    if calculator is None:
        return PySCFSettings()
    if isinstance(calculator, PySCFCalculator):
        return calculator.settings
    if isinstance(calculator, PySCFSettings):
        return calculator
    if isinstance(calculator, Mapping):
        try:
            return PySCFSettings(**calculator)
        except TypeError as exc:
            raise ConfigError(
                f"Unknown PySCF setting in {sorted(calculator)}: {exc}. Valid keys: "
                f"{sorted(PySCFSettings.__dataclass_fields__)}."
            ) from exc
    raise ConfigError(
        f"Give a PySCFCalculator, PySCFSettings or a dict of its keyword arguments; got "
        f"{type(calculator).__name__}."
    )


# --------------------------------------------------------------------------- cache
def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npz"


def _read_cache(path: Path, key: str, n_atoms: int,
                stacklevel: int = 3) -> tuple[float, np.ndarray] | None:
    """A cached (energy eV, forces (N, 3) eV/Å), or None when absent; a corrupt entry warns
    with ``stacklevel`` as in `warnings.warn` (3: the caller's caller)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            stored_key = str(data["key"])
            energy = float(data["energy_ev"])
            forces = np.array(data["forces_ev_per_angstrom"], dtype=np.float64)
        if stored_key != key:
            raise ValueError("key mismatch")
        if forces.shape != (n_atoms, 3) or not np.isfinite(energy) or \
                not np.isfinite(forces).all():
            raise ValueError("wrong shape or non-finite values")
    except Exception as exc:  # any unreadable entry is recomputed, never trusted
        warnings.warn(
            f"PySCF cache file {path} is unreadable or inconsistent ({exc}); recomputing it.",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
        return None
    return energy, forces


def _write_cache(
    path: Path,
    key: str,
    numbers: np.ndarray,
    positions: np.ndarray,
    energy_ev: float,
    forces: np.ndarray,
    settings: PySCFSettings,
    pyscf_version: str,
) -> None:
    buffer = io.BytesIO()
    meta = {k: v for k, v in asdict(settings).items() if k not in ("cache_dir", "threads")}
    meta["pyscf_version"] = pyscf_version
    np.savez(
        buffer,
        key=np.array(key),
        numbers=np.asarray(numbers, dtype=np.int64),
        positions_angstrom=np.asarray(positions, dtype=np.float64),
        energy_ev=np.array(energy_ev, dtype=np.float64),
        forces_ev_per_angstrom=np.asarray(forces, dtype=np.float64),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )
    atomic_write_bytes(path, buffer.getvalue())


# --------------------------------------------------------------------------- calculator
class PySCFCalculator(Calculator):
    """ASE calculator: PySCF Kohn–Sham DFT for molecules (energy in eV, forces in eV/Å).

    Restricted KS for ``spin == 0``, unrestricted otherwise. Positions are taken in Å; the
    molecule has the ``Atoms``' species, the calculator's ``charge`` and ``spin`` (2S).
    Periodic ``Atoms`` are refused. With ``cache_dir`` every result is stored as one small
    ``.npz`` per geometry (written atomically), so the same geometry is never computed twice —
    also not by other instances or processes sharing the directory; ``cache_hits`` and
    ``cache_misses`` (= SCF runs) count lookups on this instance. An in-memory cache does the
    same within one instance when ``cache_dir`` is None.

    Example::

        atoms.calc = PySCFCalculator(xc="pbe", basis="def2-svp", cache_dir="pyscf-cache")
        energy_ev, forces = atoms.get_potential_energy(), atoms.get_forces()
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(
        self,
        *,
        xc: str = "pbe",
        basis: str = "def2-svp",
        charge: int = 0,
        spin: int = 0,
        conv_tol: float = 1e-9,
        max_cycle: int = 100,
        grid_response: bool = True,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        settings: PySCFSettings | None = None,
        **kwargs: Any,
    ) -> None:
        """Keyword arguments as in `PySCFSettings` (conv_tol in Hartree); or pass ``settings``
        instead. Remaining keyword arguments go to ``ase.calculators.calculator.Calculator``."""
        super().__init__(**kwargs)
        if settings is None:
            settings = PySCFSettings(
                xc=xc, basis=basis, charge=charge, spin=spin, conv_tol=conv_tol,
                max_cycle=max_cycle, grid_response=grid_response,
                cache_dir=None if cache_dir is None else Path(cache_dir), threads=threads,
            )
        self.settings = settings
        self.cache_hits = 0
        self.cache_misses = 0
        self.scf_wall_time_s = 0.0
        self._memory: dict[str, tuple[float, np.ndarray]] = {}
        pyscf = _import_pyscf()
        self.pyscf_version = str(pyscf.__version__)
        from pyscf.dft import libxc

        try:
            libxc.parse_xc(settings.xc)
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"PySCF does not know the functional xc={settings.xc!r} ({exc}); use a libxc "
                "name such as 'pbe', 'b3lyp', 'pbe0' or 'lda,vwn'."
            ) from exc

    def __repr__(self) -> str:
        s = self.settings
        return (f"PySCFCalculator(xc={s.xc!r}, basis={s.basis!r}, charge={s.charge}, "
                f"spin={s.spin}, cache_dir={s.cache_dir!r})")

    # ----------------------------------------------------------------- ASE protocol
    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        """Energy (eV) and forces (eV/Å) of ``atoms``, from the cache or by one SCF."""
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        energy, forces = self.energy_and_forces(self.atoms)
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = forces

    # ----------------------------------------------------------------- direct use
    def energy_and_forces(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces (N, 3) (eV/Å) of a non-periodic ``atoms`` (cached)."""
        if np.any(atoms.pbc):
            raise DataError(
                f"PySCFCalculator computes isolated molecules, but these Atoms are periodic "
                f"(pbc={atoms.pbc.tolist()}). Use a molecule with pbc=False "
                "(atoms.pbc = False, after making sure it is not cut by the cell), or a "
                "periodic code (VASP, Quantum ESPRESSO, GPAW, pyscf.pbc) for crystals."
            )
        return self._energy_and_forces(atoms.numbers, atoms.positions)

    def store(self, structures: Configurations | Sequence[Atoms], energies_ev: np.ndarray,
              forces_ev_per_angstrom: np.ndarray) -> None:
        """Put known results of these settings (e.g. a shipped labelled set computed with
        them) into the cache, so those geometries are never recomputed. Energies (M,) eV,
        forces (M, N, 3) eV/Å."""
        configs = as_configurations(structures)
        energies = np.asarray(energies_ev, dtype=np.float64).reshape(-1)
        forces = np.asarray(forces_ev_per_angstrom, dtype=np.float64)
        if energies.shape != (len(configs),) or forces.shape != configs.positions.shape:
            raise DataError(f"store: {len(configs)} structures of {configs.n_atoms} atoms need "
                            f"energies ({len(configs)},) and forces {configs.positions.shape}; "
                            f"got {energies.shape} and {forces.shape}.")
        numbers = np.asarray(configs.template.numbers, dtype=np.int64)
        for pos, energy, f in zip(configs.positions, energies, forces, strict=True):
            key = self.settings.cache_key(numbers, pos)
            self._memory[key] = (float(energy), f.copy())
            if self.settings.cache_dir is not None:
                _write_cache(_cache_path(self.settings.cache_dir, key), key, numbers, pos,
                             float(energy), f, self.settings, self.pyscf_version)

    def _energy_and_forces(
        self, numbers: np.ndarray, positions: np.ndarray
    ) -> tuple[float, np.ndarray]:
        numbers = np.asarray(numbers, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (len(numbers), 3) or not np.isfinite(positions).all():
            raise DataError(
                f"positions must be finite with shape ({len(numbers)}, 3) Å; got "
                f"{positions.shape}."
            )
        key = self.settings.cache_key(numbers, positions)
        cached = self._memory.get(key)
        path = None
        if cached is None and self.settings.cache_dir is not None:
            path = _cache_path(self.settings.cache_dir, key)
            cached = _read_cache(path, key, len(numbers))
        if cached is not None:
            self.cache_hits += 1
            energy, forces = cached
            self._memory[key] = (energy, forces)
            return energy, forces.copy()
        self.cache_misses += 1
        start = time.perf_counter()
        energy, forces = self._compute(numbers, positions, key)
        self.scf_wall_time_s += time.perf_counter() - start
        self._memory[key] = (energy, forces)
        if path is not None:
            _write_cache(path, key, numbers, positions, energy, forces, self.settings,
                         self.pyscf_version)
        return energy, forces.copy()

    def _compute(
        self, numbers: np.ndarray, positions: np.ndarray, key: str
    ) -> tuple[float, np.ndarray]:
        """One SCF + gradient; energy eV, forces eV/Å. Refuses non-converged SCFs."""
        from pyscf import dft, gto, lib

        s = self.settings
        with ExitStack() as stack:
            if s.threads is not None:
                from threadpoolctl import threadpool_limits

                stack.enter_context(lib.with_omp_threads(s.threads))
                stack.enter_context(threadpool_limits(limits=s.threads))
            try:
                mol = gto.M(
                    atom=[(int(z), tuple(map(float, r))) for z, r in zip(numbers, positions,
                                                                          strict=True)],
                    basis=s.basis, charge=s.charge, spin=s.spin, unit="Angstrom", verbose=0,
                )
            except (RuntimeError, KeyError, ValueError, NotImplementedError) as exc:
                raise DataError(
                    f"PySCF could not build the molecule (basis={s.basis!r}, charge="
                    f"{s.charge}, spin={s.spin}): {exc}. Check the basis name, and that "
                    "charge and spin (2S) fit the number of electrons (even electrons need "
                    "an even spin)."
                ) from exc
            mf = dft.RKS(mol) if s.spin == 0 else dft.UKS(mol)
            mf.xc = s.xc
            mf.conv_tol = s.conv_tol
            mf.max_cycle = s.max_cycle
            energy_ha = float(mf.kernel())
            if not mf.converged or not np.isfinite(energy_ha):
                distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
                closest = float(distances[np.triu_indices(len(numbers), 1)].min()) \
                    if len(numbers) > 1 else float("nan")
                raise DataError(
                    f"PySCF {s.method}/{s.xc}/{s.basis} SCF did not converge in "
                    f"{s.max_cycle} cycles for geometry {key[:16]} (last energy "
                    f"{energy_ha:.8f} Ha, closest atom pair {closest:.3f} Å); no result is "
                    "returned. Try a better initial guess (e.g. converge a nearby geometry "
                    "or a smaller basis first), a looser conv_tol, a larger max_cycle, or "
                    "check charge/spin and that the geometry is physical."
                )
            grad = mf.nuc_grad_method()
            if hasattr(grad, "grid_response"):
                grad.grid_response = s.grid_response
            gradient = np.asarray(grad.kernel(), dtype=np.float64)  # Hartree/Bohr
        energy_ev = energy_ha * Hartree
        forces = -gradient * (Hartree / Bohr)
        if not np.isfinite(forces).all():
            raise DataError(f"PySCF returned non-finite forces for geometry {key[:16]}.")
        return energy_ev, forces


# --------------------------------------------------------------------------- labelling
@dataclass
class Labels:
    """Energies and forces of a batch, in input order, with how they were obtained.

    Unpacks as ``energies_ev, forces_ev_per_angstrom = label_configurations(...)``.
    """

    energies_ev: np.ndarray
    forces_ev_per_angstrom: np.ndarray
    wall_time_s: float
    cache_hits: int
    computed: int
    processes: int
    settings: PySCFSettings = field(repr=False)

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.energies_ev
        yield self.forces_ev_per_angstrom

    def __repr__(self) -> str:
        m = len(self.energies_ev)
        return (f"Labels({m} geometries: {self.cache_hits} from cache, {self.computed} computed "
                f"in {self.wall_time_s:.1f} s with {self.processes} process(es))")

    @property
    def seconds_per_computed_geometry(self) -> float:
        """Wall time (s) per geometry that needed an SCF (NaN if none did)."""
        return self.wall_time_s / self.computed if self.computed else float("nan")


# worker-process state (spawned processes: one calculator each, threads pinned)
_WORKER_CALC: PySCFCalculator | None = None


def _worker_init(settings: PySCFSettings, threads: int) -> None:
    global _WORKER_CALC
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    _import_pyscf()
    from pyscf import lib
    from threadpoolctl import threadpool_limits

    lib.num_threads(threads)
    threadpool_limits(limits=threads)
    _WORKER_CALC = PySCFCalculator(settings=replace(settings, threads=None))


def _worker_label(numbers: np.ndarray, positions: np.ndarray) -> tuple[float, np.ndarray]:
    assert _WORKER_CALC is not None
    return _WORKER_CALC._energy_and_forces(numbers, positions)


class _Batch:
    """The energies (M,) eV and forces (M, N, 3) eV/Å of a batch being filled in, with the
    count of geometries that cost no SCF and the caller's progress callback."""

    def __init__(self, configs: Configurations,
                 progress: Callable[[int, int], None] | None) -> None:
        self.numbers = np.asarray(configs.template.numbers, dtype=np.int64)
        self.positions = configs.positions
        self.m, self.n_atoms = len(configs), configs.n_atoms
        self.energies = np.full(self.m, np.nan)
        self.forces = np.full((self.m, self.n_atoms, 3), np.nan)
        self.hits = 0
        self._done = 0
        self._progress = progress

    def _tick(self) -> None:
        self._done += 1
        if self._progress is not None:
            self._progress(self._done, self.m)

    def add_cached(self, k: int, energy: float, forces: np.ndarray) -> None:
        """Put a cached result (eV, eV/Å) at index ``k``."""
        self.energies[k], self.forces[k] = energy, forces
        self.hits += 1
        self._tick()

    def add_computed(self, indices: list[int], energy: float, forces: np.ndarray) -> None:
        """Put one computed result (eV, eV/Å) at every index of its geometry."""
        self.hits += len(indices) - 1  # repeats within the batch cost nothing either
        for k in indices:
            self.energies[k], self.forces[k] = energy, forces
            self._tick()

    def failure(self, indices: list[int], exc: BaseException) -> DataError:
        """The `DataError` naming the (first) batch index of a geometry that failed."""
        return DataError(f"configuration {indices[0]} of {self.m}: {exc}")


def _molecules(structures: Configurations | Atoms | Sequence[Atoms]) -> Configurations:
    """``structures`` as `Configurations`; `DataError` if they are periodic."""
    configs = as_configurations(structures)
    if np.any(configs.template.pbc):
        raise DataError(
            f"label_configurations computes isolated molecules, but the structures are "
            f"periodic (pbc={configs.template.pbc.tolist()}). Use molecules with pbc=False, "
            "or a periodic code for crystals."
        )
    return configs


def _fill_from_cache(batch: _Batch, settings: PySCFSettings,
                     calc: PySCFCalculator | None) -> dict[str, list[int]]:
    """Fill in every geometry found in ``calc``'s memory or the disk cache; return the misses
    as cache key -> batch indices (a geometry repeated in the batch is computed once)."""
    todo: dict[str, list[int]] = {}
    for k in range(batch.m):
        key = settings.cache_key(batch.numbers, batch.positions[k])
        cached = None
        if calc is not None:
            cached = calc._memory.get(key)
        if cached is None and settings.cache_dir is not None:
            # the warning of a corrupt entry points at the caller of label_configurations
            cached = _read_cache(_cache_path(settings.cache_dir, key), key, batch.n_atoms,
                                 stacklevel=4)
        if cached is not None:
            if calc is not None:
                calc.cache_hits += 1
            batch.add_cached(k, *cached)
        else:
            todo.setdefault(key, []).append(k)
    return todo


def _process_plan(processes: int | None, n_todo: int) -> tuple[int, int]:
    """(worker processes, PySCF/BLAS threads per process) for ``n_todo`` geometries, so that
    processes × threads <= available cores."""
    cores = _available_cores()
    n_proc = min(cores, max(n_todo, 1)) if processes is None else int(processes)
    n_proc = max(1, min(n_proc, max(n_todo, 1)))
    return n_proc, max(1, cores // n_proc)


def _compute_here(batch: _Batch, todo: dict[str, list[int]], worker: PySCFCalculator) -> None:
    """Fill in the geometries of ``todo`` by SCFs in this process, with ``worker``."""
    for indices in todo.values():
        try:
            energy, f = worker._energy_and_forces(batch.numbers, batch.positions[indices[0]])
        except DataError as exc:
            raise batch.failure(indices, exc) from exc
        batch.add_computed(indices, energy, f)


def _compute_in_workers(batch: _Batch, todo: dict[str, list[int]], settings: PySCFSettings,
                        calc: PySCFCalculator | None, n_proc: int, threads: int) -> None:
    """Fill in the geometries of ``todo`` by SCFs in ``n_proc`` spawned processes of
    ``threads`` threads each, in order of completion; ``calc`` (if any) remembers them."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=n_proc, mp_context=context, initializer=_worker_init,
        initargs=(settings, threads),
    ) as pool:
        pending: dict[Future[tuple[float, np.ndarray]], tuple[str, list[int]]] = {
            pool.submit(_worker_label, batch.numbers, batch.positions[idx[0]]): (key, idx)
            for key, idx in todo.items()
        }
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    key, indices = pending.pop(future)
                    try:
                        energy, f = future.result()
                    except DataError as exc:
                        raise batch.failure(indices, exc) from exc
                    batch.add_computed(indices, energy, f)
                    if calc is not None:  # the caller's calculator remembers them too
                        calc._memory[key] = (energy, f)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if calc is not None:
        calc.cache_misses += len(todo)


def label_configurations(
    structures: Configurations | Atoms | Sequence[Atoms],
    calculator: PySCFCalculator | PySCFSettings | Mapping[str, Any] | None = None,
    *,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Labels:
    """DFT energies (M,) in eV and forces (M, N, 3) in eV/Å of M molecular geometries.

    Parameters
    ----------
    structures:
        `Configurations`, one ``Atoms`` or a list of ``Atoms`` with the same species (all
        non-periodic); positions in Å.
    calculator:
        A `PySCFCalculator` (its settings and cache are used), `PySCFSettings`, or a dict of
        `PySCFCalculator` keyword arguments; None means PBE/def2-SVP without cache.
    processes:
        Worker processes (spawned). 1 computes in this process with ``calculator`` itself;
        None uses one per available core, at most one per geometry to compute. Each worker
        gets ``max(1, cores // processes)`` PySCF/BLAS threads.
    progress:
        Called as ``progress(done, total)`` after each geometry (cached ones included).

    Returns
    -------
    `Labels`: unpacks to ``(energies_ev, forces_ev_per_angstrom)`` and also carries the wall
    time (s), the number of cache hits and of SCF calculations. Geometries found in the cache
    (or repeated within the batch) are not recomputed; new results are written to the cache,
    shared by all workers. A geometry whose SCF does not converge raises `DataError` naming
    its index (results already computed stay in the cache).
    """
    start = time.perf_counter()
    configs = _molecules(structures)
    settings = _as_settings(calculator)
    calc = calculator if isinstance(calculator, PySCFCalculator) else None
    if processes is not None and (isinstance(processes, bool) or int(processes) < 1):
        raise ConfigError(f"processes must be a positive integer or None; got {processes!r}.")

    batch = _Batch(configs, progress)
    todo = _fill_from_cache(batch, settings, calc)
    n_proc, threads = _process_plan(processes, len(todo))
    if todo and n_proc == 1:
        _compute_here(batch, todo, calc if calc is not None else PySCFCalculator(settings=settings))
    elif todo:
        _compute_in_workers(batch, todo, settings, calc, n_proc, threads)
    wall = time.perf_counter() - start
    logger.info(
        "PySCF %s/%s/%s: %d geometries (%d from cache, %d computed) in %.1f s with %d "
        "process(es)", settings.method, settings.xc, settings.basis, batch.m, batch.hits,
        len(todo), wall, n_proc,
    )
    return Labels(
        energies_ev=batch.energies,
        forces_ev_per_angstrom=batch.forces,
        wall_time_s=wall,
        cache_hits=batch.hits,
        computed=len(todo),
        processes=n_proc,
        settings=settings,
    )


class PySCFEvaluator:
    """A batch `Evaluator` (``energies_and_forces(positions (B, N, 3) Å)``) that labels with
    `label_configurations` in parallel over ``processes`` and shares ``calculator``'s cache,
    so scirobust's audits re-label perturbed geometries on every core. ``wall_time_s`` and
    ``computed`` add up its calls."""

    def __init__(self, calculator: PySCFCalculator, template: Atoms, *,
                 processes: int | None = None) -> None:
        if np.any(template.pbc):
            raise DataError("PySCFEvaluator computes isolated molecules; the template is "
                            "periodic.")
        self.calculator = calculator
        self.template = template.copy()
        self.template.calc = None
        self.processes = processes
        self.name = repr(calculator)
        self.wall_time_s = 0.0
        self.computed = 0
        self.cache_hits = 0
        self.processes_used = 0  # most worker processes any call used

    def energies_and_forces(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energies (B,) eV and forces (B, N, 3) eV/Å."""
        labels = label_configurations(Configurations(self.template, positions),
                                      self.calculator, processes=self.processes)
        self.wall_time_s += labels.wall_time_s
        self.computed += labels.computed
        self.cache_hits += labels.cache_hits
        self.processes_used = max(self.processes_used, labels.processes)
        if self.processes is None or self.processes > 1:
            # results of worker processes reach this calculator through the cache only
            numbers = np.asarray(self.template.numbers, dtype=np.int64)
            for pos, e, f in zip(positions, labels.energies_ev,
                                 labels.forces_ev_per_angstrom, strict=True):
                self.calculator._memory[self.calculator.settings.cache_key(numbers, pos)] = (
                    float(e), np.asarray(f).copy())
        return labels.energies_ev, labels.forces_ev_per_angstrom

    def energies(self, positions: np.ndarray) -> np.ndarray:
        """Energies (B,) eV."""
        return self.energies_and_forces(positions)[0]


__all__ = [
    "CACHE_SCHEMA",
    "Labels",
    "PySCFCalculator",
    "PySCFEvaluator",
    "PySCFSettings",
    "label_configurations",
]
