"""The BKS potential for SiO₂ in torch (eV, Å), with a damped-shifted-force Coulomb sum.

    U_ab(r) = k q_a q_b / r  +  A_ab exp(-r/ρ_ab)  -  C_ab / r⁶  +  D_ab / r²⁴

with k = 1/(4πε₀) = 14.3996 eV·Å/e².

Periodic Coulomb (stated scheme). The 1/r sum is done with the damped shifted force (DSF)
method of Fennell & Gezelter (J. Chem. Phys. 124, 234104, 2006), a Wolf-type sum:

    u_C(r) = k q_a q_b [erfc(αr)/r - erfc(αr_c)/r_c
                        + (erfc(αr_c)/r_c² + 2α/√π exp(-α²r_c²)/r_c)(r - r_c)]   for r < r_c,
    E_self = -k Σ_a q_a² [erfc(αr_c)/(2r_c) + α/√π],

with α = 0.3 Å⁻¹ and r_c = 10 Å by default (α r_c = 3). Energy and force go continuously to zero at
r_c. Pairs are taken with explicit periodic images (`ase.neighborlist`), so r_c may exceed
half the cell (a 96-atom SiO₂ cell is 10-11 Å wide). The short-range terms are shifted-force
at the same r_c (energy and force continuous). Checks (tests): with these settings the DSF
Madelung constant of rock salt is 1.7475 (exact 1.7476; α = 0.2 would give 1.732), and BKS
α-quartz relaxes to a, c within 1 % of the published BKS values (4.941, 5.449 Å).

Parameter sets:

* `BKS_ORIGINAL`: van Beest, Kramer & van Santen, PRL 64, 1955 (1990): q_Si = 2.4,
  q_O = -1.2; Si–O A = 18003.7572 eV, ρ = 0.205205 Å, C = 133.5381 eV Å⁶; O–O A = 1388.7730 eV,
  ρ = 0.362319 Å, C = 175.0 eV Å⁶; no Si–Si short-range term. Original BKS collapses: the Si–O
  pair energy falls to -∞ below ~1.2 Å. We add the D/r²⁴ wall of the refit below
  (Si–Si 3.42×10⁶, Si–O 29.0, O–O 113.0 eV Å²⁴), which changes the energy near equilibrium
  by < 0.5 meV/Si–O bond and makes the pair repulsive below ~1.1 Å, so random and adversarial
  distortions cannot fall into the collapse. (choice)
* `BKS_REFIT`: the refit of the BKS form used as JAX-MD's ``bks_silica_pair`` (from Liu et al.,
  arXiv:1902.03486, 2019; coefficients converted from kcal/mol): q_Si = 1.954952037,
  q_O = -0.977476019, with the D/r²⁴ wall. We use it as the "more accurate" model of the
  training-free pair (stand-in for DFT), with the same DSF Coulomb settings as BKS_ORIGINAL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scirobust.atomistic.neighbors import PairList
from scirobust.atomistic.potential import DTYPE, PeriodicPotential
from scirobust.errors import DataError

COULOMB_EV_ANGSTROM = 14.399645478425668  # 1/(4πε₀) in eV·Å/e² (CODATA 2018, as ase.units)
KCAL_PER_MOL_EV = 0.04336410390059322  # 1 kcal/mol in eV

_SPECIES = {"Si": 14, "O": 8}


@dataclass(frozen=True)
class BKSParameters:
    """Charges (e) and pair parameters of a Buckingham + Coulomb + r⁻²⁴ model.

    Pair tables are keyed by the sorted pair of element symbols, e.g. ``("O", "Si")``;
    ``A`` in eV, ``rho`` in Å, ``C`` in eV·Å⁶, ``D`` in eV·Å²⁴. Missing pairs are zero.
    ``alpha`` (Å⁻¹) and ``cutoff`` (Å) set the DSF Coulomb sum and the shifted-force cut-off.
    """

    name: str
    charges: dict[str, float]
    A: dict[tuple[str, str], float]
    rho: dict[tuple[str, str], float]
    C: dict[tuple[str, str], float]
    D: dict[tuple[str, str], float]
    alpha: float = 0.3
    cutoff: float = 10.0

    def table(self, which: str, symbols: list[str], default: float = 0.0) -> np.ndarray:
        """Symmetric table (S, S) of one parameter over the given element symbols."""
        values = getattr(self, which)
        out = np.full((len(symbols), len(symbols)), default, dtype=np.float64)
        for a, sa in enumerate(symbols):
            for b, sb in enumerate(symbols):
                key = tuple(sorted((sa, sb)))
                if key in values:
                    out[a, b] = values[key]
        return out


_WALL = {("Si", "Si"): 78940848.06 * KCAL_PER_MOL_EV, ("O", "Si"): 668.7557239 * KCAL_PER_MOL_EV,
         ("O", "O"): 2605.841269 * KCAL_PER_MOL_EV}

BKS_ORIGINAL = BKSParameters(
    name="BKS (van Beest 1990) + D/r^24 wall",
    charges={"Si": 2.4, "O": -1.2},
    A={("O", "Si"): 18003.7572, ("O", "O"): 1388.7730},
    rho={("O", "Si"): 0.205205, ("O", "O"): 0.362319},
    C={("O", "Si"): 133.5381, ("O", "O"): 175.0},
    D=dict(_WALL),
)

BKS_REFIT = BKSParameters(
    name="BKS refit (Liu et al. 2019, JAX-MD bks_silica_pair)",
    charges={"Si": 1.954952037, "O": -0.977476019},
    A={("O", "Si"): 471671.1243 * KCAL_PER_MOL_EV, ("O", "O"): 23138.64826 * KCAL_PER_MOL_EV},
    rho={("O", "Si"): 0.19173537, ("O", "O"): 0.356855265},
    C={("O", "Si"): 2156.074422 * KCAL_PER_MOL_EV, ("O", "O"): 1879.223108 * KCAL_PER_MOL_EV},
    D=dict(_WALL),
)


def dsf_coulomb(r: Tensor, qq: Tensor, alpha: float, cutoff: float) -> Tensor:
    """Damped-shifted-force Coulomb pair energy in eV (zero beyond ``cutoff``), r in Å."""
    erfc_c = math.erfc(alpha * cutoff)
    slope = erfc_c / cutoff**2 + 2 * alpha / math.sqrt(math.pi) * math.exp(
        -(alpha * cutoff) ** 2
    ) / cutoff
    value = torch.special.erfc(alpha * r) / r - erfc_c / cutoff + slope * (r - cutoff)
    return COULOMB_EV_ANGSTROM * qq * value


def dsf_self_energy(charges: Tensor, alpha: float, cutoff: float) -> Tensor:
    """Self term of the DSF sum in eV: ``-k Σ q² [erfc(αr_c)/(2r_c) + α/√π]``."""
    factor = math.erfc(alpha * cutoff) / (2 * cutoff) + alpha / math.sqrt(math.pi)
    return -COULOMB_EV_ANGSTROM * factor * (charges**2).sum()


def short_range(r: Tensor, A: Tensor, rho: Tensor, C: Tensor, D: Tensor) -> Tensor:
    """``A exp(-r/ρ) - C/r⁶ + D/r²⁴`` in eV."""
    return A * torch.exp(-r / rho) - C / r**6 + D / r**24


def short_range_slope(r: Tensor, A: Tensor, rho: Tensor, C: Tensor, D: Tensor) -> Tensor:
    """d/dr of `short_range` in eV/Å."""
    return -A / rho * torch.exp(-r / rho) + 6 * C / r**7 - 24 * D / r**25


def false_well_depth(params: BKSParameters, pair: tuple[str, str], r_min_angstrom: float = 0.8,
                     r_max_angstrom: float = 1.5) -> float:
    """Depth (eV, >= 0) of a false well in one pair's bare energy (unscreened Coulomb + short
    range) on [``r_min_angstrom``, ``r_max_angstrom``]: the largest drop from a barrier top to
    a lower point nearer in. Near zero where the pair rises monotonically towards short range
    (the refit); ~22 eV for the original O–O pair, whose collapse the borrowed D/r²⁴ wall turns
    into an unphysical well near 1.1 Å (a trap for large distortions)."""
    if not 0 < r_min_angstrom < r_max_angstrom:
        raise DataError(f"Need 0 < r_min < r_max (Å); got {r_min_angstrom}, {r_max_angstrom}.")
    key = tuple(sorted(pair))
    if any(s not in params.charges for s in key):
        raise DataError(f"{params.name} knows {sorted(params.charges)}; got the pair {pair}.")
    r = np.linspace(r_min_angstrom, r_max_angstrom, 2001)
    qq = params.charges[key[0]] * params.charges[key[1]]
    a, c, d = (getattr(params, n).get(key, 0.0) for n in ("A", "C", "D"))
    u = (COULOMB_EV_ANGSTROM * qq / r + a * np.exp(-r / params.rho.get(key, 1.0)) - c / r**6
         + d / r**24)
    barrier = np.maximum.accumulate(u[::-1])[::-1]  # highest energy at or beyond each r
    return float(np.max(barrier - u))


class BKS(PeriodicPotential):
    """BKS energy (eV) of SiO₂ positions (Å); usable in batches and as an ASE calculator.

    Build it from an ASE ``Atoms`` (`BKS.from_atoms`) or from atomic numbers and a cell.
    Pair energies are shifted-force at ``params.cutoff`` and the Coulomb part is the DSF sum
    (module docstring).
    """

    def __init__(
        self,
        numbers: np.ndarray | list[int],
        cell: np.ndarray,
        pbc: tuple[bool, bool, bool] | np.ndarray = (True, True, True),
        params: BKSParameters = BKS_ORIGINAL,
        *,
        skin: float = 1.0,
        reference_positions: np.ndarray | None = None,
    ) -> None:
        super().__init__(numbers, cell, pbc, cutoff=params.cutoff, skin=skin,
                         reference_positions=reference_positions)
        self.params = params
        symbols = sorted(params.charges)
        number_to_index = {_SPECIES[s]: k for k, s in enumerate(symbols)}
        unknown = sorted(set(self.numbers.tolist()) - set(number_to_index))
        if unknown:
            raise DataError(
                f"{params.name} knows the elements {symbols}; the atoms contain atomic "
                f"numbers {unknown}."
            )
        species = torch.as_tensor([number_to_index[int(z)] for z in self.numbers.tolist()])
        self.register_buffer("species", species, persistent=False)
        charges = torch.as_tensor([params.charges[s] for s in symbols], dtype=DTYPE)
        self.register_buffer("charges", charges[species], persistent=False)
        for name in ("A", "C", "D"):
            self.register_buffer(name, torch.as_tensor(params.table(name, symbols)),
                                 persistent=False)
        self.register_buffer("rho", torch.as_tensor(params.table("rho", symbols, 1.0)),
                             persistent=False)

    @classmethod
    def from_atoms(cls, atoms, params: BKSParameters = BKS_ORIGINAL, **kwargs) -> BKS:
        """BKS model for the species, cell and pbc of an ASE ``Atoms`` (first neighbour list at
        its positions)."""
        kwargs.setdefault("reference_positions", atoms.positions)
        return cls(atoms.numbers, np.array(atoms.cell), atoms.pbc, params, **kwargs)

    def energy_from_pairs(self, vectors: Tensor, pairs: PairList) -> Tensor:
        """Energies (B,) in eV: half the sum over ordered pairs plus the DSF self term."""
        rc = self.cutoff
        si, sj = self.species[pairs.i], self.species[pairs.j]
        A, rho, C, D = (t[si, sj] for t in (self.A, self.rho, self.C, self.D))
        qq = self.charges[pairs.i] * self.charges[pairs.j]
        r = torch.linalg.vector_norm(vectors, dim=-1)
        inside = r < rc
        r_safe = torch.where(inside, r, torch.full_like(r, rc))
        rc_t = torch.full_like(A, rc)
        sr = (short_range(r_safe, A, rho, C, D) - short_range(rc_t, A, rho, C, D)
              - (r_safe - rc) * short_range_slope(rc_t, A, rho, C, D))
        pair = sr + dsf_coulomb(r_safe, qq, self.params.alpha, rc)
        pair = torch.where(inside, pair, torch.zeros_like(pair))
        self_energy = dsf_self_energy(self.charges, self.params.alpha, rc)
        return 0.5 * pair.sum(dim=-1) + self_energy


__all__ = [
    "BKS",
    "BKS_ORIGINAL",
    "BKS_REFIT",
    "COULOMB_EV_ANGSTROM",
    "BKSParameters",
    "dsf_coulomb",
    "dsf_self_energy",
    "false_well_depth",
]
