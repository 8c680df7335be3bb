"""Adversarial forces of a Behler–Parrinello network trained on BKS SiO₂ (paper 002).

``scirobust reproduce sio2 [--quick]``. As in the paper: BKS with its original charges and constants
(van Beest et al. 1990); 96 atoms (32 Si, 64 O); Gaussian displacements with total norm uniform in
[0, 1] Å (2000 test configurations in full mode); a BP-NN (per-element MLPs 2×30 tanh) trained to
5.1 meV/atom; A = 2(E_BKS − E_NN)(F_NN − F_BKS) and cos θ(A, F_NN); distortions of total L2 norm ε =
0, 0.1, 0.3, 0.5 Å along A (attack ``adversarial_force``) vs Gaussian directions of the same norm
(``random_gaussian``) by `atomistic.distortion_sweep` (Table 1); one 1 fs velocity-Verlet step from
rest (Fig. 2a) and 30 gradient-descent steps with F_NN (Fig. 2b). Stand-ins and choices: a D/r²⁴
wall against BKS's short-range collapse; damped-shifted-force Coulomb (α = 0.3 Å⁻¹, r_c = 10 Å);
α-cristobalite 2×2×2 relaxed with BKS (the paper names no structure); our symmetry functions; Adam
with early stop (paper: momentum SGD, 500 epochs); γ = 0.01 Å²/eV ≈ 1/λ_max of the BKS Hessian; for
the training-free pair (§3.2, BKS vs DFT) the JAX-MD refit of BKS (charges 1.955/-0.977) instead of
DFT, around its own minimum, norms in [0, 0.3] Å, a constant energy offset fitted as the mean
difference. FGSM on the coordinates (each moved by ±ε/√(3N) along sign(A): total L2 norm ε) vs
random signs runs on a subset through `scirobust.audit` (`atomistic.audit_coordinates`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg  # noqa: F401  (loads SciPy's BLAS so that threadpool_limits reaches it)
import torch
from matplotlib.figure import Figure
from rich.console import Console
from threadpoolctl import threadpool_limits

from scirobust import atomistic as at
from scirobust.atomistic.calculators import TorchEvaluator
from scirobust.atomistic.distortion import ADVERSARIAL_FORCE, alignment_records, rmse_mev_per_atom
from scirobust.cases import Case, CaseOptions, CaseOutput, Verdict, finish, torch_threads
from scirobust.report import COLORS, plot_metric_vs_eps, save_case_figure, summary_rows
from scirobust.report import write_case_table as table
from scirobust.results import Record, Results

PAPER_EPSILONS = (0.0, 0.1, 0.3, 0.5)
PAPER_RANDOM = (5.1, 5.3, 5.9, 6.8)
PAPER_ADVERSARIAL = (5.1, 15.4, 31.9, 42.0)
PAPER_TRAIN_RMSE = 5.1
PAPER_GD_GROWTH = 5.0  # "more than 5 times larger after 30 steps"
OUTLIER_MEV_PER_ATOM = 500.0  # an error this large means atoms were pushed into the wall

CASE_NAME, MODEL, METRIC, NAN = "sio2", "BP-NN", "energy_error_mev_per_atom", float("nan")
MODEL_PAIR2, PAPER_MODEL, RANDOM = "BKS (vs BKS refit)", "BP-NN (paper 002)", "random_gaussian"
STAND_IN = "BKS + D/r²⁴ wall, shifted-force Coulomb, α-cristobalite, our symmetry functions, Adam"


@dataclasses.dataclass(frozen=True)
class Sio2Settings:
    """Every setting of the case (fixed before looking at results). Units in names."""

    n_train: int = 2000
    n_val: int = 200
    n_test: int = 2000
    displacement_norm_max_angstrom: float = 1.0
    epsilons_angstrom: tuple[float, ...] = PAPER_EPSILONS
    n_random: int = 3
    target_rmse_mev_per_atom: float | None = PAPER_TRAIN_RMSE
    max_epochs: int = 300
    learning_rate: float = 3e-3
    train_batch_size: int = 32
    bin_size: int = 50
    dt_fs: float = 1.0
    n_relax_configs: int = 200
    n_relax_steps: int = 30
    gd_step_angstrom2_per_ev: float = 0.01
    n_audit_configs: int = 200
    pair2_n: int = 1000
    pair2_norm_max_angstrom: float = 0.3
    eval_batch_size: int = 8
    torch_threads: int = 1

    @classmethod
    def quick(cls) -> Sio2Settings:
        """Quick mode: small sets, same protocol (< ~90 s on a laptop CPU)."""
        return cls(n_train=200, n_val=50, n_test=80, n_random=2, max_epochs=150, bin_size=10,
                   n_relax_configs=12, n_audit_configs=16, pair2_n=80)


@dataclasses.dataclass
class Built:
    """BKS, the BP-NN, each pair's (model, configurations, app, acc, E_min in eV, offset)."""

    bks: at.BKS
    bp: at.BehlerParrinello
    log: at.TrainingLog
    test_norms: np.ndarray
    relax_info: dict[str, Any]
    pairs: list[tuple[str, at.Configurations, TorchEvaluator, TorchEvaluator, float, Any]]


def _build(s: Sio2Settings, seed: int, log: Any) -> Built:
    crystal = at.alpha_cristobalite((2, 2, 2))
    (relaxed, info), (relaxed2, info2) = (
        at.relax(crystal, at.TorchCalculator(at.BKS.from_atoms(crystal, p)), cell=True, fmax=1e-3)
        for p in (at.BKS_ORIGINAL, at.BKS_REFIT))
    bks, refit = at.BKS.from_atoms(relaxed), at.BKS.from_atoms(relaxed2, at.BKS_REFIT)
    rng, span = np.random.default_rng(seed), (0.0, s.displacement_norm_max_angstrom)
    train, val, (test, test_norms) = (at.random_displacements(relaxed.positions, n, rng, span)
                                      for n in (s.n_train, s.n_val, s.n_test))
    bks_eval = TorchEvaluator(bks, batch_size=32, name="BKS")
    bp = at.BehlerParrinello.from_atoms(relaxed, generator=torch.Generator().manual_seed(seed))
    training = at.train_energy_model(
        bp, train[0], bks_eval.energies(train[0]), val[0], bks_eval.energies(val[0]),
        max_epochs=s.max_epochs, learning_rate=s.learning_rate, batch_size=s.train_batch_size,
        target_rmse_mev_per_atom=s.target_rmse_mev_per_atom, seed=seed)
    bp.eval()
    log(f"sio2: BP-NN trained ({training.epochs} epochs)")
    pos2, _ = at.random_displacements(relaxed2.positions, s.pair2_n, np.random.default_rng(
        seed + 1), (0.0, s.pair2_norm_max_angstrom))
    e_min = [float(model(torch.as_tensor(atoms.positions)))
             for model, atoms in ((bks, relaxed), (refit, relaxed2))]
    pairs = [(MODEL, at.Configurations(relaxed, test),
              TorchEvaluator(bp, s.eval_batch_size, MODEL), bks_eval, e_min[0], 0.0),
             (MODEL_PAIR2, at.Configurations(relaxed2, pos2),
              TorchEvaluator(at.BKS.from_atoms(relaxed2), 32, "BKS"),
              TorchEvaluator(refit, 32, "BKS refit"), e_min[1], "mean")]
    return Built(bks, bp, training, test_norms, {"bks": info, "refit": info2}, pairs)


@dataclasses.dataclass
class Pair:
    """A measured pair: cos θ (directions, E_min), Table 1 and its rows by ε (Å), RMSE ± SE."""

    model: str
    alignment: at.Alignment
    distortion: at.DistortionSweep
    rows: dict[float, dict[str, float]]
    rmse: tuple[float, float]


@dataclasses.dataclass
class Measured:
    """Every measurement of the case."""

    bp: Pair
    refit: Pair
    step: at.NewtonStep
    trace: at.RelaxationTrace
    audit: Results


def _measure(s: Sio2Settings, seed: int, b: Built, log: Any) -> Measured:
    pairs = []
    for k, (model, configs, app, acc, e_min, offset) in enumerate(b.pairs):
        alignment = at.force_alignment(configs, app, acc, reference_energy_ev=e_min,
                                       energy_offset_ev=offset)
        distortion = at.distortion_sweep(configs, app, acc, epsilons=s.epsilons_angstrom,
                                         n_random=s.n_random, seed=seed + k, data=alignment.data)
        pairs.append(Pair(model, alignment, distortion,
                          {r["epsilon_angstrom"]: r for r in distortion.table()},
                          rmse_mev_per_atom(alignment.data.error_mev_per_atom)))
        log(f"sio2: directions and distortions of {model}")
    _, configs, app, acc, _, _ = b.pairs[0]
    step = at.newton_step(configs, app, acc, dt_fs=s.dt_fs, data=pairs[0].alignment.data)
    trace = at.relaxation_error(configs.subset(slice(0, s.n_relax_configs)), app, acc,
                                n_steps=s.n_relax_steps, method="gd",
                                step_size_angstrom2_per_ev=s.gd_step_angstrom2_per_ev)
    n_audit = min(s.n_audit_configs, len(configs))
    audit = at.audit_coordinates(
        configs.subset(slice(0, n_audit)), b.bp, b.bks, case=CASE_NAME, metric=METRIC,
        model_name=f"{MODEL} (core audit, {n_audit} configurations)", batch_size=s.eval_batch_size,
        epsilons=[e for e in s.epsilons_angstrom if e > 0], n_random=s.n_random, seed=seed)
    log("sio2: Newton step, gradient descent and core audit")
    return Measured(*pairs, step, trace, audit)


def _verdicts(s: Sio2Settings, m: Measured) -> tuple[dict[str, Any], list[Verdict]]:
    """The numbers behind the verdicts, and the verdicts (criteria fixed in code)."""
    rows, gd, eps_max = m.bp.rows, m.trace.rmse_mev_per_atom, max(s.epsilons_angstrom)
    binned = m.bp.alignment.binned(s.bin_size)
    f = {"eps_max": eps_max, "ratio_max": rows[eps_max]["ratio"] if eps_max > 0 else NAN,
         "paper_ratio_max": PAPER_ADVERSARIAL[-1] / PAPER_RANDOM[-1],
         **m.step.sign_agreement(m.bp.alignment),
         "gd_growth": float(gd[-1] / gd[0]) if gd[0] > 0 else NAN,
         "cos_slope_per_ev": NAN if len(binned["n"]) < 2 else float(np.polyfit(
             binned["energy_above_min_ev"], binned["mean_abs_cos"], 1)[0])}
    increasing = bool(np.all(np.diff([r["adversarial_mev_per_atom"] for r in rows.values()]) > 0))
    (c1, r1, n1), (c2, r2, n2) = ((st["mean_abs_cos"], st["random_vector_abs_cos"], st["n"])
                                  for st in (m.bp.alignment.stats(), m.refit.alignment.stats()))
    t1, cos = ("RMSE at ε = {}: random {}, along A {} meV/atom ({} configurations)".format,
               "mean |cos θ| {:.3f} vs {:.3f} for two random directions ({} configurations)".format)
    ours = [", ".join(f"{r[k]:.3g}" for r in rows.values()) for k in (
        "epsilon_angstrom", "random_mev_per_atom", "adversarial_mev_per_atom")]
    checks = [
        ("Distortions along A raise the error far more than random ones (Table 1).",
         "RMSE along A grows with ε and is > 2× random at the largest ε",
         f["ratio_max"] > 2.0 and increasing,
         f"Ratio {f['ratio_max']:.2f} (paper {f['paper_ratio_max']:.2f}).",
         t1(*(", ".join(map(str, v)) for v in (PAPER_EPSILONS, PAPER_RANDOM, PAPER_ADVERSARIAL)),
            2000), t1(ours[0] + " Å", *ours[1:], m.bp.distortion.clean.size), STAND_IN),
        ("A aligns with the model's own forces (Fig. 1b).",
         "mean |cos θ| > 5× that of two random directions", c1 > 5 * r1, f"{c1:.3f} vs {r1:.3f}.",
         "|cos θ| large for most configurations, ≈ 0 for two random vectors (no number given)",
         cos(c1, r1, n1), STAND_IN),
        ("A 1 fs step raises the error if cos θ > 0, lowers it if cos θ < 0 (Fig. 2a).",
         "both fractions > 0.5", f["frac_up_pos"] > 0.5 and f["frac_down_neg"] > 0.5,
         f"{f['frac_up_pos']:.2f} and {f['frac_down_neg']:.2f}.",
         "error almost always up (often > 100 %) if cos θ > 0, down for most if cos θ < 0 (no "
         "number given)", f"error up for {f['frac_up_pos']:.0%} of {f['n_up']} if cos θ > 0, "
         f"down for {f['frac_down_neg']:.0%} of {f['n_down']} if cos θ < 0", STAND_IN),
        (f"30 descent steps with F_NN raise the error > {PAPER_GD_GROWTH:g}× (Fig. 2b).",
         "growth > 1.5×", f["gd_growth"] > 1.5, f"×{f['gd_growth']:.2f}.",
         f"error grows with each step, > {PAPER_GD_GROWTH:g}× after 30 (no RMSE given)",
         f"RMSE {gd[0]:.2f} → {gd[-1]:.2f} meV/atom after {s.n_relax_steps} steps "
         f"({m.trace.errors_mev_per_atom.shape[1]} configurations)", STAND_IN),
        ("A training-free pair aligns too (Fig. 3; here BKS vs BKS refit instead of DFT).",
         "mean |cos θ| > 5× random", c2 > 5 * r2, f"{c2:.3f} vs {r2:.3f}.",
         "BKS vs DFT: A aligned with F_BKS, perhaps less than ML models (no number given)",
         cos(c2, r2, n2), "the JAX-MD BKS refit stands in for DFT, with a fitted energy offset"),
    ]
    return f, [Verdict(claim, criterion, "reproduced" if ok else "not reproduced", detail, *rest)
               for claim, criterion, ok, detail, *rest in checks]


def _records(s: Sio2Settings, b: Built, m: Measured) -> Results:
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
    return Results(out + m.audit.records, per_sample={
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


def _tables(directory: Path, s: Sio2Settings, b: Built, m: Measured) -> None:
    """Table 1 of both pairs (and errors beyond the wall), cos θ by energy, training curve."""
    tables, above = directory / "tables", f"above_{OUTLIER_MEV_PER_ATOM:g}_mev_per_atom"
    table(tables / "distortion_table.csv",
          ["pair", *m.bp.distortion.table()[0], f"adversarial_without_errors_{above}",
           f"adversarial_count_{above}"],
          [[p.model, *row.values(), rmse_mev_per_atom(a[np.abs(a) <= OUTLIER_MEV_PER_ATOM])[0],
            int((np.abs(a) > OUTLIER_MEV_PER_ATOM).sum())] for p in (m.bp, m.refit)
           for row, a in zip(p.distortion.table(), p.distortion.adversarial, strict=True)])
    table(tables / "cos_theta_vs_energy.csv",
          ["pair", "bin", "mean ΔE (meV per cell)", "mean |cos θ|", "stderr", "n"],
          [[p.model, k, binned["energy_above_min_ev"][k] * 1000, binned["mean_abs_cos"][k],
            binned["stderr"][k], int(binned["n"][k])] for p in (m.bp, m.refit)
           for binned in [p.alignment.binned(s.bin_size)] for k in range(len(binned["n"]))])
    table(tables / "training.csv", ["epoch", "train RMSE (meV/atom)", "validation RMSE (meV/atom)"],
          [[k + 1, a, v] for k, (a, v) in enumerate(zip(
              b.log.train_rmse_mev_per_atom, b.log.val_rmse_mev_per_atom, strict=True))])


def _alignment_figure(directory: Path, bin_size: int, stem: str, pair: Pair,
                      names: tuple[str, str], title: str) -> None:
    """Paper Fig. 1 (and its Fig. 3 stand-in): parity, histogram of cos θ, |cos θ| vs energy."""
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


def _figures(out: Path, s: Sio2Settings, m: Measured, f: dict[str, Any], table1: Results) -> None:
    _alignment_figure(out, s.bin_size, "fig1_bp_vs_bks", m.bp, ("E_BKS", "E_NN"),
                      "Fig. 1: BP-NN (approximate) vs BKS (accurate)")
    _alignment_figure(out, s.bin_size, "fig3_bks_vs_refit", m.refit, ("E_refit", "E_BKS + offset"),
                      "Fig. 3 stand-in: original BKS (approximate) vs BKS refit (accurate)")
    fig = plot_metric_vs_eps(table1, METRIC, Figure(figsize=(5, 4), layout="constrained")
                             .subplots())
    fig.axes[0].set(yscale="log", xlabel="ε = total L2 norm of the distortion (Å)",
                    ylabel="energy RMSE vs BKS (meV/atom, log scale)")
    save_case_figure(fig, out, "table1_distortion", "Paper Table 1: energy RMSE after "
                     f"distortions of total L2 norm ε along A ({ADVERSARIAL_FORCE}) and along "
                     f"random directions ({RANDOM}), ours (solid) and the paper's (dotted).")
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


def _notes(options: CaseOptions, s: Sio2Settings, b: Built, m: Measured) -> list[str]:
    eps_max, n_test = max(s.epsilons_angstrom), m.bp.distortion.clean.size
    row, big = m.bp.rows[eps_max], m.bp.distortion.adversarial[s.epsilons_angstrom.index(eps_max)]
    return [
        f"Mode: {'quick' if options.quick else 'full'} (settings in the metadata).",
        *([" ".join(__doc__.split("\n\n")[1].split())] if __doc__ else []),  # the protocol
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
    ]


def run_sio2(options: CaseOptions, settings: Sio2Settings | None = None) -> CaseOutput:
    """Run the SiO₂ reproduction with ``settings`` (default: full, or quick with --quick)."""
    s = settings or (Sio2Settings.quick() if options.quick else Sio2Settings())
    seed, out, started = int(options.seed), Path(options.output), time.perf_counter()
    log = (lambda _: None) if options.quiet else Console(stderr=True).log  # stage done
    torch.manual_seed(seed)
    with torch_threads(s.torch_threads), threadpool_limits(1):
        b = _build(s, seed, log)
        m = _measure(s, seed, b, log)
    (f, verdicts), results = _verdicts(s, m), _records(s, b, m)
    _tables(out, s, b, m)
    table1 = Results([r for r in results.records if r.metric == METRIC and r.model in (
        MODEL, PAPER_MODEL)])
    _figures(out, s, m, f, table1)
    results.metadata = {
        "case": CASE_NAME, "description": "Adversarial forces (paper 002) of a BP network "
        "trained on BKS SiO₂: alignment of A with the model's forces, distortions along A vs "
        "random directions, following the model's forces, and a training-free pair.",
        "notes": _notes(options, s, b, m), "step_label": "gradient-descent step with F_NN",
        "headline_metric": "median_abs_energy_error_mev_per_atom",  # robust to wall outliers
        "settings": dataclasses.asdict(s), "seed": seed, "quick": bool(options.quick),
        "findings": f, "wall_time_s": time.perf_counter() - started,
        "training_time_s": b.log.training_time_s, "relaxation": b.relax_info,
        "cos_theta_stats": {"bp_vs_bks": m.bp.alignment.stats(),
                            "bks_vs_refit": m.refit.alignment.stats()},
        "distortion_sweep": m.bp.distortion.sweep.describe(),
        "core_audit": {k: m.audit.metadata.get(k) for k in
                       ("checks", "warnings", "epsilon_units", "wall_time_s")},
    }
    return finish(results, out, title="Adversarial forces of a BP network on BKS SiO₂ (paper 002)",
                  summary=summary_rows(table1, METRIC), verdicts=verdicts)


CASE = Case(name=CASE_NAME, title="Adversarial forces: BP network trained on BKS SiO₂ (paper 002)",
            paper="002 Adversarial Forces of Physical Models, §3.1, Table 1, Figs. 1-3",
            run=run_sio2)
