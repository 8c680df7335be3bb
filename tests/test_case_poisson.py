"""Poisson case: exact solution, randomized network, PINN Laplacian, and a tiny end-to-end run."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scirobust.attacks import input_gradient
from scirobust.audit import audit
from scirobust.budget import Budget
from scirobust.cases import CaseOptions, get_case
from scirobust.cases._poisson_physics import F_SCALE
from scirobust.cases._poisson_readings import ResidualObjective, training_iterations
from scirobust.cases.poisson import (
    EPSILONS,
    PAPER_TABLE1,
    PINN,
    PoissonSettings,
    RandomizedNet,
    fit_rnn,
    grid,
    relative_l2_error,
    rnn_points,
    run,
    source,
    u_exact,
)
from scirobust.errors import ConfigError, ObjectiveError
from scirobust.objectives import against_reference

f64 = torch.float64


def _autograd_laplacian(fn, x: torch.Tensor) -> torch.Tensor:
    """Δ fn(x) by double backward, (N, 1)."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    lap = torch.zeros(x.shape[0], 1, dtype=x.dtype)
    for i in range(x.shape[1]):
        (gi,) = torch.autograd.grad(g[:, i].sum(), x, create_graph=True)
        lap = lap + gi[:, i : i + 1]
    return lap


def test_exact_solution_is_differentiable_and_solves_poisson() -> None:
    x = torch.rand(50, 2, generator=torch.Generator().manual_seed(1), dtype=f64) * 2 - 1
    lap = _autograd_laplacian(u_exact, x)
    assert u_exact(x).shape == (50, 1)
    torch.testing.assert_close(-lap, source(x), rtol=1e-10, atol=1e-9)
    # boundary values g = 0 on all four sides
    s = torch.linspace(-1, 1, 11, dtype=f64)
    one = torch.ones_like(s)
    for side in ((s, -one), (s, one), (-one, s), (one, s)):
        assert u_exact(torch.stack(side, 1)).abs().max() < 1e-12


def test_rnn_least_squares_fit_and_analytic_laplacian() -> None:
    settings = PoissonSettings()  # the paper's system; the solve takes ~0.1 s
    gen = torch.Generator().manual_seed(0)
    rnn = RandomizedNet(settings.rnn_hidden, settings.rnn_radius, generator=gen)
    interior, boundary = rnn_points(settings, gen)
    assert interior.shape == (900, 2) and boundary.shape == (2000, 2)
    assert (interior.abs() < 1).all() and (boundary.abs().max(dim=1).values == 1).all()
    info = fit_rnn(rnn, interior, boundary, penalty=settings.rnn_penalty)
    assert info["system_shape"] == [2900, 400]
    assert relative_l2_error(rnn, grid(41)) < 0.5
    x = torch.rand(30, 2, generator=gen, dtype=f64) * 2 - 1
    # relative to the coefficient scale: the fitted sum cancels terms of size ~|c|
    scale = float(rnn.coef.abs().sum())
    lap = rnn.feature_laplacian(x) @ rnn.coef
    assert (lap - _autograd_laplacian(rnn, x)).abs().max() < 1e-12 * scale
    # the feature Laplacian itself, one feature at a time, tightly
    for j in (0, 7, 399):
        lap_j = _autograd_laplacian(lambda z, j=j: rnn.features(z)[:, j : j + 1], x)
        torch.testing.assert_close(rnn.feature_laplacian(x)[:, j : j + 1], lap_j)


def test_pinn_forward_laplacian_matches_autograd() -> None:
    model = PINN(width=16, depth=3, first_layer_scale=6.0,
                 generator=torch.Generator().manual_seed(0), dtype=f64)
    x = torch.rand(20, 2, generator=torch.Generator().manual_seed(2), dtype=f64) * 2 - 1
    value, lap = model.value_and_laplacian(x)
    torch.testing.assert_close(value, model(x))
    torch.testing.assert_close(lap, _autograd_laplacian(model, x))


def test_paper_table_is_stored_honestly() -> None:
    assert len(PAPER_TABLE1["RNN"]) == len(PAPER_TABLE1["DNN"]) == len(EPSILONS) == 7
    assert PAPER_TABLE1["RNN"][EPSILONS.index(0.25)] is None
    assert PAPER_TABLE1["RNN"][EPSILONS.index(0.2)] == 0.273
    assert PAPER_TABLE1["DNN"][-1] == 4.061
    assert get_case("poisson").name == "poisson"


def test_small_end_to_end_run(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        PoissonSettings.quick(), grid=31, pinn_iterations=60, pinn_interior=100,
        pinn_boundary=40, pinn_width=20, pinn_depth=2, rnn_interior_per_axis=15,
        rnn_boundary_per_side=100, n_random=2,
    )
    out = run(CaseOptions(output=tmp_path, quick=True, seed=3), settings)
    res = out.results

    assert (tmp_path / "results.csv").exists()
    assert out.report == tmp_path / "report.html" and out.report.exists()
    assert sorted(p.name for p in (tmp_path / "figures" / "case").glob("*.png")) == [
        "fields.png", "rel_mse_signed_vs_eps.png", "rel_mse_vs_eps.png", "training_length.png"]
    with (tmp_path / "tables" / "table1_rel_mse.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row"] + [f"eps={e:g}" for e in EPSILONS]
    assert [r[0] for r in rows[1:]] == ["RNN ours FGSM", "RNN ours random", "RNN paper",
                                        "DNN ours FGSM", "DNN ours random", "DNN paper"]
    assert rows[3][EPSILONS.index(0.25) + 1] == ""  # paper's unreadable RNN cell
    assert out.summary[0][0] == "Rel MSE" and len(out.summary) == 9
    assert [r[0] for r in out.summary[7:]] == ["RNN ours FGSM, residual loss",
                                               "DNN ours FGSM, residual loss"]

    # derived rows keep the attacked row's kind; they are recomputed here from the MSE rows
    # (full-grid clean MSE) and, for FGSM's same-points change, from the per-sample squared
    # errors (NaN where the point was dropped)
    for model in ("RNN", "PINN"):
        clean = res.value(model=model, kind="clean", metric="mse")
        clean_sq = res.per_sample[f"{model}|clean|0.0|mse"][:, 0]
        for (attack_name, kind), eps in itertools.product(
                (("fgsm", "adversarial"), ("random_sign", "random")), EPSILONS):
            cell = {"model": model, "attack": attack_name, "epsilon": eps, "kind": kind}
            mse = res.value(metric="mse", **cell)
            assert res.value(metric="rel_mse", **cell) == pytest.approx(
                abs(mse - clean) / clean, rel=1e-12)
            assert res.value(metric="rel_mse_signed", **cell) == pytest.approx(
                (mse - clean) / clean, rel=1e-12)
            (same,) = res.select(metric="rel_mse_same_points", **cell)
            if attack_name == "fgsm":
                att_sq = res.per_sample[f"{model}|fgsm|{eps!r}|mse"][:, 0]
                kept = ~np.isnan(att_sq)
                expected = (att_sq[kept].mean() - clean_sq[kept].mean()) / clean_sq[kept].mean()
                assert same.value == pytest.approx(expected, rel=1e-9)
                assert math.isnan(same.spread)
            else:
                assert math.isfinite(same.value) and same.spread >= 0  # std over 2 draws
        # the table's numbers are the records' numbers
        table_row = rows[1] if model == "RNN" else rows[4]
        fgsm = [res.value(model=model, attack="fgsm", epsilon=e, metric="rel_mse")
                for e in EPSILONS]
        assert [float(v) for v in table_row[1:]] == pytest.approx(fgsm, rel=1e-5)
        # perturbed points that leave Ω are dropped, and more of them at larger eps
        small, big = (res.select(model=model, attack="fgsm", epsilon=e, metric="mse",
                                 kind="adversarial")[0] for e in (0.01, 0.3))
        assert big.n_dropped > small.n_dropped > 0
        assert big.n + big.n_dropped == 31 * 31
    # the residual reading: its own FGSM rows (no second clean row), the same derived metrics,
    # in the readings table beside the error reading with the clean MSE they divide by
    with (tmp_path / "tables" / "readings_rel_mse.csv").open() as handle:
        readings = {r[0]: r[1:] for r in csv.reader(handle)}
    for model, key in (("RNN", "RNN"), ("PINN", "DNN")):
        assert len(res.select(model=model, kind="clean", metric="mse")) == 1
        clean = res.value(model=model, kind="clean", metric="mse")
        for reading, label in (("error loss (decides)", "fgsm"), ("residual loss",
                                                                  "fgsm_residual")):
            rel = [res.value(model=model, attack=label, epsilon=e, metric="rel_mse")
                   for e in EPSILONS]
            row = readings[f"{key} FGSM on {reading}: Rel MSE"]
            assert float(row[0]) == pytest.approx(clean, rel=1e-5)
            assert [float(v) for v in row[1:]] == pytest.approx(rel, rel=1e-5)
        assert {r.kind for r in res.select(model=model, attack="fgsm_residual")} == {
            "adversarial"}  # no random control of its own, so no ratio rows
        # a different objective moves the points elsewhere
        assert res.per_sample[f"{model}|fgsm_residual|0.3|mse"].tolist() != \
            res.per_sample[f"{model}|fgsm|0.3|mse"].tolist()

    # training length: snapshots of the one run, then the trained PINN itself; in metadata
    # and a table, not as extra models in the records
    its = training_iterations(settings.pinn_iterations)
    assert its == [6, 18, 36, 60] and {r.model for r in res.records} == {"RNN", "PINN"}
    length = res.metadata["training_length"]
    with (tmp_path / "tables" / "training_length.csv").open() as handle:
        table = list(csv.reader(handle))[1:]
    assert [r["iteration"] for r in length] == [int(r[0]) for r in table] == its
    assert length[-1]["clean_mse"] == res.value(model="PINN", kind="clean", metric="mse")
    assert length[-1]["fgsm_rel_mse"] == [
        res.value(model="PINN", attack="fgsm", epsilon=e, metric="rel_mse") for e in EPSILONS]
    assert [float(r[1]) for r in table] == pytest.approx([r["clean_mse"] for r in length],
                                                          rel=1e-5)
    assert len({r["clean_mse"] for r in length}) == len(its)  # the snapshots differ
    assert all(len(r["fgsm_rel_mse_same_points"]) == len(EPSILONS) for r in length)

    # the field figure's FGSM step is the audit's, of size field_eps in L-inf
    assert np.abs(res.per_sample["field|delta_pinn"]).max() == pytest.approx(
        settings.field_eps, rel=1e-12)

    meta = res.metadata
    assert isinstance(meta["description"], str) and meta["description"]
    assert all(isinstance(n, str) for n in meta["notes"]) and len(meta["notes"]) >= 5
    assert [v["criterion"].split(":")[0] for v in meta["verdicts"]] == [
        "with the paper's Rel MSE", "with the same-points change"]
    assert all(v["outcome"] in ("reproduced", "partly", "not reproduced")
               for v in meta["verdicts"])
    assert all(v["paper"] and v["ours"] and v["stand_in"] for v in meta["verdicts"])
    assert all("residual loss (does not decide)" in v["detail"] for v in meta["verdicts"])
    assert meta["attack_readings"]["deciding"] == "error"
    assert out.report.read_text().count("<b>Verdict: ") == 2  # shown first in the report
    assert math.isfinite(meta["rnn_fit"]["max_abs_coef"])
    assert meta["pinn_training"]["history"][-1]["iteration"] == settings.pinn_iterations


def test_settings_refuse_a_field_eps_that_is_not_audited() -> None:
    with pytest.raises(ConfigError, match="field_eps"):
        PoissonSettings(field_eps=0.12)
    with pytest.raises(ConfigError, match="field_eps"):
        PoissonSettings(epsilons=(0.01, 0.1))  # no strong attack left for the verdict


def test_drop_on_the_full_grid_at_largest_eps() -> None:
    """On the paper's 101 × 101 grid FGSM at eps = 0.3 pushes points out of Ω: they are dropped."""
    gen = torch.Generator().manual_seed(0)
    settings = PoissonSettings(rnn_interior_per_axis=10, rnn_boundary_per_side=50, rnn_hidden=50)
    rnn = RandomizedNet(settings.rnn_hidden, settings.rnn_radius, generator=gen)
    fit_rnn(rnn, *rnn_points(settings, gen))
    res = audit(rnn, grid(101), reference=u_exact, epsilons=[0.3], attacks=["fgsm"],
                metrics=["mse"], budget=Budget(norm="linf", bounds=(-1.0, 1.0), outside="drop"))
    rec = res.select(attack="fgsm", metric="mse")[0]
    assert rec.n_dropped > 0 and rec.n + rec.n_dropped == 101 * 101


def test_residual_objective_is_zero_for_the_exact_solution_and_matches_a_hand_value() -> None:
    gen = torch.Generator().manual_seed(4)
    inner = torch.rand(40, 2, generator=gen, dtype=f64) * 1.8 - 0.9
    side = torch.tensor([[1.0, 0.3], [-0.4, -1.0], [-1.0, 0.7]], dtype=f64)
    x = torch.cat([inner, side]).requires_grad_(True)
    objective = ResidualObjective(penalty=100.0)
    with torch.enable_grad():
        exact = objective(u_exact(x), x)
        # u = x² + y²: Δu = 4 inside; on ∂Ω the boundary term with g = u_exact = 0 there
        quad = objective((x**2).sum(dim=1, keepdim=True), x)
    assert exact.shape == (43,) and float(exact.detach().max()) < 1e-24
    xd = x.detach()
    inside = ((4.0 + F_SCALE * u_exact(xd)) / F_SCALE).squeeze(1) ** 2
    boundary = (100.0 * (xd**2).sum(dim=1) / F_SCALE) ** 2
    torch.testing.assert_close(quad[:40], inside[:40], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(quad[40:], boundary[40:], rtol=1e-12, atol=0.0)
    with pytest.raises(ObjectiveError, match="graph"):
        objective(u_exact(xd), xd)


def test_residual_gradient_is_nonzero_and_differs_from_the_error_gradient() -> None:
    model = PINN(width=16, depth=3, first_layer_scale=6.0,
                 generator=torch.Generator().manual_seed(0), dtype=f64)
    model.eval().requires_grad_(False)
    x = grid(11)  # 121 points, 40 on the boundary
    on_boundary = (x.abs() == 1).any(dim=1)
    # the objective's autograd Laplacian is the one the PINN trained on
    xr = x.clone().requires_grad_(True)
    with torch.enable_grad():
        value = ResidualObjective()(model(xr), xr)
    lap = model.value_and_laplacian(x)[1]
    expected = ((lap + source(x)) / F_SCALE).squeeze(1) ** 2
    torch.testing.assert_close(value[~on_boundary], expected[~on_boundary])

    g_res = input_gradient(model, x, ResidualObjective())
    g_err = input_gradient(model, x, against_reference(u_exact))
    assert torch.isfinite(g_res).all() and (g_res[~on_boundary].abs().sum(dim=1) > 0).all()
    differ = (torch.sign(g_res) != torch.sign(g_err))[~on_boundary].double().mean()
    assert 0.1 < float(differ) < 0.9  # another FGSM direction at many interior points
    # on ∂Ω both are gradients of (u − g)², scaled: the same FGSM step
    assert torch.equal(torch.sign(g_res[on_boundary]), torch.sign(g_err[on_boundary]))


def test_training_length_iterations_are_fixed_fractions() -> None:
    assert training_iterations(PoissonSettings.quick().pinn_iterations) == [900, 2700, 5400, 9000]
    assert training_iterations(PoissonSettings.full().pinn_iterations) == [
        3000, 9000, 18000, 30000]  # includes the quick mode's length
    assert training_iterations(1) == [1]
