"""The sio2 case (paper 002) end to end on tiny settings, and its registration."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("ase")

from scirobust.cases import CaseOptions, get_case
from scirobust.cases.sio2 import (
    PAPER_ADVERSARIAL,
    PAPER_RANDOM,
    Sio2Settings,
    run_sio2,
)
from scirobust.results import Results


def test_case_is_registered():
    case = get_case("sio2")
    assert case.name == "sio2" and "002" in case.paper
    quick, full = Sio2Settings.quick(), Sio2Settings()
    assert full.n_test == 2000 and full.bin_size == 50
    assert full.epsilons_angstrom == quick.epsilons_angstrom == (0.0, 0.1, 0.3, 0.5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sio2")
    return out, run_sio2(CaseOptions(output=out, quick=True, seed=0), Sio2Settings.tiny())


def test_tiny_run_writes_standard_outputs(tiny_run):
    out, result = tiny_run
    assert result.report.exists()
    loaded = Results.load(out)
    assert len(loaded.records) == len(result.results.records)
    for name in ("fig1a_parity", "fig1b_cos_theta_histogram", "fig1c_abs_cos_theta_vs_energy",
                 "table1_distortion", "fig2a_newton_step", "fig2b_gradient_descent",
                 "fig3_bks_vs_refit"):
        assert (out / "figures" / "case" / f"{name}.png").exists()
        assert (out / "figures" / "case" / f"{name}.svg").exists()
    rows = list(csv.reader((out / "tables" / "distortion_table.csv").open(encoding="utf-8")))
    assert rows[0][0] == "row" and len(rows[0]) == 5
    paper_random = next(r for r in rows if r[0].startswith("random, paper"))
    paper_adv = next(r for r in rows if r[0].startswith("adversarial, paper"))
    assert [float(v) for v in paper_random[1:]] == list(PAPER_RANDOM)
    assert [float(v) for v in paper_adv[1:]] == list(PAPER_ADVERSARIAL)
    for table in ("alignment_summary", "cos_theta_vs_energy", "newton_step",
                  "gradient_descent", "training", "bks_vs_refit_distortion_table"):
        assert (out / "tables" / f"{table}.csv").exists()


def test_tiny_run_records_and_metadata(tiny_run):
    _, result = tiny_run
    res = result.results
    bp = [r for r in res.records if r.case == "sio2" and r.model == "BP-NN"]
    assert {"clean", "random", "adversarial"} <= {r.attack for r in bp}
    audit = [r for r in res.records if r.model.startswith("BP-NN (core audit")]
    assert {"clean", "random_sign", "fgsm_sign"} <= {r.attack for r in audit}
    clean = res.value(model="BP-NN", attack="clean", epsilon=0.0,
                      metric="energy_error_mev_per_atom")
    test_rmse = res.value(model="BP-NN", attack="clean", epsilon=0.0,
                          metric="test_rmse_mev_per_atom")
    assert clean == pytest.approx(test_rmse) and np.isfinite(clean) and clean > 0
    for eps in (0.1, 0.3, 0.5):
        assert np.isfinite(res.value(model="BP-NN", attack="adversarial", epsilon=eps,
                                     metric="energy_error_mev_per_atom"))
    cos = res.value(model="BP-NN", attack="clean", epsilon=0.0, metric="mean_abs_cos_theta")
    assert 0 <= cos <= 1
    meta = res.metadata
    assert meta["description"] and len(meta["notes"]) >= 5
    assert "paper" in " ".join(meta["notes"]) and "total_s" in meta["timings_s"]
    assert set(meta["findings"]) >= {"table1_reproduced", "alignment_reproduced"}
    assert result.summary[0][0] == "row" and len(result.summary) > 2
