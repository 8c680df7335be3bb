"""The ``scirobust-perturbed`` lm-eval model class: lm-eval itself runs the perturbed model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval", reason="lm-eval[hf] is an optional dependency")

from lm_eval.api.instance import Instance
from lm_eval.api.registry import get_model
from lm_eval.models.huggingface import HFLM

from scirobust import ConfigError
from scirobust.llm import evaluate_multiple_choice, read_task_file
from scirobust.llm.lm_eval_model import LM_EVAL_NAME, main, perturbed_lm_class
from scirobust.llm.synthetic import build_word_tokenizer, tiny_llama
from scirobust.llm.tasks import write_lm_eval_configs

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data" / "llm"
FILES = {"arc_challenge": "arc_challenge.jsonl", "hellaswag": "hellaswag.jsonl",
         "piqa": "piqa.jsonl", "winogrande": "winogrande.jsonl"}


@pytest.fixture(autouse=True)
def offline(no_network: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection (conftest's ``no_network``), and the HF libraries stay offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def toy():
    tok = build_word_tokenizer([p.read_text() for p in DATA.glob("*.jsonl")])
    return tiny_llama(tok, hidden_size=32, intermediate_size=64, seed=5).double(), tok


def test_registered_and_unperturbed_is_hflm(toy) -> None:
    cls = perturbed_lm_class()
    assert perturbed_lm_class() is cls and get_model(LM_EVAL_NAME) is cls
    lm, tok = toy
    task = read_task_file(DATA / "piqa.jsonl")
    requests = [Instance("loglikelihood", {}, req, i, ("piqa", q.doc_id, 1))
                for q in task.questions for i, req in enumerate(q.requests)]
    plain = HFLM(pretrained=lm, tokenizer=tok, batch_size=4, device="cpu")
    none = cls(pretrained=lm, tokenizer=tok, batch_size=4, device="cpu", attack="none")
    assert none.loglikelihood(requests, disable_tqdm=True) == \
        plain.loglikelihood(requests, disable_tqdm=True)
    with pytest.raises(ConfigError, match="attack='pgd'"):
        cls(pretrained=lm, tokenizer=tok, attack="pgd")


@pytest.mark.parametrize("attack", ["random", "fgsm"])
def test_lm_eval_numbers_equal_the_engines(toy, tmp_path: Path, attack: str) -> None:
    """lm-eval's own evaluator on the perturbed model gives the accuracies of
    `evaluate_multiple_choice` (same seeds per task and document)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm, tok = toy
    names = write_lm_eval_configs({k: DATA / v for k, v in FILES.items()}, tmp_path / "yaml",
                                  cache_dir=tmp_path / "cache")
    manager = TaskManager(include_path=str(tmp_path / "yaml"), include_defaults=False)
    model = perturbed_lm_class()(pretrained=lm, tokenizer=tok, batch_size=6, device="cpu",
                                 attack=attack, amplitude=0.3, seed=11)
    out = simple_evaluate(model=model, tasks=names, task_manager=manager, bootstrap_iters=0,
                          log_samples=False, random_seed=0)
    method = {"random": "random_sign", "fgsm": "fgsm"}[attack]
    tasks = [read_task_file(DATA / FILES[n.removeprefix("local_")], n) for n in names]
    ours = evaluate_multiple_choice(lm, tok, tasks, epsilons=[0.3], attacks=[method],
                                    n_random=1, seed=11, batch_size=5)
    for name in names:
        theirs = out["results"][name]
        for metric in ("acc", "acc_norm"):
            if f"{metric},none" in theirs:
                assert theirs[f"{metric},none"] == pytest.approx(ours.value(
                    attack=method, metric=metric, variable=name)), (name, metric)
    # the perturbation matters here: the attacked accuracies differ from the clean ones
    clean = [ours.value(attack="clean", metric="acc", variable=n) for n in names]
    hit = [ours.value(attack=method, metric="acc", variable=n) for n in names]
    assert clean != hit or attack == "random"


def test_gradient_attacks_refuse_tasks_without_choices(toy) -> None:
    lm, tok = toy
    model = perturbed_lm_class()(pretrained=lm, tokenizer=tok, batch_size=4, device="cpu",
                                 attack="bim")
    lonely = [Instance("loglikelihood", {"text": "x"}, ("a cup", " of tea"), 0, ("t", 0, 1))]
    with pytest.raises(ConfigError, match=">= 2 choices"):
        model.loglikelihood(lonely, disable_tqdm=True)
    odd = [Instance("loglikelihood", {"text": "x"}, ("a cup", f" of {w}"), i, ("t", 0, 1))
           for i, w in enumerate(("tea", "milk"))]
    with pytest.raises(ConfigError, match="Use attack=random or attack=none"):
        model.loglikelihood(odd, disable_tqdm=True)
    with pytest.raises(ConfigError, match="no gold answer"):
        model.loglikelihood_rolling([], disable_tqdm=True)


def test_lm_eval_command_line_runs_the_perturbed_model(toy, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m scirobust.llm.lm_eval_model --model scirobust-perturbed ...``: lm-eval's own
    command line, with a local model folder and local task files."""
    lm, tok = toy
    folder = tmp_path / "model"
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)
    write_lm_eval_configs({"piqa": DATA / "piqa.jsonl"}, tmp_path / "yaml",
                          cache_dir=tmp_path / "cache")
    monkeypatch.chdir(tmp_path)
    main(["run", "--model", LM_EVAL_NAME, "--model_args",
          f"pretrained={folder},attack=fgsm,amplitude=0.3,dtype=float64",
          "--tasks", "local_piqa", "--include_path", str(tmp_path / "yaml"), "--device", "cpu",
          "--batch_size", "4", "--output_path", str(tmp_path / "lm_eval_out")])
    written = list((tmp_path / "lm_eval_out").rglob("results_*.json"))
    assert written and "local_piqa" in written[0].read_text()
