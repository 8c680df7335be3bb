"""Every reproduction's real quick mode, end to end through the CLI.

The per-case test files use even smaller settings to check details; this file runs exactly
what a user runs (`scirobust reproduce CASE --quick`) and checks the standard outputs exist
and are readable. Together these runs take a few minutes on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scirobust import Results
from scirobust.cases import available
from scirobust.cli import app

OPTIONAL = {"sio2": ("ase",), "weather": ("torch_harmonics",), "digits": ("sklearn",),
            "methane": ("ase", "pyscf", "deepmd.pt.cxx_op"), "llm": ("transformers",),
            "beams": ("sionna",), "silicon": ("ase", "chgnet")}


@pytest.mark.parametrize("case", available())
def test_reproduce_quick_writes_standard_outputs(case: str, tmp_path: Path) -> None:
    for module in OPTIONAL.get(case, ()):
        pytest.importorskip(module)
    out = tmp_path / case
    result = CliRunner().invoke(
        app, ["reproduce", case, "--quick", "--quiet", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / "report.html").stat().st_size > 10_000
    results = Results.load(out)
    assert len(results) > 0 and all(r.case for r in results)
    assert results.metadata.get("notes"), "a reproduction must state its choices and verdict"
    assert list((out / "figures" / "case").glob("*.png"))
