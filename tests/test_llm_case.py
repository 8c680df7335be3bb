"""The language-model reproduction (paper 001 Fig. 3) at a tiny size."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra (transformers) is needed")

from scirobust import Results
from scirobust.cases.llm import AMPLITUDE, CASE, LLMSettings, run_llm
from scirobust.llm import read_task_file
from scirobust.llm.cli import llm_eval_command
from scirobust.llm.synthetic import TASKS, World, make_split

torch.set_num_threads(1)


pytestmark = pytest.mark.usefixtures("no_network")  # see conftest.py


def test_settings_and_registration() -> None:
    assert CASE.name == "llm" and "Fig. 3" in CASE.paper
    quick, full = LLMSettings.quick(), LLMSettings.full()
    assert quick.amplitudes == (AMPLITUDE,) == (0.01,)
    assert AMPLITUDE in full.amplitudes and len(full.amplitudes) > 1
    assert full.n_animals > quick.n_animals and full.epochs > quick.epochs


def test_synthetic_benchmarks_use_the_real_formats(tmp_path: Path) -> None:
    world = World.generate(6, seed=1)
    for task in TASKS:
        docs = make_split(world, task, seed=2)
        path = tmp_path / f"{task}.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        read = read_task_file(path)  # format recognised from the fields (+ name for ARC)
        assert len(read.questions) == 6 and read.name == task
        for q, animal in zip(read.questions, world.animals, strict=True):
            right = q.requests[q.gold]
            assert animal in right[0] + right[1]
    q = read_task_file(tmp_path / "winogrande.jsonl").questions[0]
    assert q.requests[q.gold][0].endswith(f"the {world.animals[0]}")


def test_tiny_run(tmp_path: Path) -> None:
    settings = replace(LLMSettings.quick(), n_animals=8, epochs=3, n_random=1, eval_rows=16)
    out = run_llm(settings, tmp_path, seed=0)
    res = Results.load(tmp_path)
    assert set(res.kinds()) == {"clean", "random_sign", "fgsm", "bim"}
    assert {r.variable for r in res} == set(TASKS)
    assert res.epsilons == [AMPLITUDE]
    assert res.metadata["chance"]["piqa"] == 0.5 and res.metadata["chance"]["arc_easy"] == 0.25
    verdicts = res.metadata["verdicts"]
    assert len(verdicts) == 3 and all(v["paper"] and v["ours"] and v["stand_in"]
                                      for v in verdicts)
    assert json.loads((tmp_path / "verdict.json").read_text())["outcome"] in (
        "reproduced", "partly", "not reproduced")
    assert any("TinyLlama and the real benchmark files need the user's local copies" in n
               for n in res.metadata["notes"])
    assert (tmp_path / "figures" / "case" / "fig3_accuracy.png").is_file()
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert out.summary[0] == ["task", "chance", "clean", "random", "FGSM", "BIM"]
    assert len(out.summary) == 1 + len(TASKS)
    # the saved model and data reproduce the clean numbers through the command line
    again, _ = llm_eval_command(tmp_path / "model",
                                [f"{t}={tmp_path / 'data' / f'{t}-test.jsonl'}" for t in TASKS],
                                attacks="random", n_random=1, output=tmp_path / "cli",
                                quiet=True)
    for task in TASKS:
        assert again.value(attack="clean", metric="acc", variable=task) == pytest.approx(
            res.value(attack="clean", metric="acc", variable=task))
