"""Overhead of `scirobust.attack` against a hand-written PyTorch attack loop.

The hand loop does exactly one forward pass and one input-gradient per step on the same model,
data and loss (what torchattacks-style code does). Both are timed interleaved (A, B, A, B, ...)
so drifts in machine load hit both alike; the median over repeats is reported.

Run:  .venv/bin/python benchmarks/attack_overhead.py [--repeats 30] [--device cpu|cuda]
Writes a markdown table to stdout; record the figures in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import scirobust as sr


def make_model(width: int, depth: int, n_in: int, n_out: int) -> nn.Module:
    """A tanh MLP, typical of scientific surrogates."""
    layers: list[nn.Module] = [nn.Linear(n_in, width), nn.Tanh()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.Tanh()]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def hand_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One forward, one input-gradient, one sign step."""
    xg = x.detach().requires_grad_(True)
    loss = ((model(xg) - y) ** 2).mean(dim=1).sum()
    (grad,) = torch.autograd.grad(loss, xg)
    return (x + eps * grad.sign()).detach()


def hand_pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """PGD-L-inf with uniform random start, step 2.5*eps/steps."""
    alpha = 2.5 * eps / steps
    noise = (torch.rand(x.shape, generator=generator, dtype=torch.float64) * 2 - 1).to(x)
    xa = x + eps * noise
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        loss = ((model(xa) - y) ** 2).mean(dim=1).sum()
        (grad,) = torch.autograd.grad(loss, xa)
        xa = x + (xa.detach() + alpha * grad.sign() - x).clamp(-eps, eps)
    return xa.detach()


def timed(fn, device: torch.device) -> float:
    """Seconds of one call, synchronising CUDA around it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    """Time FGSM and PGD-10 both ways and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    eps = 0.05
    configs = [
        ("MLP 2→64×3→1, batch 4096", make_model(64, 3, 2, 1), 4096, 2, 1),
        ("MLP 16→256×4→4, batch 1024", make_model(256, 4, 16, 4), 1024, 16, 4),
    ]
    print(f"device={device}, threads={args.threads}, repeats={args.repeats}, "
          f"torch {torch.__version__}\n")
    print("| model | attack | hand loop (ms) | scirobust (ms) | overhead |")
    print("|---|---|---|---|---|")
    for label, model, batch, n_in, n_out in configs:
        for row in bench_model(label, model, batch, n_in, n_out, eps, args.repeats, device):
            print(row)


def bench_model(
    label: str, model: nn.Module, batch: int, n_in: int, n_out: int, eps: float,
    repeats: int, device: torch.device,
) -> list[str]:
    """Markdown rows comparing the hand loop with scirobust for FGSM and PGD-10."""
    model = model.to(device).eval()
    x = (torch.rand(batch, n_in) * 2 - 1).to(device)
    y = torch.randn(batch, n_out).to(device)
    budget = sr.Budget(eps=eps)
    objective = sr.objectives.mse(y)
    cases = {
        "FGSM": (
            lambda: hand_fgsm(model, x, y, eps),
            lambda: sr.attack(model, x, objective, budget, "fgsm"),
        ),
        "PGD-10": (
            lambda: hand_pgd(model, x, y, eps, 10, torch.Generator().manual_seed(1)),
            lambda: sr.attack(model, x, objective, budget, "pgd_linf", steps=10,
                              generator=torch.Generator().manual_seed(1)),
        ),
    }
    rows = []
    for name, (hand, ours) in cases.items():
        for _ in range(3):  # warm-up
            hand()
            ours()
        hand_t, ours_t = [], []
        for _ in range(repeats):
            hand_t.append(timed(hand, device))
            ours_t.append(timed(ours, device))
        h, o = statistics.median(hand_t), statistics.median(ours_t)
        rows.append(f"| {label} | {name} | {h * 1e3:.2f} | {o * 1e3:.2f} | "
                    f"{100 * (o / h - 1):+.1f} % |")
    return rows

if __name__ == "__main__":
    main()
