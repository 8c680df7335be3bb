"""scirobust: how far can a tiny targeted change of the inputs throw a scientific model off,
compared with random noise of exactly the same size?

Core API::

    from scirobust import Budget, attack, audit, objectives, Results
"""

from scirobust import objectives
from scirobust.attacks import ATTACKS, attack
from scirobust.audit import AttackRun, audit
from scirobust.budget import Budget
from scirobust.errors import (
    AttackError,
    BudgetError,
    ConfigError,
    DataError,
    ObjectiveError,
    ScirobustError,
)
from scirobust.results import KINDS, Perturbed, Record, Results
from scirobust.sweep import Sweep

__version__ = "0.1.0"

__all__ = [
    "ATTACKS",
    "KINDS",
    "AttackError",
    "AttackRun",
    "Budget",
    "BudgetError",
    "ConfigError",
    "DataError",
    "ObjectiveError",
    "Perturbed",
    "Record",
    "Results",
    "ScirobustError",
    "Sweep",
    "__version__",
    "attack",
    "audit",
    "objectives",
]
