"""``scirobust llm-eval MODEL_DIR TASK_FILES...``: accuracy of a local Hugging Face causal LM
on multiple-choice benchmark files, clean and with its embedding output perturbed by random,
FGSM and BIM noise of the same amplitude (paper 001 Fig. 3).

`llm_eval_command` is the plain function (returns the `Results` and the report path);
`llm_eval` is the typer command the main CLI registers. Nothing is downloaded: the model
folder and the task files must be on local disk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from scirobust.errors import ConfigError
from scirobust.results import Results

__all__ = ["llm_eval", "llm_eval_command", "load_local_model", "parse_attacks",
           "quiet_transformers", "summary_table", "write_outputs"]

_ALIASES = {"random": "random_sign"}
_DTYPES = {"auto": "auto", "float32": torch.float32, "float16": torch.float16,
           "bfloat16": torch.bfloat16}


def parse_attacks(text: str | Sequence[str]) -> list[str]:
    """Attack names from ``"random,fgsm,bim"`` (``random`` = ``random_sign``); validated
    against the registry."""
    from scirobust.attacks import get_spec

    items = text.split(",") if isinstance(text, str) else list(text)
    names = [_ALIASES.get(s.strip(), s.strip()) for s in items if s.strip()]
    if not names:
        raise ConfigError("--attacks is empty; give e.g. random,fgsm,bim.")
    for name in names:
        get_spec(name)
    return names


def _parse_amplitudes(text: str | float | Sequence[float]) -> list[float]:
    if isinstance(text, int | float):
        return [float(text)]
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = [float(a) for a in items if str(a).strip()]
    except ValueError:
        raise ConfigError(f"--amplitude must be numbers separated by commas; got {text!r}.") \
            from None
    if not values or any(not v > 0 for v in values):
        raise ConfigError(f"--amplitude must be > 0 (embedding units); got {text!r}.")
    return values


def load_local_model(model_dir: str | Path, *, device: str = "cpu", dtype: str = "auto"
                     ) -> tuple[torch.nn.Module, Any]:
    """A causal LM and its tokenizer from a local Hugging Face folder (``config.json``,
    weights, tokenizer files); never downloads (``local_files_only``)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir} is not a local Hugging Face model folder (no "
                          "config.json). Give the folder of e.g. TinyLlama saved with "
                          "save_pretrained; nothing is downloaded.")
    if dtype not in _DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(_DTYPES)}; got {dtype!r}.")
    try:
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ConfigError("llm-eval needs transformers: pip install 'scirobust[llm]'.") from None
    from packaging.version import Version

    # transformers 4.56 renamed torch_dtype to dtype
    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True,
                                                  **{key: _DTYPES[dtype]})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot load the model or tokenizer from {model_dir}: {exc}") from exc
    return lm.to(device).eval(), tokenizer


@contextlib.contextmanager
def quiet_transformers(quiet: bool) -> Iterator[None]:
    """Silence transformers' loading bars and info logs (always in tests, on --quiet)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if quiet:
            hf_logging.enable_progress_bar()


def write_outputs(results: Results, output: Path, *, title: str) -> Path:
    """Results files, the Fig. 3 bar chart per amplitude (``figures/case``), the accuracy
    table (``tables/accuracy.csv``) and ``report.html`` into ``output``; returns the report."""
    from scirobust.llm.figures import accuracy_bars, accuracy_vs_amplitude
    from scirobust.report import save_case_figure, write_case_table, write_report

    output = Path(output)
    results.save(output)
    label = results.metadata.get("epsilon_label", "amplitude")
    for eps in results.epsilons:
        for metric in ("acc", "acc_norm"):
            stem = f"fig3_{metric}" + ("" if len(results.epsilons) == 1 else f"_eps{eps:g}")
            save_case_figure(
                accuracy_bars(results, epsilon=eps, metric=metric), output, stem,
                f"lm-eval {metric} per task, clean and with the embedding output perturbed at "
                f"{label} = {eps:g}; bars ± standard error over questions, dashed: chance "
                "(mean of 1/choices); yellow: more than two choices, green: two.")
    if len(results.epsilons) > 1:
        save_case_figure(accuracy_vs_amplitude(results), output, "acc_vs_amplitude",
                         "lm-eval acc against the amplitude of the embedding noise, per task; "
                         "grey line: clean, dashed: chance.")
    rows = [[r.variable, f"{results.metadata.get('chance', {}).get(r.variable, float('nan')):.4f}",
             r.attack, r.kind, r.epsilon, r.metric, r.value, r.stderr, r.spread, r.n]
            for r in results.records if r.kind != "ratio" and r.metric in ("acc", "acc_norm")]
    write_case_table(output / "tables" / "accuracy.csv",
                     ["task", "chance", "condition", "kind", "amplitude", "metric", "value",
                      "stderr", "spread_over_draws", "questions"], rows)
    return Path(write_report(results, output, title=title))


def summary_table(results: Results, metric: str = "acc") -> list[list[str]]:
    """Rows (header first): task, chance, then ``metric`` per condition at every amplitude."""
    columns = [("clean", 0.0)] + [(a, e) for e in results.epsilons
                                  for a, k in results.kinds().items()
                                  if k in ("random", "adversarial")]
    several = len(results.epsilons) > 1
    header = ["task", "chance"] + [a if a == "clean" or not several else f"{a}@{e:g}"
                                   for a, e in columns]
    chance = results.metadata.get("chance", {})
    rows = [header]
    for task in dict.fromkeys(r.variable for r in results.records if r.variable):
        row = [task, f"{chance.get(task, float('nan')):.3f}"]
        for attack, eps in columns:
            found = results.select(attack=attack, epsilon=eps, metric=metric, variable=task)
            row.append(f"{found[0].value:.3f}" if found else "")
        rows.append(row)
    return rows


def llm_eval_command(
    model_dir: str | Path,
    task_files: Sequence[str],
    *,
    attacks: str | Sequence[str] = "random,fgsm,bim",
    amplitude: str | float | Sequence[float] = 0.01,
    relative: bool = False,
    n_random: int = 3,
    steps: int | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    output: str | Path | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> tuple[Results, Path]:
    """Evaluate a local causal LM on local multiple-choice files; write results and report.

    Args:
        model_dir: local Hugging Face model folder (e.g. TinyLlama-1.1B).
        task_files: ``[NAME=]PATH`` each; NAME (``arc_challenge``, ``arc_easy``,
            ``hellaswag``, ``openbookqa``, ``piqa``, ``winogrande``) fixes the prompt style,
            else it is recognised from the documents' fields and the file name.
        attacks: comma-separated names (``random`` = ``random_sign``; ``fgsm``, ``bim``, ...).
        amplitude: L-inf size(s) of the embedding perturbation, embedding units (or × the
            embedding table's standard deviation with ``relative``); comma-separated for a
            sweep.
        n_random: draws of each random control; steps: iterative attacks' steps (BIM: 10).
        batch_size: choice rows per forward pass; limit: first N documents of each file.
        device, dtype: where and in which precision the model runs.
        output: output folder (default ``scirobust-output/llm-eval``); seed: seeds the noise.
        quiet: no progress bar.

    Returns:
        The `Results` and the path of ``report.html``.
    """
    from scirobust.attacks import get_spec
    from scirobust.llm.evaluate import evaluate_multiple_choice
    from scirobust.llm.tasks import parse_task_spec, read_task_file
    from scirobust.sweep import AttackRun, Sweep

    started = time.perf_counter()
    if not task_files:
        raise ConfigError("Give at least one task file: [NAME=]PATH, e.g. "
                          "arc_challenge=ARC-Challenge-test.jsonl.")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be >= 1; got {steps}.")
    names = parse_attacks(attacks)
    runs = [AttackRun(n, steps=steps) if steps is not None and get_spec(n).steps > 1
            else AttackRun(n) for n in names]
    sweep = Sweep(epsilons=tuple(_parse_amplitudes(amplitude)), attacks=tuple(runs),
                  n_random=n_random, seed=seed, batch_size=batch_size, device=device)
    tasks = [read_task_file(path, name, limit=limit)
             for name, path in (parse_task_spec(spec) for spec in task_files)]
    out = Path(output) if output is not None else Path("scirobust-output") / "llm-eval"
    with quiet_transformers(quiet):
        lm, tokenizer = load_local_model(model_dir, device=device, dtype=dtype)
        model_name = Path(model_dir).resolve().name
        results = evaluate_multiple_choice(lm, tokenizer, tasks, sweep, relative=relative,
                                           case="llm-eval", model_name=model_name,
                                           progress=not quiet)
    results.metadata["description"] = (
        f"Multiple-choice accuracy of {model_name} scored as lm-evaluation-harness does "
        "(sum of continuation log-probabilities; acc, and acc_norm per character), clean and "
        "with the output of its input-embedding layer perturbed by random sign noise and by "
        "gradient attacks of the same L∞ amplitude (paper 001 §2.2, Fig. 3). The attacks "
        "ascend the cross-entropy of the choices' log-likelihoods against the gold answer.")
    results.metadata["notes"] = [
        f"{t.name}: {len(t.questions)} questions from {t.path} ({t.format} prompt style), "
        f"chance {t.chance:.3f}." for t in tasks] + [
        "Ratio rows: adversarial / random error rate (1 − acc) at the same amplitude.",
        f"Embedding table standard deviation {results.metadata['embedding']['std']:.4g} "
        "(embedding units): the scale against which the amplitude should be read."]
    results.metadata["wall_time_s"] = time.perf_counter() - started
    report = write_outputs(results, out, title=f"scirobust llm-eval: {model_name}")
    return results, report


def llm_eval(
    model_dir: Annotated[Path, typer.Argument(help="Local Hugging Face model folder.",
                                              show_default=False)],
    task_files: Annotated[list[str], typer.Argument(
        help="[NAME=]PATH of local benchmark files (.jsonl/.json/.parquet); NAME one of "
        "arc_challenge, arc_easy, hellaswag, openbookqa, piqa, winogrande.",
        show_default=False)],
    attacks: Annotated[str, typer.Option("--attacks", help="Comma-separated: random, fgsm, "
                                         "bim (or any name of `scirobust attacks`).")]
    = "random,fgsm,bim",
    amplitude: Annotated[str, typer.Option(
        "--amplitude", help="L∞ amplitude(s) in embedding units, comma-separated.")] = "0.01",
    relative: Annotated[bool, typer.Option(
        "--relative", help="Amplitude in units of the embedding table's std.")] = False,
    n_random: Annotated[int, typer.Option("--n-random", help="Draws per random control.")] = 3,
    steps: Annotated[int | None, typer.Option("--steps", help="Steps of iterative attacks "
                                              "(BIM default 10).", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size",
                                            help="Choice rows per forward pass.")] = 32,
    limit: Annotated[int | None, typer.Option("--limit", help="First N documents per file.",
                                              show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="'cpu' or 'cuda' (or 'cuda:N').")]
    = "cpu",
    dtype: Annotated[str, typer.Option("--dtype", help="auto, float32, float16 or bfloat16.")]
    = "auto",
    output: Annotated[str | None, typer.Option("--output", "-o", help="Output directory.",
                                               show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No progress bar or table; errors still print.")]
    = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
) -> None:
    """Accuracy of a local causal LM on multiple-choice files under embedding noise.

    Scores every task file as lm-evaluation-harness does (acc, acc_norm), clean and with the
    output of the input-embedding layer perturbed by random sign noise and by FGSM/BIM of the
    same L∞ amplitude (paper 001 Fig. 3). Writes results.csv/json, figures (chance level
    dashed), tables/accuracy.csv and report.html to OUTPUT (default
    scirobust-output/llm-eval). Nothing is downloaded.

    Example: scirobust llm-eval models/TinyLlama arc_challenge=data/ARC-Challenge-test.jsonl
    piqa=data/piqa-valid.jsonl --attacks random,fgsm,bim --amplitude 0.01 --device cuda
    """
    from rich.console import Console
    from rich.table import Table

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available; use --device cpu.")
    out = Path(output) if output is not None else Path("scirobust-output") / "llm-eval"
    try:  # hold the output folder like every other command (imported late: no cycle)
        from scirobust.cli import _output_folder as holder
    except ImportError:  # pragma: no cover - the main CLI is part of the package
        holder = contextlib.nullcontext  # type: ignore[assignment]
    with holder(out):
        results, report = llm_eval_command(
            model_dir, task_files, attacks=attacks, amplitude=amplitude, relative=relative,
            n_random=n_random, steps=steps, batch_size=batch_size, limit=limit, device=device,
            dtype=dtype, output=out, seed=seed, quiet=quiet)
    if not quiet:
        rows = summary_table(results)
        table = Table(title="acc per task and condition")
        for name in rows[0]:
            table.add_column(name)
        for row in rows[1:]:
            table.add_row(*row)
        Console(highlight=False).print(table)
    typer.echo(f"Report: {report}")
