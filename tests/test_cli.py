"""The command line end to end with typer's CliRunner on a tiny project in a temporary folder."""

from __future__ import annotations

import csv
import json
import textwrap
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from scirobust import cli
from scirobust.cases import CaseOutput
from scirobust.errors import ConfigError
from scirobust.results import COLUMNS, Record, Results

runner = CliRunner()

FACTORY = """
import torch
from torch import nn

class Tiny(nn.Module):
    def __init__(self, hidden=4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, 2))

    def forward(self, x):
        return self.net(x)

def make(hidden=4):
    torch.manual_seed(0)
    return Tiny(hidden)

def explode():
    raise RuntimeError("boom")
"""

CONFIG: dict[str, Any] = {
    "model": {"factory": "climodel:make", "kwargs": {"hidden": 4}, "checkpoint": "w.pt"},
    "data": {"path": "data.npz", "inputs": "x", "targets": "y"},
    "budget": {"norm": "linf", "scale": "std", "mask": [1, 1, 0]},
    "attacks": ["random_sign", {"name": "pgd_linf", "steps": 2, "label": "pgd2"}],
    "epsilons": [0.05, 0.2],
    "metrics": ["rmse", "relative_l2"],
    "n_random": 2,
    "case": "tiny",
}
N_CELLS = 1 + 2 * 2  # clean + attacks x epsilons


def write_project(directory: Path, **changes: Any) -> Path:
    """Factory module, data.npz (12 samples), a state_dict checkpoint and audit.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "climodel.py").write_text(textwrap.dedent(FACTORY))
    gen = np.random.default_rng(1)
    np.savez(directory / "data.npz", x=gen.normal(size=(12, 3)).astype(np.float32),
             y=gen.normal(size=(12, 2)).astype(np.float32))
    torch.manual_seed(5)
    from torch import nn

    weights = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).state_dict()
    torch.save({f"net.{k}": v for k, v in weights.items()}, directory / "w.pt")
    config = {**CONFIG, **changes}
    (directory / "audit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory / "audit.yaml"


def invoke(*args: str) -> Any:
    return runner.invoke(cli.app, [str(a) for a in args])


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """One real audit run (shared by the tests that read its output)."""
    root = tmp_path_factory.mktemp("cli")
    config = write_project(root / "project")
    out = root / "out"
    result = invoke("audit", config, "--output", out, "--quiet", "--seed", "3")
    return out, result


def test_audit_writes_tidy_results_and_report(audited: tuple[Path, Any]) -> None:
    out, result = audited
    assert result.exit_code == 0, result.output
    assert f"Report: {out / 'report.html'}" in result.stdout
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert {r["attack"] for r in rows} == {"clean", "random_sign", "pgd2"}
    assert {r["case"] for r in rows} == {"tiny"} and {r["model"] for r in rows} == {"make"}
    assert {"clean", "random", "adversarial", "ratio"} == {r["kind"] for r in rows}
    assert {r["metric"] for r in rows if r["kind"] == "ratio"} == {"rmse", "relative_l2"}
    meta = json.loads((out / "results.json").read_text())["metadata"]
    assert meta["seed"] == 3 and meta["cells_reused_from_cache"] == 0
    assert (out / "report.html").stat().st_size > 0
    assert any((out / "cache").rglob("*.npz"))


def test_second_run_reuses_cache(audited: tuple[Path, Any]) -> None:
    out, _ = audited
    config = out.parent / "project" / "audit.yaml"
    before = (out / "results.csv").read_text()
    again = invoke("audit", config, "--output", out, "--seed", "3")  # not quiet: table
    assert again.exit_code == 0, again.output
    assert f"Reused {N_CELLS} finished cell(s)" in again.stdout
    assert "tiny: make" in again.stdout  # the summary table's title
    meta = json.loads((out / "results.json").read_text())["metadata"]
    assert meta["cells_reused_from_cache"] == N_CELLS
    assert (out / "results.csv").read_text() == before  # cached cells give identical numbers


def test_report_regenerates(audited: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = audited
    result = invoke("report", out, "--output", tmp_path / "again", "--quiet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again" / "report.html").exists()
    missing = invoke("report", tmp_path / "nothing")
    assert missing.exit_code == 2 and "No results found" in missing.stderr


def test_output_from_config_relative_to_it(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p", output="results", epsilons=[0.1],
                           attacks=["random_sign"], n_random=1)
    result = invoke("audit", config, "--quiet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "results" / "results.csv").exists()


def _pickled_module(directory: Path) -> None:
    from scirobust.io import import_factory

    torch.save(import_factory("climodel:make", directory)(), directory / "full.pt")


@pytest.mark.parametrize(("changes", "expected"), [
    ({"epsilon": [0.1]}, "epsilon: unknown key (did you mean 'epsilons'?)"),
    ({"budget": {"norm": "l3"}}, "budget.norm: must be 'linf' or 'l2', got 'l3'"),
    ({"epsilons": [0.1, -0.2]}, "epsilons[1]: must be >= 0"),
    ({"attacks": ["fgsm", "deepfool"]}, "attacks[1].name: unknown attack 'deepfool'; valid "
                                        "attacks: random_sign"),
    ({"data": {"path": "gone.npz", "inputs": "x", "targets": "y"}},
     "data.path: file not found:"),
    ({"data": {"path": "data.npz", "inputs": "inputs", "targets": "y"}},
     "data.inputs: no array named 'inputs' in data.npz; available: x, y"),
    ({"budget": {"mask": [1, 0]}}, "budget.mask: has 2 entries but the inputs have 3 features"),
    ({"model": {"factory": "nomodel:make"}}, "model.factory: Cannot import the factory module "
                                             "'nomodel'"),
    ({"model": {"factory": "climodel:make", "checkpoint": "full.pt"}}, "--trust-checkpoint"),
])
def test_bad_configs_exit_2_without_traceback(
    tmp_path: Path, changes: dict, expected: str
) -> None:
    config = write_project(tmp_path, **changes)
    _pickled_module(tmp_path)
    result = invoke("audit", config, "--quiet")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert not (tmp_path / "scirobust-output").exists()  # nothing ran


def test_trusted_pickled_module_runs(tmp_path: Path) -> None:
    config = write_project(tmp_path, model={"factory": "climodel:make", "checkpoint": "full.pt"},
                           epsilons=[0.1], attacks=["random_sign"], n_random=1)
    _pickled_module(tmp_path)
    result = invoke("audit", config, "--quiet", "--trust-checkpoint", "-o", tmp_path / "o")
    assert result.exit_code == 0, result.output


def test_error_in_user_code_and_debug(tmp_path: Path) -> None:
    config = write_project(tmp_path, model={"factory": "climodel:explode"})
    result = invoke("audit", config)
    assert result.exit_code == 2
    assert "RuntimeError: boom" in result.stderr and "--debug" in result.stderr
    assert "Traceback" not in result.stderr
    debug = invoke("--debug", "audit", config)
    assert debug.exit_code == 2 and "Traceback" in debug.stderr


def test_unexpected_error_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[str]:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(cli.cases, "available", broken)
    result = invoke("cases")
    assert result.exit_code == 1
    assert "unexpected ZeroDivisionError: oops" in result.stderr and "--debug" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable(tmp_path: Path) -> None:
    result = invoke("audit", write_project(tmp_path), "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in result.stderr
    result = invoke("audit", write_project(tmp_path), "--device", "tpu")
    assert result.exit_code == 2 and "--device must be 'cpu' or 'cuda'" in result.stderr


@pytest.mark.parametrize("command", ["audit", "report", "reproduce", "demo", "attacks", "cases"])
def test_help_has_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and f"scirobust {command}" in result.stdout


def test_root_help_and_version() -> None:
    assert invoke("--help").exit_code == 0
    result = invoke("--version")
    assert result.exit_code == 0 and "scirobust" in result.stdout


def test_attacks_and_cases_listed() -> None:
    result = invoke("attacks")
    assert result.exit_code == 0 and "fgsm" in result.stdout and "pgd_linf" in result.stdout
    result = invoke("cases")
    assert result.exit_code == 0 and "poisson" in result.stdout


class FakeCase:
    """Stands in for a registered case: records its options, returns a tiny result."""

    name = "poisson"
    title = "Poisson equation"
    paper = "000"

    def __init__(self) -> None:
        self.options: Any = None

    def run(self, options: Any) -> CaseOutput:
        self.options = options
        results = Results([Record("poisson", "m", "clean", 0.0, "rmse", 1.0, kind="clean")])
        report = Path(options.output) / "report.html"
        return CaseOutput(results, report, [["model", "rmse"], ["m", "1.0"]])


def test_reproduce_and_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeCase()
    monkeypatch.setattr(cli.cases, "get_case", lambda name: fake)
    monkeypatch.chdir(tmp_path)
    result = invoke("reproduce", "poisson", "--quick", "--seed", "4")
    assert result.exit_code == 0, result.output
    assert fake.options.output == Path("scirobust-output/poisson")
    assert fake.options.quick and fake.options.seed == 4 and not fake.options.quiet
    assert "Report: scirobust-output/poisson/report.html" in result.stdout
    assert "rmse" in result.stdout  # the summary table
    result = invoke("demo", "--quiet")
    assert result.exit_code == 0, result.output
    assert fake.options.output == Path("demo-output") and fake.options.quick
    assert fake.options.quiet and "rmse" not in result.stdout


def test_reproduce_unknown_case() -> None:
    result = invoke("reproduce", "nosuchcase")
    assert result.exit_code == 2 and "Unknown case 'nosuchcase'. Available:" in result.stderr


def test_config_error_from_case_is_reported(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    def failing(name: str) -> Any:
        return types.SimpleNamespace(name=name, title="t", run=_raise_config)

    monkeypatch.setattr(cli.cases, "get_case", failing)
    result = invoke("reproduce", "poisson", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "bad option" in result.stderr
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"


def _raise_config(options: Any) -> None:
    raise ConfigError("bad option")


def test_csv_classification_audit(tmp_path: Path) -> None:
    (tmp_path / "clf.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make():\n    torch.manual_seed(0)\n    return nn.Linear(2, 3)\n")
    gen = np.random.default_rng(2)
    rows = ["a,b,label"] + [f"{u:.3f},{v:.3f},{k}" for (u, v), k in
                             zip(gen.normal(size=(9, 2)), [0, 1, 2] * 3, strict=True)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    config = {"model": {"factory": "clf:make"},
              "data": {"path": "data.csv", "inputs": ["a", "b"], "targets": ["label"]},
              "task": "classification", "attacks": ["random_sign", "fgsm"],
              "epsilons": [0.5], "n_random": 1}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = invoke("audit", tmp_path / "c.yaml", "-q", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    metrics = {r.metric for r in Results.load(tmp_path / "out")}
    assert "accuracy" in metrics


# --------------------------------------------------------------------------- output folders
def test_bad_output_folders_are_refused_clearly(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_project(tmp_path / "p")
    (tmp_path / "afile").write_text("x")
    result = invoke("audit", config, "--output", tmp_path / "afile", "--quiet")
    assert result.exit_code == 2 and "is an existing file" in result.output
    result = invoke("audit", config, "--output", "", "--quiet")
    assert result.exit_code == 2 and "--output is empty" in result.output
    monkeypatch.chdir(tmp_path)
    escaping = write_project(tmp_path / "q", case="../../escaped")
    result = invoke("audit", escaping, "--quiet")
    assert result.exit_code == 2 and "path separator" in result.output
    assert not (tmp_path.parent / "escaped").exists()


def test_a_second_command_on_a_locked_output_folder_is_refused(tmp_path: Path) -> None:
    import fcntl

    config = write_project(tmp_path / "p")
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".scirobust.lock", "a") as held:  # another process's run, in effect
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = invoke("audit", config, "--output", out, "--quiet")
        assert result.exit_code == 2 and "Another scirobust command" in result.output
        assert not (out / "results.csv").exists()
    result = invoke("audit", config, "--output", out, "--quiet")
    assert result.exit_code == 0, result.output  # the lock ends with its holder


def test_rerun_with_other_metrics_leaves_no_stale_figures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = write_project(tmp_path / "a", metrics=["rmse", "mae"])
    assert invoke("audit", first, "--output", out, "--quiet").exit_code == 0
    assert (out / "figures" / "mae_vs_eps.png").exists()
    second = write_project(tmp_path / "b", metrics=["rmse"])
    assert invoke("audit", second, "--output", out, "--quiet").exit_code == 0
    assert not (out / "figures" / "mae_vs_eps.png").exists()
    assert (out / "figures" / "rmse_vs_eps.png").exists()


def test_report_on_a_truncated_results_file_fails_with_the_line(tmp_path: Path) -> None:
    results = Results([Record("c", "m", "clean", 0.0, "rmse", 1.0, kind="clean"),
                       Record("c", "m", "fgsm", 0.1, "rmse", 2.0, kind="adversarial")])
    text = results.to_csv()
    (tmp_path / "results.csv").write_text(text[: len(text) - 25])
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and "line 3" in result.output


def test_distributed_audit_under_torchrun_writes_the_records_of_one_process(
        tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    config = write_project(tmp_path / "p")
    single = tmp_path / "single"
    assert invoke("audit", config, "--output", single, "--quiet").exit_code == 0
    sharded = tmp_path / "sharded"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([*torchrun, "-m", "scirobust.cli", "audit", str(config), "--output",
                          str(sharded), "--quiet", "--distributed"],
                         capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (sharded / "results.csv").read_text() == (single / "results.csv").read_text()
    assert sorted(p.name for p in (sharded / "cache").iterdir()) == ["rank0", "rank1"]


def test_reproduce_all_runs_every_case_keeps_finished_ones_and_writes_an_index(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from scirobust.cases import Verdict, finish

    calls: list[str] = []

    def make_case(name: str, fails: bool) -> Any:
        def run(options: Any) -> CaseOutput:
            calls.append(name)
            if fails:
                raise ConfigError("the data went missing")
            results = Results([Record(name, "m", "clean", 0.0, "rmse", 1.0, kind="clean")])
            verdict = Verdict("Attacks hurt, noise does not.", "ratio >= 2", "partly",
                              "ratio 1.7", paper="4.2", ours="1.7")
            return finish(results, options.output, title=name, verdicts=[verdict])
        return types.SimpleNamespace(name=name, title=f"The {name} case", paper="000 §1",
                                     run=run)

    fake = {"alpha": make_case("alpha", False), "beta": make_case("beta", True)}
    monkeypatch.setattr(cli.cases, "available", lambda: sorted(fake))
    monkeypatch.setattr(cli.cases, "get_case", lambda name: fake[name])
    out = tmp_path / "all"
    result = invoke("reproduce", "all", "--quick", "--output", out)
    assert result.exit_code == 2 and "1 case(s) failed: beta" in result.output
    assert calls == ["alpha", "beta"]
    with (out / "summary.csv").open() as handle:
        rows = {r["case"]: r for r in csv.DictReader(handle)}
    assert rows["alpha"]["outcome"] == "partly" and rows["alpha"]["paper_numbers"] == "4.2"
    assert rows["alpha"]["mode"] == "quick" and rows["alpha"]["report"] == "alpha/report.html"
    assert rows["beta"]["status"] == "failed" and "data went missing" in rows["beta"]["detail"]
    index = (out / "index.html").read_text()
    assert "href='alpha/report.html'" in index and "Attacks hurt, noise does not." in index
    verdict = json.loads((out / "alpha" / "verdict.json").read_text())
    assert verdict["outcome"] == "partly" and verdict["verdicts"][0]["ours"] == "1.7"
    # a second run keeps the finished case and retries the failed one
    invoke("reproduce", "all", "--quick", "--output", out)
    assert calls == ["alpha", "beta", "beta"]
    # a full run does not count a quick one as finished
    invoke("reproduce", "all", "--output", out)
    assert calls[-2:] == ["alpha", "beta"]
