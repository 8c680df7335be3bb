"""Parametric airfoil PINN under coordinate attacks (paper 000 §2.3, §5.3, Fig. 4).

The paper attacks NNfoil-C, an unsupervised PINN for inviscid flow over a 16-dimensional state
space (x, y, Mach, angle of attack, 12 shape parameters) trained with a body-fitted mesh
transformation: only the spatial coordinates of ~200 surface points move (3 % of their value),
and the surface pressure coefficient is compared with a finite-volume reference.

Reproduced exactly: the attack protocol (200 surface points per test case, relative L-inf
budget of 3 % masked to x, y so Mach, angle and shape stay bit-for-bit unchanged, FGSM vs
random ±3 %, relative L2 error of the surface Cp against the reference *at the clean surface
point*: the truth does not move when the measured coordinates do; six test cases spanning the
trained space) and a parametric PINN trained without labels, from the PDE residual and
boundary conditions only, with a body-fitted (circle-plane) map in the role of NNfoil's mesh
transformation (`scirobust.cases._joukowski`). Stand-ins: potential flow around Joukowski and
Kármán–Trefftz airfoils, made compressible by a closed-form correction (exact reference in
closed form), instead of compressible Euler flow around CST airfoils; our network and
optimiser, trained for minutes on a CPU instead of 18.8 hours.

Two input settings share the one trained network (the circle-plane flow does not depend on the
trailing-edge angle or, before the closed-form correction, on Mach):

* ``mach`` (decides the verdicts): 7 inputs (x, y, Mach, α, μx, μy, τ), Kármán–Trefftz
  airfoils with trailing-edge angle τ and the Kármán–Tsien compressibility correction of Cp
  (`scirobust.cases._airfoil_mach`), at subcritical Mach per test case — closer to NNfoil-C's
  16 inputs (x, y, Mach, α, 12 CST parameters);
* ``5-input``: the earlier incompressible Joukowski setting (x, y, α, μx, μy), kept beside it
  with the same numbers for the same seed (models ``pinn`` and ``exact_potential``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scirobust.audit import audit
from scirobust.budget import Budget
from scirobust.cases import Case, CaseOptions, CaseOutput, finish, single_threaded
from scirobust.cases._airfoil_figures import case_figures
from scirobust.cases._airfoil_mach import (
    INPUTS_MACH,
    MachPinn,
    critical_pressure_coefficient,
    mach_surface_batch,
)
from scirobust.cases._airfoil_verdicts import run_notes, verdicts
from scirobust.cases._joukowski import (
    ExactStream,
    JoukowskiPinn,
    PinnSettings,
    surface_angles,
    surface_cp,
    surface_points,
    to_chord_frame,
    train_pinn,
)
from scirobust.errors import ConfigError
from scirobust.metrics import METRICS, Metric, Reduction
from scirobust.report import write_case_table
from scirobust.results import Record, Results, ratio_records
from scirobust.sweep import Sweep, stable_int

__all__ = ["CASE", "INPUTS", "INPUTS_MACH", "AirfoilSettings", "coordinate_mask", "cp_error",
           "mean_records", "measure_case", "measure_mach_case", "run", "run_airfoil",
           "surface_batch"]

CASE_NAME = "airfoil"
METRIC = "cp_relative_l2"
INPUTS = ("x", "y", "alpha_deg", "mu_x", "mu_y")
"""Model inputs: chord-frame coordinates (x, y), angle of attack (degrees), circle centre."""


@dataclass(frozen=True)
class AirfoilSettings(PinnSettings):
    """Settings of the airfoil case, fixed from the paper before looking at any result: the
    PINN's (`PinnSettings`), the test cases ``(α in degrees, μx, μy)``, their ``(Mach,
    trailing-edge angle in degrees)`` in the Mach setting, surface points per case, the
    relative budget ``epsilon`` and the random draws per case."""

    test_cases: tuple[tuple[float, float, float], ...] = (
        (2.0, -0.08, 0.02),
        (4.0, -0.10, 0.05),
        (6.0, -0.12, 0.03),
        (1.0, -0.14, 0.08),
        (7.0, -0.06, 0.07),
        (3.0, -0.13, 0.00),
    )
    # Mach setting. Domain: subsonic Mach 0–0.7 (below the transonic drag rise, where a
    # closed-form correction of the potential flow can stand in for Euler), τ 0–15°. Per test
    # case (Mach, τ°), fixed from the exact flow alone before any attack: τ = 0, 3, ..., 15°
    # spans the shapes (0° is Joukowski); Mach = 0.05·floor(20 · 0.9 · M_crit), M_crit the
    # free-stream Mach at which the clean surface first turns sonic (`critical_mach`): strong
    # compressibility while the Kármán–Tsien correction still holds.
    mach_range: tuple[float, float] = (0.0, 0.7)
    te_angle_range_deg: tuple[float, float] = (0.0, 15.0)
    mach_cases: tuple[tuple[float, float], ...] = (
        (0.55, 0.0), (0.45, 3.0), (0.40, 6.0), (0.50, 9.0), (0.30, 12.0), (0.50, 15.0))
    n_surface: int = 200
    epsilon: float = 0.03
    n_random: int = 20

    def __post_init__(self) -> None:
        (m0, m1), (t0, t1) = self.mach_range, self.te_angle_range_deg
        if len(self.mach_cases) != len(self.test_cases) or not all(
                m0 <= m <= m1 and t0 <= t <= t1 for m, t in self.mach_cases):
            raise ConfigError(f"AirfoilSettings needs one (Mach, trailing-edge angle) pair per "
                              f"test case inside {self.mach_range} × {self.te_angle_range_deg}"
                              f"°; got {self.mach_cases} for {len(self.test_cases)} cases.")

    @classmethod
    def full(cls) -> AirfoilSettings:
        """Full mode: 3000 Adam iterations on fresh points, then 2000 L-BFGS iterations."""
        return cls()

    @classmethod
    def quick(cls) -> AirfoilSettings:
        """Quick mode for tests and demos (a rougher PINN, the same protocol)."""
        return cls(iterations=400, lbfgs_iterations=150, n_interior=512, n_wall=256, n_far=128,
                   n_kutta=64)


def coordinate_mask(inputs: tuple[str, ...] = INPUTS) -> Tensor:
    """Budget mask over ``inputs`` (`INPUTS` or `INPUTS_MACH`): True on x, y only."""
    return torch.tensor([name in ("x", "y") for name in inputs])


# --------------------------------------------------------------------------- measurement
def surface_batch(
    alpha_deg: float, mu_x: float, mu_y: float, n: int
) -> tuple[Tensor, Tensor]:
    """``n`` surface points of one test case, uniform in circle angle, half a step off the
    trailing edge: model inputs (n, 5) and the exact surface Cp (n, 1)."""
    mu = complex(mu_x, mu_y)
    theta = surface_angles(mu, n)
    x, y = to_chord_frame(surface_points(theta, mu)[1])
    params = torch.tensor([alpha_deg, mu_x, mu_y], dtype=torch.float64).expand(n, 3)
    inputs = torch.cat([torch.stack([x, y], -1), params], -1)
    return inputs, surface_cp(theta, math.radians(alpha_deg), mu)[:, None]


def cp_error(label: str) -> Metric:
    """Relative L2 error of one test case's surface Cp, ``‖Cp − Cp_ref‖₂ / ‖Cp_ref‖₂``
    (dimensionless), reported with ``variable=label``.

    Components and the delta-method standard error are those of `relative_l2`; the value is
    the ratio of the two torch 2-norms, as this case has always computed it (numpy's ratio of
    mean squares can differ in the last bit). ``√(x²)`` rounds back to ``|x|`` exactly.
    """
    stock = METRICS["relative_l2"]

    def reduce(c: np.ndarray) -> list[Reduction]:
        stderr = Reduction(*stock.reduce(c)[0]).stderr
        error, truth = (torch.linalg.vector_norm(torch.from_numpy(np.sqrt(c[:, i])))
                        for i in (0, 1))
        return [Reduction(METRIC, float(error / truth), stderr, variable=label)]

    return Metric(METRIC, stock.components, reduce, description="relative L2 error of Cp")


def measure_case(
    model: JoukowskiPinn, exact: JoukowskiPinn, case: tuple[float, float, float], label: str,
    settings: AirfoilSettings, seed: int,
) -> tuple[list[Record], dict[str, Any]]:
    """Audit one test case ``(α°, μx, μy)`` of the 5-input setting: the PINN clean, under random
    ±eps (``n_random`` draws) and FGSM, and the exact flow (model ``exact_potential``) under the
    same random draws.

    Both audits compare with the exact Cp at the *clean* surface point (the paper's protocol;
    targets, not ``reference=``, which would move the truth with the point). Returns the
    records (``variable=label``) and the arrays and values the figures and tables need.
    """
    inputs, ref = surface_batch(*case, settings.n_surface)
    return _measure(model, exact, inputs, ref, label, settings,
                    stable_int(seed, CASE_NAME, label), ("pinn", "exact_potential"), INPUTS)


def measure_mach_case(
    model: MachPinn, exact: MachPinn, case: tuple[float, float, float],
    mach_case: tuple[float, float], label: str, settings: AirfoilSettings, seed: int,
) -> tuple[list[Record], dict[str, Any]]:
    """`measure_case` for the 7-input ``mach`` setting: test case ``(α°, μx, μy)`` at
    ``(Mach, τ°)``; models ``pinn_mach`` and ``exact_mach``, draws of their own seed."""
    mach, tau = mach_case
    inputs, ref = mach_surface_batch(mach, *case, tau, settings.n_surface)
    records, ev = _measure(model, exact, inputs, ref, label, settings,
                           stable_int(seed, CASE_NAME, "mach", label),
                           ("pinn_mach", "exact_mach"), INPUTS_MACH)
    ev.update(cp_ref_min=float(ref.min()), cp_critical=critical_pressure_coefficient(mach))
    return records, ev


def _measure(
    model: torch.nn.Module, exact: torch.nn.Module, inputs: Tensor, ref: Tensor, label: str,
    settings: AirfoilSettings, seed: int, names: tuple[str, str], features: tuple[str, ...],
) -> tuple[list[Record], dict[str, Any]]:
    metric, eps = cp_error(label), settings.epsilon
    # Own seed per case: the cases' random draws are independent, not one sign pattern.
    sweep = Sweep(epsilons=(eps,), attacks=("random_sign", "fgsm"), metrics=(metric,),
                  budget=Budget(relative=True, mask=coordinate_mask(features)),
                  n_random=settings.n_random, seed=seed)
    common: dict[str, Any] = {"case": CASE_NAME, "keep_per_sample": False}
    pinn = audit(model, inputs, ref, sweep, model_name=names[0], keep_perturbed=True, **common)
    # Same seed and label, so the same draws: how much the true Cp changes when points move.
    # The exact flow equals its target at the clean points, so the audit's gradient check
    # warns of zero gradients; no gradient attack runs on it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "(?s).*exactly zero input-gradient")
        control = audit(exact, inputs, ref, sweep.replace(attacks=("random_sign",)),
                        model_name=names[1], **common)
    clean, rand, fgsm = (pinn.perturbed[key] for key in
                         (("clean", 0.0), ("random_sign", eps), ("fgsm", eps)))
    with torch.no_grad():
        exact_fgsm = metric.components(exact(fgsm.inputs[0]), ref).numpy()
    row = {(r.model, r.kind): r for r in (*pinn, *control)}
    return [*pinn, *control], {
        "inputs": inputs, "ref": ref, "cp_clean": clean.outputs[0], "cp_fgsm": fgsm.outputs[0],
        "cp_random": rand.outputs[0], "x_fgsm": fgsm.inputs[0], "x_random": rand.inputs[0],
        "clean": row[names[0], "clean"].value, "random": row[names[0], "random"].value,
        "random_spread": row[names[0], "random"].spread,
        "fgsm": row[names[0], "adversarial"].value, "ratio": row[names[0], "ratio"].value,
        "exact_random": row[names[1], "random"].value,
        "exact_at_fgsm": metric.reduce(exact_fgsm)[0].value,
        "fgsm_inside_body": int((exact.circle_coordinates(fgsm.inputs[0])[0] < 0).sum()),
        "params_unchanged": all(torch.equal(p.inputs[..., 2:], inputs.expand_as(p.inputs)[..., 2:])
                                for p in (rand, fgsm)),
    }


def mean_records(records: list[Record]) -> list[Record]:
    """Mean over test cases of every (model, attack) row (``variable=""``, ``n`` = cases,
    ``stderr`` over cases), and their FGSM/random ratio."""
    groups: dict[tuple[str, str, float, str], list[float]] = {}
    for r in records:
        if r.kind != "ratio":
            groups.setdefault((r.model, r.attack, r.epsilon, r.kind), []).append(r.value)
    means = []
    for (model, attack, eps, kind), values in groups.items():
        v = np.array(values)
        se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
        means.append(Record(CASE_NAME, model, attack, eps, METRIC, float(v.mean()), se,
                            n=v.size, kind=kind))  # type: ignore[arg-type]
    return means + ratio_records(means, {METRIC})


# --------------------------------------------------------------------------- presentation
Evals = list[dict[str, Any]]
"""Per-test-case dicts of `measure_case` / `measure_mach_case`."""

def _tables(directory: Path, s: AirfoilSettings, evals: Evals, mach: Evals,
            info: dict[str, Any]) -> None:
    """Write the per-case relative-L2 Cp tables of both input settings (fractions) and the
    training losses' final values."""
    columns = {"clean": "clean", "random_mean": "random", "random_std": "random_spread",
               "fgsm": "fgsm", "fgsm_over_random": "ratio", "exact_field_random": "exact_random",
               "exact_field_at_fgsm_points": "exact_at_fgsm",
               "fgsm_points_inside_body": "fgsm_inside_body"}
    write_case_table(directory / "tables" / "airfoil_cp_relative_l2.csv",
                     ["case", "alpha_deg", "mu_x", "mu_y", *columns],
                     [[i + 1, *case, *(ev[k] for k in columns.values())]
                      for i, (case, ev) in enumerate(zip(s.test_cases, evals, strict=True))])
    extra = {"cp_ref_min": "cp_ref_min", "cp_critical": "cp_critical"}
    write_case_table(directory / "tables" / "airfoil_mach_cp_relative_l2.csv",
                     ["case", "mach", "alpha_deg", "mu_x", "mu_y", "te_angle_deg", *columns,
                      *extra],
                     [[i + 1, m[0], *case, m[1], *(ev[k] for k in (*columns.values(), *extra))]
                      for i, (case, m, ev) in enumerate(zip(s.test_cases, s.mach_cases, mach,
                                                            strict=True))])
    losses = info["final_losses"]
    write_case_table(directory / "tables" / "airfoil_training.csv",
                     ["term", "weight", "final_value"],
                     [[k, w, losses[k]] for k, w in info["weights"].items()])


def _measure_settings(model: JoukowskiPinn, s: AirfoilSettings,
                      seed: int) -> tuple[list[Record], Evals, Evals]:
    """Records of both input settings (5-input Joukowski, 7-input Mach) plus their means over
    cases, and the per-case evaluations of the 5-input and of the Mach setting."""
    exact = JoukowskiPinn(ExactStream())
    records: list[Record] = []
    evals: Evals = []
    for i, case in enumerate(s.test_cases):
        case_records, ev = measure_case(model, exact, case, f"case {i + 1}", s, seed)
        records += case_records
        evals.append(ev)
    # The same trained network behind the Kármán–Trefftz map and the Kármán–Tsien correction.
    model_mach, exact_mach = MachPinn(model.stream).eval(), MachPinn(ExactStream())
    mach: Evals = []
    for i, (case, mc) in enumerate(zip(s.test_cases, s.mach_cases, strict=True)):
        case_records, ev = measure_mach_case(model_mach, exact_mach, case, mc, f"case {i + 1}",
                                             s, seed)
        records += case_records
        mach.append(ev)
    records += mean_records(records)
    return records, evals, mach


def run_airfoil(options: CaseOptions, settings: AirfoilSettings | None = None) -> CaseOutput:
    """Train the parametric PINN, attack the surface coordinates in both input settings,
    write results and report."""
    started = time.perf_counter()
    s = settings or (AirfoilSettings.quick() if options.quick else AirfoilSettings.full())
    directory = Path(options.output)
    model, info = train_pinn(s, options.seed, options.quiet)
    records, evals, mach = _measure_settings(model, s, options.seed)

    _tables(directory, s, evals, mach, info)
    case_figures(directory, s, evals, mach)

    total = time.perf_counter() - started
    notes = run_notes(s, info, evals, mach, options.quick, options.seed, total)
    results = Results(records, metadata={
        "case": CASE_NAME, "title": CASE.title, "paper": CASE.paper, "description": (
            "A parametric PINN for potential flow around Kármán–Trefftz airfoils (inputs x, y, "
            "Mach, angle of attack, circle centre, trailing-edge angle; Kármán–Tsien "
            "compressibility correction), trained from the PDE and boundary conditions only; "
            "the spatial coordinates of 200 surface points are moved by 3 % with FGSM and with "
            "random signs, and the surface Cp is compared with the exact solution. The earlier "
            "5-input incompressible Joukowski setting is reported beside it."),
        "notes": notes, "settings": dataclasses.asdict(s), "seed": options.seed,
        "quick": options.quick, "units": {METRIC: "dimensionless"},
        "epsilon_label": "relative perturbation of (x, y), eps", "wall_time_s": total,
        "train_seconds": info["train_seconds"], "final_losses": info["final_losses"],
        "inputs": {"mach": list(INPUTS_MACH), "5-input": list(INPUTS)},
        "standard_figures": False,  # one ε, 4 models × 6 cases: the case figures (4A–D) tell it
    }, per_sample={f"{tag}case{i + 1}_{k}": ev[k].numpy()
                   for tag, group in (("", evals), ("mach_", mach)) for i, ev in enumerate(group)
                   for k in ("inputs", "ref", "cp_clean", "cp_fgsm", "x_fgsm")})
    summary = [["case", "5-in random", "5-in FGSM", "Mach random", "Mach FGSM",
                "Mach FGSM/random"]] + [
        [str(i + 1), *(f"{e[k]:.2%}" for e in (ev, mv) for k in ("random", "fgsm")),
         f"{mv['ratio']:.2f}"] for i, (ev, mv) in enumerate(zip(evals, mach, strict=True))]
    return finish(results, directory, title=CASE.title, summary=summary,
                  verdicts=verdicts(mach, evals))


@single_threaded
def run(options: CaseOptions) -> CaseOutput:
    """Entry point of ``scirobust reproduce airfoil [--quick]`` (one intra-op thread: the
    networks are far too small to gain from threading)."""
    return run_airfoil(options)


CASE = Case(
    name=CASE_NAME,
    title="Parametric airfoil PINN (Kármán–Trefftz potential flow with Mach) under coordinate "
          "attacks",
    paper="000 §2.3, §5.3, Fig. 4",
    run=run,
)
