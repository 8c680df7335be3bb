"""The ``scirobust`` command line: audit, track, report, reproduce, demo, attacks, cases.

Every command that writes results takes ``--output``, ``--quiet`` and ``--seed``. Errors
raised on purpose (`ScirobustError`, invalid YAML or config) print one red paragraph to stderr
and exit with code 2; unexpected errors exit with code 1. Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import torch
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scirobust import __version__, cases
from scirobust.attacks import ATTACKS
from scirobust.errors import ConfigError, ScirobustError
from scirobust.results import Results

app = typer.Typer(
    name="scirobust",
    help="How far can a tiny targeted change of the inputs throw a scientific model off, "
    "compared with random noise of exactly the same size?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # tracebacks only with --debug, printed by _guard
)

_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])

# Shared options (each command re-declares them so --help lists them in place).
OutputOpt = Annotated[str | None, typer.Option("--output", "-o", help="Output directory.",
                                               show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No progress bar or table; errors still print.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="'cpu' or 'cuda' (or 'cuda:N').")]


# --------------------------------------------------------------------------- output helpers
def _err_console() -> Console:
    return Console(stderr=True, highlight=False)


def _out_console() -> Console:
    return Console(highlight=False)


def _print_error(message: str, code: int, exc: BaseException | None = None) -> None:
    console = _err_console()
    if _state["debug"] and exc is not None:
        console.print(Text("".join(traceback.format_exception(exc)), style="dim"),
                      soft_wrap=True)
    # soft_wrap: never break the message inside words or key paths.
    console.print(Text(f"Error: {message}", style="bold red"), soft_wrap=True)
    raise typer.Exit(code)


def _guard(fn: F) -> F:
    """Turn exceptions into a red message and an exit code (2 known, 1 unexpected)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt as exc:
            _print_error("interrupted. Finished (attack, epsilon) cells are cached in "
                         "OUTPUT/cache: run the same command again to resume.", 130, exc)
        except ScirobustError as exc:
            # Messages about failing user code already say to re-run with --debug.
            _print_error(str(exc), 2, exc)
        except (ValidationError, yaml.YAMLError) as exc:
            _print_error(str(ConfigError(str(exc))), 2, exc)
        except Exception as exc:
            _print_error(
                f"unexpected {type(exc).__name__}: {exc}. This is likely a bug in scirobust "
                "or in the model code; re-run with --debug to see the traceback.", 1, exc)

    return wrapper  # type: ignore[return-value]


def _print_table(rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    if not rows:
        return
    table = Table(title=title, show_lines=False)
    for name in rows[0]:
        table.add_column(str(name))
    for row in rows[1:]:
        table.add_row(*(str(v) for v in row))
    _out_console().print(table)


@contextlib.contextmanager
def _collected_warnings() -> Iterator[list[str]]:
    """Collect warnings (gradient-masking checks etc.) to print as notes, not as tracebacks."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield notes
    notes.extend(dict.fromkeys(str(w.message) for w in caught))


def _print_notes(notes: Sequence[str]) -> None:
    console = _err_console()
    for note in notes:
        console.print(Text(f"Note: {note}", style="yellow"), soft_wrap=True)


def _check_device(device: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ConfigError(f"--device must be 'cpu' or 'cuda' (or 'cuda:N'); got {device!r}.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available in this PyTorch build "
                          f"(torch {torch.__version__}); use --device cpu.")
    return device


def _output_path(output: str | None) -> Path | None:
    """``--output`` as a path; an empty value would silently mean the working directory."""
    if output is None:
        return None
    if not output.strip():
        raise ConfigError("--output is empty; give a directory (e.g. --output out/run1).")
    return Path(output)


@contextlib.contextmanager
def _output_folder(path: Path) -> Iterator[Path]:
    """Create ``path`` and hold an exclusive lock on it while a command writes there.

    A second command writing to the same folder at the same time is refused instead of
    silently overwriting the first one's files; the lock ends with the process, so a killed
    run never leaves the folder locked.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {path} is an existing file, not a directory; choose "
                          "another output directory.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle = open(path / ".scirobust.lock", "a")  # noqa: SIM115 - held for the block
    except OSError as exc:
        raise ConfigError(f"Cannot write to the output directory {path}: {exc.strerror or exc}. "
                          "Choose a directory you can write to.") from exc
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise ConfigError(
                    f"Another scirobust command is writing to {path} right now; wait for it "
                    "to finish or choose another --output."
                ) from exc
            raise
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield path


def _write_report(results: Results, directory: Path, title: str | None) -> Path:
    from scirobust.report import write_report  # matplotlib: import only when needed

    return Path(write_report(results, directory, title=title))


def _summary(results: Results) -> list[list[str]]:
    from scirobust.report import summary_rows

    return summary_rows(results)


def _finish(report: Path, rows: list[list[str]], quiet: bool, title: str) -> None:
    if not quiet:
        _print_table(rows, title)
    typer.echo(f"Report: {report}")


# --------------------------------------------------------------------------- commands
def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"scirobust {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", callback=_print_version,
        is_eager=True)] = False,
) -> None:
    """Paired robustness audits: clean vs random noise vs gradient attacks of the same size.

    Example: scirobust audit examples/regression/audit.yaml --output out/regression
    """
    _state["debug"] = debug


def _is_atomistic(data: Any) -> bool:
    return isinstance(data, dict) and data.get("task") == "atomistic"


@app.command(epilog="Example: scirobust audit examples/regression/audit.yaml --output out/")
@_guard
def audit(
    config: Annotated[Path, typer.Argument(help="The YAML audit file.", show_default=False)],
    output: OutputOpt = None,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed (overrides the file's).",
                                             show_default=False)] = None,
    trust_checkpoint: Annotated[bool, typer.Option(
        "--trust-checkpoint",
        help="Allow a checkpoint that is a whole pickled model (runs code from the file: only "
        "for files you trust).")] = False,
    distributed: Annotated[bool, typer.Option(
        "--distributed",
        help="Shard the audit across the processes started by torchrun (one per device); "
        "the records are those of one process, written by rank 0.")] = False,
) -> None:
    """Audit your model as described by a YAML file.

    The whole file is validated first (schema, files, array names, shapes); then the paired
    sweep runs with a resumable cache in OUTPUT/cache, and results.csv, results.json and
    report.html are written to OUTPUT (default: the file's `output`, else
    scirobust-output/CASE, where CASE is the file's `case` or the file's name).

    Example: scirobust audit examples/regression/audit.yaml --output out/ --seed 1
    """
    from scirobust.config import build_audit, load_config, read_yaml

    if config.is_file() and _is_atomistic(read_yaml(config)):
        from scirobust.atomistic.config import build_atomistic_audit, load_atomistic_config

        cfg: Any = load_atomistic_config(config)
        _check_device(device)
        if distributed:
            raise ConfigError("--distributed is not supported for task: atomistic files; run "
                              "the audit without it.")
        out = cfg.output_dir(_output_path(output))
        plan: Any = build_atomistic_audit(cfg, output=out, trust_checkpoint=trust_checkpoint)
    else:
        cfg = load_config(config)
        _check_device(device)
        plan = build_audit(cfg, trust_checkpoint=trust_checkpoint)
        out = cfg.output_dir(_output_path(output))
    cache, main = out / "cache", True
    if distributed:
        import atexit

        import torch.distributed as dist

        from scirobust.distributed import init_from_environment, rank_and_world

        init_from_environment(device)
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
        rank, _ = rank_and_world(True)
        cache, main = cache / f"rank{rank}", rank == 0
    # Only rank 0 holds the folder and writes results; the others write their own cache.
    with _output_folder(out) if main else contextlib.nullcontext(out):
        with _collected_warnings() as notes:
            results = plan.run(cache_dir=cache, seed=seed, device=device,
                               progress=not quiet, distributed=distributed)
        if not main:
            return
        _print_notes([*plan.notes, *notes])
        results.save(out)
        report = _write_report(results, out, title=f"scirobust audit: {cfg.label}")
    reused = results.metadata.get("cells_reused_from_cache", 0)
    if reused and not quiet:
        typer.echo(f"Reused {reused} finished cell(s) from {out / 'cache'}.")
    _finish(report, _summary(results), quiet, f"{cfg.label}: {plan.model_name}")


@app.command(epilog="Example: scirobust augment examples/atomistic/audit.yaml --step 0.1 "
             "--along adversarial --output new.extxyz")
@_guard
def augment(
    config: Annotated[Path, typer.Argument(help="A task: atomistic audit file with a "
                                           "reference calculator.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="extxyz file, or a folder "
                                         "with --format deepmd.", show_default=False)],
    step: Annotated[float, typer.Option("--step", help="Total displacement of each structure "
                                        "(L2 norm over all coordinates), Å.")] = 0.1,
    along: Annotated[str, typer.Option("--along", help="adversarial | model_forces | "
                                       "random")] = "adversarial",
    output_format: Annotated[str, typer.Option("--format", help="extxyz | deepmd")] = "extxyz",
    seed: Annotated[int, typer.Option("--seed", help="Seed of random directions.")] = 0,
    trust_checkpoint: Annotated[bool, typer.Option(
        "--trust-checkpoint", help="Allow a whole pickled model checkpoint (runs code from the "
        "file: only for files you trust).")] = False,
    quiet: QuietOpt = False,
) -> None:
    """New training configurations where your potential is weakest.

    Reads the model, reference and structures of a `task: atomistic` audit file, steps every
    structure by --step Å along the adversarial direction A = 2(E_ref − E)(F − F_ref), the
    model's own forces, or a random direction, labels the new configurations with the
    reference and writes them as extxyz (or a DeePMD-kit data folder) for your training code.

    Example: scirobust augment audit.yaml --step 0.1 --along model_forces --output new.extxyz
    """
    from scirobust.atomistic.config import build_atomistic_audit, load_atomistic_config
    from scirobust.atomistic.sampling import ALONG, adversarial_samples, write_samples

    if along not in ALONG:
        raise ConfigError(f"--along must be one of {', '.join(ALONG)}; got {along!r}.")
    if output_format not in ("extxyz", "deepmd"):
        raise ConfigError(f"--format must be extxyz or deepmd; got {output_format!r}.")
    cfg = load_atomistic_config(config)
    if cfg.reference == "labels":
        raise ConfigError("augment labels new configurations, so the audit file needs a "
                          "reference calculator (reference: {calculator: ...} or {pyscf: ...}).")
    plan = build_atomistic_audit(cfg, output=output.parent, trust_checkpoint=trust_checkpoint)
    offset = cfg.energy_offset_ev
    samples = adversarial_samples(plan.structures, plan.model, plan.reference, step_angstrom=step,
                                  along=along, energy_offset_ev=-offset if isinstance(
                                      offset, float) else offset, seed=seed)
    written = write_samples(samples, output, format=output_format)
    if not quiet:
        typer.echo(f"Wrote {len(samples)} configurations stepped {step:g} Å along {along} and "
                   f"labelled by the reference to {written}.")


@app.command(epilog="Example: scirobust track audit.yaml ckpt/epoch_01.pt ckpt/epoch_02.pt "
             "--output out/track")
@_guard
def track(
    config: Annotated[Path, typer.Argument(help="The YAML audit file (task: classification).",
                                           show_default=False)],
    checkpoints: Annotated[list[Path], typer.Argument(
        help="state_dict checkpoints, e.g. one per epoch (epoch read from names like "
        "epoch_3.pt).", show_default=False)],
    output: OutputOpt = None,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed (overrides the file's).",
                                             show_default=False)] = None,
    layer: Annotated[str | None, typer.Option(
        "--layer", help="Attack the output of this submodule instead of the input.",
        show_default=False)] = None,
    trust_checkpoint: Annotated[bool, typer.Option(
        "--trust-checkpoint",
        help="Allow checkpoints that are whole pickled models (runs code from the files: only "
        "for files you trust).")] = False,
) -> None:
    """Clean and robust accuracy of each checkpoint, plus the envelope over attacks.

    The file is validated as for `audit`; each CHECKPOINT is loaded (weights_only) into the
    file's model factory and audited with the file's data, budget, attacks and epsilons. The
    records have step = K (the epoch, from file names like epoch_3.pt; else the model label
    is MODEL@STEM); rows of kind "envelope" hold the lowest accuracy over the gradient
    attacks. Writes results and report.html to OUTPUT (default: the audit's output directory
    + /track).

    Example: scirobust track audit.yaml ckpt/epoch_01.pt ckpt/epoch_02.pt --output out/track
    """
    from scirobust.config import build_audit, build_model, load_config
    from scirobust.training import RobustnessTracker, track_checkpoints

    cfg = load_config(config)
    _check_device(device)
    if cfg.task != "classification":
        raise ConfigError(f"{config}: track records accuracy over checkpoints and needs "
                          "task: classification; use `scirobust audit` per checkpoint for "
                          "regression models.")
    missing = [str(p) for p in checkpoints if not p.is_file()]
    if missing:
        raise ConfigError(f"Checkpoint file(s) not found: {', '.join(missing)}.")
    plan = build_audit(cfg, trust_checkpoint=trust_checkpoint)
    metric = "error_rate" if cfg.metrics and "accuracy" not in cfg.metrics else "accuracy"
    sweep = plan.sweep.replace(device=device, **({} if seed is None else {"seed": seed}))
    tracker = RobustnessTracker(plan.inputs, plan.targets, sweep, layer=layer,
                                model_name=plan.model_name, case=cfg.label, metric=metric)
    out = _output_path(output) or cfg.output_dir() / "track"
    with _output_folder(out):
        with _collected_warnings() as notes:
            results = track_checkpoints(
                lambda: build_model(cfg, trust_checkpoint=trust_checkpoint), checkpoints,
                tracker, loader=lambda path: build_model(cfg, checkpoint=path,
                                                         trust_checkpoint=trust_checkpoint))
        _print_notes([*plan.notes, *notes])
        results.metadata["description"] = (
            f"Clean and robust {metric} of {len(checkpoints)} checkpoint(s) of "
            f"{plan.model_name} ({cfg.label}); attack 'envelope' = worst over the gradient "
            "attacks.")
        results.save(out)
        report = _write_report(results, out, title=f"scirobust track: {cfg.label}")
    rows = [["model", "epoch", "clean", "envelope"]]
    for label, step in dict.fromkeys((r.model, r.step) for r in results.records):
        at = {"model": label, "step": step, "metric": metric}
        clean = results.select(kind="clean", **at)
        env = [r.value for r in results.select(kind="envelope", **at)]
        rows.append([label, "" if step is None else str(step),
                     f"{clean[0].value:.4f}" if clean else "",
                     ", ".join(f"{v:.4f}" for v in env)])
    _finish(report, rows, quiet, f"{cfg.label}: {plan.model_name} over checkpoints")


@app.command(epilog="Example: scirobust report out/regression")
@_guard
def report(
    directory: Annotated[Path, typer.Argument(help="A results directory (results.json or "
                                              ".csv).", show_default=False)],
    output: OutputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Regenerate the figures and report.html of a results directory.

    Reads results.json (or results.csv) from DIRECTORY and writes figures and report.html
    into --output (default: DIRECTORY itself).

    Example: scirobust report out/regression
    """
    results = Results.load(directory)
    with _output_folder(_output_path(output) or directory) as out:
        path = _write_report(results, out, title=None)
    _finish(path, _summary(results), quiet, str(directory))


def _run_case(name: str, output: Path, quick: bool, seed: int, device: str,
              quiet: bool, data_root: Path | None = None) -> None:
    case = cases.get_case(name)
    _check_device(device)
    if data_root is not None and not data_root.is_dir():
        raise ConfigError(f"--data-root {data_root} is not a directory.")
    options = cases.CaseOptions(output=output, quick=quick, seed=seed, device=device,
                                quiet=quiet, data_root=data_root)
    with _output_folder(output), _collected_warnings() as notes:
        # Figures and tables of an earlier run into the same folder would otherwise show in
        # this run's report; results and report are replaced atomically at the end.
        for derived in ("figures", "tables"):
            shutil.rmtree(output / derived, ignore_errors=True)
        (output / "run.json").unlink(missing_ok=True)
        started = time.perf_counter()
        try:
            result = case.run(options)
        except BaseException as exc:
            _write_run_record(output, name, quick, seed, time.perf_counter() - started, exc)
            raise
        _write_run_record(output, name, quick, seed, time.perf_counter() - started)
    _print_notes(notes)
    _finish(Path(result.report), result.summary, quiet, f"{case.name}: {case.title}")


def _write_run_record(output: Path, name: str, quick: bool, seed: int, seconds: float,
                      error: BaseException | None = None) -> None:
    """``run.json``: how a case's folder was made (read by `reproduce all` to resume)."""
    from scirobust.results import atomic_write_text

    record = {"case": name, "quick": quick, "seed": seed, "wall_time_s": round(seconds, 2),
              "status": "failed" if error is not None else "finished",
              "scirobust_version": __version__}
    if error is not None:
        record["error"] = f"{type(error).__name__}: {error}"
    atomic_write_text(output / "run.json", json.dumps(record, indent=2))


def _finished_before(folder: Path, quick: bool, seed: int) -> bool:
    from scirobust.report.index import read_json_record

    record = read_json_record(folder / "run.json") or {}
    return (record.get("status") == "finished" and record.get("quick") == quick
            and record.get("seed") == seed and (folder / "report.html").is_file())


def _reproduce_all(root: Path, quick: bool, seed: int, device: str, quiet: bool,
                   data_root: Path | None, jobs: int) -> None:
    """Every case into ``root/<case>`` (finished ones are kept), then the index."""
    from concurrent.futures import ThreadPoolExecutor

    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1; got {jobs}.")
    names = cases.available()
    todo = [n for n in names if not _finished_before(root / n, quick, seed)]
    say = (lambda text: None) if quiet else typer.echo
    kept = [n for n in names if n not in todo]
    if kept:
        say(f"Kept {len(kept)} finished case(s): {', '.join(kept)}.")

    def run_one(name: str) -> tuple[str, int, str]:
        if jobs == 1:
            try:
                _run_case(name, root / name, quick, seed, device, True, data_root)
            except Exception as exc:  # one failing case must not stop the others
                return name, 1, f"{type(exc).__name__}: {exc}"
            return name, 0, ""
        # In parallel each case runs in its own process (cases set thread limits).
        command = [sys.executable, "-m", "scirobust.cli", "reproduce", name, "--output",
                   str(root / name), "--seed", str(seed), "--device", device, "--quiet"]
        command += ["--quick"] if quick else []
        command += ["--data-root", str(data_root)] if data_root is not None else []
        done = subprocess.run(command, capture_output=True, text=True)
        last_line = (done.stderr.strip().splitlines() or [""])[-1]
        return name, done.returncode, last_line

    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for i, (name, code, message) in enumerate(pool.map(run_one, todo), start=1):
            say(f"[{i}/{len(todo)}] {name}: " + ("done" if code == 0 else f"failed ({message})"))
            if code != 0:
                failed.append(name)
    index = cases.write_reproduction_index(root)
    typer.echo(f"Index: {index}")
    if failed:
        raise ConfigError(f"{len(failed)} case(s) failed: {', '.join(failed)}; see "
                          f"{root / 'summary.csv'} and run them alone for the full message.")


@app.command(epilog="Example: scirobust reproduce poisson --quick --output out/poisson")
@_guard
def reproduce(
    case: Annotated[str, typer.Argument(help="Case name (see `scirobust cases`).",
                                        show_default=False)],
    quick: Annotated[bool, typer.Option("--quick", help="Small quick version (minutes).")] = False,
    output: OutputOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="Local folder with real data (torchvision layout: MNIST/, "
        "cifar-10-batches-py/), used by cases that can; nothing is downloaded.",
        show_default=False)] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", help="With CASE 'all': cases run in parallel processes.")] = 1,
) -> None:
    """Reproduce a published experiment and write its results and report.

    CASE 'all' runs every case into OUTPUT/CASE (cases finished before with the same --quick
    and --seed are kept), then writes OUTPUT/index.html and OUTPUT/summary.csv: paper vs
    ours, verdicts and run times of every case. Default output: scirobust-output/CASE
    (scirobust-output for 'all').

    Example: scirobust reproduce poisson --quick --output out/poisson

    Example: scirobust reproduce all --quick --jobs 2 --output out/all
    """
    if case == "all":
        root = _output_path(output) or Path("scirobust-output")
        _reproduce_all(root, quick, seed, _check_device(device), quiet, data_root, jobs)
        return
    _run_case(case, _output_path(output) or Path("scirobust-output") / case, quick, seed, device,
              quiet, data_root)


def _register_llm_eval() -> None:
    """``scirobust llm-eval``: its module imports transformers only when the command runs."""
    from scirobust.llm.cli import llm_eval

    app.command(name="llm-eval", epilog="Example: scirobust llm-eval models/TinyLlama "
                "arc_challenge=ARC-Challenge-test.jsonl --attacks random,fgsm,bim --amplitude "
                "0.01")(_guard(llm_eval))


_register_llm_eval()


@app.command(epilog="Example: scirobust demo --output demo-output")
@_guard
def demo(
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
) -> None:
    """Run the Poisson case in quick mode (the same as `reproduce poisson --quick`).

    Default output: demo-output.

    Example: scirobust demo --output demo-output
    """
    _run_case("poisson", _output_path(output) or Path("demo-output"), True, seed, "cpu", quiet)


@app.command(epilog="Example: scirobust attacks")
@_guard
def attacks() -> None:
    """List the attacks and random controls usable in `attacks:` of an audit file.

    Example: scirobust attacks
    """
    rows = [["name", "kind", "steps", "description"]]
    rows += [[s.name, s.kind, str(s.steps), s.description] for s in ATTACKS.values()]
    _print_table(rows)


@app.command(name="cases", epilog="Example: scirobust cases")
@_guard
def list_cases() -> None:
    """List the reproducible experiments for `scirobust reproduce`.

    Example: scirobust cases
    """
    rows = [["name", "title", "paper"]]
    for name in cases.available():
        try:
            case = cases.get_case(name)
            rows.append([name, case.title, case.paper])
        except ScirobustError as exc:
            rows.append([name, f"(unavailable: {exc})", ""])
    _print_table(rows)


def main() -> None:
    """Console-script entry point (``scirobust``)."""
    app(prog_name="scirobust")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
