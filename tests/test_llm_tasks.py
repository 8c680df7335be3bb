"""Benchmark files in lm-eval's formats → lm-eval's multiple-choice requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scirobust import ConfigError, DataError
from scirobust.llm.tasks import (
    doc_to_question,
    gold_index,
    guess_format,
    hellaswag_preprocess,
    parse_task_spec,
    read_task_file,
    write_lm_eval_configs,
)

DATA = Path(__file__).parent / "data" / "llm"
FILES = {"arc_challenge": "arc_challenge.jsonl", "hellaswag": "hellaswag.jsonl",
         "openbookqa": "openbookqa.jsonl", "piqa": "piqa.jsonl",
         "winogrande": "winogrande.jsonl"}


pytestmark = pytest.mark.usefixtures("no_network")  # see conftest.py


def test_arc_prompt_labels_and_gold() -> None:
    task = read_task_file(DATA / "arc_challenge.jsonl", "arc_challenge")
    q0, q1, q2 = task.questions
    context = "Question: Which gas do plants take in from the air?\nAnswer:"
    assert q0.requests == ((context, " oxygen"), (context, " carbon dioxide"),
                           (context, " nitrogen"), (context, " helium"))
    assert q0.gold == 1 and q0.choices[1] == "carbon dioxide"
    assert q1.n_choices == 3 and q1.gold == 0
    assert q2.gold == 1  # numeric labels "1".."4": answerKey "2" is the second choice
    assert task.chance == pytest.approx((0.25 + 1 / 3 + 0.25) / 3)
    assert task.format == "arc" and task.name == "arc_challenge"


def test_original_arc_layout_is_read_too() -> None:
    task = read_task_file(DATA / "arc_easy_original.jsonl")
    assert task.format == "arc" and task.name == "arc_easy_original"
    q = task.questions[0]
    assert q.requests[0] == ("Question: Which object is a magnet most likely to pull?\nAnswer:",
                             " a nail")
    assert q.gold == 0 and q.n_choices == 4
    # the same layout named as OpenBookQA gets OpenBookQA's prompt (the bare stem)
    obqa = read_task_file(DATA / "arc_easy_original.jsonl", "openbookqa")
    assert obqa.questions[0].requests[0][0] == "Which object is a magnet most likely to pull?"


def test_hellaswag_preprocessing_as_lm_eval() -> None:
    q0, q1 = read_task_file(DATA / "hellaswag.jsonl").questions
    assert q0.requests[3] == ("Roof shingle removal: A man is sitting on a roof. He",
                              " starts pulling up roofing on a roof.")
    assert q0.gold == 3
    assert q1.requests[0] == ("Home and Garden: How to water a plant. Check the soil. You",
                              " should feel it with a finger Dry soil needs water.")
    assert q1.choices[0] == "should feel it with a finger Dry soil needs water."
    assert hellaswag_preprocess(" a [title] b  [x]c ") == "a. b c"


def test_openbookqa_piqa_winogrande() -> None:
    obqa = read_task_file(DATA / "openbookqa.jsonl").questions[0]
    assert obqa.requests[3] == ("The sun is responsible for",
                                " plants sprouting, blooming and wilting")
    assert obqa.gold == 3
    piqa = read_task_file(DATA / "piqa.jsonl").questions
    assert piqa[1].requests == (("Question: To cool a hot drink quickly,\nAnswer:",
                                 " put it in the oven."),
                                ("Question: To cool a hot drink quickly,\nAnswer:",
                                 " put it in a bowl of ice water."))
    assert [q.gold for q in piqa] == [0, 1]
    wino = read_task_file(DATA / "winogrande.jsonl").questions
    # partial evaluation: the contexts differ, the continuation is shared
    assert wino[0].requests == (
        ("Sarah was a much better surgeon than Maria so Sarah", " always got the harder cases."),
        ("Sarah was a much better surgeon than Maria so Maria", " always got the harder cases."))
    assert [q.gold for q in wino] == [0, 0, 1]
    assert wino[0].choices == tuple(c for c, _ in wino[0].requests)


def test_original_piqa_reads_its_labels_file(tmp_path: Path) -> None:
    task = read_task_file(DATA / "piqa_original.jsonl")
    assert task.format == "piqa" and [q.gold for q in task.questions] == [1, 0]
    lonely = tmp_path / "piqa_dev.jsonl"
    lonely.write_text((DATA / "piqa_original.jsonl").read_text())
    with pytest.raises(DataError, match=r"piqa_dev-labels\.lst"):
        read_task_file(lonely)


def test_gold_index_of_documents_as_lm_eval_hands_them() -> None:
    processed = {"query": "q", "choices": ["a", "b", "c"], "gold": 2, "label": "2",
                 "ctx_a": "x", "ctx_b": "y", "endings": ["a", "b", "c"], "activity_label": "z"}
    assert gold_index(processed) == 2
    for name, gold in (("arc_challenge", 1), ("openbookqa", 3), ("piqa", 0),
                       ("winogrande", 0)):
        doc = json.loads((DATA / FILES[name]).read_text().splitlines()[0])
        assert gold_index(doc) == gold, name


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_task_file(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"goal": "x"\n')
    with pytest.raises(DataError, match="not valid JSON lines"):
        read_task_file(bad)
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"prompt": "x", "answer": "y"}\n')
    with pytest.raises(DataError, match="Name the task"):
        read_task_file(odd)
    unlabelled = tmp_path / "wino_test.jsonl"
    unlabelled.write_text('{"sentence": "A _ b.", "option1": "x", "option2": "y", '
                          '"answer": ""}\n')
    with pytest.raises(DataError, match="unlabelled test split"):
        read_task_file(unlabelled)
    wrong_key = {"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]},
                 "answerKey": "E"}
    with pytest.raises(DataError, match="answerKey 'E'"):
        doc_to_question(wrong_key, "arc")
    with pytest.raises(ConfigError, match="Unknown document format"):
        doc_to_question(wrong_key, "mmlu")
    with pytest.raises(ConfigError, match="limit"):
        read_task_file(DATA / "piqa.jsonl", limit=0)
    with pytest.raises(ConfigError, match=r"\.jsonl, \.json or \.parquet"):
        read_task_file(DATA / "README.md")
    assert len(read_task_file(DATA / "piqa.jsonl", limit=1).questions) == 1


def test_json_list_and_specs(tmp_path: Path) -> None:
    docs = [json.loads(line) for line in (DATA / "piqa.jsonl").read_text().splitlines()]
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(docs))
    assert read_task_file(path).questions == read_task_file(DATA / "piqa.jsonl").questions
    assert parse_task_spec("piqa=data/x.jsonl") == ("piqa", Path("data/x.jsonl"))
    assert parse_task_spec("data/x.jsonl") == (None, Path("data/x.jsonl"))
    assert guess_format(docs) == "piqa"


def test_requests_equal_lm_evals_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-eval itself, reading the same files through its own task YAMLs, builds exactly the
    requests and gold answers computed here."""
    pytest.importorskip("lm_eval", reason="lm-eval[hf] is an optional dependency")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from lm_eval.tasks import TaskManager

    names = write_lm_eval_configs({k: DATA / v for k, v in FILES.items()}, tmp_path / "yaml",
                                  cache_dir=tmp_path / "cache")
    manager = TaskManager(include_path=str(tmp_path / "yaml"), include_defaults=False)
    loaded = (manager.load(names)["tasks"] if hasattr(manager, "load")  # lm-eval >= 0.4.10
              else manager.load_task_or_group(names))
    for task_name, task in loaded.items():
        name = task_name.removeprefix("local_")
        task.build_all_requests(limit=None, rank=0, world_size=1)
        theirs: dict[int, list] = {}
        for inst in task.instances:
            theirs.setdefault(inst.doc_id, []).append((inst.idx, inst.arguments))
        ours = read_task_file(DATA / FILES[name], name).questions
        assert len(theirs) == len(ours), name
        for q in ours:
            args = tuple(a for _, a in sorted(theirs[q.doc_id]))
            assert args == q.requests, (name, q.doc_id)
            doc = task.test_docs() if task.has_test_docs() else task.validation_docs()
            assert gold_index(doc[q.doc_id]) == q.gold


def test_importing_the_package_imports_neither_transformers_nor_lm_eval() -> None:
    import subprocess
    import sys

    code = ("import sys, scirobust.llm, scirobust.llm.cli, scirobust.llm.lm_eval_model; "
            "print(sorted(m for m in ('transformers', 'lm_eval', 'tokenizers') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
