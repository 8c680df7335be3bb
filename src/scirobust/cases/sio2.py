"""Adversarial forces of a Behler–Parrinello network trained on BKS SiO₂ (paper 002).

``scirobust reproduce sio2 [--quick]``.

What is exact and what is a stand-in:

* Accurate model: BKS with the original charges 2.4/-1.2 and constants (van Beest et al. 1990)
  — exact — plus a D/r²⁴ wall against the known short-range collapse (stated choice), periodic
  Coulomb by a damped-shifted-force sum (α = 0.3 Å⁻¹, r_c = 10 Å, explicit images).
* Structure: 96 atoms (32 Si, 64 O) as in the paper, but built as α-cristobalite 2×2×2 relaxed
  with BKS (positions and cell); the paper does not say which SiO₂ structure it used.
* Data: random Gaussian displacements with total norm uniform in [0, 1] Å as in the paper;
  2000 test configurations in full mode (paper: 2000).
* Model: BP-NN with radial and angular symmetry functions and per-element MLPs 2×30 tanh,
  trained on BKS energies with Adam until the validation RMSE reaches 5.1 meV/atom (the
  paper's accuracy; it used momentum SGD for 500 epochs).
* Protocol (paper): adversarial direction A = 2(E_BKS - E_NN)(F_NN - F_BKS); cos θ(A, F_NN);
  mean |cos θ| against the energy above the minimum in bins of 50 configurations; distortions
  of total L2 norm ε = 0, 0.1, 0.3, 0.5 Å along A vs random directions (Table 1); one
  velocity-Verlet step of 1 fs from rest with F_NN (Fig. 2a); 30 steps of gradient descent with
  F_NN (Fig. 2b; γ = 0.01 Å²/eV ≈ 1/λ_max of the BKS Hessian, our choice).
* Training-free pair (paper §3.2, BKS vs DFT): original BKS as E_app against the refit of the BKS
  form used by JAX-MD (charges 1.955/-0.977, D/r²⁴ wall) as the stand-in E_acc, around the
  refit's own minimum, with displacement norms uniform in [0, 0.3] Å and a constant energy
  offset fitted as the mean difference.
* FGSM-style coordinate attacks (sign of A) on a subset through the core `scirobust.audit`, with
  each coordinate moved by ε/√(3N) so that the total L2 norm is ε.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import html
import io
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scirobust.cases import Case, CaseOptions, CaseOutput, torch_threads
from scirobust.results import Record, Results, atomic_write_bytes, atomic_write_text

PAPER_EPSILONS = (0.0, 0.1, 0.3, 0.5)
PAPER_RANDOM = (5.1, 5.3, 5.9, 6.8)
PAPER_ADVERSARIAL = (5.1, 15.4, 31.9, 42.0)
PAPER_TRAIN_RMSE = 5.1
PAPER_GD_GROWTH = 5.0  # "more than 5 times larger after 30 steps"
OUTLIER_MEV_PER_ATOM = 500.0  # an error this large means atoms were pushed into the wall

# Okabe–Ito palette: random blue, adversarial vermillion, clean black
BLUE, VERMILLION, BLACK = "#0072B2", "#D55E00", "#000000"
ORANGE, SKY, GREEN, PURPLE = "#E69F00", "#56B4E9", "#009E73", "#CC79A7"

CASE_NAME = "sio2"
MODEL = "BP-NN"
MODEL_PAIR2 = "BKS (vs BKS refit)"
METRIC = "energy_error_mev_per_atom"


@dataclass(frozen=True)
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

    @classmethod
    def tiny(cls) -> Sio2Settings:
        """Smallest meaningful run, for tests (same protocol, tiny sets)."""
        return cls(n_train=100, n_val=25, n_test=32, n_random=2, max_epochs=60, bin_size=8,
                   n_relax_configs=4, n_relax_steps=5, n_audit_configs=4, pair2_n=24)


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _thread_limits(n_threads: int) -> Iterator[None]:
    """Limit torch threads and (if threadpoolctl is installed) BLAS threads; restore after."""
    limiter: Any = contextlib.nullcontext()
    try:
        import scipy.linalg  # noqa: F401  (load its BLAS before limiting it)
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(1)
    except ImportError:
        pass
    with torch_threads(n_threads), limiter:
        yield


def _write_csv(path: Path, rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([_fmt(v) for v in row])
    atomic_write_text(path, buffer.getvalue())


def _fmt(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return "" if not math.isfinite(float(value)) else f"{float(value):.6g}"
    return value


def _save_figure(fig: Any, directory: Path, name: str) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, dpi=150, bbox_inches="tight")
        atomic_write_bytes(directory / f"{name}.{ext}", buffer.getvalue())
        paths.append(f"figures/case/{name}.{ext}")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _parity_panel(ax: Any, e_acc_mev: np.ndarray, e_app_mev: np.ndarray, xlabel: str,
                  ylabel: str, rmse: float) -> None:
    ax.scatter(e_acc_mev, e_app_mev, s=6, color=SKY, alpha=0.6, edgecolors="none")
    lo = float(min(e_acc_mev.min(), e_app_mev.min()))
    hi = float(max(e_acc_mev.max(), e_app_mev.max()))
    ax.plot([lo, hi], [lo, hi], "--", color=BLACK, lw=1, label="perfect agreement")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"RMSE {rmse:.2f} meV/atom")
    ax.legend(loc="upper left", fontsize=8)


def _hist_panel(ax: Any, cos: np.ndarray, baseline: float) -> None:
    ax.hist(cos, bins=np.linspace(-1, 1, 41), density=True, color=VERMILLION, alpha=0.8)
    ax.axvspan(-baseline, baseline, color=BLUE, alpha=0.2,
               label=f"two random directions: E|cos θ| = {baseline:.3f}")
    ax.set_xlabel("cos θ between adversarial direction A and F_app")
    ax.set_ylabel("density")
    ax.set_xlim(-1, 1)
    ax.legend(loc="upper center", fontsize=8)


def _binned_panel(ax: Any, binned: dict[str, np.ndarray], bin_size: int, baseline: float) -> None:
    x = binned["energy_above_min_ev"] * 1000.0
    ax.errorbar(x, binned["mean_abs_cos"], yerr=binned["stderr"], fmt="o-", color=VERMILLION,
                ms=3, lw=1, capsize=2, label=f"bins of {bin_size} configurations")
    ax.axhline(baseline, color=BLUE, ls=":", label="random directions")
    ax.set_xlabel("ΔE = E_acc − E_min (meV per cell)")
    ax.set_ylabel("mean |cos θ|")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)


def _write_report(results: Results, directory: Path, title: str) -> Path:
    """The standard report if `scirobust.report` is available, else a minimal HTML page."""
    try:
        from scirobust.report import write_report  # type: ignore[attr-defined]
    except ImportError:
        write_report = None
    if write_report is not None:
        return Path(write_report(results, directory, title=title))
    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
             f"<body><h1>{html.escape(title)}</h1>",
             "<p>(scirobust.report is not installed here; minimal report.)</p>",
             f"<p>{html.escape(str(results.metadata.get('description', '')))}</p><ul>"]
    parts += [f"<li>{html.escape(str(n))}</li>" for n in results.metadata.get("notes", [])]
    parts.append("</ul>")
    for png in sorted((directory / "figures" / "case").glob("*.png")):
        parts.append(f"<img src='figures/case/{png.name}' style='max-width:45%'>")
    for table in sorted((directory / "tables").glob("*.csv")):
        rows = list(csv.reader(table.read_text(encoding="utf-8").splitlines()))
        parts.append(f"<h3>{html.escape(table.name)}</h3><table border='1'>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                  for r in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    path = directory / "report.html"
    atomic_write_text(path, "\n".join(parts))
    return path


# --------------------------------------------------------------------------- the case
def run_sio2(options: CaseOptions, settings: Sio2Settings | None = None) -> CaseOutput:
    """Run the SiO₂ reproduction with ``settings`` (default: full, or quick with --quick)."""
    settings = settings or (Sio2Settings.quick() if options.quick else Sio2Settings())
    with _thread_limits(settings.torch_threads):
        return _run(options, settings)


def _run(options: CaseOptions, s: Sio2Settings) -> CaseOutput:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scirobust.atomistic import (
        BKS,
        BKS_REFIT,
        BehlerParrinello,
        Configurations,
        TorchCalculator,
        alpha_cristobalite,
        audit_coordinates,
        compute_directions,
        distortion_sweep,
        force_alignment,
        newton_step,
        random_displacements,
        relax,
        relaxation_error,
        train_energy_model,
    )
    from scirobust.atomistic.calculators import TorchEvaluator
    from scirobust.atomistic.distortion import rmse_mev_per_atom

    started = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(options.output)
    fig_dir = out / "figures" / "case"
    tab_dir = out / "tables"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tab_dir.mkdir(parents=True, exist_ok=True)
    seed = int(options.seed)
    torch.manual_seed(seed)

    console = None
    if not options.quiet:
        from rich.console import Console

        console = Console(stderr=True)

    def tick(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 2)
        if console is not None:
            console.log(f"sio2: {name[:-2].replace('_', ' ')} done in {timings[name]:.1f} s")
        return time.perf_counter()

    # 1. structure relaxed with BKS --------------------------------------------------------
    t = time.perf_counter()
    crystal = alpha_cristobalite((2, 2, 2))
    relaxed, relax_info = relax(crystal, TorchCalculator(BKS.from_atoms(crystal)), cell=True,
                                fmax=1e-3)
    bks = BKS.from_atoms(relaxed)
    e_min = float(bks(torch.as_tensor(relaxed.positions)))
    n_atoms = len(relaxed)
    t = tick("relax_bks_s", t)

    # 2. data ---------------------------------------------------------------------------
    rng = np.random.default_rng(seed)
    span = (0.0, s.displacement_norm_max_angstrom)
    train_pos, _ = random_displacements(relaxed.positions, s.n_train, rng, span)
    val_pos, _ = random_displacements(relaxed.positions, s.n_val, rng, span)
    test_pos, test_norms = random_displacements(relaxed.positions, s.n_test, rng, span)
    bks_eval = TorchEvaluator(bks, batch_size=32, name="BKS")
    e_train = bks_eval.energies(train_pos)
    e_val = bks_eval.energies(val_pos)
    t = tick("labels_s", t)

    # 3. BP-NN trained on BKS energies ----------------------------------------------------
    bp = BehlerParrinello.from_atoms(relaxed, generator=torch.Generator().manual_seed(seed))
    log = train_energy_model(
        bp, train_pos, e_train, val_pos, e_val, max_epochs=s.max_epochs,
        learning_rate=s.learning_rate, batch_size=s.train_batch_size,
        target_rmse_mev_per_atom=s.target_rmse_mev_per_atom, seed=seed,
    )
    bp.eval()
    bp_eval = TorchEvaluator(bp, batch_size=s.eval_batch_size, name=MODEL)
    t = tick("train_bp_s", t)

    # 4. adversarial directions and alignment on the test set ----------------------------
    configs = Configurations(relaxed, test_pos)
    data = compute_directions(configs, bp_eval, bks_eval)
    alignment = force_alignment(configs, None, None, reference_energy_ev=e_min, data=data)
    stats = alignment.stats()
    binned = alignment.binned(s.bin_size)
    test_rmse, test_rmse_se = rmse_mev_per_atom(data.error_mev_per_atom)
    t = tick("directions_s", t)

    # 5. distortions along A vs random (Table 1) ------------------------------------------
    sweep = distortion_sweep(configs, bp_eval, bks_eval, s.epsilons_angstrom,
                             n_random=s.n_random, seed=seed, data=data)
    table = sweep.table()
    t = tick("distortion_sweep_s", t)

    # 6. one Newton step of 1 fs from rest (Fig. 2a) --------------------------------------
    step = newton_step(configs, bp_eval, bks_eval, dt_fs=s.dt_fs, data=data)
    change = step.relative_change_percent
    t = tick("newton_step_s", t)

    # 7. gradient descent with F_NN (Fig. 2b) ---------------------------------------------
    n_relax = min(s.n_relax_configs, len(configs))
    trace = relaxation_error(configs.subset(slice(0, n_relax)), bp_eval, bks_eval,
                             n_steps=s.n_relax_steps, method="gd",
                             step_size_angstrom2_per_ev=s.gd_step_angstrom2_per_ev)
    gd_rmse = trace.rmse_mev_per_atom
    t = tick("gradient_descent_s", t)

    # 8. FGSM-style coordinate attack through the core audit ------------------------------
    n_audit = min(s.n_audit_configs, len(configs))
    audit_results = audit_coordinates(
        configs.subset(slice(0, n_audit)), bp, bks,
        [e for e in s.epsilons_angstrom if e > 0], n_random=s.n_random, seed=seed,
        batch_size=s.eval_batch_size, case=CASE_NAME,
        model_name=f"{MODEL} (core audit, {n_audit} configurations)", metric=METRIC,
    )
    t = tick("core_audit_s", t)

    # 9. training-free pair: BKS vs the BKS refit -----------------------------------------
    refit_relaxed, refit_info = relax(
        crystal, TorchCalculator(BKS.from_atoms(crystal, BKS_REFIT)), cell=True, fmax=1e-3)
    refit = BKS.from_atoms(refit_relaxed, BKS_REFIT)
    bks2 = BKS.from_atoms(refit_relaxed)
    e_min2 = float(refit(torch.as_tensor(refit_relaxed.positions)))
    pos2, _ = random_displacements(refit_relaxed.positions, s.pair2_n,
                                   np.random.default_rng(seed + 1),
                                   (0.0, s.pair2_norm_max_angstrom))
    configs2 = Configurations(refit_relaxed, pos2)
    eval2_app = TorchEvaluator(bks2, batch_size=32, name="BKS")
    eval2_acc = TorchEvaluator(refit, batch_size=32, name="BKS refit")
    data2 = compute_directions(configs2, eval2_app, eval2_acc, energy_offset_ev="mean")
    alignment2 = force_alignment(configs2, None, None, reference_energy_ev=e_min2, data=data2)
    stats2 = alignment2.stats()
    binned2 = alignment2.binned(s.bin_size)
    sweep2 = distortion_sweep(configs2, eval2_app, eval2_acc, s.epsilons_angstrom,
                              n_random=s.n_random, seed=seed + 1, data=data2)
    table2 = sweep2.table()
    rmse2, _ = rmse_mev_per_atom(data2.error_mev_per_atom)
    t = tick("pair2_bks_vs_refit_s", t)

    # ---------------------------------------------------------------- findings (numbers)
    by_eps = {row["epsilon_angstrom"]: row for row in table}
    eps_max = max(s.epsilons_angstrom)
    k_max = sweep.epsilons.index(eps_max)
    n_outliers = int((np.abs(sweep.adversarial[k_max]) > OUTLIER_MEV_PER_ATOM).sum())
    ratio_max = by_eps[eps_max]["ratio"] if eps_max > 0 else float("nan")
    paper_ratio_max = PAPER_ADVERSARIAL[-1] / PAPER_RANDOM[-1]
    adv_values = [row["adversarial_mev_per_atom"] for row in table]
    table_reproduced = bool(ratio_max > 2.0 and np.all(np.diff(adv_values) > 0))
    alignment_reproduced = bool(stats["mean_abs_cos"] > 5 * stats["random_vector_abs_cos"])
    alignment2_reproduced = bool(stats2["mean_abs_cos"] > 5 * stats2["random_vector_abs_cos"])
    cos = alignment.cos_theta
    pos_mask = alignment.defined & (cos > 0) & np.isfinite(change)
    neg_mask = alignment.defined & (cos < 0) & np.isfinite(change)
    frac_up_pos = float((change[pos_mask] > 0).mean()) if pos_mask.any() else float("nan")
    frac_down_neg = float((change[neg_mask] < 0).mean()) if neg_mask.any() else float("nan")
    newton_reproduced = bool(frac_up_pos > 0.5 and frac_down_neg > 0.5)
    gd_growth = float(gd_rmse[-1] / gd_rmse[0]) if gd_rmse[0] > 0 else float("nan")
    gd_reproduced = bool(gd_growth > 1.5)
    if len(binned["mean_abs_cos"]) >= 2:
        slope = float(np.polyfit(binned["energy_above_min_ev"], binned["mean_abs_cos"], 1)[0])
    else:
        slope = float("nan")
    decreasing_with_energy = bool(slope < 0)

    # ---------------------------------------------------------------- records
    results = Results()
    recs = results.records
    recs += sweep.to_records(CASE_NAME, MODEL, METRIC)
    for eps, r_paper, a_paper in zip(PAPER_EPSILONS, PAPER_RANDOM, PAPER_ADVERSARIAL,
                                     strict=True):
        recs.append(Record(CASE_NAME, "BP-NN (paper 002)", "random", eps, METRIC, r_paper))
        recs.append(Record(CASE_NAME, "BP-NN (paper 002)", "adversarial", eps, METRIC, a_paper))
    n_test = len(configs)
    recs.append(Record(CASE_NAME, MODEL, "clean", 0.0, "test_rmse_mev_per_atom", test_rmse,
                       test_rmse_se, n_test))
    recs.append(Record(CASE_NAME, MODEL, "clean", 0.0, "validation_rmse_mev_per_atom",
                       log.final_val_rmse, float("nan"), s.n_val))
    abs_cos = np.abs(cos[alignment.defined])
    se_abs = float(abs_cos.std(ddof=1) / math.sqrt(abs_cos.size)) if abs_cos.size > 1 else \
        float("nan")
    for model_name, st, se in ((MODEL, stats, se_abs), (MODEL_PAIR2, stats2, float("nan"))):
        recs.append(Record(CASE_NAME, model_name, "clean", 0.0, "mean_abs_cos_theta",
                           st["mean_abs_cos"], se, int(st["n"])))
        recs.append(Record(CASE_NAME, model_name, "clean", 0.0, "fraction_abs_cos_theta_above_0.5",
                           st["fraction_abs_cos_above_0.5"], float("nan"), int(st["n"])))
        recs.append(Record(CASE_NAME, model_name, "clean", 0.0, "fraction_cos_theta_positive",
                           st["fraction_positive"], float("nan"), int(st["n"])))
        recs.append(Record(CASE_NAME, model_name, "random_direction", 0.0, "mean_abs_cos_theta",
                           st["random_vector_abs_cos"]))
    recs += sweep2.to_records(CASE_NAME, MODEL_PAIR2, METRIC)
    mean_step = float(np.linalg.norm((step.positions_after - configs.positions).reshape(
        n_test, -1), axis=1).mean())
    after, after_se = rmse_mev_per_atom(step.error_after_mev_per_atom)
    recs.append(Record(CASE_NAME, MODEL, "newton_step_1fs", mean_step,
                       "energy_error_after_1fs_step_mev_per_atom", after, after_se, n_test))
    recs.append(Record(CASE_NAME, MODEL, "newton_step_1fs", mean_step,
                       "fraction_error_up_if_cos_positive", frac_up_pos, float("nan"),
                       int(pos_mask.sum())))
    recs.append(Record(CASE_NAME, MODEL, "newton_step_1fs", mean_step,
                       "fraction_error_down_if_cos_negative", frac_down_neg, float("nan"),
                       int(neg_mask.sum())))
    # gradient descent: here ``epsilon`` holds the step number (stated in the notes)
    for k in range(len(gd_rmse)):
        recs.append(Record(CASE_NAME, MODEL, "gradient_descent", float(k),
                           "energy_error_mev_per_atom_vs_gd_step", float(gd_rmse[k]),
                           float(trace.rmse_stderr[k]), n_relax))
    results.extend(audit_results.records)
    results.per_sample.update({
        "bp_test_error_mev_per_atom": data.error_mev_per_atom,
        "bp_test_cos_theta": cos,
        "bp_test_cos_defined": alignment.defined.astype(np.int8),
        "bp_test_energy_above_min_ev": alignment.energy_above_min_ev,
        "bp_test_displacement_norm_angstrom": test_norms,
        "bp_newton_error_change_percent": change,
        "bp_gradient_descent_errors_mev_per_atom": trace.errors_mev_per_atom,
        "pair2_cos_theta": alignment2.cos_theta,
        "pair2_energy_above_min_ev": alignment2.energy_above_min_ev,
    })
    for k, eps in enumerate(sweep.epsilons):
        results.per_sample[f"bp_adversarial|{eps:g}|error_mev_per_atom"] = sweep.adversarial[k]
        results.per_sample[f"bp_random|{eps:g}|error_mev_per_atom"] = sweep.random[k]

    # ---------------------------------------------------------------- tables
    eps_list = list(s.epsilons_angstrom)
    header = ["row", *[f"eps={e:g} Å" for e in eps_list]]
    paper_by_eps = {e: (r, a) for e, r, a in zip(PAPER_EPSILONS, PAPER_RANDOM,
                                                   PAPER_ADVERSARIAL, strict=True)}
    dist_rows: list[list[Any]] = [header,
        ["random, ours (meV/atom)", *[by_eps[e]["random_mev_per_atom"] for e in eps_list]],
        ["adversarial, ours (meV/atom)", *[by_eps[e]["adversarial_mev_per_atom"]
                                           for e in eps_list]],
        ["random, paper 002 (meV/atom)", *[paper_by_eps.get(e, (float("nan"),))[0]
                                           for e in eps_list]],
        ["adversarial, paper 002 (meV/atom)", *[paper_by_eps.get(e, (0, float("nan")))[1]
                                                for e in eps_list]],
        ["adversarial/random, ours", *[by_eps[e]["ratio"] for e in eps_list]],
        ["adversarial/random, paper 002", *[
            paper_by_eps[e][1] / paper_by_eps[e][0] if e in paper_by_eps else float("nan")
            for e in eps_list]],
        ["random spread over draws, ours", *[by_eps[e]["random_spread"] for e in eps_list]],
        ["adversarial stderr, ours", *[by_eps[e]["adversarial_stderr"] for e in eps_list]],
        ["random median |error|, ours (meV/atom)",
         *[by_eps[e]["random_median_abs_mev_per_atom"] for e in eps_list]],
        ["adversarial median |error|, ours (meV/atom)",
         *[by_eps[e]["adversarial_median_abs_mev_per_atom"] for e in eps_list]],
        [f"adversarial without configurations above {OUTLIER_MEV_PER_ATOM:g} meV/atom, ours",
         *[rmse_mev_per_atom(a[np.abs(a) <= OUTLIER_MEV_PER_ATOM])[0]
           for a in sweep.adversarial]],
        [f"adversarial configurations above {OUTLIER_MEV_PER_ATOM:g} meV/atom (count)",
         *[int((np.abs(a) > OUTLIER_MEV_PER_ATOM).sum()) for a in sweep.adversarial]],
    ]
    _write_csv(tab_dir / "distortion_table.csv", dist_rows)
    by_eps2 = {row["epsilon_angstrom"]: row for row in table2}
    _write_csv(tab_dir / "bks_vs_refit_distortion_table.csv", [
        header,
        ["random (meV/atom)", *[by_eps2[e]["random_mev_per_atom"] for e in eps_list]],
        ["adversarial (meV/atom)", *[by_eps2[e]["adversarial_mev_per_atom"] for e in eps_list]],
        ["adversarial/random", *[by_eps2[e]["ratio"] for e in eps_list]],
    ])
    _write_csv(tab_dir / "alignment_summary.csv", [
        ["pair", "n", "n_undefined", "mean |cos θ|", "median |cos θ|", "fraction |cos θ|>0.5",
         "fraction cos θ>0", "random-direction E|cos θ|", "energy RMSE (meV/atom)"],
        [f"{MODEL} vs BKS", stats["n"], stats["n_undefined"], stats["mean_abs_cos"],
         stats["median_abs_cos"], stats["fraction_abs_cos_above_0.5"],
         stats["fraction_positive"], stats["random_vector_abs_cos"], test_rmse],
        ["BKS vs BKS refit", stats2["n"], stats2["n_undefined"], stats2["mean_abs_cos"],
         stats2["median_abs_cos"], stats2["fraction_abs_cos_above_0.5"],
         stats2["fraction_positive"], stats2["random_vector_abs_cos"], rmse2],
    ])
    _write_csv(tab_dir / "cos_theta_vs_energy.csv", [
        ["pair", "bin", "mean ΔE (meV per cell)", "mean |cos θ|", "stderr", "n"],
        *[[f"{MODEL} vs BKS", k, binned["energy_above_min_ev"][k] * 1000,
           binned["mean_abs_cos"][k], binned["stderr"][k], int(binned["n"][k])]
          for k in range(len(binned["n"]))],
        *[["BKS vs BKS refit", k, binned2["energy_above_min_ev"][k] * 1000,
           binned2["mean_abs_cos"][k], binned2["stderr"][k], int(binned2["n"][k])]
          for k in range(len(binned2["n"]))],
    ])
    _write_csv(tab_dir / "newton_step.csv", [
        ["group", "n", "median error change (%)", "fraction with larger error"],
        ["cos θ > 0", int(pos_mask.sum()),
         float(np.median(change[pos_mask])) if pos_mask.any() else float("nan"), frac_up_pos],
        ["cos θ < 0", int(neg_mask.sum()),
         float(np.median(change[neg_mask])) if neg_mask.any() else float("nan"),
         1 - frac_down_neg if math.isfinite(frac_down_neg) else float("nan")],
    ])
    _write_csv(tab_dir / "gradient_descent.csv", [
        ["step", "RMSE (meV/atom)", "stderr", "RMSE / RMSE at step 0"],
        *[[k, gd_rmse[k], trace.rmse_stderr[k], gd_rmse[k] / gd_rmse[0]]
          for k in range(len(gd_rmse))],
    ])
    _write_csv(tab_dir / "training.csv", [
        ["epoch", "train RMSE (meV/atom)", "validation RMSE (meV/atom)"],
        *[[k + 1, a, b] for k, (a, b) in enumerate(zip(log.train_rmse_mev_per_atom,
                                                        log.val_rmse_mev_per_atom, strict=True))],
    ])

    # ---------------------------------------------------------------- figures
    e_acc_mev = (data.energy_acc_ev - e_min) / n_atoms * 1000
    e_app_mev = (data.energy_app_ev - e_min) / n_atoms * 1000
    fig, ax = plt.subplots(figsize=(4.5, 4))
    _parity_panel(ax, e_acc_mev, e_app_mev, "E_BKS − E_min (meV/atom)",
                  "E_NN − E_min (meV/atom)", test_rmse)
    _save_figure(fig, fig_dir, "fig1a_parity")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    _hist_panel(ax, cos[alignment.defined], stats["random_vector_abs_cos"])
    ax.set_title(f"BP-NN vs BKS, {stats['n']} test configurations")
    _save_figure(fig, fig_dir, "fig1b_cos_theta_histogram")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    _binned_panel(ax, binned, s.bin_size, stats["random_vector_abs_cos"])
    ax.set_title("BP-NN vs BKS")
    _save_figure(fig, fig_dir, "fig1c_abs_cos_theta_vs_energy")

    fig, ax = plt.subplots(figsize=(5, 4))
    eps_arr = np.array(eps_list)
    ax.errorbar(eps_arr, [by_eps[e]["random_mev_per_atom"] for e in eps_list],
                yerr=[by_eps[e]["random_spread"] if math.isfinite(by_eps[e]["random_spread"])
                      else 0 for e in eps_list],
                fmt="o-", color=BLUE, label="random direction (ours)", capsize=2)
    ax.errorbar(eps_arr, [by_eps[e]["adversarial_mev_per_atom"] for e in eps_list],
                yerr=[by_eps[e]["adversarial_stderr"] if math.isfinite(
                    by_eps[e]["adversarial_stderr"]) else 0 for e in eps_list],
                fmt="s-", color=VERMILLION, label="adversarial direction (ours)", capsize=2)
    ax.plot(PAPER_EPSILONS, PAPER_RANDOM, "o--", color=BLUE, mfc="none",
            label="random (paper 002)")
    ax.plot(PAPER_EPSILONS, PAPER_ADVERSARIAL, "s--", color=VERMILLION, mfc="none",
            label="adversarial (paper 002)")
    ax.set_yscale("log")
    ax.set_xlabel("ε = total L2 norm of the distortion (Å)")
    ax.set_ylabel("energy RMSE vs BKS (meV/atom, log scale)")
    ax.set_title("Table 1: distortions of equal norm")
    ax.legend(fontsize=8)
    _save_figure(fig, fig_dir, "table1_distortion")

    fig, ax = plt.subplots(figsize=(5, 4))
    ok = alignment.defined & np.isfinite(change)
    colours = np.where(cos[ok] > 0, VERMILLION, BLUE)
    ax.scatter(cos[ok], change[ok], s=6, c=colours, alpha=0.6, edgecolors="none")
    ax.axhline(0, color=BLACK, lw=1, ls="--", label="no change")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("cos θ(A, F_NN)")
    ax.set_ylabel("change of |error| after one 1 fs step (%)")
    ax.set_title(f"Fig. 2a: error up for {100 * frac_up_pos:.0f} % of cos θ>0, "
                 f"down for {100 * frac_down_neg:.0f} % of cos θ<0", fontsize=8)
    ax.legend(fontsize=8)
    _save_figure(fig, fig_dir, "fig2a_newton_step")

    fig, ax = plt.subplots(figsize=(5, 4))
    steps = np.arange(len(gd_rmse))
    ax.errorbar(steps, gd_rmse, yerr=np.nan_to_num(trace.rmse_stderr), fmt="o-",
                color=VERMILLION, ms=3, capsize=2, label=f"ours ({n_relax} configurations)")
    ax.axhline(gd_rmse[0], color=BLACK, ls=":", lw=1, label="error before any step")
    ax.set_xlabel("gradient-descent step with F_NN")
    ax.set_ylabel("energy RMSE vs BKS (meV/atom)")
    ax.set_title(f"Fig. 2b: ×{gd_growth:.2f} after {s.n_relax_steps} steps (paper: > ×5)")
    ax.legend(fontsize=8)
    _save_figure(fig, fig_dir, "fig2b_gradient_descent")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    e_acc2 = (data2.energy_acc_ev - e_min2) / n_atoms * 1000
    e_app2 = (data2.energy_app_ev + data2.energy_offset_ev - e_min2) / n_atoms * 1000
    _parity_panel(axes[0], e_acc2, e_app2, "E_refit − E_min (meV/atom)",
                  "E_BKS + offset − E_min (meV/atom)", rmse2)
    _hist_panel(axes[1], alignment2.cos_theta[alignment2.defined],
                stats2["random_vector_abs_cos"])
    _binned_panel(axes[2], binned2, s.bin_size, stats2["random_vector_abs_cos"])
    fig.suptitle("Fig. 3 stand-in: original BKS (approximate) vs BKS refit (accurate)")
    _save_figure(fig, fig_dir, "fig3_bks_vs_refit")

    # ---------------------------------------------------------------- metadata and report
    total = time.perf_counter() - started
    timings["total_s"] = round(total, 2)
    paper_row = " / ".join(f"{r:g}→{a:g}" for r, a in zip(PAPER_RANDOM, PAPER_ADVERSARIAL,
                                                          strict=True))
    ours_row = " / ".join(f"{by_eps[e]['random_mev_per_atom']:.1f}→"
                          f"{by_eps[e]['adversarial_mev_per_atom']:.1f}" for e in eps_list)
    verdict = "reproduced" if table_reproduced else "NOT reproduced"
    notes = [
        f"Mode: {'quick' if options.quick else 'full'}; settings: {dataclasses.asdict(s)}.",
        f"BP-NN validation RMSE {log.final_val_rmse:.2f} meV/atom after {log.epochs} epochs "
        f"({log.stopped}); test RMSE {test_rmse:.2f} ± {test_rmse_se:.2f} meV/atom on "
        f"{n_test} configurations (paper: {PAPER_TRAIN_RMSE} meV/atom).",
        f"Table 1 (random→adversarial, meV/atom, ε = {', '.join(f'{e:g}' for e in eps_list)} Å):"
        f" ours {ours_row}; paper {paper_row}. Median |error| random→adversarial at "
        f"ε = {eps_max:g} Å: {by_eps[eps_max]['random_median_abs_mev_per_atom']:.1f}→"
        f"{by_eps[eps_max]['adversarial_median_abs_mev_per_atom']:.1f} meV/atom; "
        f"{n_outliers} of {n_test} adversarial configurations have an error above "
        f"{OUTLIER_MEV_PER_ATOM:g} meV/atom (atoms pushed into the short-range wall, which "
        f"dominates the RMSE). Adversarial/random at ε = {eps_max:g} Å: ours "
        f"{ratio_max:.2f}, paper {paper_ratio_max:.2f}. Finding (adversarial error grows "
        f"monotonically and is > 2× random at the largest ε): {verdict}.",
        f"cos θ(A, F_NN): mean |cos θ| = {stats['mean_abs_cos']:.3f} (two random directions in "
        f"{3 * n_atoms} dimensions: {stats['random_vector_abs_cos']:.3f}); |cos θ| > 0.5 for "
        f"{100 * stats['fraction_abs_cos_above_0.5']:.0f} %; cos θ > 0 for "
        f"{100 * stats['fraction_positive']:.0f} %; {stats['n_undefined']} undefined. "
        f"Alignment far above random (> 5×): "
        f"{'reproduced' if alignment_reproduced else 'NOT reproduced'}. Slope of mean |cos θ| "
        f"against ΔE: {slope:.3g} per eV; lowest-energy bin {binned['mean_abs_cos'][0]:.2f}, "
        f"highest-energy bin {binned['mean_abs_cos'][-1]:.2f} "
        f"({'decreasing' if decreasing_with_energy else 'not decreasing'} with the energy above "
        "the minimum; paper: decreasing).",
        f"One 1 fs velocity-Verlet step from rest (max displacement "
        f"{step.max_displacement_angstrom:.2e} Å): error grew for {100 * frac_up_pos:.0f} % of "
        f"configurations with cos θ > 0 and fell for {100 * frac_down_neg:.0f} % with "
        f"cos θ < 0 (paper: almost always / mostly): "
        f"{'reproduced' if newton_reproduced else 'NOT reproduced'}.",
        f"Gradient descent with F_NN, γ = {s.gd_step_angstrom2_per_ev} Å²/eV, "
        f"{s.n_relax_steps} steps on {n_relax} configurations: RMSE {gd_rmse[0]:.2f} → "
        f"{gd_rmse[-1]:.2f} meV/atom (×{gd_growth:.2f}; paper: > ×{PAPER_GD_GROWTH:g}); growth "
        f"> 1.5×: {'reproduced' if gd_reproduced else 'NOT reproduced'}.",
        f"Training-free pair: original BKS (approximate) vs BKS refit (accurate stand-in for "
        f"DFT), {len(configs2)} configurations with displacement norm ≤ "
        f"{s.pair2_norm_max_angstrom} Å around the refit minimum, constant offset "
        f"{data2.energy_offset_ev:.3f} eV removed: RMSE {rmse2:.2f} meV/atom, mean |cos θ| = "
        f"{stats2['mean_abs_cos']:.3f} ({'aligned' if alignment2_reproduced else 'not aligned'}"
        f" beyond 5× random); distortion ratio at ε = {eps_max:g} Å: "
        f"{by_eps2[eps_max]['ratio']:.2f}.",
        "Records: metric energy_error_mev_per_atom is the RMSE over configurations of the "
        "per-atom energy error against BKS (meV/atom), epsilon the total L2 norm of the "
        "distortion (Å); for newton_step_1fs epsilon is the mean total displacement of the step "
        "(Å); for the metric energy_error_mev_per_atom_vs_gd_step epsilon is the number of "
        "gradient-descent steps.",
        "FGSM-style coordinate attack through scirobust.audit on the first "
        f"{n_audit} test configurations: each coordinate moved by ±ε/√(3N) along sign(A) "
        "(attack 'fgsm_sign') vs random signs ('random_sign'), so both have total L2 norm ε.",
        "As in the paper: BKS constants and charges, the formulas of A and cos θ, 96 atoms "
        "(32 Si, 64 O), Gaussian displacements with norm uniform in [0, 1] Å, ε = 0, 0.1, 0.3, "
        "0.5 Å, a 1 fs step from rest, 30 descent steps, BP per-element networks 2×30 tanh. "
        f"This run: {n_test} test configurations (paper 2000), bins of {s.bin_size} (paper 50), "
        f"{s.n_random} random draws per ε, {n_relax} configurations for gradient descent. "
        "Stand-ins/choices: α-cristobalite as the equilibrium structure, DSF Coulomb "
        "(α = 0.3 Å⁻¹, r_c = 10 Å), the D/r²⁴ wall, our symmetry-function set (8 radial, "
        "8 angular per species (pair), r_c 6/4.5 Å), Adam with early stop at the paper's "
        "5.1 meV/atom, GD step γ = 0.01 Å²/eV, the BKS refit instead of DFT.",
        f"BKS-relaxed cell (Å): {np.round(np.array(relaxed.cell), 4).tolist()}, "
        f"E_min = {e_min / n_atoms:.4f} eV/atom, {relax_info['optimizer_steps']} optimiser steps;"
        f" refit cell: {np.round(np.array(refit_relaxed.cell), 4).tolist()}.",
        f"Timings (s): {timings}.",
    ]
    if options.device != "cpu":
        notes.append(f"--device {options.device} ignored: this case runs on the CPU (96-atom "
                     "cells are too small to gain from an accelerator).")
    results.metadata = {
        "case": CASE_NAME,
        "description": (
            "Adversarial forces (paper 002): a Behler–Parrinello network trained on BKS energies "
            "of 96-atom SiO₂; its adversarial direction A = 2(E_BKS − E_NN)(F_NN − F_BKS), the "
            "alignment cos θ of A with its own forces, distortions of equal L2 norm along A vs "
            "random directions (Table 1), one Newton step and gradient descent with its forces "
            "(Fig. 2), and a training-free pair (BKS vs a BKS refit)."
        ),
        "notes": notes,
        "settings": dataclasses.asdict(s),
        "seed": seed,
        "quick": bool(options.quick),
        "timings_s": timings,
        "training": {"epochs": log.epochs, "stopped": log.stopped,
                     "validation_rmse_mev_per_atom": log.final_val_rmse,
                     "test_rmse_mev_per_atom": test_rmse,
                     "descriptor_time_s": log.descriptor_time_s,
                     "training_time_s": log.training_time_s},
        "findings": {
            "table1_reproduced": table_reproduced,
            "alignment_reproduced": alignment_reproduced,
            "alignment_decreases_with_energy": decreasing_with_energy,
            "newton_step_reproduced": newton_reproduced,
            "gradient_descent_growth": gd_growth,
            "gradient_descent_reproduced": gd_reproduced,
            "pair2_alignment_reproduced": alignment2_reproduced,
            "adversarial_over_random_at_max_eps": ratio_max,
            "paper_adversarial_over_random_at_max_eps": paper_ratio_max,
        },
        "cos_theta_stats": {"bp_vs_bks": stats, "bks_vs_refit": stats2},
        "paper_table1": {"epsilons": list(PAPER_EPSILONS), "random": list(PAPER_RANDOM),
                         "adversarial": list(PAPER_ADVERSARIAL)},
        "relaxation": {"bks": relax_info, "refit": refit_info},
        "core_audit": {k: audit_results.metadata.get(k) for k in
                       ("checks", "warnings", "epsilon_units", "wall_time_s")},
        "wall_time_s": total,
    }
    results.save(out)
    report = _write_report(results, out, "Adversarial forces of a BP network on BKS SiO₂ "
                                         "(paper 002)")
    summary = [["row", *[f"eps={e:g} Å" for e in eps_list]],
               *[[str(r[0]), *[f"{float(v):.2f}" for v in r[1:]]] for r in dist_rows[1:7]],
               ["mean |cos θ| (BP-NN; random dirs)",
                f"{stats['mean_abs_cos']:.3f}", f"{stats['random_vector_abs_cos']:.3f}",
                "", ""][: len(eps_list) + 1]]
    return CaseOutput(results, report, summary)


def run(options: CaseOptions) -> CaseOutput:
    """Entry point of ``scirobust reproduce sio2``."""
    return run_sio2(options)


CASE = Case(
    name=CASE_NAME,
    title="Adversarial forces: BP network trained on BKS SiO₂ (paper 002)",
    paper="002 Adversarial Forces of Physical Models, §3.1, Table 1, Figs. 1-3",
    run=run,
)
