"""Language models: perturb the output of a causal LM's embedding layer and score
multiple-choice benchmarks as lm-evaluation-harness does (paper 001 §2.2, Fig. 3).

    from scirobust.llm import read_task_file, evaluate_multiple_choice
    tasks = [read_task_file("ARC-Challenge-test.jsonl", "arc_challenge")]
    results = evaluate_multiple_choice(lm, tokenizer, tasks, epsilons=[0.01],
                                       attacks=["random_sign", "fgsm", "bim"])

Modules: `tasks` (local benchmark files → lm-eval requests), `scoring` (lm-eval's encoding,
log-likelihoods, acc and acc_norm), `perturb` (embedding-output hooks, the attacked
choice-likelihood model, random/FGSM/BIM through `scirobust.attacks.attack`), `evaluate`
(the paired sweep → `Results`), `figures` (paper Fig. 3 style), `synthetic` (the tiny Llama
stand-in), `lm_eval_model` (the ``scirobust-perturbed`` lm-eval model class; imports
lm_eval) and `cli` (``scirobust llm-eval``). Needs the ``llm`` extra (transformers) for
models and tokenizers; importing this package imports neither transformers nor lm_eval.
"""

from scirobust.llm.evaluate import evaluate_multiple_choice
from scirobust.llm.perturb import (
    ChoiceLogLikelihood,
    embedding_budget,
    embedding_layer,
    embedding_noise,
    embedding_scale,
    perturb_embeddings,
    replaced_embedding_output,
)
from scirobust.llm.scoring import ChoiceBatch, encode_pair, encode_question, mc_correct
from scirobust.llm.tasks import MCQuestion, Task, doc_to_question, read_task_file

__all__ = [
    "ChoiceBatch",
    "ChoiceLogLikelihood",
    "MCQuestion",
    "Task",
    "doc_to_question",
    "embedding_budget",
    "embedding_layer",
    "embedding_noise",
    "embedding_scale",
    "encode_pair",
    "encode_question",
    "evaluate_multiple_choice",
    "mc_correct",
    "perturb_embeddings",
    "read_task_file",
    "replaced_embedding_output",
]
