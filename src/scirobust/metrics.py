"""Metrics: per-sample components and how to reduce them to a value with a standard error.

A metric turns ``(output, truth)`` into per-sample *components* of shape ``(batch, k)``
(squared errors, correct/incorrect, ...). Components are what the audit keeps per sample; the
reducer turns them into dataset-level values and standard errors over samples. RMSE and
relative L2 are reduced from summed squares (not by averaging per-sample RMSEs), and their
standard errors come from the delta method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from scirobust.errors import DataError


class Reduction(NamedTuple):
    """One reduced row of a metric: its name, value, standard error over samples and, for
    per-variable metrics, the variable ("" for the whole output)."""

    metric: str
    value: float
    stderr: float
    variable: str = ""


Reduced = list[Reduction] | list[tuple[str, float, float]]


@dataclass(frozen=True)
class Metric:
    """A named metric: per-sample components and a reducer to `Reduction` rows
    (``(name, value, stderr)`` tuples are accepted too).

    ``error_like`` metrics grow when the model gets worse; the audit reports their
    adversarial/random ratio.
    """

    name: str
    components: Callable[[Tensor, Tensor], Tensor]
    reduce: Callable[[np.ndarray], Reduced]
    task: str = "regression"
    error_like: bool = True
    description: str = ""


def _flat(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)


def _check_pair(output: Tensor, truth: Tensor, name: str) -> None:
    if output.shape != truth.shape:
        raise DataError(
            f"metric {name}: output shape {tuple(output.shape)} differs from target shape "
            f"{tuple(truth.shape)}; reshape the targets to match the model output."
        )


def _mean_and_se(values: np.ndarray) -> tuple[float, float]:
    n = values.shape[0]
    mean = float(values.mean()) if n else float("nan")
    se = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return mean, se


def _ratio_se(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Ratio of means a/b and its delta-method standard error."""
    n = a.shape[0]
    mean_a, mean_b = a.mean(), b.mean()
    ratio = float(mean_a / mean_b) if mean_b != 0 else float("nan")
    if n < 2 or mean_b == 0:
        return ratio, float("nan")
    cov = np.cov(np.stack([a, b]), ddof=1)
    var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (n * mean_b**2)
    return ratio, float(np.sqrt(max(var, 0.0)))


def _sqrt_with_se(value: float, se: float) -> tuple[float, float]:
    root = float(np.sqrt(value)) if value >= 0 else float("nan")
    return root, (se / (2 * root) if root > 0 else float("nan"))


# --------------------------------------------------------------------------- regression
def _squared_error(output: Tensor, truth: Tensor) -> Tensor:
    _check_pair(output, truth, "squared error")
    return _flat((output - truth) ** 2).mean(dim=1, keepdim=True)


def _reduce_mse(name: str) -> Callable[[np.ndarray], Reduced]:
    def reduce(c: np.ndarray) -> Reduced:
        return [(name, *_mean_and_se(c[:, 0]))]

    return reduce


def _reduce_rmse(c: np.ndarray) -> Reduced:
    return [("rmse", *_sqrt_with_se(*_mean_and_se(c[:, 0])))]


def _abs_error(output: Tensor, truth: Tensor) -> Tensor:
    _check_pair(output, truth, "mae")
    return _flat((output - truth).abs()).mean(dim=1, keepdim=True)


def _rel_l2_components(output: Tensor, truth: Tensor) -> Tensor:
    _check_pair(output, truth, "relative_l2")
    return torch.stack(
        [_flat((output - truth) ** 2).sum(dim=1), _flat(truth**2).sum(dim=1)], dim=1
    )


def _reduce_rel_l2(c: np.ndarray) -> Reduced:
    ratio, se = _ratio_se(c[:, 0], c[:, 1])
    return [("relative_l2", *_sqrt_with_se(ratio, se))]


def _per_variable_sq(output: Tensor, truth: Tensor) -> Tensor:
    _check_pair(output, truth, "rmse_per_variable")
    if output.dim() < 2:
        raise DataError("rmse_per_variable needs outputs of shape (batch, n_variables, ...).")
    sq = (output - truth) ** 2
    return sq.reshape(sq.shape[0], sq.shape[1], -1).mean(dim=2)


def rmse_per_variable(variable_names: Sequence[str] | None = None) -> Metric:
    """RMSE of each output variable (dimension 1 of the output), in that variable's units:
    rows with metric ``rmse`` and the variable's name in ``variable``."""

    def reduce(c: np.ndarray) -> Reduced:
        names = list(variable_names) if variable_names else [str(i) for i in range(c.shape[1])]
        if len(names) != c.shape[1]:
            raise DataError(
                f"{len(names)} variable names given for {c.shape[1]} output variables."
            )
        return [
            Reduction("rmse", *_sqrt_with_se(*_mean_and_se(c[:, i])), variable=names[i])
            for i in range(c.shape[1])
        ]

    return Metric("rmse_per_variable", _per_variable_sq, reduce,
                  description="RMSE of each output variable")


# --------------------------------------------------------------------------- classification
def _correct(output: Tensor, labels: Tensor) -> Tensor:
    if output.dim() != 2 or labels.shape != output.shape[:1]:
        raise DataError(
            f"accuracy needs logits (batch, n_classes) and labels (batch,); got "
            f"{tuple(output.shape)} and {tuple(labels.shape)}."
        )
    return (output.argmax(dim=1) == labels).to(torch.float64)[:, None]


def _reduce_accuracy(c: np.ndarray) -> Reduced:
    n = c.shape[0]
    p = float(c[:, 0].mean()) if n else float("nan")
    return [("accuracy", p, float(np.sqrt(p * (1 - p) / n)) if n else float("nan"))]


def _reduce_error_rate(c: np.ndarray) -> Reduced:
    (_, p, se), = _reduce_accuracy(c)
    return [("error_rate", 1 - p, se)]


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("mse", _squared_error, _reduce_mse("mse"), description="mean squared error"),
        Metric("rmse", _squared_error, _reduce_rmse, description="root mean squared error"),
        Metric("mae", _abs_error, _reduce_mse("mae"), description="mean absolute error"),
        Metric("relative_l2", _rel_l2_components, _reduce_rel_l2,
               description="||error||_2 / ||truth||_2 over the whole set"),
        Metric("accuracy", _correct, _reduce_accuracy, task="classification",
               error_like=False, description="fraction classified correctly"),
        Metric("error_rate", _correct, _reduce_error_rate, task="classification",
               description="fraction misclassified"),
    ]
}

DEFAULT_METRICS = {"regression": ("rmse", "mae", "relative_l2"), "classification": ("accuracy",)}


def resolve_metric(name: str | Metric, variable_names: Sequence[str] | None = None) -> Metric:
    """A `Metric` from its name (see `METRICS`, plus ``rmse_per_variable``) or as given."""
    if isinstance(name, Metric):
        return name
    if name == "rmse_per_variable":
        return rmse_per_variable(variable_names)
    try:
        return METRICS[name]
    except KeyError:
        valid = ", ".join([*METRICS, "rmse_per_variable"])
        raise DataError(f"Unknown metric {name!r}. Available: {valid}.") from None
