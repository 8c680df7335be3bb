"""Model factory of the regression example: projectile range and apex height.

``factory: model:make_model`` in audit.yaml finds this file because it sits next to the config.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ProjectileNet(nn.Module):
    """MLP mapping (speed [m/s], angle [rad], g [m/s²]) to (range [m], apex height [m]).

    Input and output scaling are buffers, so they travel in the state_dict with the weights
    and the model takes and returns physical units.
    """

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(3))
        self.register_buffer("x_std", torch.ones(3))
        self.register_buffer("y_mean", torch.zeros(2))
        self.register_buffer("y_std", torch.ones(2))
        self.net = nn.Sequential(
            nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean


def make_model(hidden: int = 32) -> nn.Module:
    """The factory named in audit.yaml (``model.kwargs`` are passed here)."""
    return ProjectileNet(hidden)
