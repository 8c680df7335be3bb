"""DeePMD-kit potentials (PyTorch backend) as torch energy models and ASE calculators.

A user's own DeePMD-kit model — a frozen ``model.pth`` from ``dp --pt freeze`` or a training
checkpoint ``model.ckpt-N.pt`` — becomes

* `DeepMDPotential`: positions (B, N, 3) Å → energies (B,) eV for a fixed list of atoms,
  differentiable w.r.t. the positions to any order (so FGSM on a loss that contains forces
  works), usable wherever scirobust takes a torch energy model;
* `DeepMDCalculator`: an ASE calculator (energy eV, forces eV/Å, stress eV/Å³ for periodic
  cells) for any atoms whose elements are in the model's type map.

Loading is safe by default: frozen models are TorchScript archives (no pickled Python
objects), and checkpoints are read with ``torch.load(..., weights_only=True)``. DeePMD-kit
itself is optional (``make install-deepmd``; see `DEEPMD_INSTALL`).

Units: DeePMD-kit works in Å and eV, as its training data; nothing is converted.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from torch import Tensor, nn

from scirobust.errors import ConfigError, DataError

DEEPMD_INSTALL = (
    "DeePMD-kit with its PyTorch backend is needed. Beside torch 2.13 it is built from source "
    "(about 2 minutes): `make install-deepmd`, or by hand: pip install scikit-build-core cmake "
    "ninja setuptools_scm hatch-fancy-pypi-readme dependency-groups e3nn && "
    "DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 DP_VARIANT=cpu pip install "
    "--no-build-isolation --no-binary deepmd-kit deepmd-kit==3.2.0"
)

_OTHER_BACKENDS = {
    ".pb": "TensorFlow",
    ".savedmodel": "TensorFlow 2",
    ".dp": "DP (backend-independent)",
    ".yaml": "DP (backend-independent)",
    ".hlo": "JAX",
}


def _import_deepmd_torch() -> None:
    """Import DeePMD-kit's PyTorch backend and its custom operators, or explain the install."""
    try:
        importlib.import_module("deepmd.pt.cxx_op")
    except ImportError as exc:
        raise ConfigError(f"{DEEPMD_INSTALL} (import failed: {exc}).") from exc


def load_deepmd_model(path: str | Path, *, trust_checkpoint: bool = False) -> nn.Module:
    """The DeePMD-kit model in ``path``: a frozen ``.pth`` (TorchScript) or a training
    checkpoint ``.pt`` (read with ``weights_only=True`` unless ``trust_checkpoint``).

    Other backends' files (``.pb``, ``.savedmodel``, ``.dp``, ``.yaml``, ``.hlo``) are
    refused with the ``dp convert-backend`` command that turns them into a ``.pth``.
    Returns the model in evaluation mode, float64 where DeePMD-kit's default precision is.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _OTHER_BACKENDS:
        raise ConfigError(
            f"{path} is a DeePMD-kit model for the {_OTHER_BACKENDS[suffix]} backend; scirobust "
            f"needs the PyTorch backend. Convert it with `dp convert-backend {path.name} "
            f"{path.stem}.pth` and pass the .pth file."
        )
    if suffix not in (".pth", ".pt"):
        raise ConfigError(
            f"{path}: expected a DeePMD-kit PyTorch model, a frozen '.pth' (dp --pt freeze) or a "
            f"checkpoint '.pt'; got a '{path.suffix}' file."
        )
    if not path.is_file():
        raise ConfigError(f"DeePMD-kit model file not found: {path}.")
    _import_deepmd_torch()
    if suffix == ".pth":
        try:
            with warnings.catch_warnings():
                # DeePMD-kit freezes to TorchScript; torch's deprecation of jit is not the
                # user's to act on
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise DataError(
                f"{path} could not be read as a frozen DeePMD-kit model (TorchScript): "
                f"{str(exc).strip().splitlines()[0]}. Freeze it with `dp --pt freeze`."
            ) from exc
    else:
        model = _model_from_checkpoint(path, trust_checkpoint)
    model.eval()
    return model


def _model_from_checkpoint(path: Path, trust_checkpoint: bool) -> nn.Module:
    from deepmd.pt.model.model import get_model

    try:
        state = torch.load(path, map_location="cpu", weights_only=not trust_checkpoint)
    except Exception as exc:
        raise DataError(
            f"{path} could not be read safely as a DeePMD-kit checkpoint ({exc}). If you "
            "trust the file, allow full unpickling with trust_checkpoint=True "
            "(--trust-checkpoint)."
        ) from exc
    weights = state.get("model", state) if isinstance(state, dict) else None
    extra = weights.get("_extra_state") if isinstance(weights, dict) else None
    if not isinstance(extra, dict) or "model_params" not in extra:
        raise DataError(
            f"{path} is not a DeePMD-kit training checkpoint (no model_params in its "
            "'_extra_state'); give the model.ckpt-N.pt written by `dp --pt train` or a frozen "
            ".pth."
        )
    params = extra["model_params"]
    if "model_dict" in params:
        raise ConfigError(f"{path} is a multi-task checkpoint; freeze one head with "
                          "`dp --pt freeze --head NAME` and pass the .pth.")
    model = get_model(params)
    prefix = "model.Default."
    own = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    if not own:
        raise DataError(f"{path}: no weights under '{prefix}' in the checkpoint.")
    model.load_state_dict(own)
    return model


def _type_indices(symbols: Sequence[str], type_map: Sequence[str]) -> Tensor:
    missing = sorted(set(symbols) - set(type_map))
    if missing:
        raise DataError(
            f"The model knows the elements {list(type_map)} (its type_map) but the structure "
            f"contains {missing}; use a model trained on these elements."
        )
    return torch.tensor([list(type_map).index(s) for s in symbols], dtype=torch.long)


def _type_map(model: nn.Module) -> list[str]:
    get = getattr(model, "get_type_map", None)
    if get is None:
        raise DataError("This model has no get_type_map(): not a DeePMD-kit energy model.")
    return list(get())


class DeepMDPotential(nn.Module):
    """A DeePMD-kit energy model for fixed atoms: positions (B, N, 3) or (N, 3) in Å →
    energies (B,) or () in eV, differentiable w.r.t. positions (create_graph is allowed).

    ``atoms`` fixes the species (in order), and for periodic ``atoms`` the cell (Å).
    """

    supports_batch = True

    def __init__(self, model: nn.Module, atoms: Atoms) -> None:
        super().__init__()
        self.model = model
        self.type_map = _type_map(model)
        self.register_buffer("atom_types", _type_indices(atoms.get_chemical_symbols(),
                                                         self.type_map))
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise DataError("DeePMD-kit supports fully periodic cells or none; this structure "
                            f"has pbc={pbc.tolist()}.")
        cell = torch.tensor(np.array(atoms.cell), dtype=torch.float64).reshape(9)
        self.register_buffer("box", cell if pbc.all() else None)

    @classmethod
    def from_file(cls, path: str | Path, atoms: Atoms, *,
                  trust_checkpoint: bool = False) -> DeepMDPotential:
        """Load ``path`` (see `load_deepmd_model`) for the atoms of ``atoms``."""
        return cls(load_deepmd_model(path, trust_checkpoint=trust_checkpoint), atoms)

    def forward(self, positions: Tensor) -> Tensor:
        """Energies in eV of positions in Å, (B, N, 3) → (B,) or (N, 3) → ()."""
        single = positions.dim() == 2
        pos = positions[None] if single else positions
        n = self.atom_types.shape[0]
        if pos.shape[1:] != (n, 3):
            raise DataError(f"positions must have shape (B, {n}, 3) Å for these atoms; got "
                            f"{tuple(positions.shape)}.")
        batch = pos.shape[0]
        atype = self.atom_types[None].expand(batch, n)
        box = None if self.box is None else self.box[None].expand(batch, 9).to(pos.dtype)
        out = self.model(pos.reshape(batch, 3 * n), atype, box)
        energy = out["energy"].reshape(batch)
        return energy[0] if single else energy


class DeepMDCalculator(Calculator):
    """ASE calculator around a DeePMD-kit model (a file path or a loaded model): energy (eV),
    forces (eV/Å) and, for periodic cells, stress (eV/Å³, ASE's sign convention)."""

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: str | Path | nn.Module, *, trust_checkpoint: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(model, nn.Module):
            model = load_deepmd_model(model, trust_checkpoint=trust_checkpoint)
        self.model = model
        self.type_map = _type_map(model)

    def calculate(self, atoms: Atoms | None = None, properties: Sequence[str] = ("energy",),
                  system_changes: Sequence[str] = tuple(all_changes)) -> None:
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        potential = DeepMDPotential(self.model, self.atoms)
        if "stress" in properties and potential.box is None:
            raise DataError("Stress needs a periodic cell (pbc all True).")
        n = len(self.atoms)
        coord = torch.tensor(self.atoms.positions, dtype=torch.float64).reshape(1, 3 * n)
        box = None if potential.box is None else potential.box[None]
        out = self.model(coord, potential.atom_types[None], box)
        energy = float(out["energy"].detach().reshape(()))
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = out["force"].detach().reshape(n, 3).numpy().copy()
        if potential.box is not None:
            virial = out["virial"].detach().reshape(3, 3).numpy()
            stress = -0.5 * (virial + virial.T) / self.atoms.get_volume()
            self.results["stress"] = stress.ravel()[[0, 4, 8, 5, 2, 1]]


__all__ = ["DEEPMD_INSTALL", "DeepMDCalculator", "DeepMDPotential", "load_deepmd_model"]
