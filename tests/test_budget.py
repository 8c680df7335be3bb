"""Budget: validation, geometry of steps and projections, random perturbations of equal size."""

from __future__ import annotations

import pytest
import torch

from scirobust import Budget, BudgetError


def _norm2(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1)


def _norminf(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).abs().amax(dim=1)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"norm": "l1"}, "'linf' or 'l2'"),
        ({"outside": "wrap"}, "'clip' or 'drop'"),
        ({"eps": -0.1}, ">= 0"),
        ({"eps": float("nan")}, "NaN or Inf"),
        ({"eps": "big"}, "number"),
        ({"eps": [0.1, 0.2], "norm": "l2"}, "scale"),
        ({"scale": [1.0, -1.0]}, "scale must be >= 0"),
        ({"mask": [False, False]}, "nothing could be perturbed"),
        ({"mask": [0, 2]}, "boolean"),
        ({"bounds": (1.0, 0.0)}, "lower bound exceeds"),
        ({"bounds": (0.0, 1.0, 2.0)}, "pair"),
        ({"outside": "drop"}, "needs `bounds`"),
    ],
)
def test_invalid_budgets_raise_with_guidance(kwargs: dict, match: str) -> None:
    with pytest.raises(BudgetError, match=match):
        Budget(**kwargs)


def test_budget_error_is_a_value_error() -> None:
    # Users catching ValueError (the scikit-learn convention) must also catch budget errors.
    with pytest.raises(ValueError):
        Budget(eps=-1.0)


def test_check_input_needs_batch_dimension() -> None:
    with pytest.raises(BudgetError, match=r"unsqueeze\(0\)"):
        Budget().check_input(torch.zeros(3))


def test_check_input_names_mismatched_shapes() -> None:
    budget = Budget(mask=torch.tensor([True, False, True]))
    with pytest.raises(BudgetError, match=r"mask has shape \(3,\).*shape \(4,\)"):
        budget.check_input(torch.zeros(2, 4))
    budget.check_input(torch.zeros(2, 3))  # fits: no error
    with pytest.raises(BudgetError, match=r"eps has shape \(2,\)"):
        Budget(eps=[0.1, 0.2]).check_input(torch.zeros(5, 3))


def test_mask_accepts_zero_one_and_scaled_copies_everything() -> None:
    budget = Budget(eps=[0.1, 0.2], mask=[1, 0], bounds=(-1.0, 1.0))
    assert budget.mask.dtype == torch.bool
    doubled = budget.scaled(3.0)
    torch.testing.assert_close(doubled.eps, torch.tensor([0.3, 0.6], dtype=torch.float64))
    # the original is frozen and unchanged; the rest of the budget is carried over
    torch.testing.assert_close(budget.eps, torch.tensor([0.1, 0.2], dtype=torch.float64))
    assert torch.equal(doubled.mask, budget.mask)
    assert doubled.bounds is budget.bounds or all(
        torch.equal(a, b) for a, b in zip(doubled.bounds, budget.bounds, strict=True)
    )
    assert doubled.eps_max == pytest.approx(0.6)


# --------------------------------------------------------------------------- geometry
def test_linf_radius_units() -> None:
    x0 = torch.tensor([[2.0, -4.0, 0.0]], dtype=torch.float64)
    plain = Budget(eps=0.5).linf_radius(x0)
    relative = Budget(eps=0.5, relative=True).linf_radius(x0)
    scaled = Budget(eps=0.5, scale=torch.tensor([1.0, 10.0, 0.1])).linf_radius(x0)
    masked = Budget(eps=0.5, mask=torch.tensor([True, False, True])).linf_radius(x0)
    torch.testing.assert_close(plain, torch.full_like(x0, 0.5), rtol=0, atol=0)
    torch.testing.assert_close(relative, torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(scaled, torch.tensor([[0.5, 5.0, 0.05]], dtype=torch.float64))
    torch.testing.assert_close(masked, torch.tensor([[0.5, 0.0, 0.5]], dtype=torch.float64))


def test_l2_radius_keeps_input_dtype() -> None:
    # Regression: the radius used to be float32 whatever the input, which rounded float64
    # L2 steps (and turned bfloat16 inputs into float32).
    x64 = torch.ones(2, 3, dtype=torch.float64)
    assert Budget(eps=0.1, norm="l2").l2_radius(x64).dtype == torch.float64
    xbf = torch.ones(2, 3, dtype=torch.bfloat16)
    step = Budget(eps=0.1, norm="l2").steepest_step(torch.ones_like(xbf), xbf, 1.0)
    assert step.dtype == torch.bfloat16


def test_l2_radius_relative_uses_masked_sample_norm() -> None:
    x0 = torch.tensor([[3.0, 4.0, 12.0]], dtype=torch.float64)
    budget = Budget(eps=0.1, norm="l2", relative=True, mask=torch.tensor([True, True, False]))
    assert budget.l2_radius(x0).item() == pytest.approx(0.5)  # 0.1 * ||(3, 4)||


def test_l2_steepest_step_with_scale_is_the_scaled_optimum() -> None:
    # max g·d  s.t. ||d / s||_2 <= eps  is attained at d = eps * s * (g s) / ||g s||.
    g = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    s = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    x0 = torch.zeros_like(g)
    step = Budget(eps=0.3, norm="l2", scale=s).steepest_step(g, x0, 1.0)
    expected = 0.3 * s * (g * s) / (g * s).norm()
    torch.testing.assert_close(step, expected, rtol=1e-14, atol=0)
    assert _norm2(step / s).item() == pytest.approx(0.3, rel=1e-14)


def test_project_linf_clamps_each_element_then_clips_to_bounds() -> None:
    x0 = torch.tensor([[0.0, 0.9, -0.5]])
    x = torch.tensor([[0.5, 1.3, -0.55]])
    budget = Budget(eps=0.2, bounds=(-1.0, 1.0))
    torch.testing.assert_close(budget.project(x0, x), torch.tensor([[0.2, 1.0, -0.55]]))


def test_project_l2_scales_back_only_outside_the_ball() -> None:
    x0 = torch.zeros(2, 2, dtype=torch.float64)
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    out = Budget(eps=1.0, norm="l2").project(x0, x)
    torch.testing.assert_close(out, torch.tensor([[0.6, 0.8], [0.3, 0.4]], dtype=torch.float64))


def test_project_zeroes_masked_elements() -> None:
    x0 = torch.tensor([[1.0, 2.0, 3.0]])
    x = torch.tensor([[9.0, 9.0, 9.0]])
    budget = Budget(eps=0.5, mask=torch.tensor([False, True, False]))
    assert torch.equal(budget.project(x0, x), torch.tensor([[1.0, 2.5, 3.0]]))
    out = Budget(eps=0.5, norm="l2", mask=budget.mask).project(x0, x)
    assert torch.equal(out[:, [0, 2]], x0[:, [0, 2]])
    assert out[0, 1].item() == pytest.approx(2.5)


def test_clip_only_with_outside_clip_and_inside_per_sample() -> None:
    x = torch.tensor([[1.5, 0.0], [0.2, -0.3]])
    clip = Budget(bounds=(-1.0, 1.0))
    drop = Budget(bounds=(-1.0, 1.0), outside="drop")
    assert torch.equal(clip.clip(x), torch.tensor([[1.0, 0.0], [0.2, -0.3]]))
    assert torch.equal(drop.clip(x), x)
    assert drop.inside(x).tolist() == [False, True]
    assert Budget().inside(x).tolist() == [True, True]


def test_per_feature_bounds() -> None:
    budget = Budget(bounds=(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 0.0])))
    x = torch.tensor([[2.0, 2.0], [-2.0, -2.0]])
    assert torch.equal(budget.clip(x), torch.tensor([[1.0, 0.0], [0.0, -1.0]]))


# --------------------------------------------------------------------------- random draws
def test_random_sign_is_plus_minus_radius_on_free_elements(gen: torch.Generator) -> None:
    x0 = torch.randn(50, 4, dtype=torch.float64, generator=gen)
    budget = Budget(eps=torch.tensor([0.1, 0.2, 0.3, 0.4]), mask=torch.tensor([1, 1, 1, 0]))
    delta = budget.random_delta(x0, "sign", gen)
    assert torch.equal(delta.abs(), budget.linf_radius(x0))
    # both signs occur (a draw of 150 signs that are all equal would be a broken generator)
    assert (delta[:, :3] > 0).any() and (delta[:, :3] < 0).any()


def test_random_gaussian_matches_sign_l2_norm(gen: torch.Generator) -> None:
    x0 = torch.randn(20, 3, 2, dtype=torch.float64, generator=gen)
    budget = Budget(eps=0.05, relative=True)
    sign = budget.random_delta(x0, "sign", gen)
    gauss = budget.random_delta(x0, "gaussian", gen)
    radius = budget.linf_radius(x0)
    # same L2 norm in units of each element's radius (relative budget: radius = eps*|x0|)
    torch.testing.assert_close(_norm2(gauss / radius), _norm2(sign / radius), rtol=1e-12, atol=0)
    absolute = Budget(eps=0.05)
    torch.testing.assert_close(
        _norm2(absolute.random_delta(x0, "gaussian", gen)),
        _norm2(absolute.random_delta(x0, "sign", gen)), rtol=1e-12, atol=0,
    )
    assert not torch.equal(gauss.abs(), sign.abs())  # it really is Gaussian, not a sign draw


def test_random_uniform_inside_box(gen: torch.Generator) -> None:
    x0 = torch.randn(100, 5, generator=gen)
    budget = Budget(eps=0.3)
    delta = budget.random_delta(x0, "uniform", gen)
    assert (delta.abs() <= 0.3).all()
    assert delta.abs().max() > 0.25  # fills the box, not a sliver of it


@pytest.mark.parametrize("kind", ["sign", "gaussian", "uniform"])
def test_random_l2_kinds_have_the_ball_radius(kind: str, gen: torch.Generator) -> None:
    x0 = torch.randn(30, 6, dtype=torch.float64, generator=gen)
    s = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0], dtype=torch.float64)
    budget = Budget(eps=0.2, norm="l2", scale=s)
    delta = budget.random_delta(x0, kind, gen)  # type: ignore[arg-type]
    lengths = _norm2(delta / s)
    if kind == "uniform":
        assert (lengths <= 0.2 + 1e-12).all() and (lengths < 0.199).any()
    else:
        torch.testing.assert_close(lengths, torch.full_like(lengths, 0.2), rtol=1e-12, atol=0)


def test_random_delta_unknown_kind() -> None:
    with pytest.raises(BudgetError, match="'sign', 'gaussian' or 'uniform'"):
        Budget().random_delta(torch.zeros(1, 2), "laplace")  # type: ignore[arg-type]


def test_random_delta_reproducible_with_seed() -> None:
    x0 = torch.zeros(4, 3)
    budget = Budget(eps=0.1)
    a = budget.random_delta(x0, "gaussian", torch.Generator().manual_seed(7))
    b = budget.random_delta(x0, "gaussian", torch.Generator().manual_seed(7))
    c = budget.random_delta(x0, "gaussian", torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert _norminf(a).max() > 0


def test_random_gaussian_follows_per_feature_scale() -> None:
    """Features with a tiny unit must get tiny Gaussian noise, not an equal share of the norm."""
    x0 = torch.zeros(2000, 2)
    budget = Budget(eps=0.1, scale=torch.tensor([10.0, 0.01]))
    gauss = budget.random_delta(x0, "gaussian", torch.Generator().manual_seed(0))
    sign = budget.random_delta(x0, "sign", torch.Generator().manual_seed(0))
    # same L2 size as the sign control on every sample, in units of each feature's radius ...
    radius = budget.linf_radius(x0)
    torch.testing.assert_close((gauss / radius).norm(dim=1), (sign / radius).norm(dim=1))
    # ... so no feature is pushed past sqrt(n_free) times its own radius
    assert ((gauss / radius).abs() <= 2**0.5 + 1e-6).all()
    # ... and the small feature moves about 1000x less than the large one (median of a ratio
    # of two Gaussians' magnitudes is 1, so the median ratio is the ratio of units)
    ratio = (gauss[:, 1].abs() / gauss[:, 0].abs()).median()
    assert 0.5e-3 < float(ratio) < 2e-3
