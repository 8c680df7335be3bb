"""Paired sweep of a causal LM on multiple-choice tasks: clean, random and gradient noise on
the embedding output, scored as lm-evaluation-harness does (``acc``, ``acc_norm``).

`evaluate_multiple_choice` is this domain's engine entry point: it takes a `Sweep` (attacks,
amplitudes as ``epsilons``, budget, ``n_random``, seed, ``batch_size`` = choice rows per
forward pass, device) like every other engine and returns tidy `Results`:

* one record per (task, condition, metric): ``kind`` clean / random / adversarial,
  ``variable`` = the task's name, ``epsilon`` = the amplitude (budget units), metrics
  ``acc``, ``acc_norm`` and ``error_rate`` (= 1 − acc, fraction);
* ``kind="ratio"`` rows: adversarial / random error rate (`scirobust.results.ratio_records`);
* metadata: chance level of each task (mean of 1/choices), the embedding scale, settings.

Values are means over questions (random controls: also over draws, ``spread`` = standard
deviation over draws); ``stderr`` is lm-eval's: the sample standard deviation over
questions / √n. Every question is embedded once per batch; the clean, random and attacked
forward passes reuse that batch.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from scirobust._hashing import stable_int
from scirobust.attacks import get_spec
from scirobust.errors import ConfigError
from scirobust.llm.perturb import ChoiceLogLikelihood, embedding_scale, perturb_embeddings
from scirobust.llm.scoring import (
    ChoiceBatch,
    EncodedQuestion,
    batches,
    encode_question,
    mc_correct,
    model_max_length,
)
from scirobust.llm.tasks import Task
from scirobust.results import Record, Results, per_sample_key, ratio_records
from scirobust.sweep import Sweep

__all__ = ["DEFAULTS", "METRICS", "encode_task", "evaluate_multiple_choice", "lm_eval_stderr"]

METRICS = ("acc", "acc_norm", "error_rate")
"""Metrics of every condition: lm-eval's ``acc`` and ``acc_norm``, and ``1 − acc``."""

DEFAULTS: dict[str, Any] = {"epsilons": (0.01,), "attacks": ("random_sign", "fgsm", "bim"),
                            "n_random": 3, "batch_size": 32}
"""Sweep defaults: paper 001 §2.2 (amplitude 0.01; random, FGSM and BIM)."""


def lm_eval_stderr(values: np.ndarray) -> float:
    """lm-eval's standard error of a mean: sample standard deviation (n − 1) / √n."""
    n = values.shape[0]
    return float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def encode_task(task: Task, tokenizer, *, max_length: int = 2048,
                add_special_tokens: bool | None = None) -> list[EncodedQuestion]:
    """Token ids of every question of ``task`` (lm-eval's encoding and truncation)."""
    return [encode_question(q, tokenizer, task=task.name, max_length=max_length,
                            add_special_tokens=add_special_tokens) for q in task.questions]


class _Bar:
    """A rich progress bar over forward-pass batches (a no-op when disabled)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("multiple-choice batches", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._progress.__exit__(*exc)

    def advance(self, description: str) -> None:
        if self.enabled:
            self._progress.update(self._task, advance=1, description=description)


def _check_sweep(sweep: Sweep) -> None:
    if sweep.distributed or sweep.cache_dir is not None:
        raise ConfigError("evaluate_multiple_choice runs in one process without a cell cache; "
                          "leave the sweep's distributed and cache_dir unset.")
    for run in sweep.attacks:
        spec = get_spec(run.name)
        if spec.kind == "sparse" or spec.targeted:
            raise ConfigError(f"{run.name} cannot attack a language model's choices here; use "
                              "random_sign, random_gaussian, random_uniform, fgsm, bim, "
                              "pgd_linf, fgm or pgd_l2.")


def _model_device(lm: nn.Module) -> torch.device:
    param = next(lm.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _pad_id(tokenizer) -> int:
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def evaluate_multiple_choice(
    lm: nn.Module,
    tokenizer,
    tasks: Sequence[Task],
    sweep: Sweep | None = None,
    *,
    relative: bool = False,
    case: str = "llm",
    model_name: str = "model",
    max_length: int | None = None,
    add_special_tokens: bool | None = None,
    layer_name: str | None = None,
    progress: bool = False,
    **options: Any,
) -> Results:
    """Accuracy of ``lm`` on multiple-choice ``tasks``, clean and with the embedding output
    perturbed by every attack of the sweep.

    Args:
        lm: a Hugging Face causal LM (or any module with ``get_input_embeddings()`` whose
            output has ``.logits``); evaluated in eval mode, parameters untouched.
        tokenizer: its tokenizer (``encode``, BOS/EOS/pad ids).
        tasks: `Task`s (`scirobust.llm.tasks.read_task_file`).
        sweep: attacks, amplitudes (``epsilons``), budget, ``n_random``, seed, ``batch_size``
            (choice rows per forward pass) and device; or those as keywords (`SweepOptions`);
            defaults `DEFAULTS` (0.01 in L-inf; random_sign ×3, fgsm, bim).
        relative: amplitudes in units of the embedding table's standard deviation
            (`embedding_scale`) instead of absolute embedding units.
        case, model_name: labels of the records.
        max_length: longest model input in tokens (default: from the model's config).
        add_special_tokens: passed to the tokenizer (None: its default, as lm-eval 0.4.x).
        layer_name: the embedding layer, if not ``lm.get_input_embeddings()``.
        progress: show a progress bar.

    Returns:
        `Results` (see the module docstring).
    """
    started = time.perf_counter()
    sweep = Sweep.resolve(sweep, defaults=DEFAULTS, **options)
    _check_sweep(sweep)
    if not tasks:
        raise ConfigError("No tasks to evaluate; give at least one task file.")
    if len({t.name for t in tasks}) != len(tasks):
        raise ConfigError(f"Two tasks share a name: {[t.name for t in tasks]}; name them "
                          "NAME=PATH.")
    try:
        scale = embedding_scale(lm, layer_name)
    except ConfigError:
        if relative:
            raise
        scale = float("nan")  # an embedding without a weight table: reported as unknown
    budget = sweep.budget
    if relative:
        if budget.scale is not None:
            raise ConfigError("relative=True sets the budget's scale to the embedding scale; "
                              "do not give a scale as well.")
        budget = dataclasses.replace(budget, scale=scale)
    if sweep.device is not None:
        lm.to(sweep.device)
    device = _model_device(lm)
    max_length = max_length or model_max_length(lm, tokenizer)
    pad_id = _pad_id(tokenizer)

    encoded = {t.name: encode_task(t, tokenizer, max_length=max_length,
                                   add_special_tokens=add_special_tokens) for t in tasks}
    plans = {name: list(batches(qs, sweep.batch_size)) for name, qs in encoded.items()}
    cells = [(run, eps, draw) for eps in sweep.epsilons for run in sweep.attacks
             for draw in range(sweep.draws(run))]
    # correct[(label, eps, draw)][task] -> (n, 2) acc, acc_norm per question (file order)
    correct: dict[tuple[str, float, int], dict[str, np.ndarray]] = {}
    modes = [(m, m.training) for m in lm.modules()]
    lm.eval()
    total = sum(len(p) for p in plans.values())
    try:
        with _Bar(progress, total) as bar:
            for task in tasks:
                questions = encoded[task.name]
                for cell in [("clean", 0.0, 0)] + [(r.key, e, d) for r, e, d in cells]:
                    correct.setdefault(cell, {})[task.name] = np.zeros((len(questions), 2))
                for index in plans[task.name]:
                    batch = ChoiceBatch.collate([questions[i] for i in index], pad_id=pad_id,
                                                device=device)
                    for cell, (acc, acc_norm) in _score_batch(lm, batch, sweep, budget,
                                                              cells, layer_name):
                        correct[cell][task.name][index] = np.stack([acc, acc_norm], axis=1)
                    bar.advance(f"{task.name}: {len(index)} questions")
    finally:
        for module, training in modes:
            module.training = training

    results = Results()
    for task in tasks:
        for label, eps, kind, draws in [("clean", 0.0, "clean", 1)] + [
                (r.key, e, r.kind, sweep.draws(r)) for e in sweep.epsilons
                for r in sweep.attacks]:
            per_draw = np.stack([correct[(label, eps, d)][task.name] for d in range(draws)])
            results.records.extend(_records(per_draw, case, model_name, label, eps, kind,
                                            task.name))
            results.per_sample[per_sample_key(label, eps, f"acc:{task.name}")] = \
                per_draw[:, :, 0].mean(axis=0)
    results.records.extend(ratio_records(results.records, {"error_rate"},
                                         baseline=sweep.baseline))
    results.metadata = _metadata(lm, sweep, budget, tasks, encoded, scale, relative,
                                 max_length, case, model_name, device, started)
    return results


def _score_batch(lm: nn.Module, batch: ChoiceBatch, sweep: Sweep, budget, cells,
                 layer_name: str | None) -> Iterator[tuple[tuple[str, float, int],
                                                           tuple[np.ndarray, np.ndarray]]]:
    """(cell, (acc, acc_norm) per question) for the clean cell and every (attack, eps,
    draw) of one batch."""
    scorer = ChoiceLogLikelihood(lm, batch, layer_name=layer_name)
    clean = scorer.embeddings()

    def correctness(embeddings: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        lls, _ = scorer.scores(embeddings)
        acc, acc_norm = mc_correct(lls, batch.gold, batch.choice_lengths)
        return acc.numpy(), acc_norm.numpy()

    yield ("clean", 0.0, 0), correctness(clean)
    for run, eps, draw in cells:
        budget_now = budget.scaled(eps)
        seed = sweep.cell_seed(run.key, eps, draw)
        generators = [torch.Generator().manual_seed(stable_int(seed, q.task, q.doc_id))
                      for q in batch.questions]
        # PGD's random start: one generator per batch, seeded by the batch's first question
        generator = generators[0]
        adv = perturb_embeddings(scorer, clean, budget_now, run.name, generators=generators,
                                 generator=generator, **run.options())
        yield (run.key, eps, draw), correctness(adv)


def _records(per_draw: np.ndarray, case: str, model: str, label: str, eps: float, kind: str,
             task: str) -> list[Record]:
    """Records of one (task, cell) from correctness ``(draws, n, 2)`` (acc, acc_norm)."""
    draws, n = per_draw.shape[:2]
    out = []
    for j, metric in enumerate(("acc", "acc_norm", "error_rate")):
        values = per_draw[:, :, 0] if metric == "error_rate" else per_draw[:, :, j]
        if metric == "error_rate":
            values = 1.0 - values
        per_sample = values.mean(axis=0)
        spread = float(values.mean(axis=1).std(ddof=1)) if draws > 1 else float("nan")
        out.append(Record(case, model, label, float(eps), metric, float(per_sample.mean()),
                          lm_eval_stderr(per_sample), n, spread, kind=kind,  # type: ignore[arg-type]
                          variable=task))
    return out


def _metadata(lm: nn.Module, sweep: Sweep, budget, tasks: Sequence[Task],
              encoded: dict[str, list[EncodedQuestion]], scale: float, relative: bool,
              max_length: int, case: str, model_name: str, device: torch.device,
              started: float) -> dict[str, Any]:
    import scirobust

    lengths = {name: [q.length for q in qs] for name, qs in encoded.items()}
    config = getattr(lm, "config", None)
    unit = "× embedding std" if relative else "embedding units"
    norm = "L∞" if budget.norm == "linf" else "L2"
    return {
        "scirobust_version": scirobust.__version__, "torch_version": torch.__version__,
        "numpy_version": np.__version__, "python_version": platform.python_version(),
        "device": str(device), "seed": sweep.seed,
        "config": {
            "case": case, "model": model_name, "task": "multiple_choice",
            "epsilons": list(sweep.epsilons), "attacks": [asdict(r) for r in sweep.attacks],
            "budget": budget.describe(), "metrics": list(METRICS), "n_random": sweep.n_random,
            "batch_size": sweep.batch_size, "relative": relative, "max_length": max_length,
            "n_samples": sum(len(t.questions) for t in tasks),
            "attack_objective": "cross-entropy of the choices' log-likelihoods (as logits) "
                                "against the gold choice",
            "perturbed": "output of the input-embedding layer",
        },
        "tasks": {t.name: {"format": t.format, "questions": len(t.questions),
                           "chance": t.chance, "path": str(t.path) if t.path else "",
                           "mean_tokens": float(np.mean(lengths[t.name]))} for t in tasks},
        "chance": {t.name: t.chance for t in tasks},
        "embedding": {"std": scale, "hidden_size": getattr(config, "hidden_size", None),
                      "amplitude_over_std": [e / scale if scale else float("nan")
                                             for e in sweep.epsilons] if not relative else
                      list(sweep.epsilons)},
        "units": {"acc": "fraction correct", "acc_norm": "fraction correct",
                  "error_rate": "fraction wrong"},
        "epsilon_label": f"amplitude ε ({norm}, {unit})",
        "standard_figures": False,  # the figures of `scirobust.llm.figures` tell it
        "wall_time_s": time.perf_counter() - started,
    }
