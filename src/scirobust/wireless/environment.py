"""The beam-tracking environment of the BMQN, its logged trajectories and the sweep baseline.

Time runs in steps of the channel (10 ms). At step t the handset is served on fine beam
``a_t`` and measures (i) the broad beam and (ii) one fine beam of the triple
``(a_t − 1, a_t, a_t + 1)`` (mod 16), cycling through the triple with t mod 3 — one fine beam
per step, as in the paper. Every measurement is the true RSRP (dBm) plus Gaussian
measurement noise of ``noise_db`` (drawn once per environment from its seed, so clean,
random and attacked runs see the same noise).

Observation (the BMQN input, physical units): shape ``(M, N + 1, 2)`` with N = 3 and M the
history length. Row τ is one past step; columns 0–2 are the fine beams ``a_t − 1, a_t,
a_t + 1`` *of the current serving beam* (a past measurement of beam j appears in the column
of j if j is still in the current triple, else it is dropped), column 3 the broad beam. Plane
0 holds the RSRP (dBm; ``FILL_DBM`` where nothing was measured), plane 1 is 1 where plane 0
is a measurement and 0 where it is the default fill. Only plane 0 is a measurement an
interferer can move (`MEASUREMENT_MASK`).

Action k ∈ 0..15 selects beam ``(a_t + k − 8) mod 16`` (k = 8 keeps the beam): the beam used
for data at step t and the centre of the next step's triple, so the action changes what is
measured next (closed loop). Value of an action: the Shannon rate (Mbps) of that beam at step
t from the noise-free RSRP. Episodes start at step M − 1 on the best beam of step 0 (an
initial exhaustive acquisition), held through the first M steps of measurements.

Sweep baseline (Bai & Heath 2016, the paper's reference [37]): with the same one fine
measurement per step, the handset sweeps beams 0..15 in turn; when a sweep completes it
switches to the best beam measured in that sweep and keeps it for the next 16 steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scirobust.errors import ConfigError, DataError
from scirobust.wireless.codebook import (
    broad_beam,
    dft_codebook,
    noise_power_dbm,
    rate_mbps,
    rsrp_dbm,
)

__all__ = ["FILL_DBM", "MEASUREMENT_MASK", "BeamState", "BeamTracking", "RadioSettings",
           "Transitions", "logged_transitions", "sweep_rates"]

FILL_DBM = -130.0
"""Default RSRP (dBm) in the entries of the observation that were not measured."""
MEASUREMENT_MASK = torch.tensor([True, False])
"""Budget mask of one observation: plane 0 (RSRP, dBm) may move, plane 1 (flags) may not."""
N_FINE = 3


@dataclass(frozen=True)
class RadioSettings:
    """Link budget: average power one element receives (dBm), bandwidth (MHz), noise figure
    (dB), RSRP measurement noise (dB, standard deviation), history length M (steps)."""

    rx_power_dbm: float = -113.0
    bandwidth_mhz: float = 1.0
    noise_figure_db: float = 7.0
    noise_db: float = 1.0
    history: int = 8

    def __post_init__(self) -> None:
        if not self.bandwidth_mhz > 0 or self.noise_db < 0:
            raise ConfigError("bandwidth_mhz must be > 0 and noise_db >= 0.")
        if isinstance(self.history, bool) or not isinstance(self.history, int) \
                or self.history < 1:
            raise ConfigError(f"history must be an integer >= 1; got {self.history!r}.")

    @property
    def noise_dbm(self) -> float:
        """Thermal noise power in the bandwidth (dBm)."""
        return noise_power_dbm(self.bandwidth_mhz, self.noise_figure_db)


@dataclass(frozen=True)
class BeamState:
    """Batch state at step ``t``: serving beam (E,), and the last M measurements: measured
    fine beam (E, M), its RSRP (E, M) and the broad-beam RSRP (E, M), both dBm with noise."""

    t: int
    serving: np.ndarray
    beam: np.ndarray
    value: np.ndarray
    broad: np.ndarray


class BeamTracking:
    """Closed-loop beam tracking on given channels (a `scirobust.policy` environment).

    Args:
        channels: complex (episodes, steps, n_antennas), e.g. `channels.cdl_channels`.
        radio: `RadioSettings`.
        seed: seeds the measurement noise.
    """

    def __init__(self, channels: np.ndarray, radio: RadioSettings | None = None,
                 seed: int = 0) -> None:
        h = np.asarray(channels)
        if h.ndim != 3 or not np.iscomplexobj(h):
            raise DataError(f"channels must be complex (episodes, steps, antennas); got "
                            f"{h.dtype} {h.shape}.")
        self.radio = r = radio or RadioSettings()
        if h.shape[1] < r.history + 1:
            raise DataError(f"Episodes need more steps than the history ({r.history}); got "
                            f"{h.shape[1]}.")
        self.n_beams = h.shape[2]
        self.rsrp = rsrp_dbm(h, dft_codebook(self.n_beams), r.rx_power_dbm)  # (E, T, K)
        self.broad = rsrp_dbm(h, broad_beam(self.n_beams), r.rx_power_dbm)[..., 0]
        self.rates = rate_mbps(self.rsrp, r.noise_dbm, r.bandwidth_mhz)
        rng = np.random.default_rng(seed)
        self.noise = rng.normal(0.0, r.noise_db, size=(*h.shape[:2], 2))
        self.n_episodes, self.n_times = h.shape[:2]
        self.n_actions = self.n_beams
        self.n_steps = self.n_times - r.history + 1
        self.budget_mask = MEASUREMENT_MASK

    # ----------------------------------------------------------------- dynamics
    def _measure(self, t: int, serving: np.ndarray) -> tuple[np.ndarray, ...]:
        e = np.arange(self.n_episodes)
        beam = (serving + (t % N_FINE) - 1) % self.n_beams
        value = self.rsrp[e, t, beam] + self.noise[:, t, 0]
        return beam, value, self.broad[:, t] + self.noise[:, t, 1]

    def start(self) -> BeamState:
        """The state at step M − 1: serving the best beam of step 0 since step 0."""
        m = self.radio.history
        serving = self.rsrp[:, 0].argmax(axis=1)
        rows = [self._measure(t, serving) for t in range(m)]
        beam, value, broad = (np.stack([row[i] for row in rows], axis=1) for i in range(3))
        return BeamState(m - 1, serving, beam, value, broad)

    def beams_of(self, state: BeamState, actions: Tensor | np.ndarray) -> np.ndarray:
        """Beam index (E,) selected by action indices (E,) in ``state``."""
        a = np.asarray(actions.cpu() if isinstance(actions, Tensor) else actions)
        if a.shape != (self.n_episodes,) or (a < 0).any() or (a >= self.n_actions).any():
            raise DataError(f"actions must be integers in [0, {self.n_actions}) of shape "
                            f"({self.n_episodes},); got shape {a.shape}.")
        return (state.serving + a - self.n_beams // 2) % self.n_beams

    def step(self, state: BeamState, actions: Tensor | np.ndarray) -> BeamState:
        """Serve the selected beams, move to step t + 1 and measure around them."""
        if state.t + 1 >= self.n_times:
            raise DataError(f"The episode ends at step {self.n_times - 1}.")
        serving = self.beams_of(state, actions)
        beam, value, broad = self._measure(state.t + 1, serving)
        return BeamState(state.t + 1, serving,
                         np.concatenate([state.beam[:, 1:], beam[:, None]], axis=1),
                         np.concatenate([state.value[:, 1:], value[:, None]], axis=1),
                         np.concatenate([state.broad[:, 1:], broad[:, None]], axis=1))

    def observe(self, state: BeamState) -> Tensor:
        """The observation (E, M, 4, 2), float32, RSRP in dBm (see module docstring)."""
        m = self.radio.history
        obs = np.full((self.n_episodes, m, N_FINE + 1, 2), FILL_DBM)
        obs[..., 1] = 0.0
        for c in range(N_FINE):
            column = (state.serving + c - 1) % self.n_beams
            hit = state.beam == column[:, None]
            obs[..., c, 0] = np.where(hit, state.value, FILL_DBM)
            obs[..., c, 1] = hit
        obs[..., N_FINE, 0] = state.broad
        obs[..., N_FINE, 1] = 1.0
        return torch.as_tensor(obs, dtype=torch.float32)

    def action_values(self, state: BeamState) -> Tensor:
        """Rate (Mbps) of every action at step t, shape (E, n_actions), float64."""
        k = np.arange(self.n_actions)
        beams = (state.serving[:, None] + k[None, :] - self.n_beams // 2) % self.n_beams
        e = np.arange(self.n_episodes)[:, None]
        return torch.as_tensor(self.rates[e, state.t, beams])

    def optimal_rates(self) -> np.ndarray:
        """Rate (Mbps) of the best beam at every decision step, (E, n_steps)."""
        return self.rates[:, self.radio.history - 1:].max(axis=2)


@dataclass(frozen=True)
class Transitions:
    """Logged transitions for offline Q-learning: observations (n, M, 4, 2) dBm, actions (n,),
    rewards (n,) in dB, next observations and done flags (n,)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    done: Tensor


def logged_transitions(env: BeamTracking, *, p_oracle: float = 0.5, p_local: float = 0.3,
                       seed: int = 0) -> Transitions:
    """Roll out a behaviour policy and log its transitions (offline RL data).

    The behaviour picks, per step and handset, the best beam (probability ``p_oracle``), a
    move of at most ±2 beams (``p_local``) or any of the 16 actions. Reward: the RSRP
    improvement (dB, noise-free) of the selected beam over the beam served before the step.
    """
    if not (p_oracle >= 0 and p_local >= 0 and p_oracle + p_local <= 1):
        raise ConfigError("p_oracle and p_local must be probabilities with sum <= 1.")
    rng = np.random.default_rng(seed)
    state = env.start()
    e, half = np.arange(env.n_episodes), env.n_beams // 2
    out: dict[str, list] = {k: [] for k in ("obs", "actions", "rewards", "next_obs", "done")}
    for i in range(env.n_steps - 1):
        obs = env.observe(state)
        best = env.rsrp[:, state.t].argmax(axis=1)
        oracle = (best - state.serving + half) % env.n_beams
        local = half + rng.integers(-2, 3, env.n_episodes)
        anything = rng.integers(0, env.n_actions, env.n_episodes)
        u = rng.random(env.n_episodes)
        actions = np.where(u < p_oracle, oracle, np.where(u < p_oracle + p_local, local,
                                                          anything))
        chosen = env.beams_of(state, actions)
        reward = env.rsrp[e, state.t, chosen] - env.rsrp[e, state.t, state.serving]
        state = env.step(state, actions)
        out["obs"].append(obs)
        out["actions"].append(torch.as_tensor(actions))
        out["rewards"].append(torch.as_tensor(reward, dtype=torch.float32))
        out["next_obs"].append(env.observe(state))
        out["done"].append(torch.full((env.n_episodes,), i == env.n_steps - 2))
    return Transitions(*(torch.cat(out[k]) for k in ("obs", "actions", "rewards", "next_obs",
                                                     "done")))


def sweep_rates(env: BeamTracking, eps_dbm: float = 0.0,
                generator: torch.Generator | None = None) -> np.ndarray:
    """Rates (Mbps, (E, n_steps)) of the sweep baseline at the decision steps.

    Each measurement carries the environment's measurement noise plus a random ±``eps_dbm``
    (random sign from ``generator``), the same random control as the BMQN's.
    """
    if not (eps_dbm >= 0 and math.isfinite(eps_dbm)):
        raise ConfigError(f"eps_dbm must be finite and >= 0; got {eps_dbm!r}.")
    k, e = env.n_beams, np.arange(env.n_episodes)
    signs = torch.randint(0, 2, (env.n_episodes, env.n_times), generator=generator).numpy()
    serving = env.rsrp[:, 0].argmax(axis=1)
    measured = np.full((env.n_episodes, k), -np.inf)
    rates = np.empty((env.n_episodes, env.n_times))
    for t in range(env.n_times):
        rates[:, t] = env.rates[e, t, serving]
        j = t % k
        measured[:, j] = env.rsrp[:, t, j] + env.noise[:, t, 0] + eps_dbm * (2 * signs[:, t] - 1)
        if j == k - 1:
            serving = measured.argmax(axis=1)
    return rates[:, env.radio.history - 1:]
