"""``scirobust llm-eval``: a local model folder and local task files → records and report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra (transformers) is needed")

import typer
from typer.testing import CliRunner

from scirobust import ConfigError, Results
from scirobust.cli import _guard
from scirobust.llm.cli import llm_eval, llm_eval_command, parse_attacks
from scirobust.llm.synthetic import build_word_tokenizer, tiny_llama

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data" / "llm"


pytestmark = pytest.mark.usefixtures("no_network")  # see conftest.py


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama and its tokenizer saved as a local Hugging Face folder."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = build_word_tokenizer([p.read_text() for p in DATA.glob("*.jsonl")])
    tiny_llama(tok, hidden_size=32, intermediate_size=64, seed=2).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_command_writes_records_figures_and_report(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results, report = llm_eval_command(
        model_dir, [f"arc_challenge={DATA / 'arc_challenge.jsonl'}", str(DATA / "piqa.jsonl"),
                    str(DATA / "winogrande.jsonl")],
        attacks="random,fgsm,bim", amplitude="0.01", n_random=2, steps=3, batch_size=6,
        output=out, quiet=True)
    assert report == out / "report.html" and report.stat().st_size > 10_000
    loaded = Results.load(out)
    assert [r.to_dict() for r in loaded] == [r.to_dict() for r in results]
    assert loaded.kinds() == {"clean": "clean", "random_sign": "random", "fgsm": "adversarial",
                              "bim": "adversarial"}
    assert {r.variable for r in loaded} == {"arc_challenge", "piqa", "winogrande"}
    assert loaded.metadata["chance"]["piqa"] == 0.5
    assert loaded.metadata["config"]["attacks"][2]["steps"] == 3
    assert loaded.metadata["config"]["epsilons"] == [0.01]
    assert loaded.select(kind="ratio")
    assert (out / "figures" / "case" / "fig3_acc.png").is_file()
    assert (out / "tables" / "accuracy.csv").read_text().startswith("task,chance,condition")
    assert "embedding" in loaded.metadata and loaded.metadata["embedding"]["std"] > 0


def test_typer_command_and_errors(model_dir: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command(name="llm-eval")(_guard(llm_eval))
    app.command(name="other")(lambda: None)  # a group, so the command is addressed by name
    runner = CliRunner()
    out = tmp_path / "cli"
    done = runner.invoke(app, ["llm-eval", str(model_dir), str(DATA / "hellaswag.jsonl"),
                               "--attacks", "random,fgsm", "--amplitude", "0.01,0.1",
                               "--n-random", "1", "--output", str(out)])
    assert done.exit_code == 0, done.output
    assert "Report:" in done.output and "hellaswag" in done.output
    res = Results.load(out)
    assert res.epsilons == [0.01, 0.1]
    assert (out / "figures" / "case" / "acc_vs_amplitude.png").is_file()
    missing = runner.invoke(app, ["llm-eval", str(tmp_path / "nope"),
                                  str(DATA / "piqa.jsonl"), "--output", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "config.json" in missing.output
    assert "Traceback" not in missing.output
    bad = runner.invoke(app, ["llm-eval", str(model_dir), str(DATA / "piqa.jsonl"),
                              "--attacks", "random,fgsn", "--output", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "Unknown attack 'fgsn'" in bad.output


def test_attack_names() -> None:
    assert parse_attacks("random, fgsm,bim") == ["random_sign", "fgsm", "bim"]
    with pytest.raises(ConfigError, match="empty"):
        parse_attacks(" , ")
    with pytest.raises(ConfigError, match="amplitude"):
        llm_eval_command(DATA, [str(DATA / "piqa.jsonl")], amplitude="-1")
