"""DeePMD-kit on methane: FGSM vs random coordinate noise, re-labelled by DFT (paper 000 §2.2).

``scirobust reproduce methane [--quick]``. As in the paper: a DeePMD-kit se_e2_a model (the
public CH₄ tutorial's settings: rcut 6 Å, sel [4, 1], embedding [10, 20, 40], axis_neuron 4,
fitting [100, 100, 100], its loss prefactors and learning-rate schedule) trained with
``dp --pt train`` on 160 labelled CH₄ geometries and validated on 40 others; every
coordinate of the 40 held-out geometries is moved by ±0.05 Å, along the sign of the gradient
of DeePMD-kit's energy-and-force loss against the labels (FGSM, the loss with the tutorial's
final prefactors p_e = p_f = 1) or by random signs of the same size; every perturbed geometry
is re-labelled by the reference method and the MSE of the model's energy and forces against
it is compared (Fig. 3 B–C), beside the learning curve (Fig. 3 A).

Stand-ins (the paper's 200 VASP frames are not public): the reference is PySCF PBE/def2-SVP
instead of VASP; the 200 geometries are a classical thermal (1000 K) sample of the normal
modes of relaxed CH₄, labelled once and shipped (``cases/data/methane_pbe_def2svp.npz``,
``scripts/make_methane_data.py``); the held-out 40 serve as validation during training and as
the attacked test set (the paper used 40 further frames); 10 000 training steps (paper:
1 000 000) fit two cores. Quick mode: 300 steps, 8 test geometries, 2 random draws.
"""

from __future__ import annotations

import dataclasses
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
from ase import Atoms
from matplotlib.figure import Figure
from rich.console import Console

from scirobust.atomistic.deepmd import DeepMDPotential
from scirobust.atomistic.deepmd_training import SE_E2_A_CH4, train_deepmd, write_deepmd_npy
from scirobust.atomistic.energy_force import audit_energy_forces
from scirobust.atomistic.pyscf_reference import PySCFCalculator, PySCFEvaluator
from scirobust.cases import Case, CaseOptions, CaseOutput, Verdict, finish, torch_threads
from scirobust.report import COLORS, save_case_figure, summary_rows, write_case_table
from scirobust.results import Results
from scirobust.sweep import Sweep

NAME = "methane"
MODEL = "DeePMD se_e2_a"
DATA_FILE = "methane_pbe_def2svp.npz"
PAPER_CLAIM = ("under ±0.05 Å coordinate perturbations (about 1 %) the energies and forces "
               "of a well-trained DeePMD-kit model deviate severely from DFT, especially under "
               "FGSM (Fig. 3 B–C; no numbers given)")
TUTORIAL_ERRORS = "DeePMD-kit CH₄ tutorial test errors: energy 3.2e-3 eV, force 0.127 eV/Å"
STAND_IN = ("PySCF PBE/def2-SVP for VASP; 200 thermally sampled geometries (1000 K normal "
            "modes) for the paper's frames; 10 000 training steps for 1 000 000")
RATIO_REPRODUCED = 2.0  # FGSM MSE at least twice the random MSE: "severe, especially FGSM"
T_SIGNIFICANT = 2.0  # paired t of the per-frame difference FGSM − random


@dataclasses.dataclass(frozen=True)
class MethaneSettings:
    """Every setting (fixed before looking at results). Units in names."""

    n_train: int = 160
    n_test: int = 40
    training_steps: int = 10_000
    epsilon_angstrom: float = 0.05
    n_random: int = 5
    pref_e: float = 1.0
    pref_f: float = 1.0
    processes: int | None = None  # PySCF worker processes (None: one per core)

    @classmethod
    def quick(cls) -> MethaneSettings:
        """A 1-minute smoke run: 300 training steps, 8 test geometries, 2 random draws."""
        return cls(training_steps=300, n_test=8, n_random=2)


def load_methane() -> tuple[list[Atoms], np.ndarray, np.ndarray, dict]:
    """The shipped labelled CH₄ set: structures, energies (M,) eV, forces (M, 5, 3) eV/Å and
    its provenance (method, basis, sampling)."""
    with (resources.as_file(resources.files("scirobust.cases.data") / DATA_FILE) as path,
          np.load(path, allow_pickle=False) as data):
        positions, numbers = data["positions"], data["numbers"]
        energies, forces = data["energy_ev"], data["forces_ev_per_angstrom"]
        meta = json.loads(str(data["meta"]))
    atoms = [Atoms(numbers=numbers, positions=p) for p in positions]
    return atoms, energies, forces, meta


def _paired_t(a: np.ndarray, b: np.ndarray) -> float:
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size < 2 or d.std(ddof=1) == 0:
        return float("nan")
    return float(d.mean() / (d.std(ddof=1) / np.sqrt(d.size)))


def _verdict(results: Results, eps: float, metric: str, what: str, unit: str) -> Verdict:
    clean = results.value(attack="clean", metric=metric)
    rand = results.value(attack="random_sign", epsilon=eps, metric=metric, kind="random")
    fgsm = results.value(attack="fgsm", epsilon=eps, metric=metric, kind="adversarial")
    t = _paired_t(results.samples("fgsm", eps, metric)[:, 0],
                  results.samples("random_sign", eps, metric)[:, 0])
    ratio = fgsm / rand if rand > 0 else float("inf")
    significant = bool(np.isfinite(t) and t >= T_SIGNIFICANT)
    outcome = ("reproduced" if ratio >= RATIO_REPRODUCED and significant else
               "partly" if ratio > 1 and (significant or ratio >= RATIO_REPRODUCED) else
               "not reproduced")
    return Verdict(
        claim=f"{what}: {PAPER_CLAIM}.",
        criterion=(f"{what} MSE against the re-labelled reference under FGSM at least "
                   f"{RATIO_REPRODUCED:g}× that under random signs of the same size, with a "
                   f"paired t ≥ {T_SIGNIFICANT:g} over the test geometries (partly: larger but "
                   "only one of the two)"),
        outcome=outcome,
        detail=(f"{what} MSE clean {clean:.4g}, random {rand:.4g}, FGSM {fgsm:.4g} {unit}; "
                f"FGSM/random {ratio:.2f}, paired t {t:.2f}."),
        paper="Fig. 3 B–C: FGSM deviations larger than random ones (curves only)",
        ours=f"FGSM/random {what.lower()} MSE = {ratio:.2f} (t = {t:.1f}) at ±{eps:g} Å",
        stand_in=STAND_IN,
    )


def _figures(out: Path, results: Results, curve: dict[str, np.ndarray], eps: float) -> None:
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for key, color, style in (("rmse_e_trn", COLORS.adversarial, "-"),
                              ("rmse_e_val", COLORS.adversarial, "--"),
                              ("rmse_f_trn", COLORS.random, "-"),
                              ("rmse_f_val", COLORS.random, "--")):
        if key in curve:
            ax.plot(curve["step"], curve[key], style, color=color, lw=1.2, label=key)
    ax.set(xlabel="training step", ylabel="RMSE (energy eV/atom, force eV/Å)", yscale="log",
           title="Fig. 3 A: DeePMD-kit learning curve (lcurve.out)")
    ax.legend(fontsize=8)
    save_case_figure(fig, out, "fig3a_learning_curve", "Paper Fig. 3 A: training and "
                     "validation RMSE of energy (per atom) and forces during dp --pt train.")
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, metric, label in zip(fig.subplots(1, 2), ("energy_mse", "force_mse"),
                                 ("energy squared error (meV²/atom²)",
                                  "force MSE per geometry (eV²/Å²)"), strict=True):
        for attack, color, marker in (("clean", COLORS.clean, "o"),
                                      ("random_sign", COLORS.random, "^"),
                                      ("fgsm", COLORS.adversarial, "s")):
            at_eps = 0.0 if attack == "clean" else eps
            values = results.samples(attack, at_eps, metric)[:, 0]
            ax.plot(np.arange(values.size), values, marker=marker, ms=3, lw=0.8, color=color,
                    label=f"{attack} (mean {values.mean():.3g})")
        ax.set(xlabel="test geometry", ylabel=label, yscale="log")
        ax.legend(fontsize=8)
    fig.suptitle(f"Fig. 3 B–C: errors against PySCF at the perturbed geometries, ±{eps:g} Å")
    save_case_figure(fig, out, "fig3bc_mse_per_geometry", "Paper Fig. 3 B–C: per test "
                     "geometry, the squared energy error and the force MSE of DeePMD-kit "
                     "against the reference re-evaluated at the perturbed geometry; random "
                     "signs (mean over draws) vs FGSM of the same size.")


def run_methane(options: CaseOptions, settings: MethaneSettings | None = None) -> CaseOutput:
    """Run the methane reproduction with ``settings`` (default: full, or quick)."""
    s = settings or (MethaneSettings.quick() if options.quick else MethaneSettings())
    out, started = Path(options.output), time.perf_counter()
    log = (lambda _: None) if options.quiet else Console(stderr=True).log
    atoms, energies, forces, provenance = load_methane()
    if s.n_train + 40 > len(atoms) or s.n_test > 40:
        raise ValueError(f"the shipped set has {len(atoms)} geometries: n_train + 40 held-out "
                         "must fit and n_test <= 40")
    train, held = slice(0, s.n_train), slice(s.n_train, s.n_train + 40)
    data = out / "deepmd" / "data"
    write_deepmd_npy(data / "train", atoms[train], energies[train], forces[train], ["H", "C"])
    write_deepmd_npy(data / "valid", atoms[held], energies[held], forces[held], ["H", "C"])
    log(f"training DeePMD-kit for {s.training_steps} steps")
    run = train_deepmd(out / "deepmd" / "run", data / "train", data / "valid",
                       model=SE_E2_A_CH4, steps=s.training_steps, seed=options.seed + 1)
    test = slice(s.n_train, s.n_train + s.n_test)
    template = atoms[0]
    reference = PySCFCalculator(xc=provenance["xc"], basis=provenance["basis"],
                                cache_dir=out / "pyscf-cache")
    reference.store(atoms[test], energies[test], forces[test])  # the shipped labels
    evaluator = PySCFEvaluator(reference, template, processes=s.processes)
    sweep = Sweep(epsilons=(s.epsilon_angstrom,), attacks=("random_sign", "fgsm"),
                  n_random=s.n_random, seed=options.seed, batch_size=s.n_test,
                  metrics=("energy_mse", "force_mse", "energy_rmse", "force_rmse"),
                  cache_dir=out / "cache")
    log("attacking and re-labelling with PySCF")
    with torch_threads(1):
        potential = DeepMDPotential.from_file(run.frozen_model, template)
        results = audit_energy_forces(
            atoms[test], potential, sweep, reference=evaluator,
            labels=(energies[test], forces[test]), pref_e=s.pref_e, pref_f=s.pref_f,
            attack_target="labels", case=NAME, model_name=MODEL)
    eps = s.epsilon_angstrom
    verdicts = [_verdict(results, eps, "energy_mse", "Energy", "meV²/atom²"),
                _verdict(results, eps, "force_mse", "Force", "eV²/Å²")]
    curve = run.learning_curve
    _figures(out, results, curve, eps)
    write_case_table(out / "learning_curve.csv", list(curve), np.stack(list(curve.values()),
                                                                       axis=1).tolist())
    total = time.perf_counter() - started
    medians = {metric: [float(np.median(results.samples(a, 0.0 if a == "clean" else eps,
                                                        metric)[:, 0]))
                        for a in ("clean", "random_sign", "fgsm")]
               for metric in ("energy_mse", "force_mse")}
    clean_e = results.value(attack="clean", metric="energy_rmse")
    clean_f = results.value(attack="clean", metric="force_rmse")
    results.metadata.update({
        "case": NAME, "quick": bool(options.quick), "seed": options.seed,
        "settings": dataclasses.asdict(s), "data_provenance": provenance,
        "description": "DeePMD-kit se_e2_a on CH₄ under FGSM and random ±0.05 Å coordinate "
                       "noise; perturbed geometries re-labelled by PySCF (paper 000 §2.2).",
        "headline_metric": "force_mse",
        "timing_s": {"total": total, "training": run.wall_s,
                     "pyscf_relabelling": evaluator.wall_time_s,
                     "pyscf_geometries_computed": evaluator.computed,
                     "pyscf_processes": evaluator.processes_used,
                     "attack_and_rest": total - run.wall_s - evaluator.wall_time_s},
        "notes": [
            f"Mode: {'quick' if options.quick else 'full'} (settings in the metadata).",
            *(" ".join(part.replace("``", "").split())
              for part in (__doc__ or "").split("\n\n")[1:3]),
            f"Clean test errors against the labels: energy RMSE {clean_e:.3g} meV/atom, force "
            f"RMSE {clean_f:.3g} eV/Å ({TUTORIAL_ERRORS}).",
            f"Time: {total:.0f} s in all; DeePMD-kit training {run.wall_s:.0f} s"
            f"{' (reused)' if run.reused else ''}; PySCF re-labelling "
            f"{evaluator.wall_time_s:.0f} s for {evaluator.computed} geometries on "
            f"{evaluator.processes_used} process(es).",
            "The verdicts compare MSEs through their ratio, which is the same for per-atom and "
            "total energies (N = 5 for every geometry).",
            "A few geometries dominate the means; the medians over test geometries (clean, "
            "random, FGSM) are: squared energy error "
            f"{', '.join(f'{v:.3g}' for v in medians['energy_mse'])} meV²/atom², force MSE "
            f"{', '.join(f'{v:.3g}' for v in medians['force_mse'])} eV²/Å².",
        ],
    })
    return finish(results, out, title="DeePMD-kit on methane under FGSM vs random noise "
                  "(paper 000 §2.2)", summary=summary_rows(results, "force_mse"),
                  verdicts=verdicts)


CASE = Case(name=NAME, title="Methane: DeePMD-kit energies and forces under coordinate attacks "
            "(paper 000 §2.2)", paper="000 Is AI Robust Enough for Scientific Research?, §2.2, "
            "§5.2, Fig. 3", run=run_methane)
