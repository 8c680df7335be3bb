"""Reproduced experiments, each runnable as ``scirobust reproduce NAME``.

A case module defines ``CASE = Case(...)`` whose ``run(options)`` builds data, model and
objective, calls the engine, writes the standard results directory and report, and returns a
`CaseOutput`. Modules are imported only when their case is asked for, so domain extras
(ASE, xarray, ...) are never imported by ``import scirobust``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from scirobust.errors import ConfigError
from scirobust.results import Results

# name -> module defining CASE; add a line here when a new case lands.
CASE_MODULES: dict[str, str] = {
    "poisson": "scirobust.cases.poisson",
    "qcd": "scirobust.cases.qcd",
    "airfoil": "scirobust.cases.airfoil",
    "sio2": "scirobust.cases.sio2",
    "weather": "scirobust.cases.weather",
    "binary2d": "scirobust.cases.binary2d",
    "digits": "scirobust.cases.digits",
    "sentiment": "scirobust.cases.sentiment",
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


def get_case(name: str) -> Case:
    """Import and return the case called ``name`` (ConfigError listing valid names if unknown)."""
    if name not in CASE_MODULES:
        raise ConfigError(f"Unknown case {name!r}. Available: {', '.join(available())}.")
    try:
        module = importlib.import_module(CASE_MODULES[name])
    except ModuleNotFoundError as exc:
        if exc.name != CASE_MODULES[name]:
            raise ConfigError(
                f"Case {name!r} needs the package {exc.name!r}; install the optional extra "
                f"(pip install 'scirobust[atomistic]' for atomistic cases)."
            ) from exc
        raise ConfigError(f"Case {name!r} is not available in this installation.") from exc
    return module.CASE
