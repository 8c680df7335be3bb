"""Adversarial forces of atomistic energy models (paper 002), for any ASE calculator.

Optional extra: ``pip install 'scirobust[atomistic]'`` (needs ``ase``). ``import scirobust``
never imports this package.

Compare any two ASE calculators (or torch energy models) in three lines::

    from scirobust.atomistic import force_alignment
    result = force_alignment(list_of_atoms, approx=EMT(), accurate=my_dft_calculator)
    print(result.summary())

Building blocks (units in names: eV, Å, fs, meV/atom):

* `adversarial_direction`, `force_alignment` — A = 2(E_acc - E_app)(F_app - F_acc) and
  cos θ(A, F_app) per configuration;
* `distortion_sweep` — error after distortions of fixed L2 norm along A (``adversarial_force``)
  vs random controls of the same norm, on a `Sweep`;
* `newton_step`, `relaxation_error` — following the approximate forces;
* `coordinate_attack`, `audit_coordinates` — FGSM-style attacks via the core `Budget`/`attack`/
  `audit`;
* `BKS`, `BehlerParrinello`, `TorchCalculator` — torch energy models usable as ASE calculators;
* `audit_energy_forces` — the paired audit of energies and forces, every perturbed geometry
  re-evaluated by a reference (``task: atomistic`` audit files: `scirobust.atomistic.config`);
* `DeepMDPotential`, `DeepMDCalculator` — DeePMD-kit models (``make install-deepmd``);
  `write_deepmd_npy`, `read_deepmd_npy`, `train_deepmd` — its data format and training;
* `MACEPotential`, `load_mace_model`, `save_mace_model` — MACE (mace-torch) models in their
  own environment (``make install-mace``: MACE pins e3nn 0.4.4, DeePMD-kit needs 0.6);
* `PySCFCalculator`, `PySCFEvaluator`, `label_configurations` — a cached, parallel DFT
  reference for molecules (``pip install 'scirobust[dft]'``);
* `adversarial_samples`, `write_samples` — new labelled configurations stepped along A, the
  model's forces or at random (``scirobust augment``), for the user's training set.
"""

from scirobust.atomistic.attack import (
    PerAtomEnergy,
    audit_coordinates,
    coordinate_attack,
    energy_function,
)
from scirobust.atomistic.behler_parrinello import BehlerParrinello, SymmetryFunctions
from scirobust.atomistic.bks import BKS, BKS_ORIGINAL, BKS_REFIT, BKSParameters
from scirobust.atomistic.calculators import (
    Configurations,
    TorchCalculator,
    as_configurations,
    as_evaluator,
    calculator_energy_function,
)
from scirobust.atomistic.deepmd import DeepMDCalculator, DeepMDPotential, load_deepmd_model
from scirobust.atomistic.deepmd_training import read_deepmd_npy, train_deepmd, write_deepmd_npy
from scirobust.atomistic.direction import (
    Alignment,
    DirectionData,
    adversarial_direction,
    adversarial_direction_autograd,
    compute_directions,
    force_alignment,
)
from scirobust.atomistic.distortion import (
    ADVERSARIAL_FORCE,
    DistortionSweep,
    distort,
    distortion_sweep,
)
from scirobust.atomistic.dynamics import (
    NewtonStep,
    RelaxationTrace,
    newton_step,
    relaxation_error,
)
from scirobust.atomistic.energy_force import (
    ENERGY_FORCE_METRICS,
    EnergyForceModel,
    ReferenceEnergyForces,
    atom_mask,
    audit_energy_forces,
)
from scirobust.atomistic.gnn import DisplacementGNN
from scirobust.atomistic.mace import MACEPotential, load_mace_model, save_mace_model
from scirobust.atomistic.neighbors import PairList, build_pair_list, neighbor_search
from scirobust.atomistic.potential import PeriodicPotential, energy_and_forces, stress
from scirobust.atomistic.pyscf_reference import (
    PySCFCalculator,
    PySCFEvaluator,
    label_configurations,
)
from scirobust.atomistic.sampling import adversarial_samples, write_samples
from scirobust.atomistic.structures import (
    alpha_cristobalite,
    random_displacements,
    random_unit_directions,
    relax,
)
from scirobust.atomistic.training import TrainingLog, fit_potential, train_energy_model

__all__ = [
    "ADVERSARIAL_FORCE",
    "BKS",
    "BKS_ORIGINAL",
    "BKS_REFIT",
    "ENERGY_FORCE_METRICS",
    "Alignment",
    "BKSParameters",
    "BehlerParrinello",
    "Configurations",
    "DeepMDCalculator",
    "DeepMDPotential",
    "DirectionData",
    "DisplacementGNN",
    "DistortionSweep",
    "EnergyForceModel",
    "MACEPotential",
    "NewtonStep",
    "PairList",
    "PerAtomEnergy",
    "PeriodicPotential",
    "PySCFCalculator",
    "PySCFEvaluator",
    "ReferenceEnergyForces",
    "RelaxationTrace",
    "SymmetryFunctions",
    "TorchCalculator",
    "TrainingLog",
    "adversarial_direction",
    "adversarial_direction_autograd",
    "adversarial_samples",
    "alpha_cristobalite",
    "as_configurations",
    "as_evaluator",
    "atom_mask",
    "audit_coordinates",
    "audit_energy_forces",
    "build_pair_list",
    "calculator_energy_function",
    "compute_directions",
    "coordinate_attack",
    "distort",
    "distortion_sweep",
    "energy_and_forces",
    "energy_function",
    "fit_potential",
    "force_alignment",
    "label_configurations",
    "load_deepmd_model",
    "load_mace_model",
    "neighbor_search",
    "newton_step",
    "random_displacements",
    "random_unit_directions",
    "read_deepmd_npy",
    "relax",
    "relaxation_error",
    "save_mace_model",
    "stress",
    "train_deepmd",
    "train_energy_model",
    "write_deepmd_npy",
    "write_samples",
]
