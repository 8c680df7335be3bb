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
* `BKS`, `BehlerParrinello`, `TorchCalculator` — torch energy models usable as ASE calculators.
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
from scirobust.atomistic.neighbors import PairList, build_pair_list, neighbor_search
from scirobust.atomistic.potential import PeriodicPotential, energy_and_forces, stress
from scirobust.atomistic.structures import (
    alpha_cristobalite,
    random_displacements,
    random_unit_directions,
    relax,
)
from scirobust.atomistic.training import TrainingLog, train_energy_model

__all__ = [
    "ADVERSARIAL_FORCE",
    "BKS",
    "BKS_ORIGINAL",
    "BKS_REFIT",
    "Alignment",
    "BKSParameters",
    "BehlerParrinello",
    "Configurations",
    "DirectionData",
    "DistortionSweep",
    "NewtonStep",
    "PairList",
    "PerAtomEnergy",
    "PeriodicPotential",
    "RelaxationTrace",
    "SymmetryFunctions",
    "TorchCalculator",
    "TrainingLog",
    "adversarial_direction",
    "adversarial_direction_autograd",
    "alpha_cristobalite",
    "as_configurations",
    "as_evaluator",
    "audit_coordinates",
    "build_pair_list",
    "calculator_energy_function",
    "compute_directions",
    "coordinate_attack",
    "distort",
    "distortion_sweep",
    "energy_and_forces",
    "energy_function",
    "force_alignment",
    "neighbor_search",
    "newton_step",
    "random_displacements",
    "random_unit_directions",
    "relax",
    "relaxation_error",
    "stress",
    "train_energy_model",
]
