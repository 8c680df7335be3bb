"""Base class of the torch energy models: positions in Å → energy in eV, forces by autograd.

A `PeriodicPotential` is an ``nn.Module`` built for one set of atoms (species, cell, pbc). Its
``forward(positions)`` takes positions of shape (N, 3) → scalar energy (eV), or a batch
(B, N, 3) → energies (B,). Forces are ``-dE/dR`` by autograd (`energy_and_forces`). Pairs come
from a cached `PairList` with a skin; configurations that move out of it get their own list,
so results never depend on the cache.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from scirobust.atomistic.neighbors import PairList, build_pair_list, pair_vectors
from scirobust.errors import DataError

DTYPE = torch.float64


class PeriodicPotential(nn.Module):
    """Energy model of one periodic (or open) system of N atoms; subclasses define pair energies.

    Args:
        numbers: atomic numbers (N,).
        cell: 3×3 cell in Å (rows are lattice vectors).
        pbc: periodic directions.
        cutoff: largest interaction distance in Å.
        skin: neighbour-list margin in Å (a list is reused while atoms move < skin/2).
        reference_positions: positions (N, 3) Å to build the first neighbour list at (e.g.
            the relaxed structure the configurations are displaced from).
    """

    supports_batch = True

    def __init__(
        self,
        numbers: np.ndarray | list[int],
        cell: np.ndarray,
        pbc: tuple[bool, bool, bool] | np.ndarray = (True, True, True),
        *,
        cutoff: float,
        skin: float = 1.0,
        reference_positions: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        numbers = np.asarray(numbers, dtype=np.int64)
        self.register_buffer("numbers", torch.as_tensor(numbers), persistent=False)
        self.register_buffer(
            "cell", torch.as_tensor(np.asarray(cell, dtype=np.float64)), persistent=False
        )
        self.pbc = tuple(bool(p) for p in np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)))
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self._lists: list[PairList] = []
        self.max_cached_lists = 64
        self._seed_positions = (None if reference_positions is None
                                else np.asarray(reference_positions, dtype=np.float64).copy())
        self.n_list_builds = 0

    @property
    def n_atoms(self) -> int:
        """Number of atoms N."""
        return int(self.numbers.shape[0])

    def set_cell(self, cell: np.ndarray, pbc: tuple[bool, bool, bool] | None = None) -> None:
        """Change the cell (Å); cached neighbour lists are used while they still cover the
        deformed cell (`PairList.covers`) and dropped if the pbc change."""
        self.cell = torch.as_tensor(np.asarray(cell, dtype=np.float64))
        if pbc is not None and tuple(bool(p) for p in pbc) != self.pbc:
            self.pbc = tuple(bool(p) for p in pbc)
            self._lists = []

    def pair_list(self, positions: np.ndarray) -> PairList:
        """A fresh pair list at ``positions`` (N, 3) Å."""
        self.n_list_builds += 1
        return build_pair_list(
            positions, self.cell.numpy(), np.array(self.pbc), self.cutoff, self.skin
        )

    # ------------------------------------------------------------------ subclass hook
    def energy_from_pairs(self, vectors: Tensor, pairs: PairList) -> Tensor:
        """Energies (B,) in eV from pair vectors (B, P, 3) in Å."""
        raise NotImplementedError

    # ------------------------------------------------------------------ forward
    def map_pairs(
        self,
        positions: Tensor,
        fn: Callable[[Tensor, PairList], Tensor],
        strain: Tensor | None = None,
    ) -> Tensor:
        """Apply ``fn(pair_vectors (B, P, 3), pairs) -> (B, ...)`` to positions (B, N, 3) Å.

        Each configuration uses the most recently used cached pair list that covers it; a
        configuration covered by none gets a new list built at its positions (results never
        depend on the cache, only the speed). ``strain`` (3, 3) deforms positions and cell
        together.
        """
        if positions.dim() != 3 or positions.shape[1:] != (self.n_atoms, 3):
            raise DataError(
                f"{type(self).__name__} was built for {self.n_atoms} atoms: positions must "
                f"have shape ({self.n_atoms}, 3) or (B, {self.n_atoms}, 3); got "
                f"{tuple(positions.shape)}."
            )
        pos = positions.to(DTYPE)
        host = pos.detach().cpu().numpy()
        cell = self.cell.numpy()

        def run(p: Tensor, pairs: PairList) -> Tensor:
            vectors = pair_vectors(p, pairs, self.cell)
            if strain is not None:
                eye = torch.eye(3, dtype=vectors.dtype, device=vectors.device)
                vectors = vectors @ (eye + strain)
            return fn(vectors, pairs)

        if not self._lists and self._seed_positions is not None:
            self._lists.append(self.pair_list(self._seed_positions))
        assignment = np.full(host.shape[0], -1)
        for k, pairs in enumerate(self._lists):
            todo = assignment < 0
            if not todo.any():
                break
            hit = np.zeros_like(todo)
            hit[todo] = pairs.covers(host[todo], cell)
            assignment[hit] = k
        for b in np.nonzero(assignment < 0)[0]:
            if assignment[b] >= 0:
                continue
            pairs = self.pair_list(host[b])
            self._lists.append(pairs)
            k = len(self._lists) - 1
            todo = assignment < 0
            hit = np.zeros_like(todo)
            hit[todo] = pairs.covers(host[todo], cell)
            assignment[hit] = k
            assignment[b] = k
        used = np.unique(assignment)
        if len(used) == 1:
            out = run(pos, self._lists[int(used[0])])
        else:
            parts: list[Tensor] = []
            order: list[np.ndarray] = []
            for k in used:
                members = np.nonzero(assignment == k)[0]
                parts.append(run(pos[torch.as_tensor(members)], self._lists[int(k)]))
                order.append(members)
            inverse = np.argsort(np.concatenate(order))
            out = torch.cat(parts)[torch.as_tensor(inverse)]
        self._remember(used)
        return out

    def _remember(self, used: np.ndarray) -> None:
        """Move the lists just used to the front of the cache; drop the oldest beyond the limit."""
        used_set = {int(k) for k in used}
        front = [self._lists[k] for k in sorted(used_set)]
        rest = [p for k, p in enumerate(self._lists) if k not in used_set]
        self._lists = (front + rest)[: self.max_cached_lists]

    def forward(self, positions: Tensor, strain: Tensor | None = None) -> Tensor:
        """Energy in eV: scalar for positions (N, 3), shape (B,) for (B, N, 3) (Å).

        ``strain`` (3, 3) deforms positions and cell together (for the stress, by autograd).
        """
        single = positions.dim() == 2
        pos = positions.unsqueeze(0) if single else positions
        energies = self.map_pairs(pos, self.energy_from_pairs, strain)
        return energies[0] if single else energies


def energy_and_forces(
    model: nn.Module, positions: Tensor, *, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """Energies (eV) and forces ``-dE/dR`` (eV/Å) of a torch energy model by autograd.

    ``positions`` (N, 3) or (B, N, 3) in Å; returns energy of shape () or (B,) and forces of
    the same shape as ``positions``. The model's parameters are not touched.
    """
    with torch.enable_grad():
        pos = positions.detach().clone().requires_grad_(True)
        energy = model(pos)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
    if create_graph:
        return energy, -grad
    return energy.detach(), -grad.detach()


def stress(model: PeriodicPotential, positions: Tensor) -> Tensor:
    """Stress ``(1/V) dE/dε`` in eV/Å³ (3×3, symmetric) by autograd through a strain."""
    with torch.enable_grad():
        strain = torch.zeros(3, 3, dtype=DTYPE, requires_grad=True)
        energy = model(positions.detach().to(DTYPE), strain=strain)
        (grad,) = torch.autograd.grad(energy, strain)
    volume = abs(float(torch.linalg.det(model.cell)))
    return 0.5 * (grad + grad.T) / volume


__all__ = ["DTYPE", "PeriodicPotential", "energy_and_forces", "stress"]
