"""Wireless beam management on 3GPP TR 38.901 channels (paper 000 §2.5, §5.5).

* `channels`: narrowband channels of a 16-element handset array from Sionna's CDL model
  (optional extra ``wireless``: ``pip install 'scirobust[wireless]'``, i.e.
  ``sionna-no-rt==2.2.0``) with handset mobility and rotation, cached on disk; and a
  line-of-sight-only plane-wave channel for checks.
* `codebook`: the 16-beam DFT codebook, the broad beam, RSRP per beam (dBm), rate (Mbps).
* `environment`: the closed-loop beam-tracking environment the BMQN acts in (a
  `scirobust.policy` environment), the logged trajectories it is trained on and the
  traditional beam-sweep baseline.
* `bmqn`: the Beam Management Q-Network (multi-layer LSTM) and its offline Q-learning.

Importing this package does not import Sionna; only `channels.cdl_channels` needs it.
"""

from __future__ import annotations

from scirobust.wireless.codebook import (
    broad_beam,
    dft_codebook,
    rate_mbps,
    rsrp_dbm,
)

__all__ = ["broad_beam", "dft_codebook", "rate_mbps", "rsrp_dbm"]
