"""Reproduced experiments, each runnable as ``scirobust reproduce NAME``.

A case module defines ``CASE = Case(...)`` whose ``run(options)`` is a thin script in four
parts: settings (quick/full) → build (data, model) → measure (engine calls only: `audit`,
`rollout_audit`, `RobustnessTracker`, the atomistic sweeps; no hand-written clean/random/attack
loop) → present (figures with `scirobust.report.save_case_figure` and the `COLORS` palette,
tables with `write_case_table`, notes and a `Verdict`), ending in `finish`. Modules are
imported only when their case is asked for, so domain extras (ASE, xarray, ...) are never
imported by ``import scirobust``; a case imports its extras at module top, so a missing extra
gives the registry's install hint (`get_case`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from scirobust.errors import ConfigError
from scirobust.results import Results, atomic_write_text

if TYPE_CHECKING:
    from scirobust.report.index import CaseEntry

# name -> module defining CASE; add a line here when a new case lands.
# name -> the optional extra it needs (pip install 'scirobust[<extra>]').
CASE_EXTRAS: dict[str, str] = {"sio2": "atomistic", "weather": "weather", "digits": "cases",
                               "methane": "atomistic,dft", "llm": "llm", "beams": "wireless",
                               "silicon": "atomistic,universal"}
CASE_MODULES: dict[str, str] = {
    "poisson": "scirobust.cases.poisson",
    "qcd": "scirobust.cases.qcd",
    "airfoil": "scirobust.cases.airfoil",
    "sio2": "scirobust.cases.sio2",
    "weather": "scirobust.cases.weather",
    "binary2d": "scirobust.cases.binary2d",
    "digits": "scirobust.cases.digits",
    "sentiment": "scirobust.cases.sentiment",
    "methane": "scirobust.cases.methane",
    "llm": "scirobust.cases.llm",
    "beams": "scirobust.cases.beams",
    "silicon": "scirobust.cases.silicon",
}


@dataclass(frozen=True)
class CaseOptions:
    """Options every case accepts: output directory, quick mode, seed, device, quiet.

    ``data_root`` is a local folder with real data sets (torchvision layout: MNIST/,
    cifar-10-batches-py/) that cases able to use them read instead of their generated or
    bundled stand-ins; nothing is ever downloaded.
    """

    output: Path
    quick: bool = False
    seed: int = 0
    device: str = "cpu"
    quiet: bool = True
    data_root: Path | None = None


@dataclass
class CaseOutput:
    """What a case returns: the results, the report path and a summary table for the terminal.

    ``summary`` is a list of rows (first row = header) printed by the CLI.
    """

    results: Results
    report: Path
    summary: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    """A reproducible experiment: name, title, source paper section and its run function."""

    name: str
    title: str
    paper: str
    run: Callable[[CaseOptions], CaseOutput]


Outcome = Literal["reproduced", "partly", "not reproduced"]


def outcome(flags: Sequence[bool]) -> Outcome:
    """The outcome of a criterion checked in several places (variables, networks, sizes):
    reproduced if it holds everywhere, partly if somewhere, not reproduced if nowhere."""
    flags = [bool(f) for f in flags]
    return "reproduced" if flags and all(flags) else "partly" if any(flags) else "not reproduced"


@dataclass(frozen=True)
class Verdict:
    """Whether a case reproduces its paper's claim, judged by a criterion fixed in code.

    ``claim``: the paper's finding in words; ``criterion``: the test applied to this run's
    numbers (fixed before looking at them); ``outcome``: reproduced, partly or not
    reproduced; ``detail``: the numbers behind the outcome; ``paper`` and ``ours``: the
    compared numbers as text (e.g. "2.2 → 1.6 Mbps"); ``stand_in``: what differs from the
    paper's set-up.
    """

    claim: str
    criterion: str
    outcome: Outcome
    detail: str = ""
    paper: str = ""
    ours: str = ""
    stand_in: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in ("reproduced", "partly", "not reproduced"):
            raise ConfigError(f"Verdict outcome must be reproduced, partly or not reproduced; "
                              f"got {self.outcome!r}.")

    def text(self) -> str:
        """One sentence for the report's notes."""
        detail = f" {self.detail}" if self.detail else ""
        return (f"Verdict: {self.outcome.upper()}. Paper: {self.claim} Criterion: "
                f"{self.criterion}.{detail}")

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form (results metadata ``verdicts`` and ``verdict.json``)."""
        return dataclasses.asdict(self)


def overall(outcomes: Sequence[str]) -> Outcome:
    """One outcome for a case with several verdicts: reproduced if all are, not reproduced if
    none is even partly, else partly."""
    if outcomes and all(o == "reproduced" for o in outcomes):
        return "reproduced"
    if all(o == "not reproduced" for o in outcomes):
        return "not reproduced"
    return "partly"


def finish(
    results: Results,
    directory: Path,
    *,
    title: str,
    summary: Sequence[Sequence[str]] = (),
    verdicts: Sequence[Verdict] = (),
) -> CaseOutput:
    """Save ``results`` (with ``verdicts`` in ``metadata["verdicts"]``, which the report
    shows first), write ``verdict.json`` (title, overall outcome, every verdict) and
    ``report.html`` into ``directory``."""
    from scirobust.report import write_report

    directory = Path(directory)
    if verdicts:
        results.metadata["verdicts"] = [v.as_dict() for v in verdicts]
    cases = sorted({r.case for r in results.records})
    atomic_write_text(directory / "verdict.json", json.dumps({
        "case": cases[0] if len(cases) == 1 else cases, "title": title,
        "outcome": overall([v.outcome for v in verdicts]) if verdicts else None,
        "verdicts": [v.as_dict() for v in verdicts],
    }, indent=2))
    results.save(directory)
    report = write_report(results, directory, title=title)
    return CaseOutput(results, report, [list(row) for row in summary])


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with at most ``n`` intra-op torch threads and restore the setting afterwards.

    The case networks are far too small to gain from threading, and on a busy machine extra
    threads slowed their training down many times over.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, previous)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def single_threaded(
    run: Callable[[CaseOptions], CaseOutput],
) -> Callable[[CaseOptions], CaseOutput]:
    """Decorate a case's ``run`` to execute it under `torch_threads(1)`."""

    @functools.wraps(run)
    def wrapper(options: CaseOptions) -> CaseOutput:
        with torch_threads(1):
            return run(options)

    return wrapper


def available() -> list[str]:
    """Names of the registered cases."""
    return sorted(CASE_MODULES)


def reproduction_entries(root: Path) -> list[CaseEntry]:
    """What the index shows of every registered case's folder ``root/<case>`` (missing or
    failed ones as such)."""
    from scirobust.errors import ScirobustError
    from scirobust.report.index import read_entry

    entries = []
    for name in available():
        try:
            case = get_case(name)
            title, paper = case.title, case.paper
        except ScirobustError as exc:
            title, paper = f"(unavailable: {exc})", ""
        entries.append(read_entry(root / name, name, title, paper))
    return entries


def write_reproduction_index(root: Path) -> Path:
    """Write ``root/index.html`` and ``root/summary.csv`` over every registered case's folder
    ``root/<case>``; return the HTML path."""
    from scirobust.report.index import write_index

    return write_index(root, reproduction_entries(root))


def get_case(name: str) -> Case:
    """Import and return the case called ``name`` (ConfigError listing valid names if unknown)."""
    if name not in CASE_MODULES:
        raise ConfigError(f"Unknown case {name!r}. Available: {', '.join(available())}.")
    try:
        module = importlib.import_module(CASE_MODULES[name])
    except ModuleNotFoundError as exc:
        if exc.name != CASE_MODULES[name]:
            extra = CASE_EXTRAS.get(name, "cases")
            raise ConfigError(
                f"Case {name!r} needs the package {exc.name!r}; install the optional extra: "
                f"pip install 'scirobust[{extra}]'."
            ) from exc
        raise ConfigError(f"Case {name!r} is not available in this installation.") from exc
    return module.CASE
