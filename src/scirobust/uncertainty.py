"""The uncertainty relation of neural networks (papers 001 §3 and 004; SCIENCE.md §9).

The *neural packet* of class ``Y`` is the loss normalised over the input domain,
``ψ_Y(X) = l(f(X), Y)/√β`` with ``β = ∫ l² dX``. Its spreads are

* ``⟨x_i⟩ = ∫ψ² x_i dX`` and ``Δx_i² = ∫ψ² (x_i − ⟨x_i⟩)² dX``  (input units),
* ``⟨p_i⟩ = ∫ψ ∂ψ/∂x_i dX`` and ``Δp_i² = ∫(∂ψ/∂x_i)² dX − ⟨p_i⟩²``  (1/input units),
* ``Δx = (Σ_i Δx_i²)^½``, ``Δp = (Σ_i Δp_i²)^½`` and the dimensionless product ``Δx·Δp``.

Every quantity is a ratio of integrals over the same domain, so the domain volume and ``β``
cancel: numerators and denominator are estimated from the *same* samples and the standard
errors come from a delete-one-group jackknife (independent sample groups for Monte Carlo and
importance sampling, independent scramblings for quasi-Monte Carlo), which accounts for the
correlation between numerator and denominator.

Bound. When ψ vanishes on the boundary of the domain, each element obeys Δx_i·Δp_i ≥ ½, and
by Cauchy–Schwarz Δx·Δp ≥ Σ_i Δx_iΔp_i ≥ d/2 for d free elements (the papers' "≥ ½" is the
one-element statement). On a box where the loss does not vanish at the edges the bound can
fail: a constant loss gives Δp = 0. `Spreads.lower_bound` holds d/2 for reference.

Boundary term (issue #17 item 9). The papers' proof integrates by parts; on a box
``a_i ≤ x_i ≤ b_i`` with ``X_i = x_i − ⟨x_i⟩`` and ψ real, normalised (∫ψ² dX = 1),

    ∫ X_i ψ ∂_iψ dX = ½ ∫ X_i ∂_i(ψ²) dX = ½ (B_i − 1),
    B_i = ∫ dX_{¬i} [ (x_i − ⟨x_i⟩) ψ² ]_{x_i = a_i}^{x_i = b_i}      (dimensionless),

where ``dX_{¬i}`` runs over the other free axes (input units^(d−1)), ψ² is in input
units^(−d) and ``x_i − ⟨x_i⟩`` in input units. Cauchy–Schwarz on the left side gives

    Δx_i · ‖∂_iψ‖ ≥ ½ |1 − B_i|,      ‖∂_iψ‖ = (∫(∂_iψ)² dX)^½ = (Δp_i² + ⟨p_i⟩²)^½,

and, because ∫X_iψ² dX = 0 lets ⟨p_i⟩ψ be subtracted from ∂_iψ, also the sharper
Δx_i·Δp_i ≥ ½|1 − B_i|. B_i = 0 when ψ vanishes on the faces x_i = a_i, b_i, which recovers
the papers' Δx_iΔp_i ≥ ½. `Spreads.boundary_term_i` is B_i from the volume form
``B_i = 1 + 2∫X_iψ∂_iψ dX`` (same samples and weights as every other spread, with its
standard error); the bound check then reads ``bound_lhs_i ≥ bound_rhs_i``. With positive
weights that check is Cauchy–Schwarz on the weighted samples, so it holds by construction;
the real test of the integration by parts is `Spreads.boundary_term_faces_i`, B_i evaluated
directly on the faces (quadrature: the grid's edge points with the other axes' Simpson
weights, always; sampling methods: ``face_draws`` uniform draws projected on the faces, on
request), which must agree with ``boundary_term_i``. See `INTERPRETATION_NOTES` for what is
an interpretation of the papers.

A zero-width axis of the `Box` (``lower == upper``) is held fixed: the integrals run over the
other axes only (paper 001 Fig. 4 evaluates its 2-D demo on the slice x₂ = 0 this way).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scirobust.attacks import preserved_model_state
from scirobust.errors import DataError, ScirobustError

METHODS = ("quadrature", "mc", "qmc", "importance")

INTERPRETATION_NOTES: tuple[str, ...] = (
    "Paper 004 (Table 1) and paper 001 (Eq. 2) write the attack operator as p̂_i = ∂/∂x_i, "
    "without the −i of quantum mechanics (p̂ = −i∂/∂x). The real operator ∂/∂x_i is "
    "anti-Hermitian, so ⟨p̂_i⟩ = ∫ψ∂_iψ dX is a boundary term and ⟨p̂_i²⟩ = ∫ψ∂_i²ψ dX = "
    "−∫(∂_iψ)² dX + boundary is not a variance. Our Δp_i² = ∫(∂_iψ)² dX − ⟨p_i⟩² is the "
    "Hermitian momentum's spread (SCIENCE.md §9): an interpretation of the papers' Δp, not "
    "their literal formula. The commutator [p̂_i, x̂_i]ψ = ψ holds either way.",
    "The papers' bound Δx_iΔp_i ≥ ½ assumes the boundary term of the integration by parts "
    "vanishes; on a box we report B_i and check Δx_i·‖∂_iψ‖ ≥ ½|1 − B_i| "
    "(Spreads.bound_lhs_i, bound_rhs_i, bound_holds_i).",
    "Aggregation: we report Δx = (Σ_i Δx_i²)^½ and Δp = (Σ_i Δp_i²)^½ (Euclidean norms, in "
    "input units and 1/input units; Δx·Δp ≥ d/2 by Cauchy–Schwarz when B_i = 0). Paper 004 "
    "writes Δx = (Σ_i Δx_i)^½ and Δp = (Σ_i Δp_i)^½ (units input^½ and input^−½); those are "
    "Spreads.delta_x_paper, delta_p_paper and product_paper.",
)


class UncertaintyError(ScirobustError, ValueError):
    """Packet integrals asked for with invalid arguments."""


class ConvergenceWarning(UserWarning):
    """The relative standard error of Δx·Δp exceeds the requested tolerance."""


@dataclass(frozen=True)
class Box:
    """Input domain of the packet integrals: ``lower ≤ X ≤ upper`` element-wise.

    ``lower``/``upper`` have shape ``(d,)`` or one input sample's shape (e.g. ``(1, 8, 8)``);
    that shape is what ``loss_fn`` receives after the batch dimension. Axes with
    ``lower == upper`` are held fixed (a slice). Volume = ``prod(upper − lower)`` over the free
    axes.
    """

    lower: Tensor
    upper: Tensor

    def __post_init__(self) -> None:
        lower = torch.as_tensor(self.lower)
        upper = torch.as_tensor(self.upper)
        if not lower.is_floating_point():
            lower = lower.to(torch.get_default_dtype())
        upper = upper.to(lower.dtype)
        if lower.shape != upper.shape or lower.numel() == 0:
            raise UncertaintyError(
                f"Box lower and upper need the same non-empty shape; got {tuple(lower.shape)} "
                f"and {tuple(upper.shape)}."
            )
        if not (torch.isfinite(lower).all() and torch.isfinite(upper).all()):
            raise UncertaintyError("Box bounds must be finite (the integrals need a volume).")
        if (upper < lower).any():
            raise UncertaintyError("Box needs upper >= lower element-wise.")
        if not (upper > lower).any():
            raise UncertaintyError("Box has zero width on every axis; nothing to integrate.")
        object.__setattr__(self, "lower", lower.detach())
        object.__setattr__(self, "upper", upper.detach())

    @classmethod
    def cube(cls, low: float, high: float, shape: Sequence[int] | int) -> Box:
        """The box ``[low, high]`` on every element of a sample of ``shape``."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return cls(torch.full(shape, float(low)), torch.full(shape, float(high)))

    @property
    def shape(self) -> torch.Size:
        """Shape of one sample."""
        return self.lower.shape

    @property
    def free(self) -> Tensor:
        """Boolean mask (sample shape) of the axes integrated over."""
        return self.upper > self.lower

    @property
    def volume(self) -> float:
        """Product of the widths of the free axes (input units^d)."""
        width = (self.upper - self.lower)[self.free]
        return float(torch.exp(torch.log(width.double()).sum()))


@dataclass(frozen=True)
class Spreads:
    """Spreads of the neural packet of one class label.

    ``delta_x`` in input units, ``delta_p`` in 1/input units, ``product`` dimensionless; each
    ``*_stderr`` is a jackknife standard error (a grid-refinement error estimate for
    quadrature). Per-element tensors have the sample shape; fixed (zero-width) axes hold their
    value in ``mean_x`` and zeros elsewhere. ``converged`` is False when ``product_stderr``
    exceeds ``rtol·product``; ``lower_bound`` = d/2 for d free elements (see module docstring).

    Boundary term and bound (module docstring): ``boundary_term_i`` = B_i (dimensionless,
    volume form 1 + 2∫X_iψ∂_iψ dX) with ``boundary_term_i_stderr``; ``boundary_term_faces_i``
    = B_i integrated on the box faces, with ``boundary_term_faces_i_stderr`` (quadrature
    always; sampling methods with ``face_draws > 0``, NaN otherwise); ``bound_lhs_i`` =
    Δx_i·‖∂_iψ‖ (dimensionless) with ``bound_lhs_i_stderr``; ``bound_rhs_i`` = ½|1 − B_i|;
    ``bound_holds_i`` = lhs ≥ rhs (up to 1e-9 relative rounding). Fixed axes hold NaN/False.
    ``delta_x_paper`` = (Σ_i Δx_i)^½ (input units^½), ``delta_p_paper`` = (Σ_i Δp_i)^½
    (input units^−½) and ``product_paper`` = their product: paper 004's aggregation, next to
    ours (see `INTERPRETATION_NOTES`).
    """

    delta_x: float
    delta_x_stderr: float
    delta_p: float
    delta_p_stderr: float
    product: float
    product_stderr: float
    mean_x: Tensor
    mean_p: Tensor
    delta_x_i: Tensor
    delta_p_i: Tensor
    n_evaluations: int
    method: str
    converged: bool = True
    lower_bound: float = 0.5
    boundary_term_i: Tensor | None = None
    boundary_term_i_stderr: Tensor | None = None
    boundary_term_faces_i: Tensor | None = None
    boundary_term_faces_i_stderr: Tensor | None = None
    bound_lhs_i: Tensor | None = None
    bound_lhs_i_stderr: Tensor | None = None
    bound_rhs_i: Tensor | None = None
    bound_holds_i: Tensor | None = None
    delta_x_paper: float = math.nan
    delta_x_paper_stderr: float = math.nan
    delta_p_paper: float = math.nan
    delta_p_paper_stderr: float = math.nan
    product_paper: float = math.nan
    product_paper_stderr: float = math.nan

    @property
    def bound_holds(self) -> bool:
        """True when ``bound_lhs_i ≥ bound_rhs_i`` on every free axis."""
        if self.bound_holds_i is None or self.bound_lhs_i is None:
            return False
        free = ~torch.isnan(self.bound_lhs_i)
        return bool(self.bound_holds_i[free].all())

    @property
    def relative_stderr(self) -> float:
        """``product_stderr / product`` (NaN when the product is zero)."""
        return self.product_stderr / self.product if self.product > 0 else float("nan")


# --------------------------------------------------------------------------- estimator core
# Per sample, with weight w (1/q for importance sampling, 1 for uniform draws, quadrature
# weights on a grid) we accumulate w·[L², L²x, L²x², G², L·G] per class; every spread is a
# ratio of these sums, so constants (volume, β, the normalisation of w) cancel.


def _spreads_from_sums(sums: Tensor, d: int) -> dict[str, Tensor]:
    """Spreads from accumulated sums of shape (..., 1 + 4d), or (..., 1 + 7d) with the
    boundary-term columns appended; x is centred (see _Accumulator)."""
    a = sums[..., :1]
    bx, cx, dg, el = (sums[..., 1 + k * d : 1 + (k + 1) * d] for k in range(4))
    mean_x = bx / a
    var_x = (cx / a - mean_x**2).clamp_min(0.0)
    mean_p = el / a
    var_p = (dg / a - mean_p**2).clamp_min(0.0)
    delta_x = var_x.sum(-1).sqrt()
    delta_p = var_p.sum(-1).sqrt()
    dx_i, dp_i = var_x.sqrt(), var_p.sqrt()
    base = {
        "mean_x": mean_x, "mean_p": mean_p, "dx_i": dx_i, "dp_i": dp_i,
        "delta_x": delta_x, "delta_p": delta_p, "product": delta_x * delta_p,
    }
    if sums.shape[-1] == 1 + 4 * d:
        return base
    xlg, f0, f1 = (sums[..., 1 + k * d : 1 + (k + 1) * d] for k in range(4, 7))
    # B_i = 1 + 2∫(x_i − ⟨x_i⟩)ψ∂_iψ dX (volume form); faces: ∫dX_¬i [(x_i − ⟨x_i⟩)ψ²]_a^b.
    boundary = 1 + 2 * (xlg / a - mean_x * mean_p)
    boundary_faces = (f1 - mean_x * f0) / a
    lhs = dx_i * (dg / a).clamp_min(0.0).sqrt()
    dx_paper, dp_paper = dx_i.sum(-1).sqrt(), dp_i.sum(-1).sqrt()
    return base | {
        "boundary": boundary, "boundary_faces": boundary_faces, "lhs": lhs,
        "dx_paper": dx_paper, "dp_paper": dp_paper, "product_paper": dx_paper * dp_paper,
    }


class _Accumulator:
    """Weighted sums per group (rows) and class, in float64."""

    def __init__(self, n_groups: int, n_classes: int, d: int, center: Tensor) -> None:
        self.sums = torch.zeros(n_groups, n_classes, 1 + 4 * d, dtype=torch.float64)
        # Boundary-term sums [L·G·x, L²·face, L²·x·face], kept apart so that the spreads
        # above are computed from exactly the same tensor (bit for bit) as before they existed.
        self.extra = torch.zeros(n_groups, n_classes, 3 * d, dtype=torch.float64)
        self.center = center.double()
        self.d = d

    def add(
        self, x: Tensor, loss: Tensor, grad: Tensor, weights: Tensor, face: Tensor | None = None
    ) -> None:
        """x, grad: (b, d) free coordinates; loss: (b, K); grad per class: (K, b, d);
        weights: (groups, b); face: (b, d) = +1 on the face x_i = b_i, −1 on x_i = a_i, else 0
        (quadrature grids only; the caller rescales those columns by the endpoint weight)."""
        xc = x.double() - self.center  # centring keeps Δx² = ⟨x²⟩ − ⟨x⟩² free of cancellation
        lo = loss.double().T[:, :, None]  # (K, b, 1)
        g = grad.double()
        l2 = lo**2
        w = weights.double()
        d = self.d
        feats = torch.cat([l2, l2 * xc, l2 * xc**2, g**2, lo * g], dim=-1)  # (K, b, 1+4d)
        self.sums += torch.einsum("gb,kbm->gkm", w, feats)
        extra = [lo * g * xc]
        if face is not None:
            s = face.double()
            extra += [l2 * s, l2 * xc * s]
        self.extra[..., : len(extra) * d] += torch.einsum(
            "gb,kbm->gkm", w, torch.cat(extra, dim=-1)
        )

    @property
    def all_sums(self) -> Tensor:
        """Sums with the boundary-term columns appended: (groups, K, 1 + 7d)."""
        return torch.cat([self.sums, self.extra], dim=-1)


def _jackknife_all(acc: _Accumulator) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """`_jackknife` of the boundary-term quantities, then of the spreads on their own sums."""
    est, err = _jackknife(acc.all_sums, acc.d)
    base_est, base_err = _jackknife(acc.sums, acc.d)
    return est | base_est, err | base_err


def _jackknife(sums: Tensor, d: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Estimates from all groups and delete-one-group jackknife standard errors."""
    total = sums.sum(0)
    est = _spreads_from_sums(total, d)
    n_groups = sums.shape[0]
    loo = _spreads_from_sums(total[None] - sums, d)
    err = {}
    for key, value in loo.items():
        centred = value - value.mean(0, keepdim=True)
        err[key] = ((n_groups - 1) / n_groups * (centred**2).sum(0)).sqrt()
    return est, err


def _evaluate(
    loss_fn: Callable[[Tensor], Tensor], x_free: Tensor, template: Tensor, free: Tensor,
    shape: torch.Size,
) -> tuple[Tensor, Tensor]:
    """Losses (b, K) and input-gradients (K, b, d_free) at the free coordinates ``x_free``."""
    b = x_free.shape[0]
    x = template.expand(b, -1).clone()
    x[:, free] = x_free.to(template.dtype)
    x = x.reshape(b, *shape).requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(x)
        if not isinstance(loss, Tensor) or loss.shape[0] != b or loss.dim() not in (1, 2):
            got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise UncertaintyError(
                f"loss_fn must return one loss per sample, shape ({b},); got {got}."
            )
        loss2 = loss if loss.dim() == 2 else loss[:, None]
        if not loss2.requires_grad:
            raise UncertaintyError(
                "The loss does not depend on the input; ∂ψ/∂x cannot be computed (check for "
                ".detach() or non-differentiable operations in loss_fn)."
            )
        grads = []
        n_classes = loss2.shape[1]
        for k in range(n_classes):
            (g,) = torch.autograd.grad(
                loss2[:, k].sum(), x, retain_graph=k < n_classes - 1, allow_unused=True
            )
            g = torch.zeros_like(x) if g is None else g
            grads.append(g.reshape(b, -1)[:, free])
    loss2 = loss2.detach()
    grad = torch.stack(grads).detach()
    if not (torch.isfinite(loss2).all() and torch.isfinite(grad).all()):
        raise DataError("loss_fn or its input-gradient returned NaN/Inf inside the domain.")
    return loss2, grad


def _simpson_weights(n: int, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """Composite Simpson weights on n (odd) points and on the every-other-point subgrid."""
    h = (hi - lo) / (n - 1)
    fine = torch.ones(n, dtype=torch.float64)
    fine[1:-1:2], fine[2:-1:2] = 4.0, 2.0
    fine *= h / 3
    m = (n + 1) // 2
    coarse_sub = torch.ones(m, dtype=torch.float64)
    coarse_sub[1:-1:2], coarse_sub[2:-1:2] = 4.0, 2.0
    coarse_sub *= 2 * h / 3
    coarse = torch.zeros(n, dtype=torch.float64)
    coarse[::2] = coarse_sub
    return fine, coarse


def _seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator))


class _Integrator:
    """``loss_fn`` on the free axes of a `Box`, evaluated in batches into weighted sums."""

    def __init__(
        self, loss_fn: Callable[[Tensor], Tensor], domain: Box, batch_size: int
    ) -> None:
        self.loss_fn = loss_fn
        self.domain = domain
        self.batch_size = batch_size
        self.free = domain.free.reshape(-1)
        self.lower = domain.lower.reshape(-1)
        upper = domain.upper.reshape(-1)
        self.lo, self.hi = self.lower[self.free].double(), upper[self.free].double()
        self.d = int(self.free.sum())
        self.template = self.lower[None].clone()
        self.acc: _Accumulator | None = None
        self.n_eval = 0
        self.w_total = 0.0  # Σ of the sample weights (normalises sampling methods' faces)

    def feed(self, x: Tensor, w: Tensor, face: Tensor | None = None) -> None:
        """Add draws ``x`` (b, d) with weights ``w`` (groups, b) and optional face signs."""
        batch_size = self.batch_size
        for start in range(0, x.shape[0], batch_size):
            xb, wb = x[start:start + batch_size], w[:, start:start + batch_size]
            fb = None if face is None else face[start:start + batch_size]
            loss, grad = _evaluate(self.loss_fn, xb, self.template, self.free, self.domain.shape)
            if self.acc is None:
                self.acc = _Accumulator(w.shape[0], loss.shape[1], self.d, (self.lo + self.hi) / 2)
            self.acc.add(xb, loss, grad, wb, fb)
            self.n_eval += xb.shape[0]
            self.w_total += float(wb.double().sum())

    @property
    def accumulated(self) -> _Accumulator:
        """The sums filled by `feed` (at least one draw must have been fed)."""
        assert self.acc is not None
        return self.acc

    def to_sample(self, values: Tensor, fill: Tensor | None = None) -> Tensor:
        """``values`` on the free axes in a sample-shaped tensor (``fill`` or 0 elsewhere)."""
        base = torch.zeros_like(self.lower) if fill is None else fill.clone()
        base[self.free] = values.to(base.dtype)
        return base.reshape(self.domain.shape)


def _group_weights(weights: Tensor, n_groups: int) -> Tensor:
    """(n_groups, b) weights: draw j keeps its weight in the row of its consecutive group."""
    idx = torch.arange(weights.shape[0]) * n_groups // weights.shape[0]
    out = torch.zeros(n_groups, weights.shape[0], dtype=torch.float64)
    out[idx, torch.arange(weights.shape[0])] = weights.double()
    return out


def _multi_spreads(
    loss_fn: Callable[[Tensor], Tensor],
    domain: Box,
    *,
    method: str,
    n: int,
    batch_size: int,
    generator: torch.Generator | None,
    data: Tensor | None,
    grid_points: int,
    replicates: int,
    groups: int,
    rtol: float,
    uniform_fraction: float,
    bandwidth: float | None,
    face_draws: int = 0,
) -> list[Spreads]:
    """Shared engine: ``loss_fn`` returns (b,) or (b, K); one `Spreads` per column."""
    if method not in METHODS:
        raise UncertaintyError(f"Unknown method {method!r}; use one of {', '.join(METHODS)}.")
    if n < 2 or batch_size < 1:
        raise UncertaintyError(f"n must be >= 2 and batch_size >= 1; got {n}, {batch_size}.")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    integ = _Integrator(loss_fn, domain, batch_size)

    if method == "quadrature":
        est, err = _quadrature_estimates(integ, grid_points)
    elif method == "mc":
        est, err = _mc_estimates(integ, n, groups, generator)
    elif method == "qmc":
        est, err = _qmc_estimates(integ, n, replicates, generator)
    else:
        est, err = _importance_estimates(
            integ, data, n, groups, generator, uniform_fraction, bandwidth
        )

    if method == "quadrature":
        faces_est, faces_err = est["boundary_faces"], err["boundary_faces"]
    elif face_draws > 0:
        faces_est, faces_err = _face_integrals(
            loss_fn, integ.accumulated, est["mean_x"], integ.w_total, integ.lo, integ.hi,
            integ.template, integ.free, domain.shape, int(face_draws), batch_size, generator,
        )
    else:
        faces_est = faces_err = torch.full_like(est["boundary"], math.nan)

    out = []  # warned here so that stacklevel=3 names the caller of packet/class_spreads
    for k in range(integ.accumulated.sums.shape[1]):
        result = _class_result(integ, est, err, faces_est, faces_err, k, method, rtol)
        out.append(result)
        if not result.converged:
            product, product_se = result.product, result.product_stderr
            rel = product_se / product if product > 0 else math.inf
            warnings.warn(
                f"Δx·Δp ({method}, n={integ.n_eval}) has relative standard error {rel:.3g} > "
                f"rtol={rtol:g}; increase n or use method='qmc'.",
                ConvergenceWarning, stacklevel=3,
            )
    return out


def _quadrature_estimates(
    integ: _Integrator, grid_points: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Composite-Simpson estimates on a tensor grid and grid-refinement errors |S(h)−S(2h)|/3."""
    d = integ.d
    pts = grid_points + (1 - grid_points % 2)  # Simpson needs an odd count
    if pts < 5:
        raise UncertaintyError("grid_points must be >= 5 for quadrature.")
    if pts**d > 4_000_000:
        raise UncertaintyError(
            f"Quadrature on {d} free axes needs {pts}^{d} points; use method='qmc' (or "
            "'mc'/'importance') above 2 dimensions, or fewer grid_points."
        )
    grid, weights, face, endpoint = _simpson_grid(integ.lo, integ.hi, pts)
    integ.feed(grid, weights, face)
    acc = integ.accumulated
    # Face columns: the product weight on an edge point holds axis i's endpoint weight
    # (h/3 fine, 2h/3 coarse); dividing it out leaves the other axes' Simpson weights.
    acc.extra[..., d:] /= endpoint.repeat(1, 2)[:, None, :]
    est = _spreads_from_sums(acc.all_sums[0], d) | _spreads_from_sums(acc.sums[0], d)
    # Grid-refinement error |S(h) − S(2h)|/3: Richardson for O(h²) convergence, which is
    # what Simpson degrades to on the kinks of ReLU networks (conservative when smooth).
    coarse = _spreads_from_sums(acc.all_sums[1], d) | _spreads_from_sums(acc.sums[1], d)
    err = {k: (est[k] - coarse[k]).abs() / 3 for k in est}
    return est, err


def _simpson_grid(lo: Tensor, hi: Tensor, pts: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Tensor grid of ``pts`` points per free axis (pts^d, d) in input units; its product
    Simpson weights (2, pts^d) (fine, coarse); face signs (pts^d, d) (+1 on x_i = b_i, −1 on
    x_i = a_i); and each axis's endpoint weight (2, d)."""
    d = lo.numel()
    axes, w_fine, w_coarse = [], [], []
    for i in range(d):
        axes.append(torch.linspace(float(lo[i]), float(hi[i]), pts, dtype=torch.float64))
        wf, wc = _simpson_weights(pts, float(lo[i]), float(hi[i]))
        w_fine.append(wf)
        w_coarse.append(wc)
    grid = torch.cartesian_prod(*axes).reshape(-1, d)
    wf_all = torch.ones(grid.shape[0], dtype=torch.float64)
    wc_all = torch.ones(grid.shape[0], dtype=torch.float64)
    for i in range(d):
        shape = [1] * d
        shape[i] = pts
        wf_all = (wf_all.reshape([pts] * d) * w_fine[i].reshape(shape)).reshape(-1)
        wc_all = (wc_all.reshape([pts] * d) * w_coarse[i].reshape(shape)).reshape(-1)
    first, last = torch.stack([ax[0] for ax in axes]), torch.stack([ax[-1] for ax in axes])
    face = (grid == last).double() - (grid == first).double()  # edge points of the grid
    endpoint = torch.stack([torch.stack([w[0] for w in w_fine]),
                            torch.stack([w[0] for w in w_coarse])])
    return grid, torch.stack([wf_all, wc_all]), face, endpoint


def _mc_estimates(
    integ: _Integrator, n: int, groups: int, generator: torch.Generator
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Estimates from ``n`` uniform draws, jackknifed over consecutive groups."""
    n_groups = max(2, min(groups, n))
    x = integ.lo + (integ.hi - integ.lo) * torch.rand(
        n, integ.d, generator=generator, dtype=torch.float64
    )
    integ.feed(x, _group_weights(torch.ones(n, dtype=torch.float64), n_groups))
    return _jackknife_all(integ.accumulated)


def _qmc_estimates(
    integ: _Integrator, n: int, replicates: int, generator: torch.Generator
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Estimates from independently scrambled Sobol sets, jackknifed over the sets."""
    d = integ.d
    if d > torch.quasirandom.SobolEngine.MAXDIM:
        raise UncertaintyError(f"QMC supports at most {torch.quasirandom.SobolEngine.MAXDIM}"
                               " free axes; use method='mc'.")
    reps = max(2, int(replicates))
    per = max(1, n // reps)
    for r in range(reps):
        engine = torch.quasirandom.SobolEngine(d, scramble=True, seed=_seed(generator))
        u = engine.draw(per, dtype=torch.float64)
        w = torch.zeros(reps, per, dtype=torch.float64)
        w[r] = 1.0
        integ.feed(integ.lo + (integ.hi - integ.lo) * u, w)
    return _jackknife_all(integ.accumulated)


def _importance_estimates(
    integ: _Integrator, data: Tensor | None, n: int, groups: int, generator: torch.Generator,
    uniform_fraction: float, bandwidth: float | None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Estimates from draws concentrated around ``data`` (weights 1/q), jackknifed over
    consecutive groups."""
    if data is None:
        raise UncertaintyError("method='importance' needs data=(N, *sample_shape) points "
                               "around which to concentrate the samples.")
    x, w = _importance_draws(data, integ.domain, integ.free, integ.lo, integ.hi, n, generator,
                             uniform_fraction, bandwidth)
    n_groups = max(2, min(groups, n))
    weights = _group_weights(w, n_groups)
    keep = w > 0  # draws outside the box carry zero weight: skip their evaluation
    integ.feed(x[keep], weights[:, keep])
    if integ.acc is None:
        raise UncertaintyError("No importance draw landed inside the domain.")
    return _jackknife_all(integ.acc)


def _class_result(
    integ: _Integrator, est: dict[str, Tensor], err: dict[str, Tensor], faces_est: Tensor,
    faces_err: Tensor, k: int, method: str, rtol: float,
) -> Spreads:
    """`Spreads` of class column ``k``, free-axis quantities placed in the sample shape."""
    full = integ.to_sample
    lower = integ.lower
    center = ((integ.lo + integ.hi) / 2).float()
    product, product_se = float(est["product"][k]), float(err["product"][k])
    converged = bool(product_se <= rtol * product) if product > 0 else False
    nan = torch.full_like(lower, math.nan)
    boundary = est["boundary"][k]
    lhs, rhs = est["lhs"][k], 0.5 * (1 - boundary).abs()
    holds = torch.zeros_like(lower, dtype=torch.bool)
    holds[integ.free] = lhs >= rhs * (1 - 1e-9)
    return Spreads(
        delta_x=float(est["delta_x"][k]), delta_x_stderr=float(err["delta_x"][k]),
        delta_p=float(est["delta_p"][k]), delta_p_stderr=float(err["delta_p"][k]),
        product=product, product_stderr=product_se,
        mean_x=full(est["mean_x"][k].float() + center, lower),
        mean_p=full(est["mean_p"][k]), delta_x_i=full(est["dx_i"][k]),
        delta_p_i=full(est["dp_i"][k]), n_evaluations=integ.n_eval, method=method,
        converged=converged, lower_bound=integ.d / 2,
        boundary_term_i=full(boundary, nan),
        boundary_term_i_stderr=full(err["boundary"][k], nan),
        boundary_term_faces_i=full(faces_est[k], nan),
        boundary_term_faces_i_stderr=full(faces_err[k], nan), bound_lhs_i=full(lhs, nan),
        bound_lhs_i_stderr=full(err["lhs"][k], nan), bound_rhs_i=full(rhs, nan),
        bound_holds_i=holds.reshape(integ.domain.shape),
        delta_x_paper=float(est["dx_paper"][k]),
        delta_x_paper_stderr=float(err["dx_paper"][k]),
        delta_p_paper=float(est["dp_paper"][k]),
        delta_p_paper_stderr=float(err["dp_paper"][k]),
        product_paper=float(est["product_paper"][k]),
        product_paper_stderr=float(err["product_paper"][k]),
    )


def _face_integrals(
    loss_fn: Callable[[Tensor], Tensor], acc: _Accumulator, mean_xc: Tensor, w_total: float,
    lo: Tensor, hi: Tensor, template: Tensor, free: Tensor, shape: torch.Size, m: int,
    batch_size: int, generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """B_i integrated on the faces by Monte Carlo: ``m`` uniform draws over the box, each
    projected on both faces of every free axis (2·d·m extra forward passes, no gradients).

    ``∫dX_¬i g = vol/w_i · E[g]`` and ``∫L² dX = vol · Σ_s w_s L²_s / Σ_s w_s`` (the volume
    samples), so ``B_i = E[(x_i − ⟨x_i⟩)L² |_{a_i}^{b_i}] / (w_i · Σ w L² / Σ w)``. The standard
    error is that of the face mean (⟨x_i⟩ and ∫L² taken as exact: their errors are far smaller).
    Returns (K, d) estimates and standard errors.
    """
    d = lo.numel()
    u = lo + (hi - lo) * torch.rand(m, d, generator=generator, dtype=torch.float64)
    half = (hi - lo) / 2
    norm = acc.sums[:, :, 0].sum(0) / w_total  # (K,) = ∫L² dX / vol
    diff = None  # (m, K, d): [(x_i − ⟨x_i⟩) L²]_{a_i}^{b_i} per draw
    for i in range(d):
        side_values = []
        for edge in (lo[i], hi[i]):
            x_face = u.clone()
            x_face[:, i] = edge
            chunks = []
            for start in range(0, m, batch_size):
                xb = x_face[start:start + batch_size]
                x = template.expand(xb.shape[0], -1).clone()
                x[:, free] = xb.to(template.dtype)
                with torch.no_grad():
                    loss = loss_fn(x.reshape(xb.shape[0], *shape))
                loss = loss.detach().double()
                chunks.append(loss if loss.dim() == 2 else loss[:, None])
            side_values.append(torch.cat(chunks) ** 2)  # (m, K) L² on this face
        l2_a, l2_b = side_values
        g = (half[i] - mean_xc[:, i]) * l2_b - (-half[i] - mean_xc[:, i]) * l2_a  # (m, K)
        if diff is None:
            diff = torch.zeros(m, g.shape[1], d, dtype=torch.float64)
        diff[:, :, i] = g
    assert diff is not None
    if not torch.isfinite(diff).all():
        raise DataError("loss_fn returned NaN/Inf on a face of the domain.")
    scale = (hi - lo)[None, :] * norm[:, None]  # (K, d)
    est = diff.mean(0) / scale
    err = diff.std(0) / math.sqrt(m) / scale
    return est, err


def _importance_draws(
    data: Tensor, domain: Box, free: Tensor, lo: Tensor, hi: Tensor, n: int,
    generator: torch.Generator, uniform_fraction: float, bandwidth: float | None,
) -> tuple[Tensor, Tensor]:
    """Draws from a mixture of the uniform box density and per-point Gaussians truncated to
    the box, with exact weights w ∝ 1/q (draws outside the box never occur)."""
    pts = torch.as_tensor(data).detach().double().reshape(data.shape[0], -1)
    if pts.shape[1] != free.numel():
        raise UncertaintyError(
            f"data must have shape (N, *{tuple(domain.shape)}); got {tuple(data.shape)}."
        )
    pts = pts[:, free]
    pts = torch.minimum(torch.maximum(pts, lo), hi)
    if pts.shape[0] > 2048:  # the mixture density costs O(draws × points): subsample
        pts = pts[torch.randperm(pts.shape[0], generator=generator)[:2048]]
    m, d = pts.shape
    alpha = float(uniform_fraction)
    if not 0 < alpha <= 1:
        raise UncertaintyError(f"uniform_fraction must be in (0, 1]; got {alpha}.")
    width = hi - lo
    if bandwidth is None:
        # Scott's rule on the data spread, floored so that constant pixels still get a kernel.
        std = pts.std(0) if m > 1 else torch.zeros(d, dtype=torch.float64)
        h = torch.maximum(std * m ** (-1.0 / (d + 4)), 0.05 * width)
    else:
        h = torch.full((d,), float(bandwidth), dtype=torch.float64) * width
    a = (lo - pts) / h  # (m, d) standardised box edges per component
    b = (hi - pts) / h
    ca, cb = torch.special.ndtr(a), torch.special.ndtr(b)
    log_z = torch.log((cb - ca).clamp_min(1e-300))  # truncation mass per component and axis
    comp_const = -log_z.sum(1) - torch.log(h).sum() - 0.5 * d * math.log(2 * math.pi)  # (m,)

    is_uniform = torch.rand(n, generator=generator, dtype=torch.float64) < alpha
    x = lo + width * torch.rand(n, d, generator=generator, dtype=torch.float64)
    n_kernel = int((~is_uniform).sum())
    if n_kernel:
        k = torch.randint(0, m, (n_kernel,), generator=generator)
        u = torch.rand(n_kernel, d, generator=generator, dtype=torch.float64)
        p = ca[k] + u * (cb[k] - ca[k])
        z = torch.special.ndtri(p.clamp(1e-15, 1 - 1e-15))
        x[~is_uniform] = torch.minimum(torch.maximum(pts[k] + h * z, lo), hi)
    log_vol = torch.log(width).sum()
    log_q = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, 1024):
        xs = x[start:start + 1024]
        sq = torch.cdist(xs / h, pts / h) ** 2  # (b, m)
        log_kernel = torch.logsumexp(comp_const[None] - 0.5 * sq, dim=1) - math.log(m)
        log_q[start:start + 1024] = torch.logaddexp(
            math.log(alpha) - log_vol,
            (math.log1p(-alpha) if alpha < 1 else -math.inf) + log_kernel,
        )
    log_w = -log_vol - log_q
    w = torch.exp(log_w - log_w.max())  # scale cancels in every ratio
    return x, w


def packet_spreads(
    loss_fn: Callable[[Tensor], Tensor],
    domain: Box,
    *,
    method: str = "qmc",
    n: int = 4096,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
    data: Tensor | None = None,
    grid_points: int = 201,
    replicates: int = 8,
    groups: int = 32,
    rtol: float = 0.05,
    uniform_fraction: float = 0.5,
    bandwidth: float | None = None,
    face_draws: int = 0,
) -> Spreads:
    """Δx, Δp and Δx·Δp of the packet ψ = loss/√β over ``domain``.

    Args:
        loss_fn: maps a batch ``(b, *domain.shape)`` to the per-sample loss ``(b,)`` for one
            fixed label (differentiable in the input).
        domain: the `Box` integrated over (input units).
        method: ``"quadrature"`` (composite Simpson on a tensor grid of ``grid_points`` per
            free axis; ≤ 2 free axes in practice; error = |Simpson(h) − Simpson(2h)|/3),
            ``"mc"`` (uniform draws; jackknife over ``groups``), ``"qmc"`` (``replicates``
            independently scrambled Sobol sets of n/replicates points; jackknife over them),
            ``"importance"`` (``uniform_fraction`` uniform + the rest Gaussian kernels of
            relative width ``bandwidth`` (default Scott's rule) around ``data``, truncated to
            the box; exact weights 1/q; jackknife over ``groups``).
        n: number of draws (ignored for quadrature).
        batch_size: draws per forward/backward pass.
        generator: CPU generator (default: seeded with 0, so results are reproducible).
        rtol: `ConvergenceWarning` and ``converged=False`` when product_stderr > rtol·product.
        face_draws: for the sampling methods, integrate the boundary term B_i directly on the
            box faces with this many uniform draws projected on both faces of every free axis
            (2·d·face_draws extra forward passes, not counted in ``n_evaluations``; drawn from
            ``generator`` after the volume draws, so the other numbers do not change). 0 (the
            default) leaves ``boundary_term_faces_i`` NaN; quadrature always fills it from the
            grid's edge points at no extra cost.

    Returns:
        `Spreads` with value and standard error of Δx (input units), Δp (1/input units) and
        Δx·Δp. One forward pass and one input-gradient per batch; parameters are not touched.
    """
    (result,) = _multi_spreads(
        _single(loss_fn), domain, method=method, n=n, batch_size=batch_size,
        generator=generator, data=data, grid_points=grid_points, replicates=replicates,
        groups=groups, rtol=rtol, uniform_fraction=uniform_fraction, bandwidth=bandwidth,
        face_draws=face_draws,
    )
    return result


def _single(loss_fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def wrapped(x: Tensor) -> Tensor:
        loss = loss_fn(x)
        if isinstance(loss, Tensor) and loss.dim() != 1:
            raise UncertaintyError(
                f"loss_fn must return shape ({x.shape[0]},); got {tuple(loss.shape)}."
            )
        return loss
    return wrapped


def class_spreads(
    model: nn.Module, labels: Sequence[int], domain: Box, **kwargs: object
) -> dict[int, Spreads]:
    """`packet_spreads` of the cross-entropy loss of ``model`` for each class in ``labels``.

    All classes share the same draws and one forward pass per batch (one input-gradient per
    class). The model runs in eval mode with frozen parameters; modes, ``requires_grad`` flags
    and ``.grad`` are restored/untouched. The box is cast to the dtype of the model's
    parameters. ``kwargs`` go to `packet_spreads`.
    """
    labels = [int(y) for y in labels]
    if not labels:
        raise UncertaintyError("labels is empty; pass the class indices to evaluate.")
    index = torch.tensor(labels)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is not None and domain.lower.dtype != dtype:
        # The box is evaluated in the model's precision (a float64 model with the default
        # float32 box would otherwise fail inside its first layer).
        domain = Box(domain.lower.to(dtype), domain.upper.to(dtype))

    def loss_fn(x: Tensor) -> Tensor:
        logits = model(x)
        if logits.dim() != 2 or int(index.max()) >= logits.shape[1] or int(index.min()) < 0:
            raise UncertaintyError(
                f"labels {labels} do not fit model outputs of shape {tuple(logits.shape)}; "
                "class_spreads needs logits (batch, classes)."
            )
        # CE against class Y for every Y at once: −log softmax_Y.
        return -F.log_softmax(logits, dim=1)[:, index]

    with preserved_model_state(model):
        results = _multi_spreads(loss_fn, domain, **_engine_kwargs(kwargs))
    return dict(zip(labels, results, strict=True))


def _engine_kwargs(kwargs: dict[str, object]) -> dict[str, object]:
    defaults: dict[str, object] = {
        "method": "qmc", "n": 4096, "batch_size": 1024, "generator": None, "data": None,
        "grid_points": 201, "replicates": 8, "groups": 32, "rtol": 0.05,
        "uniform_fraction": 0.5, "bandwidth": None, "face_draws": 0,
    }
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise UncertaintyError(f"Unknown option(s) {sorted(unknown)}; valid: {sorted(defaults)}.")
    defaults.update(kwargs)
    return defaults


def input_gradient_cosine(model: nn.Module, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample cosine between the input and ∇_x CE(model(x), y), and "prediction correct".

    Returns ``(cosine, correct)``, both shape ``(batch,)``; the cosine is 0 where the input or
    its gradient is exactly zero. Model state and parameters' ``.grad`` are untouched.
    """
    labels = torch.as_tensor(labels).long()
    if x.shape[0] != labels.shape[0]:
        raise DataError(f"x has {x.shape[0]} samples but labels has {labels.shape[0]}.")
    x0 = x.detach().requires_grad_(True)
    with preserved_model_state(model), torch.enable_grad():
        logits = model(x0)
        loss = F.cross_entropy(logits, labels.to(logits.device), reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), x0)
    flat_x = x0.detach().reshape(x.shape[0], -1)
    flat_g = grad.reshape(x.shape[0], -1)
    denom = flat_x.norm(dim=1) * flat_g.norm(dim=1)
    dot = (flat_x * flat_g).sum(1)
    cosine = torch.where(denom > 0, dot / denom.clamp_min(1e-300), torch.zeros_like(dot))
    correct = logits.detach().argmax(1).cpu() == labels.cpu()
    return cosine.detach(), correct


__all__ = [
    "INTERPRETATION_NOTES",
    "METHODS",
    "Box",
    "ConvergenceWarning",
    "Spreads",
    "UncertaintyError",
    "class_spreads",
    "input_gradient_cosine",
    "packet_spreads",
]
