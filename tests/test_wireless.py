"""Wireless beam management: codebook, line-of-sight geometry, environment, sweep, CDL channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scirobust.errors import ConfigError, DataError
from scirobust.wireless.bmqn import BMQN
from scirobust.wireless.channels import (
    INSTALL_HINT,
    CdlSettings,
    cdl_channels,
    have_sionna,
    los_channels,
)
from scirobust.wireless.codebook import (
    dft_codebook,
    noise_power_dbm,
    rate_mbps,
    rsrp_dbm,
    spatial_frequencies,
)
from scirobust.wireless.environment import (
    FILL_DBM,
    BeamTracking,
    RadioSettings,
    logged_transitions,
    sweep_rates,
)

needs_sionna = pytest.mark.skipif(not have_sionna(),
                                  reason=f"Sionna is not installed: {INSTALL_HINT}")


def _nearest_beam(sin_angle: np.ndarray) -> np.ndarray:
    """Geometry: the beam whose centre is nearest sin θ on the circle u ≡ u + 2."""
    d = np.abs(((sin_angle[..., None] - spatial_frequencies(16)) + 1) % 2 - 1)
    return d.argmin(axis=-1)


def test_dft_codebook_is_orthonormal_and_circular() -> None:
    w = dft_codebook(16)
    assert np.allclose(w.conj().T @ w, np.eye(16), atol=1e-12)
    u = spatial_frequencies(16)
    assert u[0] == pytest.approx(-15 / 16) and u[-1] == pytest.approx(15 / 16)
    assert (u[0] + 2) - u[-1] == pytest.approx(2 / 16)  # beams 15 and 0 are neighbours


def test_line_of_sight_best_beam_agrees_with_geometry() -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, 500)
    p = rsrp_dbm(los_channels(s), dft_codebook(16), rx_power_dbm=-100.0)
    assert np.array_equal(p.argmax(axis=1), _nearest_beam(s))
    # On a beam centre the whole array gain 10 log10(16) dB is collected.
    centre = rsrp_dbm(los_channels(spatial_frequencies(16)), dft_codebook(16), -100.0)
    assert np.allclose(np.diag(centre), -100.0 + 10 * np.log10(16), atol=1e-9)


def test_environment_optimal_action_is_the_geometric_beam() -> None:
    s = np.linspace(-0.9, 0.9, 12)
    h = np.repeat(los_channels(s)[:, None, :], 12, axis=1)  # static handsets
    env = BeamTracking(h, RadioSettings(noise_db=0.0, history=4))
    state = env.start()
    assert np.array_equal(state.serving, _nearest_beam(s))
    values = env.action_values(state).numpy()
    assert np.array_equal(env.beams_of(state, values.argmax(axis=1)), _nearest_beam(s))
    r = env.radio
    snr = env.rsrp[0, 0, state.serving[0]] - r.noise_dbm
    assert values[0].max() == pytest.approx(r.bandwidth_mhz * np.log2(1 + 10 ** (snr / 10)))
    assert r.noise_dbm == pytest.approx(-174 + 60 + 7)


def test_observation_layout_and_closed_loop_measurements() -> None:
    h = np.repeat(los_channels(np.array([0.0, 0.5]))[:, None, :], 10, axis=1)
    env = BeamTracking(h, RadioSettings(noise_db=0.0, history=4))
    state = env.start()
    obs = env.observe(state)
    assert obs.shape == (2, 4, 4, 2)
    assert (obs[..., 3, 1] == 1).all()  # the broad beam is measured every step
    assert torch.equal(obs[..., :3, 1].sum(dim=2), torch.ones(2, 4))  # one fine beam per step
    assert (obs[..., 0][obs[..., 1] == 0] == FILL_DBM).all()
    moved = env.step(state, torch.tensor([9, 8]))  # episode 0 moves one beam up, 1 stays
    assert moved.serving[0] == (state.serving[0] + 1) % 16 and moved.serving[1] == state.serving[1]
    c = moved.t % 3  # the fine beam measured now is in the triple of the new serving beam
    assert moved.beam[0, -1] == (moved.serving[0] + c - 1) % 16
    with pytest.raises(DataError, match="actions"):
        env.step(state, torch.tensor([16, 0]))


def test_sweep_baseline_tracks_static_channel_and_suffers_from_noise() -> None:
    rng = np.random.default_rng(1)
    h = np.repeat(los_channels(rng.uniform(-1, 1, 32))[:, None, :], 48, axis=1)
    env = BeamTracking(h, RadioSettings(noise_db=0.0))
    assert np.allclose(sweep_rates(env), env.optimal_rates())
    noisy = sweep_rates(env, 30.0, torch.Generator().manual_seed(0))
    assert noisy.mean() < env.optimal_rates().mean() - 0.1
    with pytest.raises(ConfigError):
        sweep_rates(env, -1.0)


def test_logged_transitions_reward_is_rsrp_improvement() -> None:
    rng = np.random.default_rng(2)
    h = np.repeat(los_channels(rng.uniform(-1, 1, 8))[:, None, :], 12, axis=1)
    env = BeamTracking(h, RadioSettings(noise_db=0.0, history=4))
    data = logged_transitions(env, p_oracle=1.0, p_local=0.0)
    n = 8 * (env.n_steps - 1)
    assert data.obs.shape == (n, 4, 4, 2) and data.actions.shape == (n,)
    # the oracle starts on the best beam of a static channel: it stays and gains nothing
    assert (data.actions == 8).all() and torch.allclose(data.rewards, torch.zeros(n))
    assert int(data.done.sum()) == 8


def test_bad_inputs_give_clear_errors() -> None:
    with pytest.raises(ConfigError, match="integer >= 1"):
        cdl_channels(0, 5)
    with pytest.raises(ConfigError, match="CDL model"):
        CdlSettings(model="Z")
    with pytest.raises(DataError, match="complex"):
        BeamTracking(np.zeros((2, 10, 16)))
    with pytest.raises(DataError, match="sin_angles"):
        los_channels(np.array([1.5]))
    with pytest.raises(DataError, match="BMQN input"):
        BMQN()(torch.zeros(2, 8, 4))
    with pytest.raises(ConfigError):
        noise_power_dbm(0.0, 7.0)
    assert rate_mbps(np.array(-200.0), -100.0, 1.0) == pytest.approx(0.0, abs=1e-9)


@needs_sionna
def test_cdl_channels_are_seeded_cached_and_normalised(tmp_path) -> None:
    settings = CdlSettings(segment_steps=3)
    h = cdl_channels(8, 7, seed=3, settings=settings, cache_dir=tmp_path)
    assert h.shape == (8, 7, 16) and h.dtype == np.complex64
    assert 0.3 < float(np.mean(np.abs(h) ** 2)) < 3.0  # one element's mean power ~ 1
    (cached,) = tmp_path.glob("cdl_*.npz")
    with np.load(cached, allow_pickle=False) as data:
        assert np.array_equal(data["h"], h)
    assert np.array_equal(cdl_channels(8, 7, seed=3, settings=settings, cache_dir=tmp_path), h)
    other = cdl_channels(8, 7, seed=4, settings=settings)
    assert not np.allclose(other, h)
    # Rotation off and one segment: the same rays as the segmented run at the first segment.
    still = CdlSettings(segment_steps=3, rotation_deg_s=0.0)
    long = cdl_channels(8, 7, seed=3, settings=still)
    short = cdl_channels(8, 3, seed=3, settings=still)
    assert np.allclose(long[:, :3], short, atol=1e-6)
    p = rsrp_dbm(h, dft_codebook(16), 0.0)
    assert float(np.mean(p.max(-1) - np.median(p, -1))) > 6.0  # beams matter on CDL-D
