"""Beam codebook, RSRP and rate of a uniform linear array (plain formulas, units stated).

Array: ``n`` elements at half-wavelength spacing; the channel of one handset at one time is a
complex vector ``h`` (``n``,) of narrowband gains normalised so that one element receives
average power 1. Fine beams: the DFT codebook ``w_k = exp(jπ n u_k)/√n`` with
``u_k = (2k − n + 1)/n`` (k = 0 … n−1), i.e. spatial frequencies u = sin(angle from broadside)
spaced 2/n apart and wrapping around (u and u ± 2 are the same direction), so beams k and
k ± 1 (mod n) are neighbours. Broad beam: one element alone (omnidirectional, no array gain).

RSRP of beam w (dBm) = ``rx_power_dbm + 10 log10 |wᴴ h|²``, where ``rx_power_dbm`` is the
average power one element receives (transmit power − path loss + antenna gains).
Rate (Mbps) = bandwidth (MHz) · log2(1 + SNR), SNR = RSRP − noise power (both dBm).
"""

from __future__ import annotations

import math

import numpy as np

from scirobust.errors import ConfigError, DataError

__all__ = ["broad_beam", "dft_codebook", "noise_power_dbm", "rate_mbps", "rsrp_dbm",
           "spatial_frequencies"]


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise ConfigError(f"The array needs an integer number of elements >= 2; got {n!r}.")
    return int(n)


def spatial_frequencies(n: int = 16) -> np.ndarray:
    """Beam centres ``u_k = (2k − n + 1)/n`` (sin of the angle from broadside), shape (n,)."""
    n = _check_n(n)
    return (2 * np.arange(n) - n + 1) / n


def dft_codebook(n: int = 16) -> np.ndarray:
    """The DFT codebook: column k is ``w_k = exp(jπ m u_k)/√n`` (m = element), shape (n, n)."""
    n = _check_n(n)
    m = np.arange(n)[:, None]
    return np.exp(1j * np.pi * m * spatial_frequencies(n)[None, :]) / math.sqrt(n)


def broad_beam(n: int = 16) -> np.ndarray:
    """The broad beam: element 0 alone (omnidirectional, no array gain), shape (n, 1)."""
    n = _check_n(n)
    w = np.zeros((n, 1), dtype=complex)
    w[0, 0] = 1.0
    return w


def rsrp_dbm(h: np.ndarray, beams: np.ndarray, rx_power_dbm: float) -> np.ndarray:
    """RSRP (dBm) of every beam: ``rx_power_dbm + 10 log10 |wᴴ h|²``.

    Args:
        h: channel vectors, shape (..., n), complex, one element's average power 1.
        beams: beam weights, shape (n, K) (e.g. `dft_codebook`).
        rx_power_dbm: average power received by one element (dBm).

    Returns:
        shape (..., K), float64 dBm (floored at −300 dBm where the gain is exactly 0).
    """
    h = np.asarray(h)
    if h.ndim < 1 or beams.ndim != 2 or h.shape[-1] != beams.shape[0]:
        raise DataError(f"Channel vectors (..., n) and beams (n, K) must share n; got "
                        f"{h.shape} and {beams.shape}.")
    if not np.isfinite(h).all():
        raise DataError("The channel contains NaN or Inf.")
    gain = np.abs(h @ beams.conj()) ** 2
    return rx_power_dbm + 10 * np.log10(np.maximum(gain, 1e-30))


def noise_power_dbm(bandwidth_mhz: float, noise_figure_db: float) -> float:
    """Thermal noise power (dBm) in ``bandwidth_mhz``: −174 dBm/Hz + 10 log10(B) + NF."""
    if not bandwidth_mhz > 0:
        raise ConfigError(f"bandwidth_mhz must be > 0; got {bandwidth_mhz!r}.")
    return -174.0 + 10 * math.log10(bandwidth_mhz * 1e6) + float(noise_figure_db)


def rate_mbps(rsrp: np.ndarray, noise_dbm: float, bandwidth_mhz: float) -> np.ndarray:
    """Shannon rate (Mbps) = bandwidth (MHz) · log2(1 + 10^((RSRP − noise)/10))."""
    snr = 10.0 ** ((np.asarray(rsrp, dtype=np.float64) - noise_dbm) / 10.0)
    return bandwidth_mhz * np.log2(1.0 + snr)
