"""The silicon case (paper 002 Figs. 4–5 and the adversarial-sampling defense), tiny run."""

from __future__ import annotations

import dataclasses
import json
from importlib.util import find_spec

import numpy as np
import pytest

pytest.importorskip("ase", reason="needs ase: pip install 'scirobust[atomistic]'")
pytest.importorskip("chgnet", reason="needs CHGNet: pip install 'scirobust[universal]'")

from scirobust.atomistic.mace import MACE_INSTALL
from scirobust.cases import CaseOptions, get_case
from scirobust.cases.silicon import (
    DEFENSES,
    MACE_KINDS,
    SiliconSettings,
    load_silicon,
    run_silicon,
)
from scirobust.results import Results

TINY = SiliconSettings(per_temperature=(4, 2, 2), gnn_epochs=3, bp_epochs=5, defended=("GNN (E)",),
                       epsilons_angstrom=(0.0, 0.5), n_random=1, augment_from=2, bin_size=2,
                       mace_epochs=2)


def test_registered_and_data() -> None:
    case = get_case("silicon")
    assert "002" in case.paper
    template, pos, energies, forces, temps, meta = load_silicon()
    assert len(template) == 64 and pos.shape[1:] == (64, 3)
    assert sorted(set(temps.tolist())) == [300.0, 600.0, 900.0, 2000.0]
    assert np.isfinite(energies).all() and forces.shape == pos.shape
    assert "CHGNet" in meta["reference"]


def test_tiny_run(tmp_path) -> None:
    out = tmp_path / "silicon"
    result = run_silicon(CaseOptions(output=out, quick=True), TINY)
    verdict = json.loads((out / "verdict.json").read_text())
    assert len(verdict["verdicts"]) == 3
    res = Results.load(out)
    models = {r.model for r in res}
    assert {"BP-NN (E)", "GNN (E)", "GNN (E+F)"} <= models
    assert all(any(d.replace("_", " ") in m for m in models) for d in DEFENSES)
    for m in ("GNN (E)", "GNN (E+F)"):
        assert 0 <= res.value(model=m, metric="mean_abs_cos_theta", kind="clean") <= 1
    assert (out / "tables" / "models_and_defenses.csv").exists()
    assert result.report.exists()
    if find_spec("mace") is None:  # the case still runs, and says how to get MACE
        notes = " ".join(res.metadata["notes"])
        assert "MACE skipped" in notes and "make install-mace" in notes
        assert not models & set(MACE_KINDS)


@pytest.mark.skipif(find_spec("mace") is None, reason=MACE_INSTALL)
def test_tiny_run_with_mace(tmp_path) -> None:
    out = tmp_path / "silicon"
    run_silicon(CaseOptions(output=out, quick=True), dataclasses.replace(TINY, defended=()))
    res = Results.load(out)
    assert set(MACE_KINDS) <= {r.model for r in res}
    for m in MACE_KINDS:
        assert np.isfinite(res.value(model=m, metric="test_rmse_mev_per_atom", kind="clean"))
        assert 0 <= res.value(model=m, metric="mean_abs_cos_theta", kind="clean") <= 1
    notes = " ".join(res.metadata["notes"])
    assert "MACE, read with the verdicts' criteria" in notes
    assert len(json.loads((out / "verdict.json").read_text())["verdicts"]) == 3
