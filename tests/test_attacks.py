"""Attacks and random controls: exact one-step formulas, budgets as properties, masks, seeds,
classification objectives, and the guarantee that the user's model is left exactly as it was."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import LinearModel
from scirobust import ATTACKS, AttackError, Budget, ObjectiveError, attack, objectives

PROPERTY = settings(max_examples=30, deadline=None)
GRADIENT_METHODS = [name for name, spec in ATTACKS.items() if spec.kind == "gradient"]


def _analytic_grad(model: LinearModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d/dx of (w·x + b - y)^2 for a one-output linear model: 2 (f - y) w."""
    w = model.linear.weight.detach()
    return 2 * (model(x).detach() - y) * w


def _deltas(x_adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = (x_adv - x).reshape(x.shape[0], -1)
    return d.abs().amax(dim=1), d.norm(dim=1)


# --------------------------------------------------------------------------- exact one-step
def test_fgsm_linear_is_exactly_x_plus_eps_sign_grad(linear64) -> None:
    model, x, y = linear64
    x_adv = attack(model, x, objectives.mse(y), Budget(eps=0.25), "fgsm")
    expected = x + 0.25 * _analytic_grad(model, x, y).sign()
    assert torch.equal(x_adv, expected)


def test_fgsm_l2_step_is_eps_times_unit_gradient(linear64) -> None:
    model, x, y = linear64
    g = _analytic_grad(model, x, y)
    x_adv = attack(model, x, objectives.mse(y), Budget(eps=0.3, norm="l2"), "fgsm")
    torch.testing.assert_close(x_adv - x, 0.3 * g / g.norm(dim=1, keepdim=True),
                               rtol=1e-12, atol=1e-14)


def test_fgsm_relative_budget_is_eps_times_abs_x(linear64) -> None:
    model, x, y = linear64
    x_adv = attack(model, x, objectives.mse(y), Budget(eps=0.05, relative=True), "fgsm")
    expected = x + 0.05 * x.abs() * _analytic_grad(model, x, y).sign()
    torch.testing.assert_close(x_adv, expected, rtol=1e-15, atol=0)


def test_fgsm_per_feature_eps(linear64) -> None:
    model, x, y = linear64
    eps = torch.tensor([0.1, 0.0, 0.3, 0.4], dtype=torch.float64)
    x_adv = attack(model, x, objectives.mse(y), Budget(eps=eps), "fgsm")
    expected = x + eps * _analytic_grad(model, x, y).sign()
    torch.testing.assert_close(x_adv, expected, rtol=1e-15, atol=0)
    assert torch.equal(x_adv[:, 1], x[:, 1])  # eps 0: that feature never moves


def test_fgsm_scale_units_linf_and_l2(linear64) -> None:
    model, x, y = linear64
    s = torch.tensor([2.0, 0.5, 1.0, 4.0], dtype=torch.float64)
    g = _analytic_grad(model, x, y)
    linf = attack(model, x, objectives.mse(y), Budget(eps=0.1, scale=s), "fgsm")
    torch.testing.assert_close(linf, x + 0.1 * s * g.sign(), rtol=1e-15, atol=0)
    l2 = attack(model, x, objectives.mse(y), Budget(eps=0.1, norm="l2", scale=s), "fgsm")
    gs = g * s
    torch.testing.assert_close(l2 - x, 0.1 * s * gs / gs.norm(dim=1, keepdim=True),
                               rtol=1e-12, atol=1e-14)


def test_fgsm_moves_along_gradient_and_raises_the_error(linear64) -> None:
    model, x, y = linear64
    objective = objectives.mse(y)
    x_adv = attack(model, x, objective, Budget(eps=0.1), "fgsm")
    assert (objective(model(x_adv), x_adv) > objective(model(x), x)).all()


# --------------------------------------------------------------------------- masks
def _objective_for(method: str, labels: torch.Tensor):
    if method == "illc":
        return objectives.least_likely()
    if method == "fgsm_targeted":
        return objectives.targeted((labels + 1) % 3)
    if ATTACKS[method].is_random:
        return None
    return objectives.cross_entropy(labels)


@pytest.mark.parametrize("method", list(ATTACKS))
def test_masked_elements_bit_for_bit_unchanged(method: str, trained_mlp, blobs) -> None:
    x, y = blobs
    x, y = x[::6], y[::6]  # 20 samples are plenty
    mask = torch.tensor([True, False, True, True, False, False, True, False, True, True])
    budget = Budget(eps=1.5, mask=mask)
    x_adv = attack(trained_mlp, x, _objective_for(method, y), budget, method,
                   generator=torch.Generator().manual_seed(0))
    assert torch.equal(x_adv[:, ~mask], x[:, ~mask])
    assert not torch.equal(x_adv[:, mask], x[:, mask])  # the test would be vacuous otherwise


# --------------------------------------------------------------------------- properties
def _classifier() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).eval()


CLASSIFIER = _classifier()


def _case(seed: int, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 4, generator=g) * 2 - 1  # inside the domain [-1, 1]^4
    return x, torch.randint(0, 3, (n,), generator=g)


@PROPERTY
@given(
    seed=st.integers(0, 2**31 - 1),
    eps=st.floats(0.01, 1.5),
    method=st.sampled_from(["pgd_linf", "bim", "illc"]),
    steps=st.integers(1, 6),
    step_size=st.floats(0.1, 2.0),
    bounded=st.booleans(),
)
def test_linf_attacks_stay_in_ball_and_bounds(seed, eps, method, steps, step_size, bounded):
    x, y = _case(seed)
    budget = Budget(eps=eps, bounds=(-1.0, 1.0) if bounded else None)
    obj = objectives.least_likely() if method == "illc" else objectives.cross_entropy(y)
    x_adv = attack(CLASSIFIER, x, obj, budget, method, steps=steps, step_size=step_size,
                   generator=torch.Generator().manual_seed(seed))
    linf, _ = _deltas(x_adv, x)
    assert (linf <= eps * (1 + 1e-6) + 1e-6).all()
    if bounded:
        assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0


@PROPERTY
@given(
    seed=st.integers(0, 2**31 - 1),
    eps=st.floats(0.01, 3.0),
    steps=st.integers(1, 6),
    step_size=st.floats(0.1, 2.0),
    bounded=st.booleans(),
    random_start=st.booleans(),
)
def test_pgd_l2_stays_in_ball_and_bounds(seed, eps, steps, step_size, bounded, random_start):
    x, y = _case(seed)
    budget = Budget(eps=eps, norm="l2", bounds=(-1.0, 1.0) if bounded else None)
    x_adv = attack(CLASSIFIER, x, objectives.cross_entropy(y), budget, "pgd_l2", steps=steps,
                   step_size=step_size, random_start=random_start,
                   generator=torch.Generator().manual_seed(seed))
    _, l2 = _deltas(x_adv, x)
    assert (l2 <= eps * (1 + 1e-6) + 1e-6).all()
    if bounded:
        assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0


@PROPERTY
@given(
    seed=st.integers(0, 2**31 - 1),
    eps=st.floats(0.001, 0.5),
    method=st.sampled_from(["pgd_linf", "bim", "pgd_l2", "fgsm"]),
)
def test_relative_budgets_respected(seed, eps, method):
    x, y = _case(seed)
    budget = Budget(eps=eps, relative=True)
    x_adv = attack(CLASSIFIER, x, objectives.cross_entropy(y), budget, method,
                   generator=torch.Generator().manual_seed(seed))
    delta = x_adv - x
    if method == "pgd_l2":
        # relative L2: ||delta||_2 <= eps ||x||_2 per sample
        assert (delta.norm(dim=1) <= eps * x.norm(dim=1) * (1 + 1e-6) + 3e-7).all()
    else:
        assert (delta.abs() <= eps * x.abs() * (1 + 1e-6) + 3e-7).all()


# --------------------------------------------------------------------------- random controls
def test_random_sign_has_fgsm_norms_per_sample(linear64) -> None:
    model, x, y = linear64
    budget = Budget(eps=torch.tensor([0.1, 0.2, 0.05, 0.3]),
                    mask=torch.tensor([True, True, False, True]))
    fgsm = attack(model, x, objectives.mse(y), budget, "fgsm")
    sign = attack(model, x, None, budget, "random_sign", generator=torch.Generator().manual_seed(1))
    gauss = attack(model, x, None, budget, "random_gaussian",
                   generator=torch.Generator().manual_seed(1))
    f_inf, f_l2 = _deltas(fgsm, x)
    s_inf, s_l2 = _deltas(sign, x)
    torch.testing.assert_close(s_inf, f_inf, rtol=1e-12, atol=0)
    torch.testing.assert_close(s_l2, f_l2, rtol=1e-12, atol=0)
    # Gaussian: same L2 norm as the sign draw in units of each element's radius (per-feature
    # eps: a feature with a small eps must not take the norm of a large one)
    radius = budget.linf_radius(x)
    free = radius > 0
    g_units = torch.where(free, (gauss - x) / radius.clamp_min(1e-30), 0.0)
    s_units = torch.where(free, (sign - x) / radius.clamp_min(1e-30), 0.0)
    torch.testing.assert_close(g_units.norm(dim=1), s_units.norm(dim=1), rtol=1e-12, atol=0)
    assert not torch.equal(g_units.abs(), s_units.abs())
    assert not torch.equal(sign, fgsm)  # random, not the gradient direction


def test_random_uniform_stays_in_box_and_bounds(gen: torch.Generator) -> None:
    x = torch.rand(200, 3, generator=gen) * 2 - 1
    budget = Budget(eps=0.4, bounds=(-1.0, 1.0))
    x_adv = attack(CLASSIFIER, x, None, budget, "random_uniform", generator=gen)
    assert ((x_adv - x).abs() <= 0.4 + 1e-6).all()
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0


@pytest.mark.parametrize("method", ["random_sign", "random_gaussian", "random_uniform", "pgd_linf"])
def test_draws_reproducible_by_seed(method: str) -> None:
    x, y = _case(0, n=8)
    obj = None if ATTACKS[method].is_random else objectives.cross_entropy(y)
    # Short small steps: a long PGD run ends in the same corner from any random start.
    steps = None if ATTACKS[method].is_random else 2

    def run(seed: int) -> torch.Tensor:
        return attack(CLASSIFIER, x, obj, Budget(eps=0.2), method, steps=steps, step_size=0.1,
                      generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


# --------------------------------------------------------------------------- model state
class StatefulNet(nn.Module):
    """Frozen first layer, BatchNorm and Dropout: everything an attack could disturb."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.frozen = nn.Linear(4, 8)
        self.frozen.requires_grad_(False)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.tanh(self.bn(self.frozen(x)))))


def _snapshot(model: nn.Module) -> dict:
    return {
        "params": {k: p.detach().clone() for k, p in model.named_parameters()},
        "grads": {k: None if p.grad is None else p.grad.clone()
                  for k, p in model.named_parameters()},
        "flags": {k: p.requires_grad for k, p in model.named_parameters()},
        "modes": {k: m.training for k, m in model.named_modules()},
        "buffers": {k: b.clone() for k, b in model.named_buffers()},
    }


def _assert_same_state(before: dict, model: nn.Module) -> None:
    after = _snapshot(model)
    for k, p in before["params"].items():
        assert torch.equal(p, after["params"][k]), k
    for k, g in before["grads"].items():
        if g is None:
            assert after["grads"][k] is None, k
        else:
            assert torch.equal(g, after["grads"][k]), k
    assert before["flags"] == after["flags"]
    assert before["modes"] == after["modes"]
    for k, b in before["buffers"].items():
        assert torch.equal(b, after["buffers"][k]), k


@pytest.mark.parametrize("mixed", [False, True], ids=["train", "mixed"])
@pytest.mark.parametrize("method", list(ATTACKS))
def test_model_state_untouched(method: str, mixed: bool) -> None:
    model = StatefulNet()
    x, y = _case(1, n=8)
    with torch.no_grad():  # give BatchNorm non-trivial running stats first
        model(x * 3 + 1)
    model.train()
    if mixed:
        model.bn.eval()  # a frozen-statistics BatchNorm inside a training model
    model.head.weight.grad = torch.full_like(model.head.weight, 0.5)  # an existing gradient
    before = _snapshot(model)
    x_adv = attack(model, x, _objective_for(method, y), Budget(eps=0.3), method,
                   generator=torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    _assert_same_state(before, model)
    assert model.frozen.weight.requires_grad is False and model.head.weight.requires_grad


def test_model_state_restored_after_an_error() -> None:
    model = StatefulNet().train()
    before = _snapshot(model)
    with pytest.raises(ObjectiveError):
        attack(model, torch.zeros(2, 4), objectives.mse(torch.zeros(3)), Budget(), "fgsm")
    _assert_same_state(before, model)


# --------------------------------------------------------------------------- classification
def _margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logit of ``target`` minus the best other logit."""
    rows = torch.arange(logits.shape[0])
    others = logits.clone()
    others[rows, target] = -float("inf")
    return logits[rows, target] - others.amax(dim=1)


def test_fgsm_targeted_moves_towards_target(trained_mlp, blobs) -> None:
    x, y = blobs
    target = (y + 1) % 3
    x_adv = attack(trained_mlp, x, objectives.targeted(target), Budget(eps=0.3), "fgsm_targeted")
    with torch.no_grad():
        before, after = _margin(trained_mlp(x), target), _margin(trained_mlp(x_adv), target)
    assert (after > before).float().mean() > 0.95


def test_illc_moves_towards_least_likely_class(trained_mlp, blobs) -> None:
    x, _ = blobs
    with torch.no_grad():
        clean = trained_mlp(x)
    least = clean.argmin(dim=1)
    x_adv = attack(trained_mlp, x, objectives.least_likely(), Budget(eps=0.5), "illc")
    with torch.no_grad():
        after = trained_mlp(x_adv)
    assert (_margin(after, least) > _margin(clean, least)).all()


def test_untargeted_attacks_lower_accuracy(trained_mlp, blobs) -> None:
    x, y = blobs

    def accuracy(z: torch.Tensor) -> float:
        with torch.no_grad():
            return float((trained_mlp(z).argmax(1) == y).float().mean())

    obj = objectives.cross_entropy(y)
    gen = torch.Generator().manual_seed(0)
    budget = Budget(eps=1.0)
    clean = accuracy(x)
    rand = accuracy(attack(trained_mlp, x, None, budget, "random_sign", generator=gen))
    fgsm = accuracy(attack(trained_mlp, x, obj, budget, "fgsm"))
    pgd = accuracy(attack(trained_mlp, x, obj, budget, "pgd_linf", generator=gen))
    assert clean == 1.0
    # the whole point of the library: same-size noise hurts far less than the attack
    assert pgd <= fgsm < rand - 0.1


# --------------------------------------------------------------------------- parameters
def test_unknown_method_lists_alternatives(linear64) -> None:
    model, x, y = linear64
    with pytest.raises(AttackError, match=r"Unknown attack 'fgsn'.*pgd_linf"):
        attack(model, x, objectives.mse(y), Budget(), "fgsn")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be >= 1"),
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": -1.0}, "step_size"),
    ],
)
def test_invalid_attack_parameters(linear64, kwargs: dict, match: str) -> None:
    model, x, y = linear64
    with pytest.raises(AttackError, match=match):
        attack(model, x, objectives.mse(y), Budget(), "bim", **kwargs)


def test_attack_input_and_objective_validation(linear64) -> None:
    model, x, y = linear64
    with pytest.raises(AttackError, match="floating-point"):
        attack(model, x.long(), objectives.mse(y), Budget())
    with pytest.raises(AttackError, match="needs an objective"):
        attack(model, x, None, Budget(), "fgsm")
    with pytest.raises(AttackError, match="targeted objective"):
        attack(model, x, objectives.mse(y), Budget(), "fgsm_targeted")
    with pytest.raises(AttackError, match="targeted objective"):
        attack(model, x, objectives.mse(y), Budget(), "illc")


def test_broken_models_give_attack_errors() -> None:
    x = torch.randn(3, 2)
    y = torch.ones(3, 1)
    with pytest.raises(AttackError, match="tensor output"):
        attack(lambda z: {"out": z}, x, objectives.mse(y), Budget())
    with pytest.raises(AttackError, match="does not depend on the input"):
        attack(lambda z: torch.zeros(3, 1), x, objectives.mse(y), Budget())
    with pytest.raises(AttackError, match="NaN or Inf"):
        attack(lambda z: z.sqrt().sum(1, keepdim=True), torch.zeros(3, 2), objectives.mse(y),
               Budget())


def test_callable_model_and_dtype_preserved(linear64) -> None:
    model, x, y = linear64
    x_adv = attack(lambda z: model(z), x, objectives.mse(y), Budget(eps=0.1), "pgd_l2",
                   generator=torch.Generator().manual_seed(0))
    assert x_adv.dtype == torch.float64


def test_low_precision_input_keeps_its_dtype() -> None:
    # Regression: the L2 radius was float32, so a bfloat16 model got float32 inputs and failed.
    torch.manual_seed(0)
    model = nn.Linear(3, 2).to(torch.bfloat16)
    x = torch.randn(4, 3).to(torch.bfloat16)
    y = torch.randn(4, 2).to(torch.bfloat16)
    for method in ("fgsm", "pgd_linf", "pgd_l2", "random_gaussian"):
        x_adv = attack(model, x, objectives.mse(y), Budget(eps=0.1, norm="l2"), method,
                       generator=torch.Generator().manual_seed(0))
        assert x_adv.dtype == torch.bfloat16, method


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(linear64) -> None:
    model, x, y = linear64
    budget = Budget(eps=0.1, mask=torch.tensor([True, False, True, True]), bounds=(-3.0, 3.0))
    for method in ("fgsm", "pgd_linf", "pgd_l2", "random_sign", "random_gaussian"):
        cpu = attack(model, x, objectives.mse(y), budget, method,
                     generator=torch.Generator().manual_seed(0))
        model.cuda()
        gpu = attack(model, x.cuda(), objectives.mse(y.cuda()), budget, method,
                     generator=torch.Generator().manual_seed(0))
        model.cpu()
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-12)


def test_training_mode_attack_leaves_batchnorm_statistics_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    y = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    model.train()
    for _ in range(3):
        model(x)  # some training history in the running statistics
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x_adv = attack(model, x, objectives.mse(y), Budget(eps=0.1), "pgd_linf", steps=5,
                   eval_mode=False)
    assert model.training and not torch.equal(x_adv, x)
    after = model.state_dict()
    for name, value in before.items():
        assert torch.equal(after[name], value), name


@pytest.mark.parametrize("method", sorted(ATTACKS))
def test_skip_randomness_draws_what_attack_draws(method: str) -> None:
    from scirobust.attacks import skip_randomness

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    spec = ATTACKS[method]
    objective = (objectives.targeted((labels + 1) % 3) if spec.name == "fgsm_targeted"
                 else objectives.least_likely() if spec.name == "illc"
                 else objectives.cross_entropy(labels))
    budget = Budget(eps=0.1, norm=spec.norm or "linf")
    for random_start in (None, True):
        if spec.kind == "sparse" and random_start:
            continue
        ran, skipped = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        attack(model, x, objective, budget, method, generator=ran, steps=2,
               random_start=random_start)
        skip_randomness(x, method, budget, skipped, random_start=random_start)
        assert torch.equal(ran.get_state(), skipped.get_state()), (method, random_start)


def test_fgm_steps_along_the_normalised_gradient_without_sign() -> None:
    w = torch.tensor([3.0, -4.0], dtype=torch.float64)
    model = LinearModel(w)
    x = torch.zeros(2, 2, dtype=torch.float64)
    y = torch.full((2, 1), -1.0, dtype=torch.float64)  # error grows along +w
    x_adv = attack(model, x, objectives.mse(y), Budget(eps=0.5, norm="l2"), "fgm")
    expected = 0.5 * w / w.norm()
    assert torch.allclose(x_adv, expected.expand(2, 2))
    fgsm = attack(model, x, objectives.mse(y), Budget(eps=0.5), "fgsm")
    assert not torch.allclose(fgsm / fgsm.norm(dim=1, keepdim=True), x_adv / 0.5)
