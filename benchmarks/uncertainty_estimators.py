"""Standard error per unit of compute for Δx and Δp of a digits CNN (paper 004's integrals).

Compares plain Monte Carlo with scrambled-Sobol QMC and data-centred importance sampling for
the packet of one class of a small CNN on 8×8 images (pixel values scaled to [0, 1]; the
domain is the 64-dimensional unit cube). For each method and budget n it reports the
estimate, its standard error, the wall time and the standard error normalised to one second
of CPU, SD·√t (for an unbiased estimator SD ∝ 1/√n ∝ 1/√t, so this is a budget-free
figure of merit; smaller is better). SD is the scatter over independent repeats, printed next
to the mean *reported* standard error so that the error bars can be checked for honesty.

Data: scikit-learn's ``load_digits`` when installed, else synthetic 8×8 blobs (stated in the
output). Run: ``.venv/bin/python benchmarks/uncertainty_estimators.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch import nn

from scirobust.uncertainty import Box, ConvergenceWarning, class_spreads


def load_data(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Images (N, 1, 8, 8) in [0, 1] and labels; the source as a string."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        n = 1800
        labels = torch.randint(0, 10, (n,), generator=generator)
        centres = torch.rand(10, 1, 8, 8, generator=generator)
        x = (centres[labels] + 0.15 * torch.randn(n, 1, 8, 8, generator=generator)).clamp(0, 1)
        return x, labels, "synthetic 8×8 (scikit-learn not installed)"
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    return x, torch.tensor(digits.target), "scikit-learn load_digits"


def make_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 10),
    )


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    """Adam, batch 64; returns training accuracy."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def run(method: str, n: int, seed: int, model: nn.Module, label: int, data: torch.Tensor):
    """One estimate; returns the Spreads and the CPU seconds of this process."""
    box = Box.cube(0.0, 1.0, (1, 8, 8))
    start = time.process_time()  # CPU time: wall time is meaningless on a shared machine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        s = class_spreads(model, [label], box, method=method, n=n, data=data,
                          generator=torch.Generator().manual_seed(seed), batch_size=1024)[label]
    return s, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller budgets, fewer repeats")
    parser.add_argument("--label", type=int, default=8, help="class of the packet (004: 8)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y, source = load_data(torch.Generator().manual_seed(0))
    model = make_cnn(0)
    acc = train(model, x, y, epochs=3 if args.quick else 10)
    model.eval()
    budgets = (1024, 4096) if args.quick else (1024, 4096, 16384)
    repeats = 3 if args.quick else 5
    methods = ("mc", "qmc", "importance")
    data = x[y == args.label]
    print(f"data: {source}, {len(x)} images; CNN train accuracy {acc:.3f}; class {args.label}; "
          f"domain [0, 1]^64; {repeats} independent repeats per cell; CPU time, 1 thread\n")
    print("| method | n | Δx | se(Δx) reported | SD(Δx) repeats | Δp | se(Δp) reported | "
          "SD(Δp) repeats | CPU s/run | SD(Δx)·√t | SD(Δp)·√t |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    merit: dict[tuple[str, int], tuple[float, float]] = {}
    for n in budgets:
        for method in methods:
            runs = [run(method, n, 100 + r, model, args.label, data) for r in range(repeats)]
            t = statistics.mean(r[1] for r in runs)
            sp = [r[0] for r in runs]
            dx, dp = [s.delta_x for s in sp], [s.delta_p for s in sp]
            sdx, sdp = statistics.stdev(dx), statistics.stdev(dp)
            merit[(method, n)] = (sdx * t**0.5, sdp * t**0.5)
            print(f"| {method} | {n} | {statistics.mean(dx):.4f} | "
                  f"{statistics.mean(s.delta_x_stderr for s in sp):.1e} | {sdx:.1e} | "
                  f"{statistics.mean(dp):.4f} | "
                  f"{statistics.mean(s.delta_p_stderr for s in sp):.1e} | {sdp:.1e} | "
                  f"{t:.2f} | {merit[(method, n)][0]:.1e} | {merit[(method, n)][1]:.1e} |")
    print("\nEfficiency relative to plain MC at the same n, (SD_MC²·t_MC)/(SD²·t) from the "
          "repeats (times less CPU for the same standard error; noisy with few repeats):\n")
    print("| method | n | Δx | Δp |")
    print("|---|---|---|---|")
    for n in budgets:
        base = merit[("mc", n)]
        for method in methods[1:]:
            m = merit[(method, n)]
            print(f"| {method} | {n} | {(base[0] / m[0]) ** 2:.1f} | {(base[1] / m[1]) ** 2:.1f} |")


if __name__ == "__main__":
    main()
