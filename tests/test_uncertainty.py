"""Neural-packet spreads: analytic packets, estimator agreement, model-state hygiene."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from scirobust.uncertainty import (
    Box,
    ConvergenceWarning,
    UncertaintyError,
    class_spreads,
    input_gradient_cosine,
    packet_spreads,
)

SIGMA = 0.3


def gaussian(x: torch.Tensor) -> torch.Tensor:
    # ψ ∝ exp(−x²/4σ²) ⇒ ψ² is a normal density with std σ: Δx = σ, Δp = 1/(2σ).
    return torch.exp(-(x**2).sum(1) / (4 * SIGMA**2))


def two_bumps(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-((x[:, 0] - 1) ** 2) / 0.18) + torch.exp(-((x[:, 0] + 1) ** 2) / 0.18)


def plateau(x: torch.Tensor) -> torch.Tensor:
    # A smoothed box: flat on |x| < 1, edges of width 0.05.
    return torch.sigmoid((1 - x[:, 0].abs()) / 0.05)


WIDE = Box.cube(-3.0, 3.0, 1)


def small_mlp(seed: int = 0, width: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 2))


def test_gaussian_packet_reaches_the_bound_exactly_with_quadrature():
    s = packet_spreads(gaussian, WIDE, method="quadrature", grid_points=401)
    assert s.delta_x == pytest.approx(SIGMA, rel=1e-5)
    assert s.delta_p == pytest.approx(1 / (2 * SIGMA), rel=1e-5)
    assert s.product == pytest.approx(0.5, abs=1e-5)
    assert s.product_stderr < 1e-4
    assert s.lower_bound == 0.5 and s.converged


@pytest.mark.parametrize("method", ["mc", "qmc"])
def test_gaussian_packet_product_is_one_half_within_error_bars(method):
    s = packet_spreads(gaussian, WIDE, method=method, n=8192,
                       generator=torch.Generator().manual_seed(1))
    assert 0 < s.product_stderr < 0.05
    assert abs(s.product - 0.5) < 4 * s.product_stderr
    assert abs(s.delta_x - SIGMA) < 4 * s.delta_x_stderr
    assert s.n_evaluations == 8192 and s.method == method


@pytest.mark.parametrize("shape", [two_bumps, plateau])
def test_other_shapes_exceed_one_half(shape):
    exact = packet_spreads(shape, WIDE, method="quadrature", grid_points=801)
    qmc = packet_spreads(shape, WIDE, method="qmc", n=8192)
    assert exact.product > 0.6
    assert qmc.product - 0.5 > 5 * qmc.product_stderr
    assert abs(qmc.product - exact.product) < 4 * qmc.product_stderr + 1e-3


def _shifted_gaussian():
    """A shifted 2-D Gaussian packet (mean ``mu``, widths ``sg``) whose moments are known in
    closed form."""
    mu, sg = torch.tensor([0.5, -0.3]), torch.tensor([0.2, 0.4])

    def packet(x):
        return torch.exp(-(((x - mu) / sg) ** 2).sum(1) / 4)

    return mu, sg, packet


def test_shifted_gaussian_per_element_moments():
    mu, sg, packet = _shifted_gaussian()

    box = Box.cube(-3.0, 3.0, 2)
    exact = packet_spreads(packet, box, method="quadrature", grid_points=201)
    torch.testing.assert_close(exact.mean_x, mu, atol=1e-4, rtol=0)
    torch.testing.assert_close(exact.delta_x_i, sg, atol=1e-4, rtol=0)
    torch.testing.assert_close(exact.delta_p_i, 1 / (2 * sg), rtol=1e-4, atol=0)
    torch.testing.assert_close(exact.mean_p, torch.zeros(2), atol=1e-4, rtol=0)
    assert exact.delta_x == pytest.approx(float(sg.norm()), rel=1e-4)
    # Cauchy–Schwarz: the d-element product is bounded by d/2, reached for a Gaussian.
    assert exact.product == pytest.approx(float(sg.norm() * (1 / (2 * sg)).norm()), rel=1e-4)
    assert exact.lower_bound == 1.0
    qmc = packet_spreads(packet, box, method="qmc", n=8192)
    torch.testing.assert_close(qmc.mean_x, mu, atol=0.02, rtol=0)
    torch.testing.assert_close(qmc.delta_x_i, sg, atol=0, rtol=0.03)


def test_fixed_axis_is_a_slice():
    packet = _shifted_gaussian()[2]

    sliced = Box(torch.tensor([-3.0, 0.1]), torch.tensor([3.0, 0.1]))
    s = packet_spreads(packet, sliced, method="quadrature")
    assert s.delta_x == pytest.approx(0.2, rel=1e-4)
    assert s.delta_p == pytest.approx(2.5, rel=1e-4)
    assert float(s.mean_x[1]) == pytest.approx(0.1)
    assert float(s.delta_x_i[1]) == 0.0 and s.lower_bound == 0.5


@pytest.mark.parametrize("method", ["mc", "qmc", "importance"])
def test_estimators_agree_with_quadrature_on_a_network(method):
    model = small_mlp()
    box = Box.cube(-1.0, 1.0, 2)
    exact = class_spreads(model, [0, 1], box, method="quadrature", grid_points=201)
    data = torch.rand(64, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    est = class_spreads(model, [0, 1], box, method=method, n=8192, data=data,
                        generator=torch.Generator().manual_seed(2))
    for y in (0, 1):
        e, q = est[y], exact[y]
        assert q.product_stderr < 1e-3 * q.product
        for key in ("delta_x", "delta_p", "product"):
            se = getattr(e, f"{key}_stderr")
            assert 0 < se < 0.1 * getattr(q, key)
            assert abs(getattr(e, key) - getattr(q, key)) < 4 * se + 1e-6, (method, y, key)


def test_class_spreads_leaves_model_untouched():
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    model[0].weight.requires_grad_(False)
    model[2].weight.grad = torch.ones_like(model[2].weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = class_spreads(model, [0, 2], Box.cube(-1.0, 1.0, 2), method="qmc", n=512)
    assert set(out) == {0, 2}
    assert model.training and model[1].training
    assert not model[0].weight.requires_grad and model[2].weight.requires_grad
    assert model[0].bias.grad is None and model[2].bias.grad is None
    assert torch.equal(model[2].weight.grad, torch.ones_like(model[2].weight))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_image_shaped_box_and_reproducibility():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4))
    box = Box.cube(0.0, 1.0, (1, 4, 4))
    a = class_spreads(model, [1, 3], box, n=256, generator=torch.Generator().manual_seed(5),
                      rtol=1.0)
    b = class_spreads(model, [1, 3], box, n=256, generator=torch.Generator().manual_seed(5),
                      rtol=1.0)
    assert a[1].mean_x.shape == (1, 4, 4) and a[3].delta_p_i.shape == (1, 4, 4)
    assert a[1].product == b[1].product and a[3].delta_x == b[3].delta_x
    assert math.isfinite(a[1].delta_p) and a[1].lower_bound == 8.0


def test_convergence_flag_and_warning():
    with pytest.warns(ConvergenceWarning):
        s = packet_spreads(two_bumps, WIDE, method="mc", n=64, rtol=1e-4)
    assert not s.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert packet_spreads(gaussian, WIDE, method="quadrature").converged


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(UncertaintyError, match="method"):
        packet_spreads(gaussian, WIDE, method="simpson")
    with pytest.raises(UncertaintyError, match="qmc"):
        packet_spreads(gaussian, Box.cube(0.0, 1.0, 5), method="quadrature")
    with pytest.raises(UncertaintyError, match="data"):
        packet_spreads(gaussian, WIDE, method="importance")
    with pytest.raises(UncertaintyError, match="upper"):
        Box(torch.ones(2), torch.zeros(2))
    with pytest.raises(UncertaintyError, match="labels"):
        class_spreads(small_mlp(), [5], Box.cube(-1.0, 1.0, 2), n=64)


def test_input_gradient_cosine_matches_hand_computation_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    x = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    cos, correct = input_gradient_cosine(model, x, y)
    w, b = model.weight.detach(), model.bias.detach()
    logits = x @ w.T + b
    grad = (torch.softmax(logits, 1) - nn.functional.one_hot(y, 4).float()) @ w  # ∂CE/∂x
    expected = (x * grad).sum(1) / (x.norm(dim=1) * grad.norm(dim=1))
    torch.testing.assert_close(cos, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(correct, logits.argmax(1) == y)
    assert model.weight.grad is None


def test_float64_model_with_default_float32_box() -> None:
    from scirobust.uncertainty import Box, class_spreads

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    box = Box.cube(-1.0, 1.0, 2)
    assert box.lower.dtype == torch.float32
    spreads = class_spreads(model, [0, 1], box, method="quadrature", grid_points=21)
    single = class_spreads(model.float(), [0, 1], box, method="quadrature", grid_points=21)
    assert spreads[0].delta_x == pytest.approx(single[0].delta_x, rel=1e-4)


# --------------------------------------------------------------------- boundary term, bound
# Truncated Gaussian packet ψ ∝ exp(−(x − μ)²/4σ²) on [a, b]: ψ² is the N(μ, σ²) density
# truncated to the box, so ⟨x⟩ and the boundary term B = [(x − ⟨x⟩)ψ²]_a^b are closed-form.
MU, SG, A, B = 0.3, 0.5, -1.0, 1.0


def _truncated_gaussian_moments(mu, sg, a, b):
    def phi(z):
        return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    def cdf(z):
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    al, be = (a - mu) / sg, (b - mu) / sg
    z = cdf(be) - cdf(al)
    mean = mu + sg * (phi(al) - phi(be)) / z
    boundary = ((b - mean) * phi(be) - (a - mean) * phi(al)) / (sg * z)
    return mean, boundary


def truncated(x):
    return torch.exp(-((x[:, 0] - MU) ** 2) / (4 * SG**2))


def test_commutator_of_attack_and_feature_operators_is_identity_by_autograd():
    # Paper 004 / 001 Eq. 7: [p̂_i, x̂_j]ψ = δ_ij ψ with p̂_i = ∂/∂x_i (no −i), for the
    # cross-entropy packet of a small network (β only rescales both sides).
    model = small_mlp(seed=3).double()
    x = (torch.rand(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
         * 4 - 2).requires_grad_(True)

    def psi(z):
        return nn.functional.cross_entropy(model(z), torch.zeros(z.shape[0], dtype=torch.long),
                                           reduction="none")

    values = psi(x)
    (p_psi,) = torch.autograd.grad(values.sum(), x, retain_graph=True)  # p̂ψ, per sample
    assert p_psi.abs().max() > 1e-3  # a non-trivial packet
    for i in range(2):
        (p_x_psi,) = torch.autograd.grad((x[:, i] * values).sum(), x, retain_graph=True)
        for j in range(2):
            commutator = p_x_psi[:, j] - x[:, i].detach() * p_psi[:, j]  # (p̂_j x̂_i − x̂_i p̂_j)ψ
            expected = values.detach() if i == j else torch.zeros_like(values)
            torch.testing.assert_close(commutator, expected, rtol=0, atol=1e-12)


def test_bound_with_boundary_term_on_a_truncated_gaussian():
    mean, boundary = _truncated_gaussian_moments(MU, SG, A, B)
    assert boundary > 0.25  # the packet is far from zero on the box faces
    box = Box.cube(A, B, 1)
    s = packet_spreads(truncated, box, method="quadrature", grid_points=401)
    assert float(s.mean_x) == pytest.approx(mean, rel=1e-7)
    assert float(s.boundary_term_i) == pytest.approx(boundary, rel=1e-6)
    assert float(s.boundary_term_faces_i) == pytest.approx(boundary, rel=1e-6)
    assert float(s.boundary_term_i_stderr) < 1e-6
    assert float(s.bound_rhs_i) == pytest.approx(0.5 * (1 - boundary), rel=1e-6)
    # The papers' Δx·Δp ≥ ½ fails on this box; the bound with the boundary term holds, and a
    # Gaussian saturates its sharper form Δx_iΔp_i ≥ ½|1 − B_i| (∂ψ − ⟨p⟩ψ ∝ (x − ⟨x⟩)ψ).
    assert s.product < 0.4
    assert s.bound_holds and bool(s.bound_holds_i.all())
    assert float(s.bound_lhs_i) >= float(s.bound_rhs_i)
    assert s.product == pytest.approx(float(s.bound_rhs_i), rel=1e-6)
    grad_norm = float(s.bound_lhs_i) / s.delta_x  # ‖∂ψ‖² = Δp² + ⟨p⟩²
    assert grad_norm**2 == pytest.approx(s.delta_p**2 + float(s.mean_p) ** 2, rel=1e-6)

    q = packet_spreads(truncated, box, method="qmc", n=8192)
    se = float(q.boundary_term_i_stderr)
    assert 0 < se < 1e-2 and abs(float(q.boundary_term_i) - boundary) < 4 * se
    assert torch.isnan(q.boundary_term_faces_i).all()  # faces only on request (face_draws)
    assert q.bound_holds and 0 < float(q.bound_lhs_i_stderr) < 1e-2
    # Face integral by Monte Carlo: an independent check of the integration by parts. The
    # face draws come after the volume draws, so every other number is unchanged.
    f = packet_spreads(truncated, box, method="qmc", n=8192, face_draws=512)
    assert float(f.boundary_term_faces_i) == pytest.approx(boundary, rel=1e-3)  # 1-D: exact
    assert (f.product, f.product_stderr) == (q.product, q.product_stderr)
    assert torch.equal(f.boundary_term_i, q.boundary_term_i)


def test_boundary_term_on_the_faces_of_a_2d_box():
    # Separable packet: truncated on axis 0, vanishing at the edges of axis 1.
    def packet(x):
        return truncated(x) * torch.exp(-(x[:, 1] ** 2) / (4 * 0.3**2))

    _, boundary = _truncated_gaussian_moments(MU, SG, A, B)
    box = Box(torch.tensor([A, -3.0]), torch.tensor([B, 3.0]))
    s = packet_spreads(packet, box, method="quadrature", grid_points=201)
    torch.testing.assert_close(s.boundary_term_i, torch.tensor([boundary, 0.0]),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(s.boundary_term_faces_i, s.boundary_term_i, rtol=0, atol=1e-6)
    assert s.bound_holds_i.tolist() == [True, True]
    assert float(s.delta_x_i[1] * s.delta_p_i[1]) == pytest.approx(0.5, rel=1e-5)


def test_boundary_term_vanishes_when_the_packet_vanishes_at_the_edges():
    def sine(x):  # ψ ∝ sin(π(x + 1)/2): exactly zero on both faces of [−1, 1]
        return torch.sin(math.pi * (x[:, 0] + 1) / 2)

    s = packet_spreads(sine, Box.cube(-1.0, 1.0, 1), method="quadrature", grid_points=401)
    assert abs(float(s.boundary_term_faces_i)) < 1e-12
    assert abs(float(s.boundary_term_i)) < 1e-6
    assert float(s.bound_rhs_i) == pytest.approx(0.5, abs=1e-6)
    assert s.product > 0.5 and s.bound_holds  # B = 0 recovers the papers' Δx·Δp ≥ ½
    g = packet_spreads(gaussian, WIDE, method="quadrature", grid_points=401)
    assert abs(float(g.boundary_term_i)) < 1e-6 and abs(float(g.boundary_term_faces_i)) < 1e-12


@pytest.mark.parametrize("method", ["qmc", "importance"])
def test_network_boundary_term_agrees_across_estimators(method):
    model = small_mlp()
    box = Box.cube(-1.0, 1.0, 2)
    exact = class_spreads(model, [0, 1], box, method="quadrature", grid_points=101)
    data = torch.rand(64, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    est = class_spreads(model, [0, 1], box, method=method, n=8192, data=data,
                        generator=torch.Generator().manual_seed(2), face_draws=1024)
    for y in (0, 1):
        e, q = est[y], exact[y]
        torch.testing.assert_close(q.boundary_term_faces_i, q.boundary_term_i, rtol=0,
                                   atol=1e-4)
        face_se = e.boundary_term_faces_i_stderr
        assert bool(((face_se > 0) & (face_se < 0.02)).all())
        assert bool(((e.boundary_term_faces_i - q.boundary_term_i).abs() < 4 * face_se).all())
        assert (q.boundary_term_i - 1).abs().max() < 0.2  # CE does not vanish on the faces
        assert q.bound_holds and e.bound_holds
        se = e.boundary_term_i_stderr
        assert bool((se > 0).all())
        assert bool(((e.boundary_term_i - q.boundary_term_i).abs() < 4 * se + 1e-6).all())


def test_paper_aggregation_fields():
    _, sg, packet = _shifted_gaussian()

    box = Box.cube(-3.0, 3.0, 2)
    s = packet_spreads(packet, box, method="quadrature", grid_points=201)
    dx_paper, dp_paper = math.sqrt(float(sg.sum())), math.sqrt(float((1 / (2 * sg)).sum()))
    assert s.delta_x_paper == pytest.approx(dx_paper, rel=1e-4)
    assert s.delta_p_paper == pytest.approx(dp_paper, rel=1e-4)
    assert s.product_paper == pytest.approx(dx_paper * dp_paper, rel=1e-4)
    q = packet_spreads(packet, box, method="qmc", n=8192)
    for key in ("delta_x_paper", "delta_p_paper", "product_paper"):
        se = getattr(q, f"{key}_stderr")
        assert se > 0 and abs(getattr(q, key) - getattr(s, key)) < 4 * se + 1e-6


def test_fixed_axis_boundary_fields_are_nan():
    sliced = Box(torch.tensor([A, 0.1]), torch.tensor([B, 0.1]))
    s = packet_spreads(truncated, sliced, method="quadrature")
    assert math.isnan(float(s.boundary_term_i[1])) and math.isnan(float(s.bound_lhs_i[1]))
    assert s.bound_holds_i.tolist() == [True, False] and s.bound_holds


def test_interpretation_notes_state_the_missing_i_and_the_aggregation():
    from scirobust.uncertainty import INTERPRETATION_NOTES

    text = " ".join(INTERPRETATION_NOTES)
    assert "without the −i" in text and "interpretation" in text
    assert "(Σ_i Δx_i²)^½" in text and "(Σ_i Δx_i)^½" in text and "product_paper" in text
