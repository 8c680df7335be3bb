"""Metrics: values and standard errors against independent NumPy hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scirobust import DataError
from scirobust.metrics import METRICS, Metric, Reduction, resolve_metric, rmse_per_variable


def _reduce(metric: Metric, output: torch.Tensor, truth: torch.Tensor) -> dict:
    """``{name or name[variable]: (value, stderr)}`` of the reduced rows."""
    comps = metric.components(output, truth).double().numpy()
    rows = [Reduction(*row) for row in metric.reduce(comps)]
    return {(f"{r.metric}[{r.variable}]" if r.variable else r.metric): (r.value, r.stderr)
            for r in rows}


@pytest.fixture
def regression() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(40, 3, 2, generator=g, dtype=torch.float64) + 2.0
    output = truth + 0.3 * torch.randn(40, 3, 2, generator=g, dtype=torch.float64)
    return output, truth, output.numpy().reshape(40, -1), truth.numpy().reshape(40, -1)


def test_mse_and_rmse(regression) -> None:
    output, truth, out, tru = regression
    per_sample = ((out - tru) ** 2).mean(axis=1)
    n = len(per_sample)
    mean, se = per_sample.mean(), per_sample.std(ddof=1) / np.sqrt(n)
    value, stderr = _reduce(METRICS["mse"], output, truth)["mse"]
    assert value == pytest.approx(mean, rel=1e-12)
    assert stderr == pytest.approx(se, rel=1e-12)
    # RMSE is the root of the pooled MSE (not a mean of per-sample RMSEs); delta-method SE
    value, stderr = _reduce(METRICS["rmse"], output, truth)["rmse"]
    assert value == pytest.approx(np.sqrt(((out - tru) ** 2).mean()), rel=1e-12)
    assert value != pytest.approx(np.sqrt(per_sample).mean(), rel=1e-6)
    assert stderr == pytest.approx(se / (2 * np.sqrt(mean)), rel=1e-12)


def test_mae(regression) -> None:
    output, truth, out, tru = regression
    per_sample = np.abs(out - tru).mean(axis=1)
    value, stderr = _reduce(METRICS["mae"], output, truth)["mae"]
    assert value == pytest.approx(per_sample.mean(), rel=1e-12)
    assert stderr == pytest.approx(per_sample.std(ddof=1) / np.sqrt(len(per_sample)), rel=1e-12)


def test_relative_l2_and_delta_method_se(regression) -> None:
    output, truth, out, tru = regression
    a = ((out - tru) ** 2).sum(axis=1)
    b = (tru**2).sum(axis=1)
    n = len(a)
    value, stderr = _reduce(METRICS["relative_l2"], output, truth)["relative_l2"]
    expected = np.linalg.norm(out - tru) / np.linalg.norm(tru)
    assert value == pytest.approx(expected, rel=1e-12)
    # sqrt(mean a / mean b): gradient of the function of the two means, times their covariance
    ma, mb = a.mean(), b.mean()
    grad = np.array([1 / mb, -ma / mb**2]) / (2 * np.sqrt(ma / mb))
    var = grad @ np.cov(a, b, ddof=1) @ grad / n
    assert stderr == pytest.approx(np.sqrt(var), rel=1e-10)


def test_rmse_per_variable_names_and_values(regression) -> None:
    output, truth, _, _ = regression
    sq = ((output - truth) ** 2).numpy()  # (n, variables, points)
    rows = _reduce(rmse_per_variable(["u", "v", "p"]), output, truth)
    assert list(rows) == ["rmse[u]", "rmse[v]", "rmse[p]"]
    for i, name in enumerate(["u", "v", "p"]):
        per_sample = sq[:, i, :].mean(axis=1)
        value, stderr = rows[f"rmse[{name}]"]
        assert value == pytest.approx(np.sqrt(per_sample.mean()), rel=1e-12)
        se = per_sample.std(ddof=1) / np.sqrt(len(per_sample))
        assert stderr == pytest.approx(se / (2 * np.sqrt(per_sample.mean())), rel=1e-12)
    default = _reduce(resolve_metric("rmse_per_variable"), output, truth)
    assert list(default) == ["rmse[0]", "rmse[1]", "rmse[2]"]
    with pytest.raises(DataError, match="2 variable names given for 3"):
        _reduce(rmse_per_variable(["u", "v"]), output, truth)


def test_accuracy_and_error_rate() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [0.0, 5.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 1, 1])
    p, n = 3 / 5, 5
    value, stderr = _reduce(METRICS["accuracy"], logits, labels)["accuracy"]
    assert value == pytest.approx(p)
    assert stderr == pytest.approx(np.sqrt(p * (1 - p) / n))
    value, stderr = _reduce(METRICS["error_rate"], logits, labels)["error_rate"]
    assert value == pytest.approx(1 - p)
    assert stderr == pytest.approx(np.sqrt(p * (1 - p) / n))
    assert METRICS["error_rate"].error_like and not METRICS["accuracy"].error_like


def test_single_sample_has_nan_standard_error() -> None:
    value, stderr = _reduce(METRICS["mae"], torch.ones(1, 2), torch.zeros(1, 2))["mae"]
    assert value == 1.0 and np.isnan(stderr)


def test_validation_errors() -> None:
    with pytest.raises(DataError, match=r"\(4, 2\) differs from target shape \(4,\)"):
        METRICS["rmse"].components(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(DataError, match="logits"):
        METRICS["accuracy"].components(torch.zeros(4), torch.zeros(4))
    with pytest.raises(DataError, match=r"Unknown metric 'rmsd'.*rmse_per_variable"):
        resolve_metric("rmsd")
    custom = METRICS["mae"]
    assert resolve_metric(custom) is custom
