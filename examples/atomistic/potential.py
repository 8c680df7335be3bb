"""A Morse pair potential in PyTorch: the "model" audited in this example.

``make_potential`` is the factory named in ``audit.yaml``; it returns a module mapping positions
(B, N, 3) or (N, 3) in Å to energies (B,) or () in eV. Its parameters were fitted by hand to
copper, so it disagrees a little with ASE's EMT, the reference.
"""

from __future__ import annotations

import torch
from torch import nn


class MorsePotential(nn.Module):
    """E = Σ_{i<j} D (exp(−2a(r−r0)) − 2 exp(−a(r−r0))), D in eV, a in 1/Å, r0 in Å."""

    supports_batch = True

    def __init__(self, depth_ev: float, stiffness_per_angstrom: float, r0_angstrom: float):
        super().__init__()
        self.depth_ev = nn.Parameter(torch.tensor(depth_ev, dtype=torch.float64))
        self.stiffness = nn.Parameter(torch.tensor(stiffness_per_angstrom, dtype=torch.float64))
        self.r0_angstrom = nn.Parameter(torch.tensor(r0_angstrom, dtype=torch.float64))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """Energies (eV) of positions (Å)."""
        single = positions.dim() == 2
        pos = positions[None] if single else positions
        n = pos.shape[1]
        i, j = torch.triu_indices(n, n, 1)
        r = (pos[:, i] - pos[:, j]).norm(dim=-1)
        x = torch.exp(-self.stiffness * (r - self.r0_angstrom))
        energy = (self.depth_ev * (x * x - 2 * x)).sum(dim=1)
        return energy[0] if single else energy


def make_potential(depth_ev: float = 0.34, stiffness_per_angstrom: float = 1.36,
                   r0_angstrom: float = 2.63) -> MorsePotential:
    """The Morse potential of the example (Girifalco–Weizer copper parameters)."""
    return MorsePotential(depth_ev, stiffness_per_angstrom, r0_angstrom)
