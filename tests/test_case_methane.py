"""The methane case (paper 000 §2.2): shipped DFT data, a tiny end-to-end run, resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ase", reason="needs ase: pip install 'scirobust[atomistic]'")
pytest.importorskip("pyscf", reason="needs PySCF: pip install 'scirobust[dft]'")
from scirobust.atomistic.deepmd import DEEPMD_INSTALL

pytest.importorskip("deepmd.pt.cxx_op", reason=DEEPMD_INSTALL)

from scirobust.atomistic.pyscf_reference import PySCFCalculator
from scirobust.cases import CaseOptions, get_case
from scirobust.cases.methane import MethaneSettings, load_methane, run_methane
from scirobust.results import Results

TINY = MethaneSettings(training_steps=20, n_test=2, n_random=1, processes=1)


def test_registered_and_settings() -> None:
    case = get_case("methane")
    assert "000" in case.paper and "2.2" in case.paper
    full = MethaneSettings()
    assert (full.n_train, full.n_test, full.epsilon_angstrom) == (160, 40, 0.05)


def test_shipped_labels_are_pyscf_pbe_def2svp() -> None:
    atoms, energies, forces, meta = load_methane()
    assert len(atoms) == 200 and atoms[0].get_chemical_formula() == "CH4"
    assert (meta["xc"], meta["basis"]) == ("pbe", "def2-svp")
    calc = PySCFCalculator(xc=meta["xc"], basis=meta["basis"], threads=1)
    energy, f = calc.energy_and_forces(atoms[123])
    assert energy == pytest.approx(energies[123], abs=1e-6)
    assert np.allclose(f, forces[123], atol=1e-5)


def test_tiny_run_and_resume(tmp_path) -> None:
    out = tmp_path / "methane"
    first = run_methane(CaseOptions(output=out, quick=True), TINY)
    verdict = json.loads((out / "verdict.json").read_text())
    assert len(verdict["verdicts"]) == 2
    res = Results.load(out)
    meta = res.metadata
    assert meta["attack_target"] == "labels"
    # clean geometries come from the shipped labels; 1 random draw and FGSM are computed
    assert meta["timing_s"]["pyscf_geometries_computed"] == 2 * 2
    assert res.value(attack="clean", metric="force_rmse") > 0
    for stem in ("fig3a_learning_curve", "fig3bc_mse_per_geometry"):
        assert (out / "figures" / "case" / f"{stem}.png").exists()
    again = run_methane(CaseOptions(output=out, quick=True), TINY)
    timing = again.results.metadata["timing_s"]
    assert timing["training"] == 0.0 and timing["pyscf_geometries_computed"] == 0
    assert [r.to_dict() for r in again.results] == [r.to_dict() for r in first.results]
