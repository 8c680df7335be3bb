"""The graph network potential of paper 002 (§5, "Graph neural networks"), in PyTorch.

Atoms closer than ``cutoff`` (3 Å in the paper) are joined; every edge starts with the raw
displacement vector r_ij = r_j − r_i (Å), every node with its species (one-hot; the paper's
single-species silicon nodes start at 0), the global state at 0. One message-passing step
(the paper's optimum): edge update φ_e([r_ij, n_i, n_j]), node update φ_n([n_i, Σ_j m_ij]),
per-atom readout ψ, E = Σ_i ψ(n'_i) · scale + shift (eV). φ_e, φ_n and ψ are fully connected
with two hidden layers (ReLU in the paper; ``activation``). Raw vectors are not rotation
invariant: the paper made the model rotation-robust by training on random rotations and flips,
which `fit_potential` does through ``rotations`` here (the rotation acts on every pair vector,
so periodic images stay consistent).

One deliberate difference (stated): each message is multiplied by a smooth cosine cut-off
f_c(r) = ½(1 + cos(π r / cutoff)), so the energy stays continuous when an atom crosses the
cut-off and forces are finite differences of a continuous function — the paper's hard
threshold would make the adversarial direction undefined at the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from scirobust.atomistic.neighbors import PairList
from scirobust.atomistic.potential import DTYPE, PeriodicPotential


def _mlp(n_in: int, hidden: Sequence[int], n_out: int,
         activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), activation()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class DisplacementGNN(PeriodicPotential):
    """Paper 002's GNN: one message-passing step on raw displacement vectors within
    ``cutoff`` Å; positions (B, N, 3) Å → energies (B,) eV.

    ``rotations`` (3, 3), when set, rotates every pair vector (training-time
    augmentation); leave it None to evaluate. ``energy_shift``/``energy_scale`` (eV per atom)
    standardise the readout (set them from training data, see `fit_potential`).
    """

    def __init__(
        self,
        numbers: np.ndarray | list[int],
        cell: np.ndarray,
        pbc: tuple[bool, bool, bool] | np.ndarray = (True, True, True),
        *,
        cutoff: float = 3.0,
        width: int = 64,
        hidden: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.ReLU,
        skin: float = 1.0,
        reference_positions: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(numbers, cell, pbc, cutoff=cutoff, skin=skin,
                         reference_positions=reference_positions)
        elements = sorted(set(self.numbers.tolist()))
        self.elements = elements
        one_hot = torch.eye(len(elements), dtype=DTYPE)[
            torch.as_tensor([elements.index(int(z)) for z in self.numbers.tolist()])]
        self.register_buffer("node_init", one_hot, persistent=False)
        n_species = len(elements)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.edge_net = _mlp(3 + 2 * n_species, hidden, width, activation)
            self.node_net = _mlp(n_species + width, hidden, width, activation)
            self.readout = _mlp(width, hidden, 1, activation)
        self.to(DTYPE)
        self.register_buffer("energy_shift", torch.zeros((), dtype=DTYPE))
        self.register_buffer("energy_scale", torch.ones((), dtype=DTYPE))
        self.rotations: Tensor | None = None

    @classmethod
    def from_atoms(cls, atoms, **kwargs) -> DisplacementGNN:
        """GNN for the species, cell and pbc of an ASE ``Atoms``."""
        kwargs.setdefault("reference_positions", atoms.positions)
        return cls(atoms.numbers, np.array(atoms.cell), atoms.pbc, **kwargs)

    def energy_from_pairs(self, vectors: Tensor, pairs: PairList) -> Tensor:
        """Energies (B,) eV from pair vectors (B, P, 3) Å."""
        if self.rotations is not None:
            vectors = vectors @ self.rotations.to(vectors).transpose(-1, -2)
        batch, n = vectors.shape[0], self.n_atoms
        r = vectors.norm(dim=-1, keepdim=True)
        envelope = torch.where(r < self.cutoff,
                               0.5 * (1 + torch.cos(math.pi * r / self.cutoff)),
                               torch.zeros_like(r))
        nodes = self.node_init.to(vectors)
        edge_in = torch.cat([vectors, nodes[pairs.i].expand(batch, -1, -1),
                             nodes[pairs.j].expand(batch, -1, -1)], dim=-1)
        messages = self.edge_net(edge_in) * envelope
        summed = torch.zeros(batch, n, messages.shape[-1], dtype=messages.dtype,
                             device=messages.device).index_add_(1, pairs.i.to(vectors.device),
                                                                messages)
        updated = self.node_net(torch.cat([nodes.expand(batch, -1, -1), summed], dim=-1))
        per_atom = self.readout(updated)[..., 0] * self.energy_scale + self.energy_shift
        return per_atom.sum(dim=1)


__all__ = ["DisplacementGNN"]
