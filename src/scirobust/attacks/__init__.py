"""Attacks and random controls; all gradient attacks share `gradient_ascent`."""

from scirobust.attacks.core import (
    ATTACKS,
    AttackSpec,
    attack,
    get_spec,
    gradient_ascent,
    input_gradient,
    preserved_model_state,
    skip_randomness,
)

__all__ = [
    "ATTACKS",
    "AttackSpec",
    "attack",
    "get_spec",
    "gradient_ascent",
    "input_gradient",
    "preserved_model_state",
    "skip_randomness",
]
