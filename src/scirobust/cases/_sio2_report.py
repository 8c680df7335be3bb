"""Tables and figures of the sio2 case (paper 002 Table 1, Figs. 1-3)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from scirobust.atomistic.distortion import (
    ADVERSARIAL_FORCE,
    alignment_records,
    distort,
    participation,
    rmse_mev_per_atom,
)
from scirobust.cases._sio2_pairs import MODEL_CHGNET_ORIGINAL, MODEL_PAPER
from scirobust.report import COLORS, plot_metric_vs_eps, save_case_figure
from scirobust.report import write_case_table as table
from scirobust.results import Record, Results

if TYPE_CHECKING:
    from scirobust.cases import CaseOptions
    from scirobust.cases.sio2 import Built, Measured, Pair, Sio2Settings

METRIC, RANDOM = "energy_error_mev_per_atom", "random_gaussian"
OUTLIER_MEV_PER_ATOM = 500.0  # an error this large means atoms were pushed into the wall
PAPER_GD_GROWTH = 5.0  # "more than 5 times larger after 30 steps"


def write_tables(directory: Path, s: Sio2Settings, b: Built, m: Measured) -> None:
    """Table 1 of every pair (with errors beyond the wall and how many atoms A moves), cos θ
    by energy, training curves of both BP-NNs."""
    tables, above = directory / "tables", f"above_{OUTLIER_MEV_PER_ATOM:g}_mev_per_atom"
    pairs = m.pairs()
    table(tables / "distortion_table.csv",
          ["pair", *m.bp.distortion.table()[0], f"adversarial_without_errors_{above}",
           f"adversarial_count_{above}", "atoms_moved_by_A", "largest_atom_share_of_A",
           "adversarial_shortest_distance_angstrom", "adversarial_median_shortest_angstrom"],
          [[p.model, *row.values(), rmse_mev_per_atom(a[np.abs(a) <= OUTLIER_MEV_PER_ATOM])[0],
            int((np.abs(a) > OUTLIER_MEV_PER_ATOM).sum()), *participation_means(p),
            *shortest_distances(p, row["epsilon_angstrom"])]
           for p in pairs
           for row, a in zip(p.distortion.table(), p.distortion.adversarial, strict=True)])
    table(tables / "cos_theta_vs_energy.csv",
          ["pair", "bin", "mean ΔE (meV per cell)", "mean |cos θ|", "stderr", "n"],
          [[p.model, k, binned["energy_above_min_ev"][k] * 1000, binned["mean_abs_cos"][k],
            binned["stderr"][k], int(binned["n"][k])] for p in pairs
           for binned in [p.alignment.binned(s.bin_size)] for k in range(len(binned["n"]))])
    for name, log in (("training.csv", b.log), ("training_paper_protocol.csv", m.paper_log)):
        table(tables / name, ["epoch", "train RMSE (meV/atom)", "validation RMSE (meV/atom)"],
              [[k + 1, a, v] for k, (a, v) in enumerate(zip(
                  log.train_rmse_mev_per_atom, log.val_rmse_mev_per_atom, strict=True))])


def participation_means(p: Pair) -> tuple[float, float]:
    """Mean over configurations of the number of atoms A effectively moves, and of the largest
    single atom's share of |A| (why a total-norm budget can still crowd one bond)."""
    atoms, share = participation(p.alignment.data.direction)
    ok = atoms > 0
    return (float(atoms[ok].mean()), float(share[ok].mean())) if ok.any() else (0.0, 0.0)


def shortest_distances(p: Pair, eps: float) -> tuple[float, float]:
    """Shortest interatomic distance (Å) after the distortion of norm ``eps`` along A: its
    minimum and median over the distorted configurations (Si–O bonds are ~1.6 Å; the BKS
    repulsion is steep below ~1.2 Å, where the BP-NN has never been trained). Minimum-image
    distances, exact for distances below half the cell's width (≥ 5 Å here)."""
    d, n = p.alignment.data, p.distortion.clean.size
    moved = distort(d.configurations.positions[:n], d.direction[:n], eps)
    cell = np.array(d.configurations.template.cell)
    inverse, upper = np.linalg.inv(cell), np.triu_indices(moved.shape[1], 1)
    shortest = []
    for chunk in np.array_split(moved, max(1, n // 64)):
        frac = (chunk[:, :, None] - chunk[:, None, :]) @ inverse
        dist = np.linalg.norm((frac - np.round(frac)) @ cell, axis=-1)
        shortest.append(dist[:, upper[0], upper[1]].min(axis=1))
    short = np.concatenate(shortest)
    return float(short.min()), float(np.median(short))


def alignment_figure(directory: Path, bin_size: int, stem: str, pair: Pair,
                     names: tuple[str, str], title: str) -> None:
    """Paper Fig. 1 (and Fig. 3): parity, histogram of cos θ, |cos θ| vs energy."""
    fig = Figure(figsize=(13, 4), layout="constrained")
    parity, hist, by_energy = fig.subplots(1, 3)
    alignment, stats, d = pair.alignment, pair.alignment.stats(), pair.alignment.data
    random_cos, e_min = stats["random_vector_abs_cos"], alignment.reference_energy_ev
    acc, app = ((e - e_min) / d.configurations.n_atoms * 1000 for e in (
        d.energy_acc_ev, d.energy_app_ev + d.energy_offset_ev))
    parity.scatter(acc, app, s=6, color=COLORS.sky_blue, alpha=0.6, edgecolors="none")
    parity.axline((0, 0), slope=1, ls="--", color=COLORS.clean, lw=1, label="perfect agreement")
    parity.set(xlabel=f"{names[0]} − E_min (meV/atom)", ylabel=f"{names[1]} − E_min (meV/atom)",
               title=f"RMSE {pair.rmse[0]:.2f} meV/atom")
    hist.hist(alignment.cos_theta[alignment.defined], bins=np.linspace(-1, 1, 41), density=True,
              color=COLORS.adversarial, alpha=0.8)
    hist.axvspan(-random_cos, random_cos, color=COLORS.random, alpha=0.2,
                 label=f"two random directions: E|cos θ| = {random_cos:.3f}")
    hist.set(xlabel="cos θ between adversarial direction A and F_app", ylabel="density",
             xlim=(-1, 1), title=f"{stats['n']} configurations")
    binned = alignment.binned(bin_size)
    by_energy.errorbar(binned["energy_above_min_ev"] * 1000.0, binned["mean_abs_cos"],
                       yerr=binned["stderr"], fmt="o-", color=COLORS.adversarial, ms=3, lw=1,
                       capsize=2, label=f"bins of {bin_size} configurations")
    by_energy.axhline(random_cos, color=COLORS.random, ls=":", label="random directions")
    by_energy.set(xlabel="ΔE = E_acc − E_min (meV per cell)", ylabel="mean |cos θ|", ylim=(0, 1))
    for ax in (parity, hist, by_energy):
        ax.legend(fontsize=8)
    fig.suptitle(title)
    save_case_figure(fig, directory, stem, f"{title}: energies of both models (meV/atom above "
                     "the minimum), cos θ(A, F_app), and mean |cos θ| in energy bins.")


def growth_figure(directory: Path, pairs: list[Pair]) -> None:
    """Fig. 3 pairs: RMSE after distortions along A vs random ones, per accurate side."""
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    for p, color in zip(pairs, (COLORS.adversarial, COLORS.sky_blue), strict=False):
        rows = p.distortion.table()
        eps = [r["epsilon_angstrom"] for r in rows]
        ax.plot(eps, [r["adversarial_mev_per_atom"] for r in rows], "o-", color=color,
                label=f"{p.model}: along A")
        ax.errorbar(eps, [r["random_mev_per_atom"] for r in rows], fmt="s--", color=color,
                    yerr=np.nan_to_num([r["random_spread"] for r in rows]), capsize=2,
                    mfc="none", label=f"{p.model}: random ({p.distortion.clean.size} configs)")
    ax.set(xlabel="ε = total L2 norm of the distortion (Å)", yscale="log",
           ylabel="energy RMSE, BKS vs accurate side (meV/atom)",
           title="Fig. 3 pairs: error growth along A vs random")
    ax.legend(fontsize=7)
    save_case_figure(fig, directory, "fig3_error_growth", "BKS against two accurate sides (the "
                     "BKS refit; CHGNet standing in for DFT): energy RMSE after distortions of "
                     "total L2 norm ε along A (solid) and along random directions (dashed, "
                     "spread over draws).")


def write_figures(out: Path, s: Sio2Settings, m: Measured, f: dict[str, Any],
                  table1: Results) -> None:
    """Every figure of the case."""
    alignment_figure(out, s.bin_size, "fig1_bp_vs_bks", m.bp, ("E_BKS", "E_NN"),
                     "Fig. 1: BP-NN (approximate) vs BKS (accurate)")
    alignment_figure(out, s.bin_size, "fig3_bks_vs_refit", m.refit, ("E_refit",
                     "E_BKS + offset"), "Fig. 3, first stand-in: original BKS (approximate) vs "
                     "BKS refit (accurate)")
    if m.chgnet is not None:
        alignment_figure(out, s.bin_size, "fig3_bks_vs_chgnet", m.chgnet,
                         ("E_CHGNet", "E_BKS + offset"), "Fig. 3 with CHGNet standing in for "
                         "DFT: paper's BKS (approximate) vs CHGNet (accurate)")
    growth_figure(out, [p for p in (m.refit, m.chgnet) if p is not None])
    fig = plot_metric_vs_eps(table1, METRIC, Figure(figsize=(6, 4.5), layout="constrained")
                             .subplots())
    fig.axes[0].set(yscale="log", xlabel="ε = total L2 norm of the distortion (Å)",
                    ylabel="energy RMSE vs BKS (meV/atom, log scale)")
    save_case_figure(fig, out, "table1_distortion", "Paper Table 1: energy RMSE after "
                     f"distortions of total L2 norm ε along A ({ADVERSARIAL_FORCE}) and along "
                     f"random directions ({RANDOM}): the BP-NN on the paper's (JAX-MD) BKS, "
                     "which decides the verdict, the BP-NN on the original BKS (diagnostic), "
                     "and the paper's numbers.")
    fig = Figure(figsize=(10, 4), layout="constrained")
    newton, descent = fig.subplots(1, 2)
    cos, change = m.bp.alignment.cos_theta, m.step.relative_change_percent
    ok = m.bp.alignment.defined & np.isfinite(change)
    newton.scatter(cos[ok], change[ok], s=6, alpha=0.6, edgecolors="none",
                   c=np.where(cos[ok] > 0, COLORS.adversarial, COLORS.random))
    newton.axhline(0, color=COLORS.clean, lw=1, ls="--", label="no change")
    newton.set_yscale("symlog", linthresh=10)
    newton.set(xlabel="cos θ(A, F_NN)", ylabel="change of |error| after one 1 fs step (%)",
               title=f"Fig. 2a: error up for {100 * f['frac_up_pos']:.0f} % of cos θ > 0, "
                     f"down for {100 * f['frac_down_neg']:.0f} % of cos θ < 0")
    gd = m.trace.rmse_mev_per_atom
    descent.errorbar(np.arange(len(gd)), gd, yerr=np.nan_to_num(m.trace.rmse_stderr), ms=3,
                     fmt="o-", color=COLORS.adversarial, capsize=2,
                     label=f"ours ({m.trace.errors_mev_per_atom.shape[1]} configurations)")
    descent.axhline(gd[0], color=COLORS.clean, ls=":", lw=1, label="error before any step")
    descent.set(xlabel="gradient-descent step with F_NN", ylabel="energy RMSE vs BKS (meV/atom)",
                title=f"Fig. 2b: ×{f['gd_growth']:.2f} after {s.n_relax_steps} steps "
                      f"(paper: > ×{PAPER_GD_GROWTH:g})")
    for ax in (newton, descent):
        ax.legend(fontsize=8)
    save_case_figure(fig, out, "fig2_following_f_nn", "Paper Fig. 2: change of the error "
                     "after one velocity-Verlet step from rest against cos θ (a), and the RMSE "
                     "along gradient descent with the BP-NN forces (b).")


def extra_notes(s: Sio2Settings, m: Measured, *, paper_train_rmse: float) -> list[str]:
    """Report notes on the paper-protocol BP-NN (Table 1's verdict) and the CHGNet pair."""
    assert m.paper is not None and m.paper_log is not None
    eps_max, log, p = max(s.epsilons_angstrom), m.paper_log, m.paper
    big = p.distortion.adversarial[s.epsilons_angstrom.index(eps_max)]
    atoms, share = participation_means(p)
    row = p.rows[eps_max]
    notes = [
        f"Table 1 under the paper's protocol ({p.model}, decides the verdict): validation RMSE "
        f"{log.final_val_rmse:.2f} meV/atom after {log.epochs} epochs ({log.stopped}); test "
        f"RMSE {p.rmse[0]:.2f} ± {p.rmse[1]:.2f} meV/atom (paper: {paper_train_rmse}); at ε = "
        f"{eps_max:g} Å the median |error| goes {row['random_median_abs_mev_per_atom']:.1f} → "
        f"{row['adversarial_median_abs_mev_per_atom']:.1f} meV/atom and "
        f"{int((np.abs(big) > OUTLIER_MEV_PER_ATOM).sum())} of {big.size} configurations "
        f"exceed {OUTLIER_MEV_PER_ATOM:g} meV/atom along A. A moves ≈ {atoms:.0f} of "
        f"{p.alignment.data.configurations.n_atoms} atoms (participation ratio), the largest "
        f"one by {share:.2f}·ε on average, and the shortest interatomic distance after ε = "
        f"{eps_max:g} Å along A is {shortest_distances(p, eps_max)[0]:.2f} Å (Si–O bonds ≈ 1.6 "
        "Å): a total-norm budget still lets the adversary compress single bonds into the steep "
        "BKS repulsion, which the BP-NN never saw (tables/distortion_table.csv).",
    ]
    if "skipped" in m.chgnet_info:
        notes.append(m.chgnet_info["skipped"])
    if m.chgnet is not None:
        info, n = m.chgnet_info, len(m.chgnet.alignment.cos_theta)
        notes.append(
            f"CHGNet pair: positions relaxed in {info.get('optimizer_steps')} steps to "
            f"{info.get('max_force_ev_per_angstrom', float('nan')):.3f} eV/Å; cos θ on {n} "
            f"configurations, distortions on {m.chgnet.distortion.clean.size} "
            f"(ε = {', '.join(f'{e:g}' for e in s.chgnet_epsilons_angstrom)} Å, "
            f"{s.chgnet_n_random} random draw(s)); {info.get('wall_time_s', 0.0):.0f} s in all; "
            f"energy offset {m.chgnet.distortion.energy_offset_ev:.2f} eV removed.")
    return notes


def records(s: Sio2Settings, b: Built, m: Measured) -> Results:
    """Every record of the case and its per-sample arrays."""
    from scirobust.cases.sio2 import (  # the case module imports this one
        CASE_NAME,
        MODEL,
        MODEL_PAIR2,
        NAN,
        PAPER_ADVERSARIAL,
        PAPER_EPSILONS,
        PAPER_MODEL,
        PAPER_RANDOM,
    )

    rec = functools.partial(Record, CASE_NAME)
    out = m.bp.distortion.to_records(CASE_NAME, MODEL, METRIC)
    for eps, r, a in zip(PAPER_EPSILONS, PAPER_RANDOM, PAPER_ADVERSARIAL, strict=True):
        out += [rec(PAPER_MODEL, RANDOM, eps, METRIC, r, kind="random"),
                rec(PAPER_MODEL, ADVERSARIAL_FORCE, eps, METRIC, a, kind="adversarial")]
    clean = functools.partial(rec, MODEL, "clean", 0.0, kind="clean")
    out += [clean("test_rmse_mev_per_atom", *m.bp.rmse, m.bp.distortion.clean.size),
            clean("validation_rmse_mev_per_atom", b.log.final_val_rmse, NAN, s.n_val)]
    out += (alignment_records(CASE_NAME, MODEL, m.bp.alignment)
            + alignment_records(CASE_NAME, MODEL_PAIR2, m.refit.alignment, stderr=False)
            + m.refit.distortion.to_records(CASE_NAME, MODEL_PAIR2, METRIC)
            + m.step.to_records(CASE_NAME, MODEL, m.bp.alignment)
            + m.trace.to_records(CASE_NAME, MODEL))
    dist, bp, refit = m.bp.distortion, m.bp.alignment, m.refit.alignment
    assert m.paper is not None and m.paper_log is not None
    extra = [rec(MODEL_PAPER, "clean", 0.0, "test_rmse_mev_per_atom", *m.paper.rmse,
                 m.paper.distortion.clean.size, kind="clean"),
             rec(MODEL_PAPER, "clean", 0.0, "validation_rmse_mev_per_atom",
                 m.paper_log.final_val_rmse, NAN, s.n_val, kind="clean")]
    for p in (m.paper, m.chgnet):
        extra += [] if p is None else (p.distortion.to_records(CASE_NAME, p.model, METRIC)
                                       + alignment_records(CASE_NAME, p.model, p.alignment))
    if m.chgnet_original is not None:
        extra += alignment_records(CASE_NAME, MODEL_CHGNET_ORIGINAL, m.chgnet_original)
    more = {"paper_protocol_test_error_mev_per_atom": m.paper.alignment.data.error_mev_per_atom,
            "paper_protocol_test_displacement_norm_angstrom": m.paper_norms,
            **{f"paper_protocol_{ADVERSARIAL_FORCE}|{e!r}|error_mev_per_atom": errors
               for e, errors in zip(m.paper.distortion.epsilons, m.paper.distortion.adversarial,
                                    strict=True)}}
    if m.chgnet is not None:
        more.update(chgnet_cos_theta=m.chgnet.alignment.cos_theta,
                    chgnet_energy_above_min_ev=m.chgnet.alignment.energy_above_min_ev)
    return Results(out + m.audit.records + extra, per_sample={**more,
        "bp_test_error_mev_per_atom": m.bp.alignment.data.error_mev_per_atom,
        "bp_test_cos_theta": bp.cos_theta, "bp_test_cos_defined": bp.defined.astype(np.int8),
        "bp_test_energy_above_min_ev": bp.energy_above_min_ev,
        "bp_test_displacement_norm_angstrom": b.test_norms,
        "bp_newton_error_change_percent": m.step.relative_change_percent,
        "bp_gradient_descent_errors_mev_per_atom": m.trace.errors_mev_per_atom,
        "pair2_cos_theta": refit.cos_theta, "pair2_energy_above_min_ev": refit.energy_above_min_ev,
        **{f"bp_{label}|{e!r}|error_mev_per_atom": errors for label, per_eps in (
            (ADVERSARIAL_FORCE, dist.adversarial), (RANDOM, dist.random[RANDOM]))
           for e, errors in zip(dist.epsilons, per_eps, strict=True)}})


def notes(options: CaseOptions, s: Sio2Settings, b: Built, m: Measured, doc: str) -> list[str]:
    """The report's notes: mode, protocol, training, medians and wall outliers, units."""
    from scirobust.cases.sio2 import PAPER_TRAIN_RMSE

    eps_max, n_test = max(s.epsilons_angstrom), m.bp.distortion.clean.size
    row, big = m.bp.rows[eps_max], m.bp.distortion.adversarial[s.epsilons_angstrom.index(eps_max)]
    return [
        f"Mode: {'quick' if options.quick else 'full'} (settings in the metadata).",
        *(" ".join(doc.split("\n\n")[k].split()) for k in (1, 2) if doc),
        f"BP-NN validation RMSE {b.log.final_val_rmse:.2f} meV/atom after {b.log.epochs} epochs "
        f"({b.log.stopped}); test RMSE {m.bp.rmse[0]:.2f} ± {m.bp.rmse[1]:.2f} meV/atom on "
        f"{n_test} configurations (paper: {PAPER_TRAIN_RMSE} meV/atom).",
        f"At ε = {eps_max:g} Å the median |error| goes {row['random_median_abs_mev_per_atom']:.1f}"
        f" → {row['adversarial_median_abs_mev_per_atom']:.1f} meV/atom ({RANDOM} → "
        f"{ADVERSARIAL_FORCE}); {int((np.abs(big) > OUTLIER_MEV_PER_ATOM).sum())} of {n_test} "
        f"configurations exceed {OUTLIER_MEV_PER_ATOM:g} meV/atom along A (atoms pushed into "
        "the short-range wall, which dominates the RMSE).",
        f"The 1 fs step moves atoms by at most {m.step.max_displacement_angstrom:.2e} Å; the "
        f"training-free pair has a {m.refit.distortion.energy_offset_ev:.3f} eV offset removed. "
        f"Records: {METRIC} is the RMSE over configurations of the per-atom energy error "
        f"(meV/atom); epsilon the total L2 norm of the distortion (Å); {RANDOM}: mean of the "
        f"RMSE over {s.n_random} draws, spread = std over draws; newton_step_1fs: epsilon = "
        "mean displacement of the step (Å); gradient_descent: the descent step in 'step'; "
        "random_direction: E|cos θ| of two random directions in 3N dimensions.",
        *([f"--device {options.device} ignored: 96-atom cells run on the CPU."]
          if options.device != "cpu" else []),
        *extra_notes(s, m, paper_train_rmse=PAPER_TRAIN_RMSE),
    ]
