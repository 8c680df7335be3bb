"""Perturbation budgets: how much an input may move, where, in what units, inside which domain.

A `Budget` is the single place that knows the geometry of the allowed perturbation set. Every
attack and every random control goes through its three operations:

* `steepest_step(grad, x0, fraction)`: the step of steepest ascent of the given length;
* `project(x0, x)`: back onto the allowed set (ball ∩ mask ∩ domain if `outside="clip"`);
* `random_delta(x0, kind, generator)`: a random perturbation of the same size as the attack.

Units. ``eps`` is in the input's own units unless ``relative=True`` (eps is then a fraction of
``|x|`` element by element, e.g. ``eps=0.03`` is a 3 % change) or ``scale`` is given (eps is
then in units of ``scale``, e.g. the per-feature standard deviation).

For ``norm="linf"`` element i may move by at most ``eps_i * unit_i`` where ``unit_i`` is 1,
``|x0_i|`` or ``scale_i``. For ``norm="l2"`` the perturbation of one sample satisfies
``||delta / scale||_2 <= eps`` (with ``scale``), ``||delta||_2 <= eps * ||x0||_2`` (with
``relative=True``, the relative-L2 notion), or ``||delta||_2 <= eps``; norms are taken over the
masked elements of one sample.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from scirobust.errors import BudgetError

Norm = Literal["linf", "l2"]
Outside = Literal["clip", "drop"]
RandomKind = Literal["sign", "gaussian", "uniform"]
TensorLike = float | int | Sequence[float] | Tensor

_TINY = 1e-30


def _to_tensor(value: TensorLike | None, name: str) -> Tensor | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        tensor = value.detach()
    else:
        try:
            tensor = torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise BudgetError(
                f"Budget.{name} must be a number, a sequence of numbers or a tensor; "
                f"got {type(value).__name__}."
            ) from exc
    if tensor.dtype != torch.bool and not torch.isfinite(tensor).all():
        raise BudgetError(f"Budget.{name} contains NaN or Inf; give finite values.")
    return tensor


def _per_sample_norm(t: Tensor) -> Tensor:
    """L2 norm of each sample, shaped (batch, 1, ..., 1) to broadcast against the batch."""
    flat = t.reshape(t.shape[0], -1)
    norm = torch.linalg.vector_norm(flat, dim=1)
    return norm.reshape((t.shape[0],) + (1,) * (t.dim() - 1))


@dataclass(frozen=True, eq=False)
class Budget:
    """The set of allowed perturbations of one input sample.

    Args:
        eps: size of the perturbation, a float or a per-feature tensor broadcastable to one
            sample (``linf`` only). Units: those of the input, or a fraction of ``|x|``
            (``relative=True``), or units of ``scale``.
        norm: ``"linf"`` (every element moves at most eps) or ``"l2"`` (Euclidean length of
            the whole perturbation of one sample at most eps).
        relative: eps is relative to the value being perturbed (``|x|`` element-wise for
            ``linf``, ``||x||_2`` of the masked sample for ``l2``).
        scale: per-feature unit of eps (e.g. the standard deviation of each input feature).
        mask: boolean tensor broadcastable to one sample; True where the input may move.
        bounds: ``(lower, upper)`` physical domain, each a scalar or per-feature tensor.
        outside: ``"clip"`` perturbed inputs back into ``bounds``, or ``"drop"`` samples
            that leave the domain (the audit counts and excludes them).
    """

    eps: TensorLike = 1.0
    norm: Norm = "linf"
    relative: bool = False
    scale: TensorLike | None = None
    mask: Tensor | Sequence[bool] | None = None
    bounds: tuple[TensorLike, TensorLike] | None = None
    outside: Outside = "clip"

    def __post_init__(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise BudgetError(f"Budget.norm must be 'linf' or 'l2'; got {self.norm!r}.")
        if self.outside not in ("clip", "drop"):
            raise BudgetError(f"Budget.outside must be 'clip' or 'drop'; got {self.outside!r}.")
        eps = _to_tensor(self.eps, "eps")
        assert eps is not None
        if (eps < 0).any():
            raise BudgetError(f"Budget.eps must be >= 0; got {self.eps!r}.")
        if self.norm == "l2" and eps.numel() != 1:
            raise BudgetError(
                "A per-feature eps needs norm='linf'. For an L2 budget with features of "
                "different size, give one eps and a per-feature `scale` instead."
            )
        object.__setattr__(self, "eps", eps)
        scale = _to_tensor(self.scale, "scale")
        if scale is not None and (scale < 0).any():
            raise BudgetError("Budget.scale must be >= 0 everywhere (it is a unit of length).")
        if scale is not None and scale.numel() and not (scale > 0).any():
            raise BudgetError(
                "Budget.scale is 0 everywhere: nothing could be perturbed (every radius would "
                "be 0). Give the features' scale (e.g. their std), or leave scale unset."
            )
        object.__setattr__(self, "scale", scale)
        if self.mask is not None:
            mask = torch.as_tensor(self.mask)
            if mask.dtype != torch.bool:
                if not ((mask == 0) | (mask == 1)).all():
                    raise BudgetError(
                        "Budget.mask must be boolean (or 0/1): True where the input may move."
                    )
                mask = mask.bool()
            if not mask.any():
                raise BudgetError("Budget.mask is False everywhere: nothing could be perturbed.")
            object.__setattr__(self, "mask", mask)
        if self.bounds is not None:
            if not isinstance(self.bounds, tuple | list) or len(self.bounds) != 2:
                raise BudgetError("Budget.bounds must be a pair (lower, upper).")
            lower = _to_tensor(self.bounds[0], "bounds[0]")
            upper = _to_tensor(self.bounds[1], "bounds[1]")
            assert lower is not None and upper is not None
            if (lower > upper).any():
                raise BudgetError("Budget.bounds: lower bound exceeds upper bound somewhere.")
            object.__setattr__(self, "bounds", (lower, upper))
        elif self.outside == "drop":
            raise BudgetError("Budget.outside='drop' needs `bounds` to say what the domain is.")

    # ------------------------------------------------------------------ helpers
    def describe(self) -> dict[str, object]:
        """JSON-ready description; tensors over 64 elements are summarised with a content
        hash (this description is part of cache keys: a different mask of the same shape
        must not reuse cells)."""
        from scirobust._hashing import fingerprint_tensors

        def describe(v: object) -> object:
            if isinstance(v, Tensor):
                if v.numel() <= 64:
                    return v.tolist()
                return f"tensor{tuple(v.shape)}:{fingerprint_tensors([v])}"
            if isinstance(v, tuple):
                return [describe(x) for x in v]
            return v

        return {k: describe(getattr(self, k)) for k in
                ("eps", "norm", "relative", "scale", "mask", "bounds", "outside")}

    def scaled(self, factor: float) -> Budget:
        """A copy with eps multiplied by ``factor`` (used by epsilon sweeps)."""
        return dataclasses.replace(self, eps=self.eps * float(factor))

    @property
    def eps_max(self) -> float:
        """Largest eps over features (a float, in the budget's units)."""
        return float(torch.as_tensor(self.eps).max())

    def check_input(self, x: Tensor) -> None:
        """Raise `BudgetError` if eps, scale, mask or bounds do not fit one sample of ``x``."""
        if x.dim() < 2:
            raise BudgetError(
                f"Inputs must have a batch dimension first, shape (batch, ...); got shape "
                f"{tuple(x.shape)}. For one sample use x.unsqueeze(0)."
            )
        sample = x.shape[1:]
        for name in ("eps", "scale", "mask"):
            value = getattr(self, name)
            if value is not None:
                self._check_broadcast(value, sample, name)
        if self.bounds is not None:
            self._check_broadcast(self.bounds[0], sample, "bounds[0]")
            self._check_broadcast(self.bounds[1], sample, "bounds[1]")

    @staticmethod
    def _check_broadcast(value: Tensor, sample: torch.Size, name: str) -> None:
        # Plain shape arithmetic: torch.broadcast_shapes goes through Python reference code
        # that cost ~0.1 ms per attack call, a tenth of a small model's whole FGSM step.
        shape = tuple(value.shape)
        ok = len(shape) <= len(sample) and all(
            dim in (1, want) for dim, want in zip(reversed(shape), reversed(sample), strict=False)
        )
        if not ok:
            raise BudgetError(
                f"Budget.{name} has shape {tuple(value.shape)}, which does not broadcast to "
                f"one input sample of shape {tuple(sample)}."
            )

    def _on(self, value: Tensor, x: Tensor) -> Tensor:
        return value.to(device=x.device, dtype=x.dtype if value.dtype != torch.bool else None)

    def mask_for(self, x: Tensor) -> Tensor:
        """Float tensor (1 where the input may move, 0 elsewhere) broadcast to ``x``."""
        if self.mask is None:
            return torch.ones_like(x)
        return self._on(self.mask, x).to(x.dtype).expand_as(x)

    def unit(self, x0: Tensor) -> Tensor:
        """Per-element unit of eps: ``scale``, ``|x0|`` (relative linf) or 1."""
        if self.scale is not None:
            return self._on(self.scale, x0).expand_as(x0)
        if self.relative and self.norm == "linf":
            return x0.abs()
        return torch.ones_like(x0)

    def linf_radius(self, x0: Tensor) -> Tensor:
        """How far each element may move under an L-inf budget (input units, masked)."""
        return self._on(self.eps, x0) * self.unit(x0) * self.mask_for(x0)

    def l2_radius(self, x0: Tensor) -> Tensor:
        """Radius of the L2 ball of each sample in scaled units, shape (batch, 1, ..., 1)."""
        eps = self._on(self.eps, x0).reshape(())
        if self.relative and self.scale is None:
            return eps * _per_sample_norm(x0 * self.mask_for(x0))
        # dtype of the input: a float32 radius would round float64 steps and promote
        # bfloat16/float16 inputs to float32.
        shape = (x0.shape[0],) + (1,) * (x0.dim() - 1)
        return eps * torch.ones(shape, device=x0.device, dtype=x0.dtype)

    def _free(self, x0: Tensor) -> Tensor:
        """1 where the element may move and has a non-zero unit."""
        return self.mask_for(x0) * (self.unit(x0) > 0).to(x0.dtype)

    # ------------------------------------------------------------------ operations
    def around(self, x0: Tensor) -> Ball:
        """The budget evaluated at the clean batch ``x0``: what every attack step needs.

        Attacks call this once and then `Ball.step` / `Ball.project` per step, so radii,
        masks and bounds are not rebuilt at every iteration.
        """
        mask = None if self.mask is None else self._on(self.mask, x0).to(x0.dtype)
        lower = upper = None
        if self.bounds is not None and self.outside == "clip":
            lower, upper = (self._on(b, x0) for b in self.bounds)
        if self.norm == "linf":
            radius = self._on(self.eps, x0)
            if self.scale is not None:
                radius = radius * self._on(self.scale, x0)
            elif self.relative:
                radius = radius * x0.abs()
            if mask is not None:
                radius = radius * mask
            return Ball(x0, mask, lower, upper, linf_radius=radius)
        unit = self.unit(x0)
        return Ball(
            x0, mask, lower, upper,
            l2_unit=unit, l2_free=self._free(x0), l2_radius=self.l2_radius(x0),
        )

    def steepest_step(self, grad: Tensor, x0: Tensor, fraction: float) -> Tensor:
        """Step of steepest ascent along ``grad`` whose length is ``fraction`` of the budget.

        ``linf``: ``fraction * radius * sign(grad)``; ``l2``: the normalised (scaled) gradient
        times ``fraction * radius``. Elements outside the mask never move.
        """
        return self.around(x0).step(grad, fraction)

    def project(self, x0: Tensor, x: Tensor) -> Tensor:
        """Project ``x`` onto the budget around ``x0``; clip into bounds if ``outside='clip'``."""
        return self.around(x0).project(x)

    def clip(self, x: Tensor) -> Tensor:
        """Clip into the domain when ``outside='clip'``; otherwise return ``x`` unchanged."""
        if self.bounds is None or self.outside != "clip":
            return x
        lower, upper = (self._on(b, x) for b in self.bounds)
        return torch.maximum(torch.minimum(x, upper), lower)

    def inside(self, x: Tensor) -> Tensor:
        """Boolean per sample: True where every element of the sample lies within ``bounds``."""
        if self.bounds is None:
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        lower, upper = (self._on(b, x) for b in self.bounds)
        ok = (x >= lower) & (x <= upper)
        return ok.reshape(x.shape[0], -1).all(dim=1)

    def random_delta(
        self, x0: Tensor, kind: RandomKind, generator: torch.Generator | None = None
    ) -> Tensor:
        """A random perturbation with the size of this budget (not yet clipped to bounds).

        ``sign``: ±radius on every free element — for ``linf`` the same L-inf and L2 norm as
        FGSM; ``gaussian``: Gaussian noise with the L2 norm of the sign perturbation, measured in
        units of each element's radius (``linf``; with one absolute eps simply the same L2
        norm), or with the ball's radius (``l2``); ``uniform``:
        uniform in the L-inf box, or uniform in the L2 ball. Random numbers are drawn on the
        CPU so results do not depend on the device.
        """
        shape = x0.shape
        if kind == "sign":
            noise = torch.randint(0, 2, shape, generator=generator).double() * 2 - 1
        elif kind == "gaussian":
            noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        elif kind == "uniform":
            noise = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
        else:
            raise BudgetError(f"Unknown random kind {kind!r}; use 'sign', 'gaussian' or 'uniform'.")
        noise = noise.to(device=x0.device, dtype=x0.dtype)

        if self.norm == "linf":
            radius = self.linf_radius(x0)
            if kind == "gaussian":
                # Same L2 norm as the sign draw measured in units of each element's radius:
                # with one absolute eps this is the same L2 norm in input units; with
                # per-feature units no feature can take the whole norm (a 1000x smaller
                # feature would otherwise be pushed 1000x past its own radius).
                free = (radius > 0).to(x0.dtype)
                z = noise * free
                target = _per_sample_norm(free)
                return z * target / _per_sample_norm(z).clamp_min(_TINY) * radius
            return noise * radius
        free = self._free(x0)
        z = noise * free
        direction = z / _per_sample_norm(z).clamp_min(_TINY)
        length = self.l2_radius(x0)
        if kind == "uniform":
            n_free = free.reshape(shape[0], -1).sum(dim=1).clamp_min(1)
            u = torch.rand(shape[0], generator=generator, dtype=torch.float64).to(x0)
            length = length * (u ** (1.0 / n_free)).reshape(length.shape)
        return length * direction * self.unit(x0)


@dataclass(frozen=True, eq=False)
class Ball:
    """A `Budget` evaluated at one clean batch: the allowed set around ``x0``.

    Built by `Budget.around`; holds the L-inf radius (masked, input units) or the L2 unit,
    free-element mask and per-sample radius, and the clip bounds (None unless clipping).
    """

    x0: Tensor
    mask: Tensor | None
    lower: Tensor | None
    upper: Tensor | None
    linf_radius: Tensor | None = None
    l2_unit: Tensor | None = None
    l2_free: Tensor | None = None
    l2_radius: Tensor | None = None
    # fraction -> fraction·radius: an iterative attack steps by the same length every time
    _linf_steps: dict[float, Tensor] = dataclasses.field(default_factory=dict, repr=False)

    @functools.cached_property
    def linf_lower(self) -> Tensor:
        """``-linf_radius``, negated once per batch instead of at every projection."""
        assert self.linf_radius is not None
        return -self.linf_radius

    def step(self, grad: Tensor, fraction: float) -> Tensor:
        """Steepest-ascent step of length ``fraction`` of the budget (input units)."""
        if self.linf_radius is not None:
            length = self._linf_steps.get(fraction)
            if length is None:
                length = self._linf_steps[fraction] = fraction * self.linf_radius
            return grad.sign().mul_(length)
        assert self.l2_unit is not None and self.l2_free is not None
        scaled_grad = grad * self.l2_unit * self.l2_free
        norm = _per_sample_norm(scaled_grad).clamp_min(_TINY)
        return fraction * self.l2_radius * scaled_grad / norm * self.l2_unit

    def project(self, x: Tensor) -> Tensor:
        """Nearest point of the ball (then clipped into the domain when clipping)."""
        delta = x - self.x0
        if self.mask is not None:
            delta = delta * self.mask
        if self.linf_radius is not None:
            # radius >= 0, so clamp(δ, −r, r) equals max(min(δ, r), −r) bit for bit, in one pass.
            delta = delta.clamp_(self.linf_lower, self.linf_radius)
        else:
            assert self.l2_unit is not None and self.l2_free is not None
            z = torch.where(
                self.l2_free > 0, delta / self.l2_unit.clamp_min(_TINY), torch.zeros_like(delta)
            )
            factor = (self.l2_radius / _per_sample_norm(z).clamp_min(_TINY)).clamp(max=1.0)
            delta = z * factor * self.l2_unit
        x = self.x0 + delta
        if self.lower is not None and self.upper is not None:
            x = x.clamp_(self.lower, self.upper)  # lower <= upper is checked by Budget
        return x
