"""The paired audit: dropped samples, determinism, resuming from the cache, ratio rows,
gradient-masking checks, and validation of everything a user can pass."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import LinearModel
from scirobust import (
    AttackError,
    Budget,
    BudgetError,
    ConfigError,
    DataError,
    ObjectiveError,
    audit,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*:UserWarning")  # checks are tested explicitly


def _regression_problem(n: int = 24) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = torch.stack([x[:, 0] * x[:, 1], x[:, 2].sin()], dim=1)
    return model, x, y


def _dicts(results) -> list[dict]:
    # NaN fields never compare equal as floats; their dict form has None instead.
    return [r.to_dict() for r in results.records]


AUDIT_KW = {
    "epsilons": [0.05, 0.2],
    "attacks": ["random_sign", "fgsm", "pgd_linf"],
    "n_random": 3,
    "batch_size": 10,
}


# --------------------------------------------------------------------------- dropped samples
def test_drop_counts_and_excludes_samples_leaving_the_domain() -> None:
    # f(x) = x1 + x2 and targets below the prediction: every input-gradient is (+, +), so
    # FGSM moves each sample by (+0.1, +0.1). Samples 0 and 2 then leave [-1, 1]^2.
    model = LinearModel(torch.tensor([1.0, 1.0], dtype=torch.float64))
    x = torch.tensor([[0.95, 0.0], [0.0, 0.0], [-0.5, 0.92], [0.5, -0.5]], dtype=torch.float64)
    c = torch.tensor([1.0, 0.5, 2.0, 0.25], dtype=torch.float64)
    y = (x.sum(dim=1) - c)[:, None]
    res = audit(model, x, y, epsilons=[0.1], attacks=["random_sign", "fgsm"],
                budget=Budget(bounds=(-1.0, 1.0), outside="drop"), metrics=["rmse", "mae"])
    err = np.array([0.5, 0.25]) + 0.2  # samples 1 and 3 after the attack: c + 0.1 + 0.1
    fgsm = {r.metric: r for r in res.select(attack="fgsm", kind="adversarial")}
    assert fgsm["rmse"].n == 2 and fgsm["rmse"].n_dropped == 2
    assert fgsm["rmse"].value == pytest.approx(np.sqrt((err**2).mean()), rel=1e-12)
    assert fgsm["mae"].value == pytest.approx(err.mean(), rel=1e-12)
    clean = {r.metric: r for r in res.select(attack="clean")}
    assert clean["rmse"].n == 4 and clean["rmse"].n_dropped == 0
    assert clean["rmse"].value == pytest.approx(float(c.pow(2).mean().sqrt()), rel=1e-12)
    # random signs can only push samples 0 and 2 out (each with probability 1/2 per draw)
    rand = res.select(attack="random_sign", metric="rmse")[0]
    assert 2 <= rand.n <= 4 and 0 <= rand.n_dropped <= 2


def test_clip_keeps_every_sample() -> None:
    model = LinearModel(torch.tensor([1.0, 1.0], dtype=torch.float64))
    x = torch.tensor([[0.95, 0.0], [0.0, 0.0]], dtype=torch.float64)
    res = audit(model, x, x.sum(1, keepdim=True) - 1, epsilons=[0.1], attacks=["fgsm"],
                budget=Budget(bounds=(-1.0, 1.0)), metrics=["mae"])
    rec = res.select(attack="fgsm", kind="adversarial")[0]
    assert rec.n == 2 and rec.n_dropped == 0
    # sample 0 is clipped at x1 = 1: it moves by only (0.05, 0.1)
    assert rec.value == pytest.approx(((1 + 0.15) + (1 + 0.2)) / 2, rel=1e-12)


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_records_different_seed_different_draws() -> None:
    model, x, y = _regression_problem()
    a = audit(model, x, y, seed=0, **AUDIT_KW)
    b = audit(model, x, y, seed=0, **AUDIT_KW)
    c = audit(model, x, y, seed=1, **AUDIT_KW)
    assert _dicts(a) == _dicts(b)
    assert a.per_sample.keys() == b.per_sample.keys()
    for key in a.per_sample:
        np.testing.assert_array_equal(a.per_sample[key], b.per_sample[key])
    for eps in AUDIT_KW["epsilons"]:
        assert a.value(attack="random_sign", epsilon=eps, metric="rmse") != c.value(
            attack="random_sign", epsilon=eps, metric="rmse")
        # FGSM has no randomness: the seed must not change it
        assert a.value(attack="fgsm", epsilon=eps, metric="rmse", kind="adversarial") == c.value(
            attack="fgsm", epsilon=eps, metric="rmse", kind="adversarial")


# --------------------------------------------------------------------------- resume
class Interrupting(nn.Module):
    """Wraps a model and raises KeyboardInterrupt after ``limit`` forward calls (Ctrl-C)."""

    def __init__(self, inner: nn.Module, limit: int | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.limit is not None and self.calls > self.limit:
            raise KeyboardInterrupt
        return self.inner(x)


def test_interrupted_sweep_resumes_from_cache(tmp_path: Path) -> None:
    model, x, y = _regression_problem()
    reference_model = Interrupting(model)
    reference = audit(reference_model, x, y, **AUDIT_KW)
    total_calls = reference_model.calls

    interrupted = Interrupting(model, limit=total_calls // 2)
    with pytest.raises(KeyboardInterrupt):
        audit(interrupted, x, y, cache_dir=tmp_path, **AUDIT_KW)
    finished = len(list((tmp_path / "cells").glob("*.npz")))
    n_cells = 1 + len(AUDIT_KW["epsilons"]) * len(AUDIT_KW["attacks"])
    assert 0 < finished < n_cells
    assert not list((tmp_path / "cells").glob("*.tmp"))  # no half-written cell

    resumed_model = Interrupting(model)
    resumed = audit(resumed_model, x, y, cache_dir=tmp_path, **AUDIT_KW)
    assert resumed.metadata["cells_reused_from_cache"] == finished
    assert resumed_model.calls < total_calls  # finished cells were not recomputed
    assert _dicts(resumed) == _dicts(reference)
    for key in reference.per_sample:
        np.testing.assert_array_equal(resumed.per_sample[key], reference.per_sample[key])

    again = audit(Interrupting(model), x, y, cache_dir=tmp_path, **AUDIT_KW)
    assert again.metadata["cells_reused_from_cache"] == n_cells


def test_cache_distinguishes_large_masks(tmp_path: Path) -> None:
    # Regression: budgets with tensors of more than 64 elements were keyed by shape only, so a
    # different mask of the same shape silently reused the cells of the old one.
    torch.manual_seed(0)
    model = nn.Linear(80, 1)
    x = torch.randn(6, 80)
    y = torch.randn(6, 1)
    first = torch.arange(80) < 40
    kw = {"epsilons": [0.5], "attacks": ["random_sign", "fgsm"], "n_random": 2,
          "cache_dir": tmp_path, "metrics": ["rmse"]}
    audit(model, x, y, budget=Budget(mask=first), **kw)
    other = audit(model, x, y, budget=Budget(mask=~first), **kw)
    fresh = audit(model, x, y, budget=Budget(mask=~first), **{**kw, "cache_dir": None})
    assert other.metadata["cells_reused_from_cache"] == 0
    assert _dicts(other) == _dicts(fresh)


# --------------------------------------------------------------------------- ratio rows
def test_ratio_records_are_adversarial_over_random() -> None:
    model, x, y = _regression_problem()
    res = audit(model, x, y, metrics=["rmse", "mae", "rmse_per_variable"],
                variable_names=["a", "b"], **AUDIT_KW)
    ratios = [r for r in res if r.kind == "ratio"]
    assert {r.attack for r in ratios} == {"fgsm", "pgd_linf"}
    assert {(r.metric, r.variable) for r in ratios} == {("rmse", ""), ("mae", ""), ("rmse", "a"),
                                                         ("rmse", "b")}
    for r in ratios:
        where = {"epsilon": r.epsilon, "metric": r.metric, "variable": r.variable}
        adv = res.value(attack=r.attack, kind="adversarial", **where)
        rnd = res.value(attack="random_sign", **where)
        assert r.baseline == "random_sign"
        assert r.value == pytest.approx(adv / rnd, rel=1e-12)
        assert r.stderr > 0
    # the attack is the stronger perturbation of the same size
    assert res.value(attack="pgd_linf", epsilon=0.2, metric="rmse", kind="ratio", variable="") > 1


def test_classification_audit_accuracy_and_targeted_attacks(trained_mlp, blobs) -> None:
    x, y = blobs
    before = {k: v.clone() for k, v in trained_mlp.state_dict().items()}
    res = audit(trained_mlp, x, y, task="classification", epsilons=[1.0],
                attacks=["random_sign", "fgsm", "fgsm_targeted", "illc", "sparsefool"],
                n_random=2, metrics=["accuracy", "error_rate"])
    acc = {r.attack: r.value for r in res.select(metric="accuracy") if r.kind != "ratio"}
    assert acc["clean"] == 1.0
    assert acc["fgsm"] < acc["random_sign"] - 0.1 and acc["sparsefool"] < acc["random_sign"]
    # accuracy is not error-like: no ratio rows for it, but error_rate has them
    assert not res.select(metric="accuracy", kind="ratio")
    assert res.select(metric="error_rate", attack="fgsm", kind="ratio")
    for k, v in trained_mlp.state_dict().items():
        assert torch.equal(v, before[k])


# --------------------------------------------------------------------------- checks
def test_zero_gradient_check() -> None:
    # ReLU of the first feature: samples with x1 < 0 have an exactly zero input-gradient.
    model = nn.Sequential(LinearModel(torch.tensor([1.0, 0.0])), nn.ReLU())
    x = torch.tensor([[1.0, 0.0], [2.0, 1.0], [-1.0, 0.0], [-2.0, 3.0]])
    y = torch.full((4, 1), 5.0)
    with pytest.warns(UserWarning, match="50% of samples have an exactly zero input-gradient"):
        res = audit(model, x, y, epsilons=[0.1], attacks=["random_sign", "fgsm"], n_random=1)
    assert res.metadata["checks"]["zero_gradient_fraction"] == 0.5
    assert any("zero input-gradient" in w for w in res.metadata["warnings"])


class AlwaysDropout(nn.Module):
    """Dropout forced on whatever the mode: a randomised model."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.linear(x), 0.5, training=True)


def test_randomised_model_check() -> None:
    _, x, y = _regression_problem()
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="randomised"):
        res = audit(AlwaysDropout(), x, y, epsilons=[0.1], attacks=["random_sign"], n_random=1)
    assert res.metadata["checks"]["randomised_output"] is True
    assert any("EOT" in w for w in res.metadata["warnings"])


def test_softmax_output_check() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1))
    x = torch.randn(8, 3)
    y = torch.randint(0, 4, (8,))
    with pytest.warns(UserWarning, match="probabilities"):
        res = audit(model, x, y, task="classification", epsilons=[0.1],
                    attacks=["random_sign", "fgsm"], n_random=1)
    assert res.metadata["checks"]["softmax_output"] is True


def test_train_mode_model_is_audited_in_eval_mode_and_restored() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2)).train()
    _, x, y = _regression_problem()
    with pytest.warns(UserWarning, match="training mode"):
        res = audit(model, x, y, epsilons=[0.1], attacks=["random_sign", "fgsm"], n_random=1)
    assert res.metadata["checks"]["train_mode_stochastic_layers"] is True
    # evaluated deterministically (eval mode), so no randomisation was detected
    assert res.metadata["checks"]["randomised_output"] is False
    assert all(m.training for m in model.modules())


def test_clean_model_raises_no_warnings() -> None:
    model, x, y = _regression_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = audit(model, x, y, epsilons=[0.1], attacks=["random_sign", "fgsm"], n_random=1)
    assert res.metadata["warnings"] == []
    assert res.metadata["checks"]["zero_gradient_fraction"] == 0.0


def test_random_only_audit_of_a_non_differentiable_model() -> None:
    # Random controls need no gradient: a black-box model must still be auditable with them
    # (the gradient check used to crash with a bare RuntimeError).
    class BlackBox(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(x.detach().numpy() ** 2)

    _, x, y = _regression_problem()
    res = audit(BlackBox(), x, y[:, :1].expand(-1, 3).contiguous(), epsilons=[0.1],
                attacks=["random_sign"], n_random=2)
    assert res.metadata["checks"]["zero_gradient_fraction"] == 1.0
    assert math.isfinite(res.value(attack="random_sign", metric="rmse"))
    assert any("gradient" in w for w in res.metadata["warnings"])


# --------------------------------------------------------------------------- validation
def test_invalid_data_raises_data_error() -> None:
    model, x, y = _regression_problem()
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(DataError, match="NaN or Inf"):
        audit(model, bad, y, epsilons=[0.1])
    bad_y = y.clone()
    bad_y[0, 0] = float("inf")
    with pytest.raises(DataError, match="targets contain NaN"):
        audit(model, x, bad_y, epsilons=[0.1])
    with pytest.raises(DataError, match="24 samples but targets have 5"):
        audit(model, x, y[:5], epsilons=[0.1])
    with pytest.raises(DataError, match="floating-point"):
        audit(model, x.long(), y, epsilons=[0.1])
    with pytest.raises(DataError, match=r"targets .* or a reference"):
        audit(model, x, None, epsilons=[0.1])
    with pytest.raises(DataError, match=r"outside Budget\.bounds"):
        audit(model, x, y, epsilons=[0.1], budget=Budget(bounds=(-0.5, 0.5)))
    # A reference replaces regression targets only; these used to end in bare torch errors.
    with pytest.raises(DataError, match="needs the integer labels"):
        audit(model, x, None, reference=model, task="classification", epsilons=[0.1])
    with pytest.raises(ConfigError, match="only a reference function"):
        audit(model, x, None, reference=model, objective="relative_l2", epsilons=[0.1])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epsilons": [-0.1]}, ConfigError, "finite numbers >= 0"),
        ({"epsilons": []}, ConfigError, "non-empty"),
        ({"epsilons": [float("nan")]}, ConfigError, "finite"),
        ({"attacks": ["fgsn"]}, AttackError, "Unknown attack 'fgsn'. Available: .*pgd_l2"),
        ({"attacks": [{"steps": 3}]}, ConfigError, "needs 'name'"),
        ({"attacks": [{"name": "bim", "iters": 3}]}, ConfigError, "iters"),
        ({"attacks": [3]}, ConfigError, "name or a mapping"),
        ({"attacks": ["fgsm", "fgsm"]}, ConfigError, "distinct 'label'"),
        ({"attacks": ["fgsm_targeted"]}, ConfigError, "classification"),
        ({"attacks": ["illc"]}, ConfigError, "classification"),
        ({"attacks": ["sparsefool"]}, ConfigError, "classification"),
        ({"task": "segmentation"}, ConfigError, "'regression' or 'classification'"),
        ({"objective": "huber"}, ConfigError, "Unknown objective 'huber'"),
        ({"n_random": 0}, ConfigError, "n_random"),
        ({"metrics": ["rmsd"]}, DataError, "Unknown metric"),
    ],
)
def test_invalid_configuration(kwargs: dict, error: type, match: str) -> None:
    model, x, y = _regression_problem(n=6)
    args = {"epsilons": [0.1], **kwargs}
    with pytest.raises(error, match=match):
        audit(model, x, y, **args)


def test_own_prediction_objective_refused_in_audit() -> None:
    model, x, _ = _regression_problem(n=6)
    with torch.no_grad():
        own = model(x)
    with pytest.raises(ObjectiveError, match="own prediction"):
        audit(model, x, own, epsilons=[0.1], attacks=["random_sign", "pgd_linf"])


def test_attack_parameters_and_labels_reach_the_results() -> None:
    model, x, y = _regression_problem(n=6)
    res = audit(model, x, y, epsilons=[0.1], metrics=["rmse"], n_random=1,
                attacks=["random_sign", {"name": "bim", "steps": 2, "label": "bim2"}, "bim"])
    assert res.attacks == ["clean", "random_sign", "bim2", "bim"]
    assert res.metadata["config"]["attacks"][1]["steps"] == 2
    assert res.value(attack="bim2", metric="rmse", kind="adversarial") != res.value(
        attack="bim", metric="rmse", kind="adversarial")


def test_reference_function_is_the_truth_at_perturbed_inputs() -> None:
    # model - reference = 0.1 everywhere, so with the reference evaluated at the perturbed
    # input every error is exactly 0.1; truth taken at the clean input would differ.
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    model = LinearModel(w, b=0.1)
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = audit(model, x, None, reference=lambda z: z @ w[:, None] + 0.2, epsilons=[0.3],
                attacks=["random_sign"], metrics=["mae"], n_random=2)
    for rec in res.select(metric="mae"):
        assert rec.value == pytest.approx(0.1, rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_audit_matches_cpu() -> None:
    model, x, y = _regression_problem()
    cpu = audit(model, x, y, **AUDIT_KW)
    gpu = audit(model, x, y, device="cuda", **AUDIT_KW)
    model.cpu()
    assert gpu.metadata["device"].startswith("cuda")
    for a, b in zip(cpu.records, gpu.records, strict=True):
        assert (a.attack, a.epsilon, a.metric, a.n) == (b.attack, b.epsilon, b.metric, b.n)
        assert b.value == pytest.approx(a.value, rel=1e-3, abs=1e-5)


def test_attack_in_another_norm_than_budget_is_refused_next_to_random_controls() -> None:
    """pgd_l2 inside an L-inf audit would be compared with L-inf-sized random noise."""
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 3)
    with pytest.raises(ConfigError, match="pgd_l2"):
        audit(model, x, torch.randn(8, 1), epsilons=[0.1],
              attacks=["random_sign", "pgd_l2"], budget=Budget(norm="linf"))
    # alone, or in an L2 budget, it is fine
    res = audit(model, x, torch.randn(8, 1), epsilons=[0.1],
                attacks=["random_sign", "pgd_l2"], budget=Budget(norm="l2"), n_random=2)
    assert res.select(attack="pgd_l2", metric="rmse")


def test_per_sample_arrays_exclude_dropped_draws() -> None:
    """per_sample values average only the draws that kept the sample (NaN if none did)."""
    model = torch.nn.Linear(2, 1)
    x = torch.tensor([[0.0, 0.0], [0.99, 0.0]])
    res = audit(model, x, torch.zeros(2, 1), epsilons=[0.5], attacks=["random_sign"],
                budget=Budget(bounds=(-1.0, 1.0), outside="drop"), metrics=["mse"], n_random=4)
    values = res.per_sample["random_sign|0.5|mse"][:, 0]
    assert np.isfinite(values[0])
    # the second sample leaves the domain whenever its first coordinate moves up (p = 1/2 per
    # draw); whatever the draws, its value must be finite only if some draw kept it
    kept_any = res.select(attack="random_sign", metric="mse")[0].n == 2
    assert np.isfinite(values[1]) == kept_any


def test_cache_distinguishes_reference_functions(tmp_path: Path) -> None:
    """Two different lambdas as references must not share cached cells."""
    model = torch.nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 16)[:, None]
    kwargs = dict(epsilons=[0.1], attacks=["fgsm"], cache_dir=tmp_path, metrics=["mse"])
    first = audit(model, x, reference=lambda z: z * 2, **kwargs)
    second = audit(model, x, reference=lambda z: z * 3, **kwargs)
    assert second.metadata["cells_reused_from_cache"] == 0
    assert first.value(attack="fgsm", metric="mse", kind="adversarial") != second.value(
        attack="fgsm", metric="mse", kind="adversarial")


# --------------------------------------------------------------------------- cache safety
class _Scaled(nn.Module):
    """Weights in the state_dict, behaviour also in code: an activation and an output scale
    that the state_dict does not hold."""

    def __init__(self, activation: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(3, 8), activation, nn.Linear(8, 2))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.body(x)


def test_cache_is_not_reused_when_model_code_changes(tmp_path: Path) -> None:
    _, x, y = _regression_problem()
    kw = {"epsilons": [0.1], "attacks": ["random_sign", "fgsm"], "n_random": 2,
          "cache_dir": tmp_path, "metrics": ["rmse"]}
    tanh = _Scaled(nn.Tanh())
    first = audit(tanh, x, y, **kw)
    for changed in (_Scaled(nn.Sigmoid()), _Scaled(nn.Tanh(), scale=3.0)):
        changed.load_state_dict(tanh.state_dict())  # same weights, other code
        with pytest.warns(UserWarning, match="holds .* cell\\(s\\) of another run"):
            cached = audit(changed, x, y, **kw)
        fresh = audit(changed, x, y, **{**kw, "cache_dir": None})
        assert cached.metadata["cells_reused_from_cache"] == 0
        assert _dicts(cached) == _dicts(fresh) != _dicts(first)
    assert audit(tanh, x, y, **kw).metadata["cells_reused_from_cache"] == 3


def test_foreign_or_corrupt_cells_are_recomputed_with_a_warning(tmp_path: Path) -> None:
    model, x, y = _regression_problem()
    kw = {"epsilons": [0.1, 0.2], "attacks": ["random_sign", "fgsm"], "n_random": 2,
          "cache_dir": tmp_path, "metrics": ["rmse"]}
    fresh = audit(model, x, y, **kw)
    cells = sorted((tmp_path / "cells").glob("*.npz"))
    assert len(cells) == 5
    cells[1].write_bytes(cells[0].read_bytes())  # one cell copied over another
    cells[2].write_bytes(b"")  # an empty file
    cells[3].write_bytes(cells[3].read_bytes()[:40])  # truncated
    cells[4].write_bytes(np.random.default_rng(0).bytes(300))  # random bytes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = audit(model, x, y, **kw)
    messages = " ".join(str(w.message) for w in caught)
    assert f"cache cell {cells[1]} belongs to another cell" in messages
    for broken in cells[2:]:
        assert f"cache cell {broken} is unreadable" in messages
    assert again.metadata["cells_reused_from_cache"] == 1
    assert _dicts(again) == _dicts(fresh)
    assert audit(model, x, y, **kw).metadata["cells_reused_from_cache"] == 5


def test_deterministic_model_with_last_bit_noise_is_not_called_randomised() -> None:
    class LastBits(nn.Module):
        """Deterministic up to the last bits, as two BLAS calls on a busy machine can be."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            out = self.net(x)
            return out * (1 + 1e-7) if self.calls % 2 else out

    _, x, y = _regression_problem()
    quiet = audit(LastBits(), x, y, epsilons=[0.1], metrics=["rmse"])
    assert quiet.metadata["checks"]["randomised_output"] is False
    noisy = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    noisy.eval()
    noisy.forward = lambda z: nn.functional.dropout(noisy[0](z), 0.5, True) @ \
        noisy[2].weight.T  # type: ignore[method-assign]
    assert audit(noisy, x, y, epsilons=[0.1]).metadata["checks"]["randomised_output"] is True


def test_only_layers_that_run_in_training_mode_are_reported() -> None:
    from scirobust.layers import feature_audit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.3), nn.Linear(8, 2)).eval()
    _, x, _ = _regression_problem()
    labels = torch.zeros(x.shape[0], dtype=torch.long)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = feature_audit(model, "0", x, labels, task="classification", epsilons=[0.1])
    assert res.metadata["checks"]["train_mode_stochastic_layers"] is False
    assert not any("training mode" in str(w.message) for w in caught)
    model.train()
    res = audit(model, x, labels, task="classification", epsilons=[0.1])
    assert res.metadata["checks"]["train_mode_stochastic_layers"] is True


def test_diverging_model_at_huge_epsilon_is_reported() -> None:
    model, x, y = _regression_problem()
    exploding = nn.Sequential(model, nn.Flatten(), _Exp())
    with pytest.warns(UserWarning, match="give NaN/Inf metrics"):
        res = audit(exploding, x, y, epsilons=[1e300], attacks=["random_sign"],
                    metrics=["rmse"], n_random=1)
    assert any(not math.isfinite(r.value) for r in res if r.kind == "random")


class _Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


def test_bool_epsilons_and_zero_scale_are_refused() -> None:
    model, x, y = _regression_problem()
    with pytest.raises(ConfigError, match="epsilons"):
        audit(model, x, y, epsilons=[True])
    with pytest.raises(BudgetError, match="scale is 0 everywhere"):
        Budget(scale=torch.zeros(3))


def test_dtype_mismatch_and_empty_inputs_are_named() -> None:
    model, x, y = _regression_problem()
    with pytest.raises(DataError, match=r"inputs are torch\.float64 but the model's parameters"):
        audit(model, x.double(), y.double(), epsilons=[0.1])
    with pytest.raises(DataError, match="N >= 1"):
        audit(model, x[:0], y[:0], epsilons=[0.1])


def test_random_controls_alone_do_not_warn_about_zero_gradients() -> None:
    model, x, _ = _regression_problem()
    with torch.no_grad():
        own = model(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        audit(model, x, own, epsilons=[0.1], attacks=["random_sign"], n_random=2)
    assert not any("zero input-gradient" in str(w.message) for w in caught)


class _MemoryLimited(nn.Module):
    """A model that raises the GPU's out-of-memory error above ``limit`` rows per call, as a
    CUDA model does when a batch does not fit (the error type torch raises there)."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit, self.largest = inner, limit, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        self.largest = max(self.largest, x.shape[0])
        return self.inner(x)


def _values(results, attack: str) -> np.ndarray:
    return np.array([r.value for r in results if r.attack == attack and r.kind != "ratio"])


def test_out_of_memory_halves_the_batch_keeps_it_small_and_says_so() -> None:
    model, x, y = _regression_problem(40)
    options = dict(attacks=["random_sign", "fgsm", "bim"], epsilons=[0.1, 0.3], n_random=3,
                   batch_size=16, seed=3)
    plain = audit(model, x, y, **options)
    limited = _MemoryLimited(model, limit=5)
    split = audit(limited, x, y, **options)
    assert limited.largest <= 5
    assert any("Out of device memory at 16 samples per batch" in w
               for w in split.metadata["warnings"])
    # Deterministic attacks give the same per-sample values in any batch split.
    for attack in ("clean", "fgsm", "bim"):
        np.testing.assert_allclose(_values(split, attack), _values(plain, attack), rtol=1e-6)
    assert np.isfinite(_values(split, "random_sign")).all()


def test_out_of_memory_at_one_sample_is_a_clear_error() -> None:
    model, x, y = _regression_problem(8)
    with pytest.raises(DataError, match="One sample does not fit"):
        audit(_MemoryLimited(model, limit=0), x, y, epsilons=[0.1], batch_size=4)


def test_draws_in_one_forward_pass_match_separate_passes() -> None:
    model, x, y = _regression_problem(30)
    options = dict(attacks=["random_sign", "random_gaussian", "fgsm"], epsilons=[0.05, 0.2],
                   n_random=4, batch_size=8, keep_perturbed=True)
    separate = audit(model, x, y, batch_draws=False, **options)
    counting = _MemoryLimited(model, limit=10**6)
    batched = audit(counting, x, y, batch_draws=True, **options)
    assert counting.largest == 4 * 8  # the draws of a batch went through together
    for a, b in zip(separate.records, batched.records, strict=True):
        assert (a.attack, a.epsilon, a.metric) == (b.attack, b.epsilon, b.metric)
        np.testing.assert_allclose(a.value, b.value, rtol=1e-5)
    for key, p in separate.perturbed.items():
        assert torch.equal(p.inputs, batched.perturbed[key].inputs)  # same random draws
