"""MACE potentials (``mace-torch``) as torch energy models: a small MACE built here for the
project's training loop, or a user's own trained MACE model file.

* `build_mace`: a fresh ``ScaleShiftMACE`` (float64) from `MACESettings`;
* `MACEPotential`: any MACE energy model as a `PeriodicPotential` for fixed atoms — positions
  (B, N, 3) Å → energies (B,) eV, differentiable w.r.t. the positions to any order (so FGSM
  on a loss that contains forces works), usable wherever scirobust takes a torch energy model
  (`fit_potential`, `TorchEvaluator`, `TorchCalculator`, the distortion sweeps);
* `load_mace_model`, `save_mace_model`: files.

Neighbours (choice): the project's cached `PairList` (periodic images, skin, strain for the
stress), not MACE's matscipy list; MACE receives the pair vectors r_j − r_i + S·cell (Å) as
its edge ``shifts`` with all node positions at zero, so its own graph code turns them into
the same edge vectors it would compute, and gradients flow to the positions through them.
Pairs beyond ``r_max`` are dropped before MACE sees them (its radial cut-off zeroes them
anyway). The tests check the energies against MACE's own neighbour list.

Loading is safe by default: MACE's training script saves whole pickled modules, which can run
code when read, so `load_mace_model` refuses them unless ``trust_checkpoint=True``; files
written by `save_mace_model` (settings and weights only) load with ``weights_only=True``.

MACE is optional and lives in an environment of its own (see `MACE_INSTALL`): mace-torch
0.3.16 pins e3nn 0.4.4, which DeePMD-kit 3.2 cannot use. Importing this module does not
import MACE. Units: Å and eV throughout.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scirobust.atomistic.neighbors import PairList, build_pair_list
from scirobust.atomistic.potential import DTYPE, PeriodicPotential
from scirobust.errors import ConfigError, DataError

MACE_INSTALL = (
    'MACE is needed: pip install "scirobust[mace]" (mace-torch 0.3.16) in an environment of '
    "its own, since it pins e3nn 0.4.4 and DeePMD-kit 3.2 needs e3nn 0.6; in this repository "
    "`make install-mace` creates one in .venv-mace"
)
FORMAT = "scirobust-mace-1"
_NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def import_mace_modules() -> Any:
    """``mace.modules``, or a `ConfigError` with the install command."""
    previous = os.environ.get(_NO_WEIGHTS_ONLY)
    try:
        import mace.modules as modules
    except ImportError as exc:
        raise ConfigError(f"{MACE_INSTALL} (import failed: {exc}).") from exc
    finally:
        # mace sets this at import so that e3nn 0.4.4 can read its own constants under
        # torch >= 2.6; left set, every later torch.load in the process would unpickle
        # arbitrary objects by default
        if previous is None:
            os.environ.pop(_NO_WEIGHTS_ONLY, None)
        else:
            os.environ[_NO_WEIGHTS_ONLY] = previous
    return modules


@dataclasses.dataclass(frozen=True)
class MACESettings:
    """Hyperparameters of a fresh MACE (`build_mace`); defaults are a small model.

    ``r_max_angstrom``: radial cut-off (3 Å: paper 002's graph threshold; MACE's usual 5 Å
    would hold 7× the pairs in diamond Si). ``channels`` × irreps up to ``max_l`` are the
    hidden features (16x0e+16x1o). ``max_ell`` (edge harmonics) and ``correlation`` (body
    order − 1) are 2, not MACE's default 3: on 8 Si cells of 64 atoms that cut a training step
    on energies and forces from ~3.6 s to ~0.6 s here. ``num_bessel``,
    ``num_polynomial_cutoff``, ``radial_mlp`` and the interaction blocks are MACE's defaults.
    """

    r_max_angstrom: float = 3.0
    num_interactions: int = 2
    channels: int = 16
    max_l: int = 1
    max_ell: int = 2
    correlation: int = 2
    num_bessel: int = 8
    num_polynomial_cutoff: int = 5
    radial_mlp: tuple[int, ...] = (64, 64, 64)

    def __post_init__(self) -> None:
        if self.r_max_angstrom <= 0 or self.num_interactions < 1 or self.channels < 1:
            raise ConfigError("MACESettings: r_max_angstrom > 0, num_interactions >= 1 and "
                              f"channels >= 1 are needed; got {self}.")


def mace_scale_shift(energies_ev: np.ndarray, forces_ev_per_angstrom: np.ndarray,
                     n_atoms: int) -> tuple[float, float]:
    """MACE's default standardisation from training data: shift = mean energy per atom (eV;
    the role of E0 for one species) and scale = RMS of the force components (eV/Å,
    ``rms_forces_scaling``). The spread of energies per atom (what `fit_potential` uses for
    the GNN) is far smaller than a fresh MACE's output needs, and training stalls with it."""
    energies = np.asarray(energies_ev, dtype=np.float64)
    forces = np.asarray(forces_ev_per_angstrom, dtype=np.float64)
    if energies.size == 0 or forces.size == 0 or n_atoms < 1:
        raise DataError("mace_scale_shift needs energies, forces and n_atoms >= 1.")
    rms = float(np.sqrt(np.mean(forces ** 2)))
    return float(energies.mean() / n_atoms), rms if rms > 0 else 1.0


def build_mace(elements: list[int], settings: MACESettings | None = None, *,
               avg_num_neighbors: float = 4.0, seed: int = 0, energy_shift_ev: float = 0.0,
               energy_scale_ev: float = 1.0) -> nn.Module:
    """A fresh float64 ``ScaleShiftMACE`` for atomic numbers ``elements``.

    Atomic energies E0 are zero; each atom's energy is ``energy_scale_ev`` × (network output)
    + ``energy_shift_ev`` (eV; see `mace_scale_shift`). ``avg_num_neighbors`` normalises the
    messages (neighbours within ``r_max`` per atom). Weights come from ``seed``; the global
    torch random state is left untouched.
    """
    modules = import_mace_modules()
    from e3nn import o3

    s = settings or MACESettings()
    elements = sorted({int(z) for z in elements})
    irreps = "+".join(f"{s.channels}x{ell}{'e' if ell % 2 == 0 else 'o'}"
                      for ell in range(s.max_l + 1))
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_default_dtype(DTYPE)  # e3nn builds its constants in the default dtype
        try:
            model = modules.ScaleShiftMACE(
                atomic_inter_scale=float(energy_scale_ev),
                atomic_inter_shift=float(energy_shift_ev),
                r_max=float(s.r_max_angstrom), num_bessel=s.num_bessel,
                num_polynomial_cutoff=s.num_polynomial_cutoff, max_ell=s.max_ell,
                interaction_cls=modules.interaction_classes[
                    "RealAgnosticResidualInteractionBlock"],
                interaction_cls_first=modules.interaction_classes[
                    "RealAgnosticInteractionBlock"],
                num_interactions=s.num_interactions, num_elements=len(elements),
                hidden_irreps=o3.Irreps(irreps), MLP_irreps=o3.Irreps(f"{s.channels}x0e"),
                atomic_energies=np.zeros(len(elements)),
                avg_num_neighbors=float(avg_num_neighbors), atomic_numbers=elements,
                correlation=s.correlation, gate=modules.gate_dict["silu"],
                radial_MLP=list(s.radial_mlp))
        finally:
            torch.set_default_dtype(previous)
    model.scirobust_build = {"settings": dataclasses.asdict(s), "elements": elements,
                             "avg_num_neighbors": float(avg_num_neighbors)}
    return model.to(DTYPE)


def save_mace_model(model: nn.Module, path: str | Path) -> Path:
    """Write a model made by `build_mace` (settings and weights, no pickled code) to ``path``
    atomically; `load_mace_model` reads it back with ``weights_only=True``."""
    from scirobust.results import atomic_write_bytes

    inner = model.model if isinstance(model, MACEPotential) else model
    build = getattr(inner, "scirobust_build", None)
    if build is None:
        raise DataError("save_mace_model writes models made by build_mace; save other MACE "
                        "models with MACE's own tools (torch.save of the module).")
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **build, "state_dict": inner.state_dict()}, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_mace_model(path: str | Path, *, trust_checkpoint: bool = False) -> nn.Module:
    """The MACE model in ``path`` (evaluation mode, float64).

    A file from `save_mace_model` is read with ``weights_only=True``. A MACE model saved by
    MACE's training script (``torch.save`` of the whole module, e.g. ``MACE_model.model``)
    is a pickle that can run code when read: it loads only with ``trust_checkpoint=True``.
    """
    from scirobust.io import load_checkpoint

    modules = import_mace_modules()  # a pickled MACE module needs its classes importable
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"MACE model file not found: {path}.")
    try:
        obj = load_checkpoint(path, trust=trust_checkpoint)
    except ConfigError as exc:
        if trust_checkpoint:
            raise
        raise ConfigError(
            f"{path} is not a weights-only MACE file (it holds pickled Python objects, as the "
            "models written by MACE's training script do). Loading it runs code stored in the "
            "file: pass trust_checkpoint=True only if you trust it.") from exc
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        model = build_mace(obj["elements"], MACESettings(**{
            k: tuple(v) if isinstance(v, list) else v for k, v in obj["settings"].items()}),
            avg_num_neighbors=obj["avg_num_neighbors"])
        model.load_state_dict(obj["state_dict"])
    elif isinstance(obj, modules.MACE):
        model = obj.to(DTYPE)
    else:
        raise DataError(f"{path} holds a {type(obj).__name__}, not a MACE model (expected a "
                        "file from save_mace_model or a MACE module saved by MACE).")
    model.eval()
    return model


class MACEPotential(PeriodicPotential):
    """A MACE energy model for fixed atoms (species, cell, pbc): positions (N, 3) or
    (B, N, 3) Å → energy () or (B,) eV, differentiable to any order. ``model`` is converted
    to float64 in place; its ``r_max`` is the cut-off. ``rotations`` (3, 3), when set,
    rotates every pair vector (training-time augmentation; MACE needs none, being
    rotation-equivariant by construction).
    """

    def __init__(self, model: nn.Module, numbers: np.ndarray | list[int], cell: np.ndarray,
                 pbc: tuple[bool, bool, bool] | np.ndarray = (True, True, True), *,
                 skin: float = 1.0, reference_positions: np.ndarray | None = None) -> None:
        if not hasattr(model, "atomic_numbers") or not hasattr(model, "r_max"):
            raise DataError(f"{type(model).__name__} is not a MACE model (no atomic_numbers "
                            "or r_max).")
        super().__init__(numbers, cell, pbc, cutoff=float(model.r_max), skin=skin,
                         reference_positions=reference_positions)
        self.model = model.to(DTYPE)
        known = [int(z) for z in model.atomic_numbers.tolist()]
        missing = sorted(set(self.numbers.tolist()) - set(known))
        if missing:
            raise DataError(f"The MACE model knows the atomic numbers {known}; the structure "
                            f"also contains {missing}.")
        index = torch.as_tensor([known.index(int(z)) for z in self.numbers.tolist()])
        self.register_buffer("node_attrs", torch.eye(len(known), dtype=DTYPE)[index],
                             persistent=False)
        self.rotations: Tensor | None = None

    @classmethod
    def from_atoms(cls, atoms: Any, settings: MACESettings | None = None, *, seed: int = 0,
                   energy_shift_ev: float = 0.0, energy_scale_ev: float = 1.0,
                   **kwargs: Any) -> MACEPotential:
        """A fresh MACE (`build_mace`) for the species, cell and pbc of an ASE ``Atoms``;
        ``avg_num_neighbors`` is counted at its positions within r_max. Per-atom shift and
        scale (eV): see `mace_scale_shift`."""
        s = settings or MACESettings()
        pairs = build_pair_list(atoms.positions, np.array(atoms.cell), np.asarray(atoms.pbc),
                                s.r_max_angstrom, 0.0)
        lengths = np.linalg.norm(pairs.reference_vectors(), axis=-1)
        avg = max(float((lengths < s.r_max_angstrom).sum()) / len(atoms), 1.0)
        model = build_mace(atoms.numbers.tolist(), s, avg_num_neighbors=avg, seed=seed,
                           energy_shift_ev=energy_shift_ev, energy_scale_ev=energy_scale_ev)
        kwargs.setdefault("reference_positions", atoms.positions)
        return cls(model, atoms.numbers, np.array(atoms.cell), atoms.pbc, **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, atoms: Any, *, trust_checkpoint: bool = False,
                  **kwargs: Any) -> MACEPotential:
        """Load ``path`` (see `load_mace_model`) for the atoms, cell and pbc of ``atoms``."""
        kwargs.setdefault("reference_positions", atoms.positions)
        return cls(load_mace_model(path, trust_checkpoint=trust_checkpoint), atoms.numbers,
                   np.array(atoms.cell), atoms.pbc, **kwargs)

    def energy_from_pairs(self, vectors: Tensor, pairs: PairList) -> Tensor:
        """Energies (B,) eV from pair vectors (B, P, 3) Å."""
        if self.rotations is not None:
            vectors = vectors @ self.rotations.to(vectors).transpose(-1, -2)
        batch, n = vectors.shape[0], self.n_atoms
        flat = vectors.reshape(-1, 3)
        keep = flat.detach().norm(dim=-1) < self.cutoff
        offsets = (torch.arange(batch) * n)[:, None]
        sender = (pairs.i[None] + offsets).reshape(-1)[keep]
        receiver = (pairs.j[None] + offsets).reshape(-1)[keep]
        data = {
            # zero positions: MACE's edge vectors positions[j] - positions[i] + shifts are
            # then exactly the pair vectors, and differentiable through them
            "positions": torch.zeros(batch * n, 3, dtype=DTYPE, device=vectors.device),
            "edge_index": torch.stack([sender, receiver]).to(vectors.device),
            "shifts": flat[keep],
            "unit_shifts": torch.zeros(int(keep.sum()), 3, dtype=DTYPE, device=vectors.device),
            "cell": torch.zeros(batch, 3, 3, dtype=DTYPE, device=vectors.device),
            "batch": torch.arange(batch, device=vectors.device).repeat_interleave(n),
            "ptr": torch.arange(batch + 1, device=vectors.device) * n,
            "node_attrs": self.node_attrs.to(vectors).repeat(batch, 1),
        }
        return self.model(data, training=self.training, compute_force=False)["energy"]


__all__ = ["MACE_INSTALL", "MACEPotential", "MACESettings", "build_mace",
           "import_mace_modules", "load_mace_model", "mace_scale_shift", "save_mace_model"]
