"""Tests of scirobust.rollout: attacked autoregressive rollouts, weather metrics, memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from scirobust import Budget
from scirobust.errors import ConfigError, DataError
from scirobust.rollout import (
    anomaly_correlation,
    lat_weighted_rmse,
    latitude_weights,
    per_variable_budget,
    rollout,
    rollout_audit,
    saved_tensor_bytes,
)

C, H, W = 2, 8, 16
LAT = np.linspace(-78.75, 78.75, H)


class TinyStepper(nn.Module):
    """x_{k+1} = x_k + small conv(tanh(conv(x_k))): a stable, differentiable one-step model."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a = nn.Conv2d(C, 8, 3, padding=1, padding_mode="circular", dtype=torch.float64)
        self.b = nn.Conv2d(8, C, 3, padding=1, padding_mode="circular", dtype=torch.float64)
        self.drop = nn.Dropout(0.5)  # must be off during the audit (eval mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.b(self.drop(torch.tanh(self.a(x))))


def _data(steps: int, batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, C, H, W, generator=g, dtype=torch.float64)
    truth_model = TinyStepper(seed=7)
    targets = rollout(truth_model, x0, steps)
    return x0, targets


@pytest.mark.parametrize("perturb", ["every_step", "initial"])
def test_eps_zero_equals_plain_rollout_bit_for_bit(perturb: str) -> None:
    model = TinyStepper()
    model.train()  # the audit must switch to eval and restore train afterwards
    x0, targets = _data(4)
    plain = rollout(model, x0, 4)
    budget = per_variable_budget(0.0, C)
    _, traces = rollout_audit(model, x0, targets, budget=budget, perturb=perturb,
                              attacks=("random_sign", "fgsm", "pgd_linf"), n_random=2,
                              lat=LAT, keep_states=range(1, 5))
    assert model.training
    for label in ("clean", "random_sign", "fgsm", "pgd_linf"):
        eps = 0.0 if label == "clean" else 1.0
        for k in range(1, 5):
            assert torch.equal(traces[(label, eps)].states[k], plain[:, k - 1]), (label, k)


def test_random_and_fgsm_have_the_same_size_per_variable() -> None:
    model = TinyStepper()
    x0, targets = _data(3)
    eps = torch.tensor([0.05, 0.2])
    budget = per_variable_budget(eps, C)
    _, traces = rollout_audit(model, x0, targets, budget=budget, keep_states=(1, 2, 3), lat=LAT)
    for label in ("random_sign", "fgsm"):
        tr = traces[(label, 1.0)]
        feeds = {1: x0, 2: tr.states[1], 3: tr.states[2]}
        for k, clean_fed in feeds.items():
            delta = (tr.inputs[k] - clean_fed).abs()
            for c in range(C):
                assert torch.allclose(delta[:, c], torch.full_like(delta[:, c], float(eps[c])),
                                      rtol=0, atol=1e-12)


def test_physical_units_budget_uses_scale() -> None:
    model = TinyStepper()
    x0, targets = _data(1)
    std = torch.tensor([2.0, 10.0])
    budget = per_variable_budget(0.05, C, scale=std)
    _, traces = rollout_audit(model, x0, targets, budget=budget, attacks=("fgsm",),
                              keep_states=(1,))
    delta = (traces[("fgsm", 1.0)].inputs[1] - x0).abs()
    assert torch.allclose(delta[:, 0], torch.full_like(delta[:, 0], 0.1))
    assert torch.allclose(delta[:, 1], torch.full_like(delta[:, 1], 0.5))


def test_initial_mode_perturbs_only_the_initial_condition() -> None:
    model = TinyStepper()
    x0, targets = _data(3)
    _, traces = rollout_audit(model, x0, targets, budget=per_variable_budget(0.1, C),
                              perturb="initial", keep_states=(1, 2, 3))
    tr = traces[("fgsm", 1.0)]
    assert not torch.equal(tr.inputs[1], x0)
    assert torch.equal(tr.inputs[2], tr.states[1])
    assert torch.equal(tr.inputs[3], tr.states[2])


def _peak_saved_bytes(steps: int, **kwargs) -> int:
    model = TinyStepper()
    x0, targets = _data(steps, batch=2)
    with saved_tensor_bytes() as probe:
        rollout_audit(model, x0, targets, budget=per_variable_budget(0.05, C),
                      attacks=("fgsm",), **kwargs)
    assert probe.current == 0  # every graph was freed
    return probe.peak


def test_per_step_gradient_memory_does_not_grow_with_steps() -> None:
    two, eight = _peak_saved_bytes(2), _peak_saved_bytes(8)
    assert two > 0
    assert eight == two
    # the through-the-rollout gradient keeps every step's activations: grows with steps
    t2 = _peak_saved_bytes(2, perturb="initial", gradient="through")
    t8 = _peak_saved_bytes(8, perturb="initial", gradient="through")
    assert t8 > 3.5 * t2


def test_through_gradient_needs_initial_mode() -> None:
    x0, targets = _data(2)
    with pytest.raises(ConfigError, match="perturb='initial'"):
        rollout_audit(TinyStepper(), x0, targets, budget=Budget(0.1), gradient="through")


def test_latitude_weights_sum_and_mean() -> None:
    lat = np.linspace(-87.5, 87.5, 36)
    w = latitude_weights(lat)
    assert math.isclose(float(w.sum()), 36.0, rel_tol=1e-12)
    cos = np.cos(np.deg2rad(lat))
    np.testing.assert_allclose(w.numpy(), 36 * cos / cos.sum(), rtol=1e-12)
    assert float(w[18]) > 1 > float(w[0])
    with pytest.raises(DataError):
        latitude_weights([95.0])


def test_lat_weighted_rmse_and_acc_known_values() -> None:
    w = latitude_weights(LAT)
    truth = torch.randn(2, C, H, W, dtype=torch.float64)
    pred = truth + 0.3  # constant error → RMSE = 0.3 whatever the weights
    np.testing.assert_allclose(lat_weighted_rmse(pred, truth, w).numpy(), 0.3, rtol=1e-12)
    # error only at the equator rows is weighted up relative to the unweighted RMSE
    err = torch.zeros_like(truth)
    err[..., H // 2, :] = 1.0
    assert (lat_weighted_rmse(truth + err, truth, w) > lat_weighted_rmse(truth + err, truth)).all()
    clim = torch.zeros(C, H, W, dtype=torch.float64)
    np.testing.assert_allclose(anomaly_correlation(truth, truth, clim, w).numpy(), 1.0)
    np.testing.assert_allclose(anomaly_correlation(-truth, truth, clim, w).numpy(), -1.0)


def test_records_convention_and_ratio() -> None:
    model = TinyStepper()
    x0, targets = _data(3)
    clim = targets.mean(dim=(0, 1))
    kw = dict(budget=per_variable_budget(1.0, C), epsilons=[0.1, 0.2], lat=LAT,
              climatology=clim, variables=["h", "u"], n_random=2, case="t")
    res, traces = rollout_audit(model, x0, targets, **kw)
    assert set(res.metrics) == {"lat_rmse", "acc"}
    assert set(traces) == {("clean", 0.0), *((a, e) for a in ("random_sign", "fgsm")
                                              for e in (0.1, 0.2))}
    assert res.metadata["step_label"].startswith("lead time")
    for var in ("h", "u"):
        for k in (1, 2, 3):
            for metric in ("lat_rmse", "acc"):
                assert res.select(attack="clean", metric=metric, variable=var, step=k)
            ratio = res.select(attack="fgsm", metric="lat_rmse", variable=var, step=k,
                               kind="ratio", epsilon=0.1)
            assert len(ratio) == 1 and ratio[0].baseline == "random_sign"
            assert not res.select(metric="acc", kind="ratio")
    rnd = res.select(attack="random_sign", metric="lat_rmse", variable="h", step=2)[0]
    assert rnd.kind == "random" and rnd.n == 3 and not math.isnan(rnd.spread)
    assert rnd.epsilon == pytest.approx(0.1)
    clean = res.select(attack="clean", metric="lat_rmse", variable="h", step=1)[0]
    fgsm = res.select(attack="fgsm", metric="lat_rmse", variable="h", step=1, epsilon=0.1,
                      kind="adversarial")[0]
    assert clean.epsilon == 0.0 and clean.kind == "clean" and fgsm.value > clean.value
    # reproducible bit-for-bit with the same seed; each cell's draws depend on that cell only
    res2, _ = rollout_audit(model, x0, targets, **kw)
    assert [r.value for r in res.records] == [r.value for r in res2.records]
    res3, _ = rollout_audit(model, x0, targets, **{**kw, "epsilons": [0.2]})
    pick = {"attack": "random_sign", "metric": "lat_rmse", "variable": "u", "step": 3,
            "epsilon": 0.2}
    assert res3.value(**pick) == res.value(**pick)


def test_attack_options_reach_the_rollout() -> None:
    model = TinyStepper()
    x0, targets = _data(2)
    base = dict(budget=per_variable_budget(0.1, C), lat=LAT)
    one, _ = rollout_audit(model, x0, targets, **base,
                           attacks=[{"name": "bim", "steps": 1, "step_size": 0.2}])
    many, _ = rollout_audit(model, x0, targets, **base,
                            attacks=[{"name": "bim", "steps": 5, "step_size": 0.2}])
    legacy, _ = rollout_audit(model, x0, targets, attacks=["bim"],
                              attack_kwargs={"steps": 5, "step_size": 0.2}, **base)
    pick = {"attack": "bim", "metric": "lat_rmse", "variable": "v0", "step": 2}
    assert many.value(**pick) != one.value(**pick)
    assert legacy.value(**pick) == many.value(**pick)
    with pytest.raises(ConfigError, match="attack_kwargs may set"):
        rollout_audit(model, x0, targets, attack_kwargs={"norm": "l2"}, **base)
    with pytest.raises(ConfigError, match="either a Sweep or the keywords"):
        from scirobust import Sweep

        rollout_audit(model, x0, targets, sweep=Sweep(epsilons=[1.0]), **base)


def test_shape_errors_are_clear() -> None:
    x0, targets = _data(2)
    with pytest.raises(DataError, match="targets must have shape"):
        rollout_audit(TinyStepper(), x0, targets[:, 0], budget=Budget(0.1))
    with pytest.raises(DataError, match="latitude"):
        rollout_audit(TinyStepper(), x0, targets, budget=Budget(0.1), lat=np.zeros(3))
