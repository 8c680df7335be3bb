"""The sio2 case (paper 002) end to end on tiny settings, and its registration."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("ase")

from scirobust.cases import CaseOptions, get_case
from scirobust.cases.sio2 import METRIC, PAPER_ADVERSARIAL, PAPER_RANDOM, Sio2Settings, run_sio2
from scirobust.results import Results

# smallest meaningful run: same protocol, tiny sets; the CHGNet pair (seconds per cell) is
# covered by the quick-mode test and by test_chgnet_pair_gives_a_finite_direction below
TINY = Sio2Settings(n_train=100, n_val=25, n_test=32, n_random=2, max_epochs=60, bin_size=8,
                    n_relax_configs=4, n_relax_steps=5, n_audit_configs=4, pair2_n=24,
                    chgnet_n=0)
PAIRS = ("BP-NN", "BKS (vs BKS refit)", "BP-NN (vs JAX-MD BKS)")


def test_case_is_registered():
    case = get_case("sio2")
    assert case.name == "sio2" and "002" in case.paper
    quick, full = Sio2Settings.quick(), Sio2Settings()
    assert full.n_test == 2000 and full.bin_size == 50
    assert full.epsilons_angstrom == quick.epsilons_angstrom == (0.0, 0.1, 0.3, 0.5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sio2")
    return out, run_sio2(CaseOptions(output=out, quick=True, seed=0), TINY)


def test_tiny_run_writes_standard_outputs(tiny_run):
    out, result = tiny_run
    assert result.report.exists()
    loaded = Results.load(out)
    assert [r.to_dict() for r in loaded] == [r.to_dict() for r in result.results]
    for name in ("fig1_bp_vs_bks", "table1_distortion", "fig2_following_f_nn",
                 "fig3_bks_vs_refit", "fig3_error_growth"):
        for ext in ("png", "svg", "txt"):
            assert (out / "figures" / "case" / f"{name}.{ext}").exists()
    rows = list(csv.DictReader((out / "tables" / "distortion_table.csv").open(encoding="utf-8")))
    assert [(r["pair"], float(r["epsilon_angstrom"])) for r in rows] == [
        (pair, eps) for pair in PAIRS for eps in (0, 0.1, 0.3, 0.5)]
    for r in rows:
        ratio = float(r["adversarial_mev_per_atom"]) / float(r["random_mev_per_atom"])
        assert float(r["ratio"]) == pytest.approx(ratio, rel=1e-5)
        assert 1.0 <= float(r["atoms_moved_by_A"]) <= 96
        assert 0.0 < float(r["largest_atom_share_of_A"]) <= 1.0
        shortest, median = (float(r[f"adversarial_{k}_angstrom"])
                            for k in ("shortest_distance", "median_shortest"))
        assert 0.5 < shortest <= median < 2.0  # Si–O bonds are ~1.6 Å
    for table in ("cos_theta_vs_energy", "training", "training_paper_protocol"):
        assert (out / "tables" / f"{table}.csv").exists()


def test_tiny_run_records_say_what_they_are(tiny_run):
    _, result = tiny_run
    res = result.results
    assert {r.kind for r in res.records} == {"clean", "random", "adversarial", "ratio"}
    bp = Results(res.select(model="BP-NN", metric=METRIC))
    assert bp.kinds() == {"clean": "clean", "random_gaussian": "random",
                          "adversarial_force": "adversarial"}
    ratios = bp.select(kind="ratio")
    assert [r.epsilon for r in ratios] == [0.0, 0.1, 0.3, 0.5]
    assert {r.baseline for r in ratios} == {"random_gaussian"}
    for r in ratios[1:]:
        adv = bp.value(attack="adversarial_force", epsilon=r.epsilon, kind="adversarial")
        rand = bp.value(attack="random_gaussian", epsilon=r.epsilon, kind="random")
        assert r.value == pytest.approx(adv / rand) and np.isfinite(adv) and adv > 0
    paper = res.select(model="BP-NN (paper 002)")
    assert [r.value for r in paper if r.kind == "random"] == list(PAPER_RANDOM)
    assert [r.value for r in paper if r.kind == "adversarial"] == list(PAPER_ADVERSARIAL)
    clean = res.value(model="BP-NN", kind="clean", metric=METRIC)
    assert clean == res.value(model="BP-NN", kind="clean", metric="test_rmse_mev_per_atom") > 0
    audit = [r for r in res.records if r.model.startswith("BP-NN (core audit")]
    assert {(r.attack, r.kind) for r in audit} >= {("clean", "clean"), ("random_sign", "random"),
                                                   ("fgsm_sign", "adversarial")}
    # the relaxation step lives in `step`, not in epsilon
    descent = res.select(attack="gradient_descent")
    assert [r.step for r in descent] == list(range(TINY.n_relax_steps + 1))
    assert {r.epsilon for r in descent} == {0.0}
    assert res.metadata["step_label"] == "gradient-descent step with F_NN"
    assert all(r.step is None for r in res.records if r.attack != "gradient_descent")


def test_tiny_run_metadata_and_verdicts(tiny_run):
    _, result = tiny_run
    meta = result.results.metadata
    assert meta["description"] and len(meta["notes"]) >= 5 and meta["wall_time_s"] > 0
    verdicts = meta["verdicts"]
    assert len(verdicts) == 6  # no CHGNet verdict when its pair is skipped
    assert {v["outcome"] for v in verdicts} <= {"reproduced", "partly", "not reproduced"}
    assert all(v["paper"] and v["ours"] and v["stand_in"] for v in verdicts)
    assert "5.1, 15.4, 31.9, 42.0 meV/atom" in verdicts[0]["paper"] and "Å" in verdicts[0]["ours"]
    assert "Verdict: " in result.report.read_text(encoding="utf-8")
    assert meta["distortion_sweep"]["attacks"][0]["name"] == "random_gaussian"
    assert result.summary[0][:3] == ["model", "epsilon", "clean"] and len(result.summary) == 13
    assert meta["headline_metric"] == METRIC  # the paper's statistic, not the median


def test_table1_verdict_is_read_from_the_paper_protocol_by_rmse(tiny_run):
    _, result = tiny_run
    res, meta = result.results, result.results.metadata
    paper = Results(res.select(model="BP-NN (vs JAX-MD BKS)", metric=METRIC))
    assert paper.kinds() == {"clean": "clean", "random_gaussian": "random",
                             "adversarial_force": "adversarial"}
    rmse = [paper.value(attack="adversarial_force", epsilon=e, kind="adversarial")
            for e in (0.1, 0.3, 0.5)]
    ratio = paper.value(epsilon=0.5, kind="ratio")
    assert meta["findings"]["ratio_max"] == pytest.approx(ratio)
    assert [round(v, 2) for v in meta["findings"]["adversarial_over_paper"].values()] == [
        round(v / p, 2) for v, p in zip(rmse, PAPER_ADVERSARIAL[1:], strict=True)]
    assert "paper's (JAX-MD) BKS" in meta["verdicts"][0]["stand_in"]
    assert meta["verdicts"][1]["claim"].startswith("Table 1's magnitudes")
    # today's protocol stays beside it as a diagnostic, with its own numbers
    old = res.value(model="BP-NN", attack="adversarial_force", epsilon=0.5, metric=METRIC,
                    kind="adversarial")
    assert f"{old:.3g}" in meta["verdicts"][0]["detail"]


def test_chgnet_pair_gives_a_finite_direction():
    pytest.importorskip("chgnet", reason="CHGNet is optional: pip install 'chgnet>=0.4'")
    from scirobust.atomistic import BKS, BKS_REFIT, alpha_cristobalite, force_alignment
    from scirobust.atomistic import random_displacements as displace
    from scirobust.cases._sio2_pairs import chgnet_calculator

    cell = alpha_cristobalite((1, 1, 1))  # 12 atoms: the 96-atom cell costs ~1 s per call
    pos, _ = displace(cell.positions, 2, np.random.default_rng(0), (0.1, 0.3))
    configs = [cell.copy() for _ in pos]
    for atoms, p in zip(configs, pos, strict=True):
        atoms.positions = p
    alignment = force_alignment(configs, BKS.from_atoms(cell, BKS_REFIT), chgnet_calculator(),
                                energy_offset_ev="mean")
    direction = alignment.data.direction
    assert direction.shape == (2, 12, 3) and np.isfinite(direction).all()
    assert np.abs(direction).max() > 0 and alignment.defined.all()
    assert abs(alignment.data.energy_offset_ev) > 1.0  # the two codes' energy zeros differ
