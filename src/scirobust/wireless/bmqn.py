"""The Beam Management Q-Network (BMQN) and its offline Q-learning (paper 000 §5.5).

Input: the observation of `environment.BeamTracking` in *normalised* units, shape
``(batch, M, 4, 2)``: plane 0 is E = (RSRP + b)/g (paper eq. 3; b = ``BIAS_DB``,
g = ``SCALE_DB``), plane 1 the measured flags. The network builds the paper's M×(N+1) matrix
``E·flag + E_fill·(1 − flag)`` (default fill ``E_fill`` = normalised `FILL_DBM`), runs a
multi-layer LSTM over the M rows and maps the last hidden state to 16 Q-values.

Training: offline Q-learning on logged transitions (`environment.logged_transitions`) with a
target network (double-DQN targets, Huber loss, Adam, hard target update every
``target_every`` updates); reward = RSRP improvement in dB divided by g.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from scirobust.errors import ConfigError, DataError
from scirobust.policy import Normalisation
from scirobust.wireless.environment import FILL_DBM, N_FINE, Transitions

__all__ = ["BIAS_DB", "BMQN", "SCALE_DB", "QLearningSettings", "normalisation", "train_bmqn"]

BIAS_DB = 100.0
"""b of E = (RSRP + b)/g (dB)."""
SCALE_DB = 10.0
"""g of E = (RSRP + b)/g (dB per normalised unit)."""


def normalisation() -> Normalisation:
    """E = (RSRP + b)/g on plane 0; plane 1 (flags) passes unchanged."""
    return Normalisation(bias=torch.tensor([BIAS_DB, 0.0]), scale=torch.tensor([SCALE_DB, 1.0]))


class BMQN(nn.Module):
    """LSTM Q-network: (batch, M, N+1, 2) normalised observation -> (batch, n_actions) Q."""

    def __init__(self, n_actions: int = 16, hidden: int = 64, layers: int = 2) -> None:
        super().__init__()
        if n_actions < 2 or hidden < 1 or layers < 1:
            raise ConfigError("BMQN needs n_actions >= 2, hidden >= 1 and layers >= 1.")
        self.fill = (FILL_DBM + BIAS_DB) / SCALE_DB
        self.lstm = nn.LSTM(N_FINE + 1, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, n_actions))

    def forward(self, x: Tensor) -> Tensor:
        """Q-values (batch, n_actions) of normalised observations (batch, M, 4, 2)."""
        if x.dim() != 4 or x.shape[2:] != (N_FINE + 1, 2):
            raise DataError(f"BMQN input must be (batch, M, {N_FINE + 1}, 2); got "
                            f"{tuple(x.shape)}.")
        flag = x[..., 1]
        e = x[..., 0] * flag + self.fill * (1 - flag)
        out, _ = self.lstm(e)
        return self.head(out[:, -1])


@dataclass(frozen=True)
class QLearningSettings:
    """Offline Q-learning hyper-parameters: discount, Adam learning rate, updates, batch size,
    target-network period (updates), LSTM width and depth."""

    gamma: float = 0.2
    learning_rate: float = 3e-3
    updates: int = 2000
    batch_size: int = 128
    target_every: int = 100
    hidden: int = 32
    layers: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.gamma < 1:
            raise ConfigError(f"gamma must be in [0, 1); got {self.gamma!r}.")
        if self.updates < 1 or self.batch_size < 1 or self.target_every < 1:
            raise ConfigError("updates, batch_size and target_every must be >= 1.")


def train_bmqn(data: Transitions, settings: QLearningSettings | None = None,
               seed: int = 0) -> tuple[BMQN, dict[str, float]]:
    """Train a BMQN by offline Q-learning on ``data`` (observations in dBm); returns the model
    in eval mode and {final Huber loss, wall seconds, transitions}."""
    s = settings or QLearningSettings()
    n = data.actions.shape[0]
    if n < 2:
        raise DataError("Offline Q-learning needs at least two logged transitions.")
    norm = normalisation()
    obs, next_obs = norm(data.obs), norm(data.next_obs)
    rewards = data.rewards / SCALE_DB
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BMQN(16, s.hidden, s.layers)
    target = BMQN(16, s.hidden, s.layers)
    target.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=s.learning_rate)
    gen = torch.Generator().manual_seed(seed)
    started, loss_value = time.perf_counter(), float("nan")
    for update in range(s.updates):
        idx = torch.randint(0, n, (min(s.batch_size, n),), generator=gen)
        with torch.no_grad():
            best_next = model(next_obs[idx]).argmax(dim=1, keepdim=True)
            q_next = target(next_obs[idx]).gather(1, best_next)[:, 0]
            y = rewards[idx] + s.gamma * q_next * (~data.done[idx]).float()
        q = model(obs[idx]).gather(1, data.actions[idx, None])[:, 0]
        loss = nn.functional.smooth_l1_loss(q, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        if (update + 1) % s.target_every == 0:
            target.load_state_dict(model.state_dict())
    model.zero_grad(set_to_none=True)
    model.eval()
    return model, {"final_loss": loss_value, "train_seconds": time.perf_counter() - started,
                   "transitions": float(n), **{k: float(v) for k, v in asdict(s).items()}}
