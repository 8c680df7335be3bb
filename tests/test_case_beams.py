"""The beams case end to end on a tiny configuration (needs Sionna: the wireless extra)."""

from __future__ import annotations

import json

import pytest

from scirobust.cases import CaseOptions
from scirobust.wireless.bmqn import QLearningSettings
from scirobust.wireless.channels import INSTALL_HINT, have_sionna

pytestmark = pytest.mark.skipif(not have_sionna(),
                                reason=f"Sionna is not installed: {INSTALL_HINT}")


def test_tiny_beams_case_writes_results_figures_and_verdicts(tmp_path) -> None:
    from scirobust.cases.beams import CASE, BeamsSettings, run_beams

    settings = BeamsSettings(n_train=16, n_test=8, n_times=14, epsilons_dbm=(0.2, 1.0),
                             n_random=1, qlearning=QLearningSettings(updates=30, hidden=8))
    out = run_beams(CaseOptions(output=tmp_path, quick=True), settings)
    res = out.results
    for model in ("bmqn", "bmqn_open_loop", "sweep"):
        for attack in ("random_sign",) + (("fgsm",) if model != "sweep" else ()):
            rec = res.select(model=model, attack=attack, epsilon=0.2, metric="rate", step=None)
            assert len(rec) == 1 and rec[0].value > 0 and rec[0].n == 8
    optimal = res.value(model="optimal", metric="rate")
    assert optimal >= res.value(model="bmqn", attack="clean", metric="rate", step=None)
    assert optimal >= res.value(model="sweep", attack="clean", metric="rate")
    steps = {r.step for r in res.select(model="bmqn", attack="fgsm", metric="agreement")}
    assert steps == {*range(14 - 8 + 1), None}  # decision steps of the episode and the mean
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["case"] == "beams" and len(verdict["verdicts"]) == 2
    assert "2.2 → 1.6 Mbps" in verdict["verdicts"][1]["paper"]
    assert all(v["outcome"] in ("reproduced", "partly", "not reproduced")
               for v in verdict["verdicts"])
    figures = sorted(p.name for p in (tmp_path / "figures" / "case").glob("beams_*.png"))
    assert figures == ["beams_1_rate_vs_amplitude.png", "beams_2_action_agreement.png",
                       "beams_3_rate_over_episode.png"]
    assert (tmp_path / "tables" / "beams_rates.csv").exists()
    assert (tmp_path / "report.html").exists() and out.summary[0][0] == "model"
    assert CASE.name == "beams" and "Fig. 6" in CASE.paper
