"""One exception hierarchy: every error scirobust raises on purpose is a `ScirobustError`.

The CLI prints the message of these errors and exits non-zero without a traceback, so each
message must say what was wrong and what to do instead.
"""

from __future__ import annotations


class ScirobustError(Exception):
    """Base class of all errors raised deliberately by scirobust."""


class BudgetError(ScirobustError, ValueError):
    """A perturbation budget is malformed (eps, norm, mask, bounds, scale)."""


class ObjectiveError(ScirobustError, ValueError):
    """An objective cannot be attacked (wrong shape, zero gradient, own-prediction target)."""


class AttackError(ScirobustError, ValueError):
    """An attack was asked for with unknown name or invalid parameters, or its gradient broke."""


class DataError(ScirobustError, ValueError):
    """Input data cannot be used (shape mismatch, NaN/Inf, unreadable file)."""


class ConfigError(ScirobustError, ValueError):
    """A configuration file or CLI option is invalid."""
