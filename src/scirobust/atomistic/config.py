"""The YAML audit file of an interatomic potential (``task: atomistic``).

``scirobust audit FILE`` reads it when ``task: atomistic``; everything is validated before
any attack runs, errors name the key path, and results, cache and report are those of every
other audit. Units: Å for positions and epsilons, eV and eV/Å for labels. Schema::

    task: atomistic
    model:      {deepmd: model.pth}                                  a DeePMD-kit model
              | {calculator: "module:function", kwargs: {...}}       any ASE calculator
              | {factory: "module:function", kwargs: {...}, checkpoint: weights.pt}
                                                                     a torch energy model
    reference:  labels                                    the labels in the structures file
              | {calculator: "module:function", kwargs: {...}}       re-evaluated at every
              | {pyscf: {xc: pbe, basis: def2-svp, processes: 2, cache: dir}}  perturbed
                                                                     geometry
    attack_target: reference | labels     what the attacker's loss compares with: the
                reference at the perturbed positions (the true error; default with a
                reference calculator) or the fixed clean labels (paper 000 §2.2; the default
                without one). Clean labels: the file's, else the reference's.
    structures: {path: file (extxyz, POSCAR, ... or a DeePMD data folder), index: ":",
                 format: ase format name}
    budget:     {norm: linf|l2, elements: [H], atoms: [0, 3]}  mask: which atoms may move
    epsilons:   [0.01, 0.05]                                     Å (per coordinate for linf)
    metrics:    [energy_rmse, force_rmse, energy_mse, force_mse]
    alignment:  true      cos θ between A = 2(E_ref − E)(F − F_ref) and the model's forces
    pref_e: 1.0, pref_f: 1.0, energy_offset_ev: 0.0 | mean
    attacks, n_random, batch_size, seed, output, case, name      as in every audit file
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field, field_validator, model_validator

from scirobust.atomistic.energy_force import (
    ENERGY_FORCE_METRICS,
    atom_mask,
    audit_energy_forces,
)
from scirobust.budget import Budget
from scirobust.config import AttackSection, FileConfig, parse_config, read_yaml
from scirobust.errors import ConfigError, DataError, ScirobustError
from scirobust.io import import_factory, load_checkpoint, parse_factory
from scirobust.results import Results
from scirobust.sweep import AttackRun, Sweep


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


def _factory(value: str) -> str:
    parse_factory(value)  # raises a ConfigError with the expected form
    return value


class PotentialSection(_Section):
    """The potential to audit: exactly one of ``deepmd``, ``calculator`` or ``factory``."""

    deepmd: str | None = Field(None, description="a DeePMD-kit .pth (frozen) or .pt file")
    calculator: str | None = Field(None, description="'module:function' returning an ASE "
                                   "calculator")
    factory: str | None = Field(None, description="'module:function' returning a torch energy "
                                "model, positions (N, 3) or (B, N, 3) Å → energy eV")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="factory keyword arguments")
    checkpoint: str | None = Field(None, description="state_dict for the factory's model")

    @model_validator(mode="after")
    def _one_kind(self) -> PotentialSection:
        given = [k for k in ("deepmd", "calculator", "factory") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of deepmd, calculator or factory; got "
                             f"{given or 'none'}")
        for key in ("calculator", "factory"):
            if getattr(self, key):
                try:
                    _factory(getattr(self, key))
                except ConfigError:
                    raise ValueError(f"{key} must be 'module:function', got "
                                     f"{getattr(self, key)!r}") from None
        if self.checkpoint and not self.factory:
            raise ValueError("checkpoint goes with factory (a DeePMD file is given as deepmd)")
        return self

    @field_validator("kwargs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class PySCFSection(_Section):
    """A PySCF DFT reference (molecules only)."""

    xc: str = Field("pbe", description="exchange-correlation functional")
    basis: str = Field("def2-svp", description="Gaussian basis set")
    charge: int = Field(0, description="total charge")
    spin: int = Field(0, ge=0, description="2S, number of unpaired electrons")
    processes: int | None = Field(None, ge=1, description="parallel processes (default: cores)")
    cache: str | None = Field(None, description="cache folder (default OUTPUT/pyscf-cache)")


class ReferenceSection(_Section):
    """A reference evaluated at every perturbed geometry."""

    calculator: str | None = Field(None, description="'module:function' returning an ASE "
                                   "calculator")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="its keyword arguments")
    pyscf: PySCFSection | None = Field(None, description="a PySCF DFT reference")

    @model_validator(mode="after")
    def _one_kind(self) -> ReferenceSection:
        if (self.calculator is None) == (self.pyscf is None):
            raise ValueError("give exactly one of calculator or pyscf (or write "
                             "`reference: labels`)")
        if self.calculator is not None:
            try:
                _factory(self.calculator)
            except ConfigError:
                raise ValueError(f"calculator must be 'module:function', got "
                                 f"{self.calculator!r}") from None
        return self


class StructuresSection(_Section):
    """The structures: any file ASE reads, or a DeePMD-kit data folder."""

    path: str = Field(description="extxyz, POSCAR, ... file or a deepmd/npy folder")
    index: str = Field(":", description="which frames, in ASE's index syntax")
    format: str | None = Field(None, description="ASE format name when the suffix is unclear")


class AtomBudgetSection(_Section):
    """The perturbation of the coordinates (Å) and which atoms may move."""

    norm: Literal["linf", "l2"] = Field("linf", description="'linf' (each coordinate moves by "
                                        "at most eps) or 'l2' (total length over all moved "
                                        "coordinates)")
    elements: list[str] | None = Field(None, description="only atoms of these elements move")
    atoms: list[int] | None = Field(None, description="only atoms at these indices move")


class AtomisticConfig(FileConfig):
    """A ``task: atomistic`` audit file (see the module docstring)."""

    task: Literal["atomistic"] = Field(description="'atomistic'")
    model: PotentialSection = Field(description="the potential: deepmd, calculator or factory")
    reference: Literal["labels"] | ReferenceSection = Field(
        "labels", description="'labels' or a calculator / pyscf evaluated at perturbed "
        "geometries")
    attack_target: Literal["reference", "labels"] | None = Field(
        None, description="'reference' (at the perturbed positions) or 'labels' (fixed clean "
        "labels); default reference when one is given")
    structures: StructuresSection = Field(description="the structures file")
    budget: AtomBudgetSection = Field(default_factory=AtomBudgetSection,
                                      description="norm, elements, atoms")
    metrics: list[str] = Field(default_factory=lambda: ["energy_rmse", "force_rmse"],
                               min_length=1, description=f"any of {sorted(ENERGY_FORCE_METRICS)}")
    alignment: bool = Field(True, description="also report cos θ(A, F_model) (needs a "
                            "reference calculator)")
    pref_e: float = Field(1.0, ge=0, description="energy weight of the attack loss")
    pref_f: float = Field(1.0, ge=0, description="force weight of the attack loss")
    energy_offset_ev: float | Literal["mean"] = Field(
        0.0, description="added to the reference's energies (eV), or 'mean'")
    batch_size: int = Field(8, ge=1, description="structures per forward pass (>= 1)")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in ENERGY_FORCE_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; use any of "
                             f"{sorted(ENERGY_FORCE_METRICS)}")
        return value

    @field_validator("budget", mode="before")
    @classmethod
    def _empty_budget(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _rules(self) -> AtomisticConfig:
        if self.reference == "labels" and self.attack_target == "reference":
            raise ValueError("attack_target: 'reference' needs a reference calculator")
        if self.reference == "labels" and self.energy_offset_ev == "mean":
            raise ValueError("energy_offset_ev: 'mean' needs a reference calculator")
        keys = [AttackSection.model_validate(a).key if not isinstance(a, AttackSection)
                else a.key for a in self.attacks]
        doubled = sorted({k for k in keys if keys.count(k) > 1})
        if doubled:
            raise ValueError(f"attacks {doubled} appear twice; give one a distinct 'label'")
        return self


def load_atomistic_config(path: str | Path) -> AtomisticConfig:
    """Read and validate a ``task: atomistic`` YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}.")
    return validate_atomistic_config(read_yaml(path), base_dir=path.parent, source=path)


def validate_atomistic_config(data: Any, *, base_dir: str | Path = ".",
                              source: str | Path | None = None) -> AtomisticConfig:
    """Validate a parsed ``task: atomistic`` mapping (one `ConfigError` lists every problem)."""
    cfg = parse_config(data, AtomisticConfig, base_dir=base_dir, source=source)
    path = cfg.resolve(cfg.structures.path)
    if not path.exists():
        raise ConfigError(f"structures.path: {path} does not exist.")
    if cfg.model.deepmd and not cfg.resolve(cfg.model.deepmd).is_file():
        raise ConfigError(f"model.deepmd: {cfg.resolve(cfg.model.deepmd)} does not exist.")
    return cfg


def is_atomistic(data: Any) -> bool:
    """Whether a parsed audit file is a ``task: atomistic`` one."""
    return isinstance(data, Mapping) and data.get("task") == "atomistic"


# --------------------------------------------------------------------------- building
def read_structures(section: StructuresSection, cfg: AtomisticConfig) -> list[Atoms]:
    """The structures of ``section`` (ASE file or DeePMD-kit folder), labels attached as
    single-point results when the file has them."""
    from ase.calculators.singlepoint import SinglePointCalculator

    path = cfg.resolve(section.path)
    if path.is_dir():
        from scirobust.atomistic.deepmd_training import read_deepmd_npy

        try:
            atoms, energies, forces = read_deepmd_npy(path)
        except ScirobustError as exc:
            raise ConfigError(f"structures.path: {exc}") from exc
        if energies is not None and forces is not None:
            for a, e, f in zip(atoms, energies, forces, strict=True):
                a.calc = SinglePointCalculator(a, energy=float(e), forces=f)
        selected = atoms[_index(section.index)]
        return selected if isinstance(selected, list) else [selected]
    import ase.io

    try:
        frames = ase.io.read(path, index=section.index, format=section.format)
    except Exception as exc:
        raise ConfigError(f"structures.path: ASE could not read {path} ({type(exc).__name__}: "
                          f"{exc}). Give structures.format (an ASE format name) if the file "
                          "suffix does not say it.") from exc
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise ConfigError(f"structures: no structure selected by index {section.index!r}.")
    return frames


def _index(text: str) -> Any:
    from ase.io.formats import string2index

    return string2index(text)


def file_labels(structures: list[Atoms]) -> tuple[np.ndarray, np.ndarray] | None:
    """Energies (M,) eV and forces (M, N, 3) eV/Å stored with the structures, or None when
    none has them; a file where only some have both is refused."""
    energies, forces, missing = [], [], []
    for k, atoms in enumerate(structures):
        calc = atoms.calc
        results = getattr(calc, "results", {}) if calc is not None else {}
        if "energy" in results and "forces" in results:
            energies.append(float(results["energy"]))
            forces.append(np.asarray(results["forces"], dtype=np.float64))
        else:
            missing.append(k)
    if len(missing) == len(structures):
        return None
    if missing:
        raise ConfigError(f"structures: {len(missing)} structure(s) (first: index {missing[0]}) "
                          "have no energy and forces while others do; label all or none.")
    return np.array(energies), np.stack(forces)


def _call_factory(spec: str, kwargs: dict[str, Any], cfg: AtomisticConfig, key: str) -> Any:
    try:
        factory = import_factory(spec, cfg.base_dir)
        return factory(**kwargs)
    except ScirobustError as exc:
        raise ConfigError(f"{key}: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"{key}: calling {spec}(**{kwargs}) failed with "
                          f"{type(exc).__name__}: {exc}. Re-run with --debug for the "
                          "traceback.") from exc


def build_potential(cfg: AtomisticConfig, template: Atoms, *,
                    trust_checkpoint: bool = False) -> Any:
    """The model of ``cfg``: a torch energy model for ``template``'s atoms, or a calculator."""
    section = cfg.model
    if section.deepmd:
        from scirobust.atomistic.deepmd import DeepMDPotential

        try:
            return DeepMDPotential.from_file(cfg.resolve(section.deepmd), template,
                                             trust_checkpoint=trust_checkpoint)
        except ScirobustError as exc:
            raise ConfigError(f"model.deepmd: {exc}") from exc
    if section.calculator:
        return _call_factory(section.calculator, section.kwargs, cfg, "model.calculator")
    assert section.factory is not None
    model = _call_factory(section.factory, section.kwargs, cfg, "model.factory")
    if section.checkpoint:
        from scirobust.io import apply_checkpoint

        try:
            loaded = load_checkpoint(cfg.resolve(section.checkpoint), trust=trust_checkpoint)
            model = apply_checkpoint(model, loaded)
        except ScirobustError as exc:
            raise ConfigError(f"model.checkpoint: {exc}") from exc
    if hasattr(model, "eval"):
        model.eval()
    return model


def build_reference(cfg: AtomisticConfig, template: Atoms, output: Path | None) -> Any:
    """The reference of ``cfg``: a calculator, a parallel PySCF evaluator, or None for
    ``reference: labels``."""
    section = cfg.reference
    if section == "labels":
        return None
    assert isinstance(section, ReferenceSection)
    if section.calculator is not None:
        return _call_factory(section.calculator, section.kwargs, cfg, "reference.calculator")
    assert section.pyscf is not None
    from scirobust.atomistic.pyscf_reference import PySCFCalculator, PySCFEvaluator

    p = section.pyscf
    cache = (cfg.resolve(p.cache) if p.cache else
             (output / "pyscf-cache" if output is not None else None))
    try:
        calc = PySCFCalculator(xc=p.xc, basis=p.basis, charge=p.charge, spin=p.spin,
                               cache_dir=cache)
    except ScirobustError as exc:
        raise ConfigError(f"reference.pyscf: {exc}") from exc
    return PySCFEvaluator(calc, template, processes=p.processes)


@dataclass
class AtomisticPlan:
    """A checked atomistic audit: structures, potential, reference, labels and `Sweep`."""

    config: AtomisticConfig
    structures: list[Atoms]
    model: Any
    reference: Any
    labels: tuple[np.ndarray, np.ndarray] | None
    sweep: Sweep
    model_name: str
    notes: list[str] = field(default_factory=list)

    def run(self, *, cache_dir: str | Path | None = None, seed: int | None = None,
            device: str | None = None, progress: bool = False,
            distributed: bool = False) -> Results:
        """Run `audit_energy_forces` (and the force alignment when asked and possible)."""
        cfg = self.config
        if distributed:
            raise ConfigError("--distributed is not supported for task: atomistic; run the "
                              "audit in one process.")
        sweep = self.sweep.replace(cache_dir=cache_dir, device=device,
                                   seed=cfg.seed if seed is None else seed)
        offset = self._offset()
        results = audit_energy_forces(
            self.structures, self.model, sweep, reference=self.reference, labels=self.labels,
            pref_e=cfg.pref_e, pref_f=cfg.pref_f, energy_offset_ev=offset,
            attack_target=cfg.attack_target, case=cfg.label,
            model_name=self.model_name, progress=progress)
        if cfg.alignment and self.reference is not None:
            from scirobust.atomistic.direction import force_alignment
            from scirobust.atomistic.distortion import alignment_records

            # force_alignment removes its offset from E_ref − E_model: the opposite sign
            alignment = force_alignment(self.structures, approx=self.model,
                                        accurate=self.reference, energy_offset_ev=-offset)
            results.records.extend(alignment_records(cfg.label, self.model_name, alignment))
        results.metadata["notes"] = [*results.metadata.get("notes", []), *self.notes]
        return results

    def _offset(self) -> float:
        offset = self.config.energy_offset_ev
        if offset != "mean":
            return float(offset)
        from scirobust.atomistic.calculators import as_configurations, as_evaluator

        configs = as_configurations(self.structures)
        e_model = as_evaluator(self.model, configs.template).energies(configs.positions)
        e_ref = as_evaluator(self.reference, configs.template).energies(configs.positions)
        return float(np.mean(np.asarray(e_model) - np.asarray(e_ref)))


def build_atomistic_audit(cfg: AtomisticConfig, *, output: Path | None = None,
                          trust_checkpoint: bool = False) -> AtomisticPlan:
    """Read the structures, build potential and reference, and check labels and budget
    before any attack runs."""
    structures = read_structures(cfg.structures, cfg)
    from scirobust.atomistic.calculators import as_configurations

    try:
        configs = as_configurations(structures)
    except DataError as exc:
        raise ConfigError(f"structures: {exc}") from exc
    template = configs.template
    if template.pbc.any() and isinstance(cfg.reference, ReferenceSection) and cfg.reference.pyscf:
        raise ConfigError("reference.pyscf: PySCF computes molecules; these structures are "
                          "periodic. Use a periodic reference calculator.")
    model = build_potential(cfg, template, trust_checkpoint=trust_checkpoint)
    reference = build_reference(cfg, template, output)
    labels = file_labels(structures)
    notes: list[str] = []
    if labels is None and reference is None:
        raise ConfigError("reference: 'labels' but the structures file has no energies "
                          "and forces; label it, or give a reference calculator.")
    if reference is None:
        notes.append("No reference calculator: errors at perturbed geometries are measured "
                     "against the clean labels, so they include the true change of energy and "
                     "forces. Give reference: {calculator: ...} to re-label them.")
    try:
        mask = atom_mask(template, elements=cfg.budget.elements, indices=cfg.budget.atoms)
        sweep = Sweep(
            epsilons=tuple(cfg.epsilons), budget=Budget(norm=cfg.budget.norm, mask=mask),
            attacks=tuple(AttackRun(a.name, a.steps, a.step_size, a.random_start, a.label)
                          for a in cfg.attacks),
            metrics=tuple(cfg.metrics), n_random=cfg.n_random, seed=cfg.seed,
            batch_size=cfg.batch_size)
    except ScirobustError as exc:
        raise ConfigError(f"budget: {exc}") from exc
    name = cfg.name or (Path(cfg.model.deepmd).stem if cfg.model.deepmd else
                        parse_factory(cfg.model.calculator or cfg.model.factory or "")[1])
    return AtomisticPlan(cfg, structures, model, reference, labels, sweep, name, notes)


__all__ = [
    "AtomisticConfig",
    "AtomisticPlan",
    "build_atomistic_audit",
    "is_atomistic",
    "load_atomistic_config",
    "validate_atomistic_config",
]
