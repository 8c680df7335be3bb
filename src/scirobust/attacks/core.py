"""The attack registry, the shared gradient loop and the model-state guard.

Every gradient attack (FGSM, one-step targeted, BIM, ILLC, PGD in L-inf and L2) is one call of
`gradient_ascent` with different steps, step size, random start and objective. Random controls
draw from `Budget.random_delta`, so they have exactly the size of the attack they control.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from scirobust.budget import Budget, RandomKind
from scirobust.errors import AttackError, ObjectiveError
from scirobust.objectives import Objective

Model = nn.Module | Callable[[Tensor], Tensor]
AttackKind = Literal["random", "gradient", "sparse"]


@dataclass(frozen=True)
class AttackSpec:
    """Defaults of one named attack.

    ``step_size`` is the length of one step as a fraction of the budget (1.0 = a full eps
    step); ``None`` means 1.0 for one-step attacks and 2.5/steps for iterative ones.
    """

    name: str
    kind: AttackKind
    description: str
    steps: int = 1
    step_size: float | None = None
    random_start: bool = False
    targeted: bool = False
    norm: Literal["linf", "l2"] | None = None
    random_kind: RandomKind | None = None

    @property
    def is_random(self) -> bool:
        """True for random controls (no gradient, several draws)."""
        return self.kind == "random"


ATTACKS: dict[str, AttackSpec] = {
    spec.name: spec
    for spec in [
        AttackSpec("random_sign", "random", "±eps on every attacked element", random_kind="sign"),
        AttackSpec(
            "random_gaussian", "random", "Gaussian noise with the L2 norm of random_sign",
            random_kind="gaussian",
        ),
        AttackSpec(
            "random_uniform", "random", "uniform in the L-inf box (or L2 ball)",
            random_kind="uniform",
        ),
        AttackSpec("fgsm", "gradient", "fast gradient sign method (one full step)"),
        AttackSpec(
            "fgm", "gradient", "fast gradient method: one step of length eps along the "
            "L2-normalised gradient, no sign", norm="l2",
        ),
        AttackSpec(
            "fgsm_targeted", "gradient", "one-step targeted attack towards a target class",
            targeted=True,
        ),
        AttackSpec("bim", "gradient", "basic iterative method, no random start", steps=10),
        AttackSpec(
            "illc", "gradient", "iterative least-likely class", steps=10, targeted=True
        ),
        AttackSpec(
            "pgd_linf", "gradient", "projected gradient descent in L-inf, random start",
            steps=10, random_start=True, norm="linf",
        ),
        AttackSpec(
            "pgd_l2", "gradient", "projected gradient descent in L2, random start",
            steps=10, random_start=True, norm="l2",
        ),
        AttackSpec("sparsefool", "sparse", "SparseFool (few pixels) inside the L-inf box"),
    ]
}


def get_spec(name: str) -> AttackSpec:
    """Look up an attack by name, with a message listing the valid names."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise AttackError(
            f"Unknown attack {name!r}. Available: {', '.join(ATTACKS)}."
        ) from None


@contextlib.contextmanager
def preserved_model_state(model: Model, eval_mode: bool = True) -> Iterator[None]:
    """Run the model in eval mode; restore every submodule's train/eval flag afterwards.

    With ``eval_mode=False`` the modules in training mode stay so, and their buffers (e.g.
    BatchNorm running statistics, which every forward pass updates) are restored afterwards.

    Parameters are left as they are: gradients are taken with ``torch.autograd.grad`` on the
    input only, so their ``.grad`` is never touched. (Freezing ``requires_grad`` during the
    attack was measured *slower* on CPU: 3.77 vs 3.42 ms per FGSM call on a small MLP.)
    """
    if not isinstance(model, nn.Module):
        yield
        return
    # Only models with a submodule in training mode need switching and restoring; skipping
    # the two tree walks otherwise matters for small models attacked many times.
    modes = [(module, module.training) for module in model.modules() if module.training]
    # Run in training mode, BatchNorm-like layers update their running statistics on every
    # forward pass of the attack: keep a copy of those modules' buffers to put back.
    buffers = [] if eval_mode else [
        (buffer, buffer.detach().clone()) for module, _ in modes
        for buffer in module.buffers(recurse=False)
    ]
    try:
        if eval_mode and modes:
            model.eval()  # through train(), which custom modules may override
        yield
    finally:
        for module, training in modes:
            module.training = training
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)


def _loss_and_grad(model: Model, objective: Objective, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        output = model(x)
        if not isinstance(output, Tensor):
            raise AttackError(
                f"The model returned {type(output).__name__}; scirobust needs a tensor output. "
                "Wrap the model so it returns the tensor to audit."
            )
        loss = objective(output, x)
        if not isinstance(loss, Tensor) or loss.shape != (x.shape[0],):
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ObjectiveError(
                f"The objective must return one loss per sample, shape ({x.shape[0]},); got "
                f"{shape}. Reduce over the non-batch dimensions only."
            )
        if not loss.requires_grad:
            raise AttackError(
                "The loss does not depend on the input: check that the model is differentiable "
                "in its input (no .detach(), .numpy() or integer casts on the way)."
            )
        (grad,) = torch.autograd.grad(loss.sum(), x, allow_unused=True)
    if grad is None:
        raise AttackError("The model output does not depend on the input; nothing to attack.")
    return output.detach(), loss.detach(), grad


def _next_gradient(model: Model, objective: Objective, x: Tensor) -> Tensor:
    """Input-gradient at ``x`` for every step after the first: the first step's checks
    (tensor output, one loss per sample, a loss that depends on the input) hold for the same
    model and objective, so they, and the detached copies of output and loss, are skipped."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(objective(model(x), x).sum(), x, allow_unused=True)
    if grad is None:
        raise AttackError("The model output does not depend on the input; nothing to attack.")
    return grad


def _has_fixed_targets(objective: Objective) -> bool:
    return isinstance(getattr(objective, "targets", None), Tensor) and not getattr(
        objective, "targeted", False
    )


def _refuse_own_prediction(objective: Objective, output0: Tensor) -> None:
    targets = getattr(objective, "targets", None)
    if (
        isinstance(targets, Tensor)
        and isinstance(output0, Tensor)
        and not getattr(objective, "targeted", False)
        and targets.shape == output0.shape
        and torch.equal(targets.to(output0.device, output0.dtype), output0)
    ):
        raise ObjectiveError(
            "The objective's targets are the model's own prediction at the clean input: the "
            "error and its input-gradient are exactly zero there, so every gradient attack "
            "would stall. Use the ground truth, an exact reference (objectives."
            "against_reference) or a more accurate model as target."
        )


def _prepared(objective: Objective, model: Model, x0: Tensor) -> Objective:
    """The objective fixed at the clean batch (e.g. the least-likely class of ILLC)."""
    prepare = getattr(objective, "prepare", None)
    if prepare is None:
        return objective
    with torch.no_grad():
        return prepare(model(x0), x0)


def _first_gradient(model: Model, objective: Objective, x: Tensor,
                    clean_start: bool) -> Tensor:
    """Input-gradient of the first step, with the checks every gradient attack makes there."""
    output, loss, grad = _loss_and_grad(model, objective, x)
    if clean_start:
        _refuse_own_prediction(objective, output)
    # One reduction instead of an elementwise pass: a finite gradient has a finite sum unless
    # the sum overflows, which the exact check then rules out.
    if not torch.isfinite(grad.sum()) and not torch.isfinite(grad).all():
        raise AttackError(
            "The input-gradient contains NaN or Inf; check the model and objective for "
            "operations that are not differentiable at these inputs (sqrt(0), log(0))."
        )
    if not loss.any() and not grad.any():
        raise ObjectiveError(
            "The objective and its input-gradient are exactly zero for every sample: "
            "the target is probably the model's own prediction. Use the ground truth or "
            "a more accurate reference as target."
        )
    return grad


def gradient_ascent(
    model: Model,
    x0: Tensor,
    objective: Objective,
    budget: Budget,
    *,
    steps: int,
    step_size: float,
    random_start: bool,
    generator: torch.Generator | None = None,
    first_gradient: Tensor | None = None,
) -> Tensor:
    """The one loop all gradient attacks share: ascend ``objective`` inside ``budget``.

    Each step does one forward pass and one input-gradient, moves by ``step_size`` (fraction
    of the budget) along the steepest-ascent direction of the budget's norm and projects back.
    ``first_gradient`` (from `input_gradient` at ``x0``) replaces the first step's
    gradient when the loop starts at ``x0``: a sweep of one-step attacks over several eps
    then needs one backward pass per batch, not one per eps.
    """
    objective = _prepared(objective, model, x0)
    ball = budget.around(x0)
    x = x0
    if random_start:
        # The own-prediction refusal is about the clean input, so it must not be skipped
        # because the loop starts elsewhere (PGD would otherwise accept what FGSM refuses).
        if _has_fixed_targets(objective):
            with torch.no_grad():
                _refuse_own_prediction(objective, model(x0))
        x = ball.project(x0 + budget.random_delta(x0, "uniform", generator))
    for step in range(steps):
        if step == 0 and first_gradient is not None and not random_start:
            grad = first_gradient
        elif step == 0:
            grad = _first_gradient(model, objective, x, clean_start=not random_start)
        else:
            grad = _next_gradient(model, objective, x)
        x = ball.project(x.detach() + ball.step(grad, step_size))
    return x.detach()


def input_gradient(model: Model, x: Tensor, objective: Objective, *,
                   eval_mode: bool = True) -> Tensor:
    """The input-gradient that a gradient attack starting at ``x`` takes first (objective
    prepared at ``x``, same checks), with the model state guarded as in `attack`. Pass it as
    ``attack(..., first_gradient=...)`` to reuse it for several budgets."""
    with preserved_model_state(model, eval_mode):
        return _first_gradient(model, _prepared(objective, model, x.detach()), x.detach(),
                               clean_start=True)


def attack(
    model: Model,
    x: Tensor,
    objective: Objective | None,
    budget: Budget,
    method: str = "fgsm",
    *,
    steps: int | None = None,
    step_size: float | None = None,
    random_start: bool | None = None,
    generator: torch.Generator | None = None,
    eval_mode: bool = True,
    first_gradient: Tensor | None = None,
) -> Tensor:
    """Perturb ``x`` within ``budget`` to increase ``objective``; return the perturbed input.

    Args:
        model: a differentiable ``nn.Module`` or callable mapping a batch to outputs.
        x: input batch, shape ``(batch, ...)``, in the model's input units.
        objective: per-sample loss ``(output, x) -> (batch,)`` (see `scirobust.objectives`);
            ignored (may be None) for random controls.
        budget: the allowed perturbation (`Budget`).
        method: one of `ATTACKS` (``random_sign``, ``random_gaussian``, ``random_uniform``,
            ``fgsm``, ``fgsm_targeted``, ``bim``, ``illc``, ``pgd_linf``, ``pgd_l2``,
            ``sparsefool``).
        steps: number of gradient steps (default: 1 for one-step attacks, 10 for iterative).
        step_size: step length as a fraction of the budget (default 1.0 one-step, 2.5/steps).
        random_start: start from a uniform random point of the budget (default: PGD only).
        generator: CPU ``torch.Generator`` for random controls and random starts.
        eval_mode: run the model in eval mode during the attack (restored afterwards).
        first_gradient: the first step's input-gradient at ``x`` (`input_gradient`), reused
            instead of recomputed when the attack starts at ``x`` (no random start).

    Returns:
        The perturbed input, detached, same shape, dtype and device as ``x``. The model's
        parameters, their ``.grad``, ``requires_grad`` flags and train/eval modes are exactly
        as before the call.
    """
    spec = get_spec(method)
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise AttackError("x must be a floating-point tensor of shape (batch, ...).")
    budget.check_input(x)
    x0 = x.detach()
    if spec.is_random:
        assert spec.random_kind is not None
        return budget.clip(x0 + budget.random_delta(x0, spec.random_kind, generator))
    if objective is None:
        raise AttackError(f"{method} is a gradient attack and needs an objective.")
    if spec.targeted and not getattr(objective, "targeted", False):
        raise AttackError(
            f"{method} steers towards a target class and needs a targeted objective: "
            "objectives.targeted(target_labels) or objectives.least_likely()."
        )
    if spec.norm is not None and budget.norm != spec.norm:
        budget = dataclasses.replace(budget, norm=spec.norm)
    n_steps = spec.steps if steps is None else int(steps)
    if n_steps < 1:
        raise AttackError(f"steps must be >= 1; got {steps}.")
    if step_size is None:
        step_size = spec.step_size or (1.0 if n_steps == 1 else 2.5 / n_steps)
    if not step_size > 0:
        raise AttackError(f"step_size (a fraction of eps) must be > 0; got {step_size}.")
    start = spec.random_start if random_start is None else bool(random_start)
    with preserved_model_state(model, eval_mode):
        if spec.kind == "sparse":
            from scirobust.attacks.sparsefool import sparsefool

            return sparsefool(model, x0, objective, budget, max_iter=steps or 20)
        return gradient_ascent(
            model, x0, objective, budget,
            steps=n_steps, step_size=step_size, random_start=start, generator=generator,
            first_gradient=first_gradient,
        )


def skip_randomness(
    x: Tensor,
    method: str,
    budget: Budget,
    generator: torch.Generator | None,
    *,
    random_start: bool | None = None,
    **_ignored: object,
) -> None:
    """Draw from ``generator`` exactly the random numbers that ``attack(x, ..., method,
    generator=generator)`` would draw, without running a model.

    A sharded sweep uses this for the batches another process attacks, so that every batch
    sees the same random numbers as in one process. Keep in step with `attack`: random
    controls draw one `Budget.random_delta`; gradient attacks with a random start draw one
    uniform start (in the attack's own norm); the others draw nothing.
    """
    if generator is None:
        return
    spec = get_spec(method)
    if spec.is_random:
        assert spec.random_kind is not None
        budget.random_delta(x.detach(), spec.random_kind, generator)
        return
    start = spec.random_start if random_start is None else bool(random_start)
    if start and spec.kind != "sparse":
        if spec.norm is not None and budget.norm != spec.norm:
            budget = dataclasses.replace(budget, norm=spec.norm)
        budget.random_delta(x.detach(), "uniform", generator)

