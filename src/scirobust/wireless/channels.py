"""Handset channels: 3GPP TR 38.901 CDL from Sionna (mobility + rotation), and line of sight.

`cdl_channels` draws the channels of ``n_handsets`` moving, rotating handsets with a 16-element
half-wavelength ULA (Sionna ``PanelArray`` 1×16, single vertical polarisation, omni elements)
receiving from a one-element base station, sampled every ``step_ms`` (default 10 ms).
Sionna returns per-path gains ``(batch, 1, 16, 1, 1, paths, time)``; the narrowband channel
is their sum over paths (Sionna normalises one element's average power to 1).

Mobility: Sionna's own (speed uniform in ``[min_speed, max_speed]`` m/s, random direction,
Doppler on every ray). Rotation: each handset turns about the vertical axis (yaw) at a
constant rate drawn uniformly from ±``rotation_deg_s`` (random sign), starting from a yaw
uniform in ±``initial_yaw_deg``. Sionna's CDL holds the orientation fixed within one call, so
the episode is generated in segments of ``segment_steps`` steps: segment s is the slice
``[s·L, (s+1)·L)`` of a call with the *same seed* (hence the same rays, phases and
velocities: checked bit-for-bit on the shared prefix) and the yaw at the segment's middle. The
yaw is therefore piecewise constant (≤ rate·L·step per jump, e.g. 40 °/s·100 ms = 4°, about
half a beam width at broadside) while mobility is continuous.

Channels are cached on disk as ``.npz`` (atomic writes, read with ``allow_pickle=False``),
keyed by every parameter and the Sionna version.
"""

from __future__ import annotations

import importlib.metadata
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scirobust._hashing import stable_int
from scirobust.errors import ConfigError, DataError
from scirobust.results import atomic_write_bytes

__all__ = ["INSTALL_HINT", "CdlSettings", "cdl_channels", "have_sionna", "los_channels"]

INSTALL_HINT = "pip install 'scirobust[wireless]' (i.e. pip install sionna-no-rt==2.2.0)"
"""How to install the optional channel library."""


def have_sionna() -> bool:
    """True when Sionna's PHY (``sionna-no-rt``) can be imported."""
    try:
        import sionna.phy  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class CdlSettings:
    """Channel settings: CDL model letter, RMS delay spread (s), carrier (Hz), handset speed
    range (m/s), step (ms), rotation rate bound (°/s), initial yaw bound (°), segment length
    (steps) and number of array elements."""

    model: str = "D"
    delay_spread_s: float = 30e-9
    carrier_hz: float = 28e9
    min_speed_m_s: float = 1.0
    max_speed_m_s: float = 1.5
    step_ms: float = 10.0
    rotation_deg_s: float = 40.0
    initial_yaw_deg: float = 30.0
    segment_steps: int = 10
    n_antennas: int = 16

    def __post_init__(self) -> None:
        if self.model not in ("A", "B", "C", "D", "E"):
            raise ConfigError(f"CDL model must be one of A-E; got {self.model!r}.")
        for name in ("delay_spread_s", "carrier_hz", "step_ms"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0; got {getattr(self, name)!r}.")
        if not 0 <= self.min_speed_m_s <= self.max_speed_m_s:
            raise ConfigError("Speeds need 0 <= min_speed_m_s <= max_speed_m_s; got "
                              f"{self.min_speed_m_s}, {self.max_speed_m_s}.")
        if self.rotation_deg_s < 0 or self.initial_yaw_deg < 0:
            raise ConfigError("rotation_deg_s and initial_yaw_deg are bounds and must be >= 0.")
        if self.segment_steps < 1 or self.n_antennas < 2:
            raise ConfigError("segment_steps must be >= 1 and n_antennas >= 2.")


def los_channels(sin_angles: np.ndarray, n_antennas: int = 16) -> np.ndarray:
    """Line-of-sight-only plane-wave channels ``h_m = exp(jπ m sin θ)`` of a half-wavelength
    ULA, shape (*sin_angles.shape, n_antennas); ``sin_angles`` = sin(angle from broadside)."""
    s = np.asarray(sin_angles, dtype=np.float64)
    if not np.isfinite(s).all() or (np.abs(s) > 1).any():
        raise DataError("sin_angles must be finite values in [-1, 1].")
    return np.exp(1j * np.pi * s[..., None] * np.arange(n_antennas))


def _generate(settings: CdlSettings, n_handsets: int, n_steps: int, seed: int) -> np.ndarray:
    try:
        import sionna.phy
        import torch
        from sionna.phy.channel.tr38901 import CDL, PanelArray
    except ImportError as exc:
        raise ConfigError(f"CDL channels need Sionna: {INSTALL_HINT}.") from exc
    s = settings
    rng = np.random.default_rng(stable_int("cdl-rotation", seed))
    rate = rng.uniform(-s.rotation_deg_s, s.rotation_deg_s, n_handsets)
    yaw0 = rng.uniform(-s.initial_yaw_deg, s.initial_yaw_deg, n_handsets)

    def array(n: int) -> PanelArray:
        return PanelArray(num_rows_per_panel=1, num_cols_per_panel=n, polarization="single",
                          polarization_type="V", antenna_pattern="omni",
                          carrier_frequency=s.carrier_hz)

    ut, bs = array(s.n_antennas), array(1)
    dt = s.step_ms * 1e-3
    out = np.empty((n_handsets, n_steps, s.n_antennas), dtype=np.complex64)
    sionna_seed = stable_int("cdl", seed) % (2**31)
    for start in range(0, n_steps, s.segment_steps):
        stop = min(start + s.segment_steps, n_steps)
        yaw = np.deg2rad(yaw0 + rate * dt * (start + stop - 1) / 2)
        orientation = torch.zeros(n_handsets, 3, dtype=torch.float32)
        orientation[:, 0] = torch.as_tensor(math.pi + yaw, dtype=torch.float32)
        sionna.phy.config.seed = sionna_seed  # same rays, phases and velocities every call
        cdl = CDL(s.model, s.delay_spread_s, s.carrier_hz, ut, bs, "downlink",
                  min_speed=s.min_speed_m_s, max_speed=s.max_speed_m_s,
                  ut_orientation=orientation)
        with torch.no_grad():
            h, _ = cdl(n_handsets, stop, 1.0 / dt)
        # (batch, 1, n, 1, 1, paths, time) -> narrowband (batch, time, n)
        narrow = h.sum(dim=-2)[:, 0, :, 0, 0, :].permute(0, 2, 1)
        out[:, start:stop] = narrow[:, start:stop].numpy()
    return out


def cdl_channels(n_handsets: int, n_steps: int, *, seed: int = 0,
                 settings: CdlSettings | None = None,
                 cache_dir: str | Path | None = None) -> np.ndarray:
    """Narrowband CDL channels of moving, rotating handsets (see module docstring).

    Args:
        n_handsets: independent handsets (episodes).
        n_steps: time steps of ``settings.step_ms`` each.
        seed: determines every random draw (rays, velocities, rotation).
        settings: `CdlSettings` (default: CDL-D, 30 ns, 28 GHz, 1–1.5 m/s, 10 ms, ±40 °/s).
        cache_dir: folder for the ``.npz`` cache (None: no cache).

    Returns:
        complex64 array (n_handsets, n_steps, n_antennas); one element's mean power ≈ 1.
    """
    s = settings or CdlSettings()
    for name, value in (("n_handsets", n_handsets), ("n_steps", n_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1; got {value!r}.")
    path = None
    if cache_dir is not None:
        try:
            version = importlib.metadata.version("sionna-no-rt")
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        key = stable_int(asdict(s), n_handsets, n_steps, seed, version)
        path = Path(cache_dir) / f"cdl_{key:016x}.npz"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    h = data["h"]
            except (OSError, ValueError, KeyError) as exc:
                raise DataError(f"Cannot read the channel cache {path}: {exc}. Delete it to "
                                "regenerate.") from exc
            if h.shape == (n_handsets, n_steps, s.n_antennas):
                return h
    h = _generate(s, n_handsets, n_steps, seed)
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, h=h)
        atomic_write_bytes(path, buffer.getvalue())
    return h
