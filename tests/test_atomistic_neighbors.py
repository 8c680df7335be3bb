"""Pair lists with explicit periodic images (against ASE's neighbour list)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ase")

from ase.build import bulk
from ase.neighborlist import primitive_neighbor_list

from scirobust.atomistic.neighbors import build_pair_list, neighbor_search
from scirobust.atomistic.structures import alpha_cristobalite


def _as_set(i, j, s):
    return set(zip(i.tolist(), j.tolist(), map(tuple, np.asarray(s).astype(int).tolist()),
                   strict=True))


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False,) * 3])
@pytest.mark.parametrize("radius", [3.0, 7.5, 10.5])
def test_neighbor_search_matches_ase(pbc, radius):
    rng = np.random.default_rng(0)
    atoms = alpha_cristobalite((1, 1, 1))
    atoms.cell = np.array(atoms.cell) + rng.normal(0, 0.3, (3, 3))  # skewed cell
    atoms.positions += rng.normal(0, 0.2, atoms.positions.shape)
    atoms.positions[0] += 2 * atoms.cell[0] - atoms.cell[2]  # unwrapped atom
    atoms.pbc = pbc
    ours = neighbor_search(atoms.positions, np.array(atoms.cell), atoms.pbc, radius)
    ref = primitive_neighbor_list("ijS", atoms.pbc, np.array(atoms.cell), atoms.positions,
                                  radius, self_interaction=False)
    assert _as_set(*ours) == _as_set(*ref)


def test_cutoff_larger_than_cell_includes_self_images():
    atoms = bulk("Cu", "fcc", a=3.6)  # one atom, cell ~2.5 Å wide
    i, j, s = neighbor_search(atoms.positions, np.array(atoms.cell), atoms.pbc, 6.0)
    assert len(i) > 50 and (i == 0).all() and (j == 0).all()
    assert not (s == 0).all(axis=1).any()


def test_pair_list_covers_small_moves_not_lattice_translations():
    atoms = alpha_cristobalite((1, 1, 1))
    pairs = build_pair_list(atoms.positions, np.array(atoms.cell), atoms.pbc, 4.0, skin=1.0)
    moved = atoms.positions.copy()
    moved[3] += [0.3, 0.0, 0.2]
    assert pairs.covers(moved)[0]
    moved[3] += atoms.cell[1]
    assert not pairs.covers(moved)[0]
    # expanding the cell brings no new pairs inside the cut-off; compressing it does
    cell = np.array(atoms.cell)
    assert pairs.covers(atoms.positions * 1.2, cell * 1.2)[0]
    assert pairs.covers(atoms.positions * 0.9, cell * 0.9)[0]
    assert not pairs.covers(atoms.positions * 0.75, cell * 0.75)[0]
