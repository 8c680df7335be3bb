"""Time of `scirobust.attack` against a tight hand-written loop and installed peer libraries.

Tasks (issue 13): a CNN classifier on 28×28 images (batch 256) and two MLP regressors (16→4
through 128×128 hidden units at batch 4096, and a small 16→32→4 one at batch 256, where the
fixed cost per call dominates), each with FGSM and PGD-10 (L-inf, step 2.5·eps/10, no random
start so every path computes the same thing). The tight loop is one forward pass and one
input-gradient per step, an in-place sign step and a clamp to precomputed bounds.

Peers are optional: torchattacks, ART (adversarial-robustness-toolbox) and Foolbox are timed
when importable (``pip install --no-deps torchattacks foolbox eagerpy
adversarial-robustness-toolbox``; none needs torchvision). torchattacks and Foolbox attack
classifiers only; ART's regressor and a Foolbox loss override are the workarounds marked *.

Every path's output is checked against the tight loop's (fraction of elements that differ by
more than 1e-6, which sign flips of near-zero gradients can cause). Paths are timed
interleaved (A, B, C, A, B, C, …) so load drifts hit all alike; medians are reported.

    .venv/bin/python benchmarks/attack_overhead.py --repeats 51 --threads 1 [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import scirobust as sr
from scirobust.cli import _check_device
from scirobust.errors import ConfigError

EPS = 0.03
STEPS = 10


def cnn() -> nn.Module:
    """A LeNet-sized classifier for 1×28×28 inputs in [0, 1]."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def mlp(widths: tuple[int, ...]) -> nn.Module:
    """A tanh MLP, typical of scientific surrogates."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def tight(model: nn.Module, loss: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor,
          lower: Tensor, upper: Tensor, steps: int, alpha: float) -> Tensor:
    """The hand loop: forward, input-gradient, in-place sign step, clamp to the box."""
    xa = x
    for _ in range(steps):
        xg = xa.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(model(xg), y), xg)
        xa = torch.clamp(xg.detach() + grad.sign_().mul_(alpha), lower, upper)
    return xa


def _mse_sum(out: Tensor, y: Tensor) -> Tensor:
    return ((out - y) ** 2).mean(dim=1).sum()


def _ce_sum(out: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(out, y, reduction="sum")


def _never_adversarial_class() -> type:
    import eagerpy as ep
    import foolbox as fb

    class NeverAdversarial(fb.criteria.Misclassification):
        """Carries regression targets through Foolbox; no output counts as a success."""

        def __call__(self, perturbed, outputs):
            return ep.astensor(outputs).sum(axis=1) != ep.astensor(outputs).sum(axis=1)

    return NeverAdversarial


def _NeverAdversarial(y: Tensor) -> object:
    return _never_adversarial_class()(y)


class _FlatMSE(nn.Module):
    def forward(self, out: Tensor, target: Tensor) -> Tensor:
        return ((out.reshape(target.shape) - target) ** 2).mean()


def peer_paths(model: nn.Module, x: Tensor, y: Tensor, classifier: bool, steps: int,
               alpha: float) -> dict[str, Callable[[], Tensor]]:
    """Calls of the installed peer libraries doing the same attack (empty where absent)."""
    paths: dict[str, Callable[[], Tensor]] = {}
    try:
        import torchattacks
    except ImportError:
        torchattacks = None
    if torchattacks is not None and classifier:
        if steps == 1:
            ta = torchattacks.FGSM(model, eps=EPS)
        else:
            ta = torchattacks.PGD(model, eps=EPS, alpha=alpha, steps=steps, random_start=False)
        paths["torchattacks"] = lambda: ta(x, y)
    try:
        import numpy as np
        from art.attacks.evasion import (
            FastGradientMethod,
            ProjectedGradientDescentNumpy,
            ProjectedGradientDescentPyTorch,
        )
        from art.estimators.classification import PyTorchClassifier
        from art.estimators.regression import PyTorchRegressor
    except ImportError:
        np = None
    if np is not None:
        shape = tuple(x.shape[1:])
        if classifier:
            est = PyTorchClassifier(model, nn.CrossEntropyLoss(), shape, 10, clip_values=(0, 1),
                                    device_type=x.device.type)
        else:
            # ART flattens a regressor's outputs; the loss restores the per-sample shape.
            est = PyTorchRegressor(model, _FlatMSE(), shape, device_type=x.device.type)
        if steps == 1:
            art_attack = FastGradientMethod(est, eps=EPS, batch_size=x.shape[0])
        else:
            pgd = ProjectedGradientDescentPyTorch if classifier else ProjectedGradientDescentNumpy
            art_attack = pgd(
                est, eps=EPS, eps_step=alpha, max_iter=steps, num_random_init=0,
                batch_size=x.shape[0], verbose=False)
        xn, yn = x.cpu().numpy(), y.cpu().numpy()
        label = "ART" if classifier else "ART*"
        paths[label] = lambda: torch.from_numpy(art_attack.generate(xn, yn)).to(x.device)
    try:
        import foolbox as fb
    except ImportError:
        fb = None
    if fb is not None:
        bounds = (0, 1) if classifier else (-1e9, 1e9)
        fmodel = fb.PyTorchModel(model, bounds=bounds, device=x.device)
        base = fb.attacks.LinfPGD if steps > 1 else fb.attacks.FGSM
        if classifier:
            cls = base
        else:  # the workaround: Foolbox's loss is cross-entropy; use the MSE to the targets
            class cls(base):  # type: ignore[no-redef,valid-type,misc]
                def get_loss_fn(self, model, labels):
                    def loss_fn(inputs):
                        return ((model(inputs) - labels) ** 2).mean(axis=1).sum()
                    return loss_fn
        kwargs = {} if steps == 1 else dict(abs_stepsize=alpha, steps=steps, random_start=False)
        fb_attack = cls(**kwargs)
        criterion = y if classifier else _NeverAdversarial(y)
        paths["Foolbox" if classifier else "Foolbox*"] = (
            lambda: fb_attack(fmodel, x, criterion, epsilons=EPS)[1])
    return paths


def bench_task(label: str, model: nn.Module, x: Tensor, y: Tensor, classifier: bool,
               repeats: int, peers: bool) -> list[str]:
    """Markdown rows: every path's median time for FGSM and PGD-10 on one task."""
    model.eval()
    bounds = (0.0, 1.0) if classifier else None
    lower, upper = x - EPS, x + EPS
    if bounds:
        lower, upper = lower.clamp(*bounds), upper.clamp(*bounds)
    objective = sr.objectives.cross_entropy(y) if classifier else sr.objectives.mse(y)
    budget = sr.Budget(eps=EPS, bounds=bounds)
    loss = _ce_sum if classifier else _mse_sum
    rows = []
    for name, steps in (("FGSM", 1), ("PGD-10", STEPS)):
        alpha = EPS if steps == 1 else 2.5 * EPS / steps
        method = "fgsm" if steps == 1 else "bim"
        paths: dict[str, Callable[[], Tensor]] = {
            "hand": lambda s=steps, a=alpha: tight(model, loss, x, y, lower, upper, s, a),
            "scirobust": lambda m=method, s=steps: sr.attack(model, x, objective, budget, m,
                                                             steps=s),
        }
        if peers:
            paths.update(peer_paths(model, x, y, classifier, steps, alpha))
        reference = paths["hand"]()
        differ = {k: float(((f() - reference).abs() > 1e-6).float().mean())
                  for k, f in paths.items()}
        times: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(2):  # warm-up
            for f in paths.values():
                f()
        for _ in range(repeats):
            for k, f in paths.items():
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                f()
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                times[k].append(time.perf_counter() - start)
        hand = statistics.median(times["hand"])
        cells = [f"{statistics.median(times[k]) / hand:.2f}" + ("" if differ[k] < 1e-3 else
                 f" (≠{differ[k]:.1%})") for k in paths]
        rows.append(f"| {label} | {name} | {hand * 1e3:.2f} | " + " | ".join(
            f"{k}: {c}" for k, c in zip(paths, cells, strict=True)) + " |")
    return rows


def main() -> None:
    """Run every task and print a markdown table (time relative to the tight loop)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    try:  # the CLI's check: a named error instead of torch's assertion deep inside
        _check_device(args.device)
    except ConfigError as exc:
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    tasks = [
        ("CNN 1×28×28→10, batch 256", cnn(), torch.rand(256, 1, 28, 28, generator=gen),
         torch.randint(0, 10, (256,), generator=gen), True),
        ("MLP 16→128→128→4, batch 4096", mlp((16, 128, 128, 4)),
         torch.randn(4096, 16, generator=gen), torch.randn(4096, 4, generator=gen), False),
        ("MLP 16→32→4, batch 256", mlp((16, 32, 4)), torch.randn(256, 16, generator=gen),
         torch.randn(256, 4, generator=gen), False),
    ]
    print(f"device={device}, threads={args.threads}, repeats={args.repeats}, "
          f"torch {torch.__version__}\n")
    print("| task | attack | tight loop (ms) | time relative to the tight loop |")
    print("|---|---|---|---|")
    for label, model, x, y, classifier in tasks:
        for row in bench_task(label, model.to(device), x.to(device), y.to(device), classifier,
                              args.repeats, not args.no_peers):
            print(row, flush=True)


if __name__ == "__main__":
    main()
