"""Periodic pair and triplet lists with explicit images.

A `PairList` holds every ordered pair ``(i, j, S)`` with
``|r_j + S·cell - r_i| < cutoff + skin`` at the positions it was built from (``reference``),
including periodic images beyond the minimum image, so a cut-off larger than half the cell
(10 Å in a 10-11 Å cell) is handled exactly. The list stays valid — every pair closer than
``cutoff`` is in it — while no atom moved more than about ``skin / 2`` from ``reference``
and the cell did not deform much (`PairList.covers`); energy models rebuild it when that
fails (the JAX-MD neighbour-list idea).

Search (choice): a vectorised NumPy search over all periodic images that can hold a pair
(``backend="numpy"``, the default) — for 96 atoms at 10.5 Å it takes ~20 ms where
`ase.neighborlist.primitive_neighbor_list` took 1.4 s here; the tests check that both give the
same pairs. ``backend="ase"`` uses ASE.

All lengths in Å.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass(eq=False)
class PairList:
    """Ordered pairs (both i→j and j→i) within ``cutoff + skin`` of the reference positions.

    Attributes:
        i, j: atom indices of each pair, int64 tensors of shape (P,).
        shifts: integer image shifts S of shape (P, 3); the pair vector is
            ``r_j - r_i + S @ cell`` (Å).
        reference: positions (N, 3) in Å the list was built from.
        cutoff: interaction cut-off in Å (pairs beyond it contribute nothing).
        skin: extra margin in Å; the list covers positions within ``skin/2`` of the reference.
    """

    i: Tensor
    j: Tensor
    shifts: Tensor
    reference: np.ndarray
    cutoff: float
    skin: float
    reference_cell: np.ndarray | None = None
    _triplets: dict[float, tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)
    _reference_vectors: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_pairs(self) -> int:
        """Number of ordered pairs."""
        return int(self.i.shape[0])

    def covers(
        self, positions: np.ndarray | Tensor, cell: np.ndarray | Tensor | None = None
    ) -> np.ndarray:
        """Boolean per configuration: True where the list still holds every pair within
        ``cutoff``.

        ``positions`` (N, 3) or (B, N, 3) Å in the cell ``cell`` (default: the reference cell).
        With ``H = cell_ref⁻¹ cell`` and ``d`` the largest atom displacement measured in the
        reference cell, the list covers the configuration when
        ``cutoff / σ_min(H) + 2 d < cutoff + skin`` (with an unchanged cell: ``d < skin/2``).
        Positions are compared without wrapping, so an atom moved by a lattice vector is
        (correctly) reported as not covered.
        """
        pos = positions.detach().cpu().numpy() if isinstance(positions, Tensor) else positions
        pos = np.asarray(pos, dtype=np.float64)
        if pos.ndim == 2:
            pos = pos[None]
        sigma = 1.0
        if cell is not None and self.reference_cell is not None:
            cell = cell.detach().cpu().numpy() if isinstance(cell, Tensor) else np.asarray(cell)
            if not np.array_equal(cell, self.reference_cell):
                try:
                    inv = np.linalg.inv(cell)
                    h = np.linalg.solve(self.reference_cell, cell)
                except np.linalg.LinAlgError:
                    return np.zeros(pos.shape[0], dtype=bool)
                pos = pos @ inv @ self.reference_cell
                sigma = float(np.linalg.svd(h, compute_uv=False).min())
        moved = np.linalg.norm(pos - self.reference[None], axis=-1).max(axis=-1)
        if sigma <= 0:
            return np.zeros(pos.shape[0], dtype=bool)
        return self.cutoff / sigma + 2 * moved < self.cutoff + self.skin

    def triplets(self, max_distance: float) -> tuple[Tensor, Tensor]:
        """Pairs of pair-indices ``(a, b)`` with the same centre ``i`` and ``a < b``.

        Only pairs whose reference length is below ``max_distance + skin`` take part, and only
        triplets whose third side ``r_jk`` is then also below ``max_distance + skin`` are kept
        (those beyond cannot enter the cut-off while the list covers the positions).
        Returns two int64 tensors of shape (T,) indexing the pair arrays.
        """
        key = float(max_distance)
        if key in self._triplets:
            return self._triplets[key]
        vec = self.reference_vectors()
        length = np.linalg.norm(vec, axis=1)
        limit = max_distance + self.skin
        keep = np.nonzero(length < limit)[0]
        centres = self.i.numpy()[keep]
        order = np.argsort(centres, kind="stable")
        keep, centres = keep[order], centres[order]
        starts = np.searchsorted(centres, np.arange(len(self.reference)), side="left")
        ends = np.searchsorted(centres, np.arange(len(self.reference)), side="right")
        a_parts, b_parts = [], []
        for start, end in zip(starts, ends, strict=True):
            m = end - start
            if m < 2:
                continue
            ia, ib = np.triu_indices(m, k=1)
            a_parts.append(keep[start + ia])
            b_parts.append(keep[start + ib])
        if a_parts:
            a = np.concatenate(a_parts)
            b = np.concatenate(b_parts)
            third = np.linalg.norm(vec[b] - vec[a], axis=1)
            mask = third < limit
            a, b = a[mask], b[mask]
        else:
            a = b = np.zeros(0, dtype=np.int64)
        result = (torch.as_tensor(a, dtype=torch.long), torch.as_tensor(b, dtype=torch.long))
        self._triplets[key] = result
        return result

    def reference_vectors(self) -> np.ndarray:
        """Pair vectors (P, 3) in Å at the reference positions."""
        assert self._reference_vectors is not None, "build PairLists with build_pair_list"
        return self._reference_vectors


def neighbor_search(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray | tuple[bool, bool, bool],
    radius: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs ``(i, j, S)`` with ``|r_j - r_i + S @ cell| < radius`` (Å), i≠j or S≠0.

    Vectorised search over every periodic image that can hold such a pair: positions are
    wrapped into the cell along periodic directions, image shifts up to
    ``ceil(radius / plane spacing) + 1`` are tried, and shifts are returned for the positions
    as given (wrapped or not). Open directions get no images. Returns int arrays i (P,),
    j (P,) and S (P, 3), ordered by i.
    """
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    n = len(positions)
    offsets = np.zeros((n, 3))
    n_images = np.zeros(3, dtype=np.int64)
    if pbc.any():
        try:
            inv = np.linalg.inv(cell)
        except np.linalg.LinAlgError as exc:
            raise ValueError("A periodic system needs a non-singular cell.") from exc
        frac = positions @ inv
        offsets = np.where(pbc, np.floor(frac), 0.0)
        spacing = 1.0 / np.linalg.norm(inv, axis=0)
        n_images = np.where(pbc, np.ceil(radius / spacing).astype(np.int64) + 1, 0)
    wrapped = positions - offsets @ cell
    ranges = [np.arange(-k, k + 1) for k in n_images]
    shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    if pbc.any():
        # wrapped fractional differences lie in (-1, 1): an image S is at least
        # (|S_k| - 1) plane spacings away along every periodic direction k
        gap = ((np.abs(shifts) - 1).clip(min=0) * np.where(pbc, spacing, 0.0)).max(axis=1)
        shifts = shifts[gap < radius]
    diff = wrapped[None, :, :] - wrapped[:, None, :]  # (i, j, 3): r_j - r_i
    r2max = radius * radius
    found_i, found_j, found_s = [], [], []
    chunk = max(1, 2_000_000 // max(n * n, 1))
    for start in range(0, len(shifts), chunk):
        block = shifts[start : start + chunk]
        vec = diff[None] + (block @ cell)[:, None, None, :]
        d2 = np.einsum("sijk,sijk->sij", vec, vec)
        s_idx, i_idx, j_idx = np.nonzero(d2 < r2max)
        keep = ~((i_idx == j_idx) & ~block[s_idx].any(axis=1))
        found_i.append(i_idx[keep])
        found_j.append(j_idx[keep])
        found_s.append(block[s_idx[keep]])
    i = np.concatenate(found_i)
    j = np.concatenate(found_j)
    s = np.concatenate(found_s).astype(np.float64) - offsets[j] + offsets[i]
    order = np.lexsort((j, i))
    return i[order], j[order], np.rint(s[order]).astype(np.int64)


def build_pair_list(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray | tuple[bool, bool, bool],
    cutoff: float,
    skin: float = 0.5,
    backend: str = "numpy",
) -> PairList:
    """All ordered pairs within ``cutoff + skin`` Å, with explicit periodic images.

    ``backend="numpy"``: `neighbor_search`; ``"ase"``:
    `ase.neighborlist.primitive_neighbor_list`. Both return shifts valid for the positions as
    given (wrapped or not).
    """
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    if backend == "ase":
        from ase.neighborlist import primitive_neighbor_list

        i, j, shifts = primitive_neighbor_list(
            "ijS", np.asarray(pbc, dtype=bool), cell, positions, cutoff + skin,
            self_interaction=False,
        )
    elif backend == "numpy":
        i, j, shifts = neighbor_search(positions, cell, pbc, cutoff + skin)
    else:
        raise ValueError(f"backend must be 'numpy' or 'ase'; got {backend!r}.")
    vectors = positions[j] - positions[i] + shifts @ cell
    pairs = PairList(
        i=torch.as_tensor(i, dtype=torch.long),
        j=torch.as_tensor(j, dtype=torch.long),
        shifts=torch.as_tensor(shifts, dtype=torch.float64),
        reference=positions.copy(),
        cutoff=float(cutoff),
        skin=float(skin),
        reference_cell=cell.copy(),
    )
    pairs._reference_vectors = vectors
    return pairs


def pair_vectors(positions: Tensor, pairs: PairList, cell: Tensor) -> Tensor:
    """Pair vectors ``r_j - r_i + S @ cell`` in Å, shape (B, P, 3) for positions (B, N, 3)."""
    offsets = pairs.shifts.to(positions) @ cell.to(positions)
    return positions[:, pairs.j] - positions[:, pairs.i] + offsets


__all__ = ["PairList", "build_pair_list", "neighbor_search", "pair_vectors"]
