"""``scirobust-perturbed``: an lm-evaluation-harness model whose embedding output is perturbed.

A subclass of lm-eval's ``HFLM`` (any Hugging Face causal LM: a local folder or a live model
object, with a local tokenizer). With ``attack=none`` it *is* ``HFLM``. Otherwise its
``loglikelihood`` groups lm-eval's requests by document, encodes them with ``HFLM``'s own
tokenisation, and scores every choice with the embedding layer's output perturbed
(`scirobust.llm.perturb`): ``random`` (±amplitude on every element), ``fgsm`` or ``bim``
(ascending the cross-entropy of the document's choice log-likelihoods against its gold
answer, read from the document: ARC, OpenBookQA, HellaSwag, PIQA and Winogrande layouts).
lm-eval then computes ``acc`` / ``acc_norm`` from those log-likelihoods as usual. A
question's random noise is seeded by (seed, attack, amplitude, task, document) exactly as in
`scirobust.llm.evaluate_multiple_choice`, so both give the same numbers.

lm-eval finds model classes only in its registry, and has no plugin hook for them; register
the class first, then run lm-eval in the same process::

    python -m scirobust.llm.lm_eval_model --model scirobust-perturbed \\
        --model_args pretrained=/models/TinyLlama,attack=fgsm,amplitude=0.01 \\
        --tasks arc_challenge --device cuda

or from Python: ``lm_eval.simple_evaluate(model=ScirobustPerturbedLM(pretrained=lm,
tokenizer=tok, attack="bim"), tasks=[...])``. Local benchmark files:
`scirobust.llm.tasks.write_lm_eval_configs` and ``--include_path``. lm_eval is imported
only when the class is asked for (`perturbed_lm_class`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch

from scirobust.errors import ConfigError, DataError

__all__ = ["ATTACK_NAMES", "LM_EVAL_NAME", "main", "perturbed_lm_class"]

LM_EVAL_NAME = "scirobust-perturbed"
ATTACK_NAMES = {"none": None, "random": "random_sign", "random_sign": "random_sign",
                "fgsm": "fgsm", "bim": "bim", "pgd_linf": "pgd_linf"}
"""``attack=`` values of the model class -> `scirobust.ATTACKS` names (None: unperturbed)."""

_CLASS: list[type] = []


def perturbed_lm_class() -> type:
    """The lm-eval model class ``scirobust-perturbed``, defined and registered on first call
    (imports lm_eval; `ConfigError` with the install command if it is missing)."""
    if _CLASS:
        return _CLASS[0]
    try:
        from lm_eval.api.registry import model_registry, register_model
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise ConfigError("The lm-eval model class needs lm-evaluation-harness: pip install "
                          "'lm-eval[hf]' (0.4.x).") from None
    from scirobust.attacks import get_spec
    from scirobust.llm.perturb import (
        ChoiceLogLikelihood,
        embedding_budget,
        embedding_noise,
        perturb_embeddings,
    )
    from scirobust.llm.scoring import ChoiceBatch, EncodedQuestion, batches
    from scirobust.llm.tasks import gold_index
    from scirobust.sweep import Sweep, stable_int

    class ScirobustPerturbedLM(HFLM):
        """lm-eval's ``HFLM`` with the input-embedding output perturbed.

        Args (``--model_args`` keys, besides HFLM's ``pretrained``, ``tokenizer``,
        ``batch_size`` = choice rows per forward pass, ``device``, ``dtype`` ...):
            attack: ``none``, ``random``, ``fgsm``, ``bim`` or ``pgd_linf``.
            amplitude: L-inf size of the perturbation (embedding units; default 0.01).
            relative: amplitude in units of the embedding table's standard deviation.
            steps, step_size: iterative attacks' steps and step (fraction of amplitude);
                default BIM: 10 steps of 0.25.
            seed: seeds the random noise.
            layer_name: the embedding layer if not ``get_input_embeddings()``.
        """

        def __init__(self, pretrained: Any = None, attack: str = "random",
                     amplitude: float = 0.01, relative: bool = False, steps: int | None = None,
                     step_size: float | None = None, seed: int = 0,
                     layer_name: str | None = None, **kwargs: Any) -> None:
            if pretrained is None:
                raise ConfigError("scirobust-perturbed needs pretrained=MODEL_DIR (or a model "
                                  "object).")
            if attack not in ATTACK_NAMES:
                raise ConfigError(f"attack={attack!r}; use one of {', '.join(ATTACK_NAMES)}.")
            super().__init__(pretrained=pretrained, **kwargs)
            self.attack_name = ATTACK_NAMES[attack]
            self.random = self.attack_name is not None and get_spec(self.attack_name).is_random
            self.layer_name = layer_name
            self.attack_options = {k: v for k, v in (("steps", steps),
                                                     ("step_size", step_size)) if v is not None}
            self.budget = embedding_budget(float(amplitude), relative=bool(relative),
                                           lm=self.model)
            self.amplitude = float(amplitude)
            self.sweep = None if self.attack_name is None else Sweep(
                epsilons=(self.amplitude,), attacks=(self.attack_name,), seed=int(seed),
                n_random=1)

        # ---------------------------------------------------------------- helpers
        def _encode(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
            """HFLM.loglikelihood's encoding of one request (empty context: prefix token)."""
            if context == "":
                cont = self.tok_encode(continuation, add_special_tokens=False)
                return (([self.prefix_token_id], cont) if self.prefix_token_id != cont[0]
                        else (cont[:1], cont[1:]))
            return self._encode_pair(context, continuation)

        def _question(self, instances: Sequence[Any]) -> EncodedQuestion:
            first = instances[0]
            inputs, conts = [], []
            for inst in instances:
                ctx, cont = self._encode(*inst.args[:2])
                inputs.append(tuple((list(ctx) + list(cont))[-(self.max_length + 1):][:-1]))
                conts.append(tuple(cont))
            gold = 0
            if not self.random:
                if len(instances) < 2:
                    raise ConfigError(f"{first.task_name} document {first.doc_id}: a gradient "
                                      "attack needs a multiple-choice task (>= 2 choices).")
                try:
                    gold = gold_index(first.doc)
                except DataError as exc:
                    raise ConfigError(
                        f"{first.task_name}: gradient attacks need the gold answer, read from "
                        "ARC, OpenBookQA, HellaSwag, PIQA or Winogrande documents; these have "
                        f"the fields {sorted(first.doc)}. Use attack=random or attack=none for "
                        "this task."
                    ) from exc
            return EncodedQuestion(tuple(inputs), tuple(conts), gold,
                                   tuple(1.0 for _ in instances), str(first.task_name),
                                   int(first.doc_id or 0))

        # ---------------------------------------------------------------- lm-eval API
        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False
                          ) -> list[tuple[float, bool]]:
            """(log-likelihood, greedy) of every request, with the embedding output
            perturbed (per document: all its choices are attacked together)."""
            if self.attack_name is None:
                return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
            groups: dict[tuple[Any, Any], list[int]] = {}
            for i, inst in enumerate(requests):
                groups.setdefault((inst.task_name, inst.doc_id), []).append(i)
            members = [sorted(idx, key=lambda i: requests[i].idx) for idx in groups.values()]
            questions = [self._question([requests[i] for i in idx]) for idx in members]
            rows = self.batch_size if isinstance(self.batch_size, int) else 32
            out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
            plan = list(batches(questions, max(1, int(rows))))
            from tqdm import tqdm

            pad = self.tokenizer.pad_token_id or 0
            for index in tqdm(plan, disable=disable_tqdm or self.rank != 0,
                              desc=f"Perturbed loglikelihood ({self.attack_name})"):
                batch = ChoiceBatch.collate([questions[i] for i in index], pad_id=pad,
                                            device=self.device)
                scorer = ChoiceLogLikelihood(self.model, batch, layer_name=self.layer_name)
                clean = scorer.embeddings()
                seed = self.sweep.cell_seed(self.attack_name, self.amplitude, 0)
                gens = [torch.Generator().manual_seed(stable_int(seed, q.task, q.doc_id))
                        for q in batch.questions]
                adv = perturb_embeddings(scorer, clean, self.budget, self.attack_name,
                                         generators=gens, generator=gens[0],
                                         **self.attack_options)
                lls, greedy = scorer.scores(adv)
                for row, q_index in enumerate(index):
                    for col, req in enumerate(members[q_index]):
                        out[req] = (float(lls[row, col]), bool(greedy[row, col]))
            return out

        def _random_only(self, what: str) -> Any:
            if self.attack_name is not None and not self.random:
                raise ConfigError(f"{what} has no gold answer to attack; use attack=random or "
                                  "attack=none for such tasks.")
            gen = torch.Generator().manual_seed(
                self.sweep.cell_seed(self.attack_name, self.amplitude, 0) if self.sweep else 0)
            return embedding_noise(self.model, self.budget, generator=gen,
                                   layer_name=self.layer_name)

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False
                                  ) -> list[float]:
            """Perplexity tasks: random noise on every forward pass (no gradient attacks)."""
            if self.attack_name is None:
                return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
            with self._random_only("loglikelihood_rolling"):
                return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False
                           ) -> list[str]:
            """Generation tasks: random noise on every forward pass (no gradient attacks)."""
            if self.attack_name is None:
                return super().generate_until(requests, disable_tqdm=disable_tqdm)
            with self._random_only("generate_until"):
                return super().generate_until(requests, disable_tqdm=disable_tqdm)

    ScirobustPerturbedLM.__module__ = __name__
    if LM_EVAL_NAME in model_registry:
        raise ConfigError(f"Another class is registered in lm-eval as {LM_EVAL_NAME!r}.")
    register_model(LM_EVAL_NAME)(ScirobustPerturbedLM)
    _CLASS.append(ScirobustPerturbedLM)
    return ScirobustPerturbedLM


def __getattr__(name: str) -> Any:
    if name == "ScirobustPerturbedLM":
        return perturbed_lm_class()
    raise AttributeError(name)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m scirobust.llm.lm_eval_model ARGS``: register ``scirobust-perturbed`` and
    run lm-eval's own command line with ARGS (e.g. ``--model scirobust-perturbed
    --model_args pretrained=DIR,attack=fgsm --tasks arc_challenge``)."""
    perturbed_lm_class()
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *(sys.argv[1:] if argv is None else argv)]
    cli_evaluate()


if __name__ == "__main__":
    main()
