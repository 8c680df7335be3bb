"""Readings of the Poisson case (problem and paper in `scirobust.cases.poisson`): the Rel MSE
rows derived from an audit, the second attack objective (the networks' own physics-informed
loss) and the PINN's training-length study. All quantities dimensionless.

The attack loss is unstated in paper 000 (§5.6: "we apply the FGSM to the test data"; Fig. 1
defines FGSM through the loss l(f(x), y) with the true label y), so two objectives are audited:

* ``error`` (decides the verdict): squared error against the exact solution at the perturbed
  point, (u_net(x') − u(x'))². The paper's FGSM is defined against the true label, attacks
  "the test data" (points with known u), and the RNN has no gradient-trained loss at all, so
  this is the one objective the paper's text applies to both networks alike.
* ``residual`` (reported beside it): the loss each network was fitted to, per point — the
  PINN's training loss and the RNN's least-squares rows are the same two terms with the same
  boundary penalty P = 100 (`ResidualObjective`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from scirobust.audit import audit
from scirobust.cases._poisson_physics import F_SCALE, source, u_exact
from scirobust.errors import ConfigError, ObjectiveError
from scirobust.report import COLORS, save_case_figure, write_case_table
from scirobust.results import Perturbed, Record, Results
from scirobust.sweep import AttackRun, Sweep

__all__ = ["DECIDING", "READINGS", "RESIDUAL_ATTACK", "TRAINING_FRACTIONS", "ResidualObjective",
           "Snapshots", "laplacian", "rel_mse_records", "rel_values", "residual_records",
           "training_iterations", "training_length_outputs", "training_length_rows"]

READINGS = {"error": "fgsm", "residual": "fgsm_residual"}
"""Attack objective → label of its FGSM rows (the random control needs no objective)."""
DECIDING = "error"
"""The reading that decides the verdict, fixed before any result (argued in the docstring)."""
RESIDUAL_ATTACK = READINGS["residual"]
TRAINING_FRACTIONS: tuple[float, ...] = (0.1, 0.3, 0.6, 1.0)
"""Training-length study: the PINN is audited after these fractions of its own iterations
(fixed beforehand; in full mode 0.3 × 30 000 = 9000 is the quick mode's length)."""
ITERATIONS_LABEL = "PINN Adam iterations"


# --------------------------------------------------------------------------- residual objective
def laplacian(output: Tensor, x: Tensor) -> Tensor:
    """Δu = ∂²u/∂x² + ∂²u/∂y² of ``output`` (N, 1) with respect to ``x`` (N, 2), by autograd
    with ``create_graph`` so the result is itself differentiable in ``x`` (an attack needs its
    gradient). Every sample's output must depend on its own input row only (true for
    pointwise networks)."""
    if not (x.requires_grad and output.requires_grad):
        raise ObjectiveError("The residual objective needs the input-gradient graph: call it "
                             "with x.requires_grad_(True) and output = model(x) under "
                             "torch.enable_grad() (scirobust.attack does both).")
    (grad,) = torch.autograd.grad(output.sum(), x, create_graph=True)
    parts = [torch.autograd.grad(grad[:, i].sum(), x, create_graph=True)[0][:, i : i + 1]
             for i in range(x.shape[1])]
    return torch.stack(parts).sum(dim=0)


@dataclass(frozen=True)
class ResidualObjective:
    """The network's own physics-informed loss at each (perturbed) point, dimensionless:

    * inside Ω: ((Δu_net + f) / 32π²)², the PDE term of the PINN's training loss;
    * on ∂Ω (|x| = 1 or |y| = 1 exactly, where the training's boundary points lie):
      (P (u_net − g) / 32π²)², its boundary term, with g = 0 = u on ∂Ω.

    Per point, these are the two kinds of rows of the RNN's least-squares system as well
    (−Δφ·c = f inside, P·φ·c = P·g on ∂Ω, P = 100), so both networks are attacked through the
    loss they were fitted to. Δu_net comes from autograd (`laplacian`); the PINN trained on the
    same Δu propagated forward (`PINN.value_and_laplacian`, equal to ~1e-14). The 1/32π² scale
    does not change the attack (FGSM takes each point's gradient sign).
    """

    penalty: float = 100.0
    name: str = "residual"

    def __call__(self, output: Tensor, x: Tensor) -> Tensor:
        """Per-point loss, shape (N,), for ``output`` = u_net(x) of shape (N, 1)."""
        if output.shape != (x.shape[0], 1):
            raise ObjectiveError(f"ResidualObjective needs a scalar field u(x) of shape "
                                 f"(N, 1); got {tuple(output.shape)}.")
        pde = (laplacian(output, x) + source(x)) / F_SCALE
        bc = (output - u_exact(x)) * (self.penalty / F_SCALE)
        on_boundary = (x.abs() == 1.0).any(dim=1, keepdim=True)
        return torch.where(on_boundary, bc, pde).pow(2).squeeze(-1)


# --------------------------------------------------------------------------- Rel MSE rows
def rel_values(results: Results, model: str, attack: str, metric: str,
               epsilons: Sequence[float], field: str = "value") -> np.ndarray:
    """``field`` of one model's rows at ``epsilons`` (dimensionless)."""
    return np.array([getattr(r, field) for e in epsilons for r in results.select(
        model=model, attack=attack, epsilon=e, metric=metric)])


def _squared_error(cell: Perturbed) -> Tensor:
    """Squared error against u at the cell's perturbed points, (draws, N)."""
    ref = u_exact(cell.inputs.reshape(-1, 2)).reshape(cell.outputs.shape)
    return (cell.outputs - ref).pow(2).squeeze(-1)


def rel_mse_records(results: Results) -> list[Record]:
    """Rel MSE rows from each attacked ``mse`` row of one audit (keeping its kind): ``rel_mse``
    = |MSE_att − MSE_clean| / MSE_clean (Table 1), ``rel_mse_signed`` without |·| (full-grid
    clean MSE, a fixed number: stderr and spread are MSE_att's divided by it);
    ``rel_mse_same_points`` = signed change with both MSEs over the points each draw keeps in
    Ω, from the audit's perturbed points (mean over draws, spread = std over draws)."""
    clean = results.value(kind="clean", metric="mse")
    clean_sq = _squared_error(results.perturbed[("clean", 0.0)])[0]
    out = []
    for rec in (r for r in results.select(metric="mse") if r.kind in ("random", "adversarial")):
        cell = results.perturbed[(rec.attack, rec.epsilon)]
        same = []
        for sq, kept in zip(_squared_error(cell), cell.kept, strict=True):
            cln = float(clean_sq[kept].mean())
            same.append((float(sq[kept].mean()) - cln) / cln)
        signed = (rec.value - clean) / clean
        for metric, value, stderr, spread in (
            ("rel_mse", abs(signed), rec.stderr / clean, rec.spread / clean),
            ("rel_mse_signed", signed, rec.stderr / clean, rec.spread / clean),
            ("rel_mse_same_points", float(np.mean(same)), float("nan"),
             float(np.std(same, ddof=1)) if len(same) > 1 else float("nan")),
        ):
            out.append(dataclasses.replace(rec, metric=metric, value=value, stderr=stderr,
                                           spread=spread))
    return out


def residual_records(model: nn.Module, points: Tensor, sweep: Sweep, *, case: str, name: str,
                     penalty: float, progress: bool,
                     ) -> tuple[list[Record], dict[str, Any], dict[str, np.ndarray]]:
    """FGSM on ``model`` with `ResidualObjective` (rows labelled `RESIDUAL_ATTACK`), measured
    as the error reading is (MSE against u, Rel MSE rows); the clean rows, identical to the
    error audit's, are left out. Returns the records, the audit's metadata and its per-sample
    arrays of the attacked cells."""
    res = audit(model, points, sweep=sweep.replace(attacks=(AttackRun("fgsm",
                label=RESIDUAL_ATTACK),)), objective=lambda _t: ResidualObjective(penalty),
                reference=u_exact, case=case, model_name=name, keep_perturbed=True,
                progress=progress)
    attacked = [r for r in res.records if r.kind == "adversarial"]
    per_sample = {k: v for k, v in res.per_sample.items()
                  if k.startswith(f"{RESIDUAL_ATTACK}|")}
    return attacked + rel_mse_records(res), res.metadata, per_sample


# --------------------------------------------------------------------------- training length
def training_iterations(n_iterations: int) -> list[int]:
    """Iterations after which the PINN is audited (`TRAINING_FRACTIONS` of ``n_iterations``)."""
    its = sorted({max(1, round(f * n_iterations)) for f in TRAINING_FRACTIONS})
    if its[-1] != n_iterations:
        raise ConfigError(f"TRAINING_FRACTIONS must end at 1.0; got {TRAINING_FRACTIONS}.")
    return its


class Snapshots:
    """Training callback: keeps a float64, frozen copy of the PINN after each of ``iterations``
    (the last one is the trained PINN itself, audited by the case anyway)."""

    def __init__(self, iterations: Sequence[int]) -> None:
        self.wanted, self.final = set(iterations[:-1]), iterations[-1]
        self.models: dict[int, nn.Module] = {}

    def __call__(self, iteration: int, model: nn.Module) -> None:
        """Copy ``model`` if ``iteration`` is one of the snapshots."""
        if iteration in self.wanted:
            self.models[iteration] = copy.deepcopy(model).double().eval().requires_grad_(False)


def training_length_rows(snapshots: Snapshots, results: Results, points: Tensor, sweep: Sweep,
                         epsilons: Sequence[float], *, case: str,
                         progress: bool) -> list[dict[str, Any]]:
    """Per training length: iteration, clean MSE and relative L2 error on the grid, and FGSM
    (error reading) Rel MSE and same-points change per eps. Snapshots get their own FGSM
    audit; the last length is the trained PINN, read from the case's ``results``. The rows go
    to metadata and tables, not to the records: as extra models they would fill every
    standard figure of the report with panels."""
    sources = {it: audit(model, points, sweep=sweep.replace(attacks=("fgsm",)),
                         reference=u_exact, case=case, model_name="PINN", keep_perturbed=True,
                         progress=progress)
               for it, model in sorted(snapshots.models.items())}
    for res in sources.values():
        res.records += rel_mse_records(res)
    sources[snapshots.final] = results
    return [{"iteration": it,
             "clean_mse": res.value(model="PINN", kind="clean", metric="mse"),
             "clean_relative_l2": res.value(model="PINN", kind="clean", metric="relative_l2"),
             **{key: [res.value(model="PINN", attack="fgsm", epsilon=e, metric=metric)
                      for e in epsilons]
                for key, metric in (("fgsm_rel_mse", "rel_mse"),
                                    ("fgsm_rel_mse_same_points", "rel_mse_same_points"))}}
            for it, res in sources.items()]


def training_length_outputs(directory: Path, rows: Sequence[dict[str, Any]],
                            epsilons: Sequence[float], rnn_mse: float) -> list[str]:
    """Table ``training_length.csv``, figure ``training_length`` and a note on how the clean
    MSE (Rel MSE's denominator) and FGSM Rel MSE depend on the PINN's training length, from
    `training_length_rows`; ``rnn_mse`` is the RNN's clean MSE, drawn for comparison."""
    write_case_table(directory / "tables" / "training_length.csv",
                     ["pinn_iterations", "clean_mse", "clean_relative_l2",
                      *[f"fgsm_rel_mse_eps={e:g}" for e in epsilons],
                      *[f"fgsm_same_points_eps={e:g}" for e in epsilons]],
                     [[r["iteration"], r["clean_mse"], r["clean_relative_l2"],
                       *r["fgsm_rel_mse"], *r["fgsm_rel_mse_same_points"]] for r in rows])
    its = np.array([r["iteration"] for r in rows], dtype=float)
    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(its, [r["clean_mse"] for r in rows], "o-", color=COLORS.clean, label="PINN clean MSE")
    left.axhline(rnn_mse, color=COLORS.reference, ls="--", label="RNN clean MSE (no training)")
    left.set(yscale="log", xlabel=ITERATIONS_LABEL,
             ylabel="clean MSE on the grid (u², dimensionless)",
             title="Rel MSE's denominator")
    shades = np.linspace(0.25, 1.0, len(epsilons))
    for k, (e, shade) in enumerate(zip(epsilons, shades, strict=True)):
        right.plot(its, [max(r["fgsm_rel_mse"][k], 1e-4) for r in rows], "o-", ms=3, lw=1.0,
                   color=COLORS.fgsm, alpha=float(shade), label=f"eps = {e:g}")
    right.set(yscale="log", xlabel=ITERATIONS_LABEL,
              ylabel="FGSM Rel MSE (dimensionless)", title="PINN under FGSM (error reading)")
    for ax in (left, right):
        ax.set_xticks(its, [f"{int(i)}" for i in its], fontsize=7)
        ax.grid(alpha=0.3, which="both", lw=0.5)
        ax.legend(fontsize=6.5, ncol=2 if ax is right else 1)
    save_case_figure(fig, directory, "training_length",
                     "The PINN after fixed fractions of its training (one run; its lr schedule "
                     "as set): clean MSE against u on the attack grid (left; RNN's for "
                     "comparison) and FGSM Rel MSE = |MSE_att − MSE_clean| / MSE_clean for "
                     "each eps (L-inf, units of x, y; darker = larger eps). Values below 1e-4 "
                     "drawn at 1e-4.")
    mse = [r["clean_mse"] for r in rows]
    strongest = [r["fgsm_rel_mse"][-1] for r in rows]
    its_text = ", ".join(str(r["iteration"]) for r in rows)
    return [f"Training length: the PINN audited after {its_text} Adam iterations — "
            "snapshots of the one training run (its lr schedule as set), not "
            f"separate runs of those lengths. Clean MSE {' → '.join(f'{v:.3g}' for v in mse)} "
            f"(×{mse[0] / mse[-1]:.3g} smaller at the end); FGSM Rel MSE at eps = "
            f"{epsilons[-1]:g}: {' → '.join(f'{v:.3g}' for v in strongest)}. Rel MSE divides by "
            "the clean MSE, so the same absolute change of the MSE counts more for a "
            "better-trained PINN (tables/training_length.csv)."]
