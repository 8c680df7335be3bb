"""A 7-eps FGSM sweep with 8 random draws and the RMSE of every perturbed batch: looping
`scirobust.attack` over eps (one input-gradient per eps and batch), `audit` once per eps, and
one `audit` over all eps (one input-gradient per batch for every eps).

    .venv/bin/python benchmarks/sweep_sharing.py --repeats 5 --threads 1 [--device cuda]

On CUDA, `audit` stacks the 8 random draws of a batch into one forward pass (the
`Sweep.batch_draws` default there); the loop cannot.

Both paths produce the same perturbed inputs (checked); the table gives the median wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from scirobust import Budget, Sweep, attack, audit, objectives
from scirobust.cli import _check_device
from scirobust.errors import ConfigError

EPSILONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def _problem(n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(),
                          nn.Linear(128, 4)).eval()
    gen = torch.Generator().manual_seed(1)
    return model, torch.randn(n, 16, generator=gen), torch.randn(n, 4, generator=gen)


def _rmse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x) - y).pow(2).mean().sqrt())


def looped(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
           keep: bool = False) -> list[torch.Tensor]:
    """What a user does with a per-call attack library: for every eps, 8 random draws and
    FGSM, each batch attacked and its RMSE measured (one input-gradient per eps and batch)."""
    out = []
    for eps in EPSILONS:
        for draw in range(8):
            gen = torch.Generator().manual_seed(draw)
            for i in range(0, x.shape[0], batch):
                xb = attack(model, x[i:i + batch], None, Budget(eps=eps), "random_sign",
                            generator=gen)
                _rmse(model, xb, y[i:i + batch])
        adv = [attack(model, x[i:i + batch], objectives.mse(y[i:i + batch]), Budget(eps=eps),
                      "fgsm") for i in range(0, x.shape[0], batch)]
        for i, xb in zip(range(0, x.shape[0], batch), adv, strict=True):
            _rmse(model, xb, y[i:i + batch])
        if keep:
            out.append(torch.cat(adv))
    return out


def swept(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
          keep: bool = False) -> list[torch.Tensor]:
    """The same measured by `audit` (plus the clean cell, standard errors and checks)."""
    sweep = Sweep(epsilons=EPSILONS, attacks=["random_sign", "fgsm"], n_random=8,
                  batch_size=batch, metrics=["rmse"])
    res = audit(model, x, y, sweep, keep_perturbed=keep, keep_per_sample=False)
    return [res.perturbed[("fgsm", eps)].inputs[0] for eps in EPSILONS] if keep else []


def per_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> None:
    """`audit` called once per eps: the same work without the shared gradient."""
    for eps in EPSILONS:
        sweep = Sweep(epsilons=[eps], attacks=["random_sign", "fgsm"], n_random=8,
                      batch_size=batch, metrics=["rmse"])
        audit(model, x, y, sweep, keep_per_sample=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    try:  # the CLI's check: a named error instead of torch's assertion deep inside
        _check_device(args.device)
    except ConfigError as exc:
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, x, y = (t.to(device) for t in _problem(args.n))
    for a, b in zip(looped(model, x, y, args.batch, keep=True),
                    swept(model, x, y, args.batch, keep=True), strict=True):
        assert torch.equal(a.cpu(), b.cpu()), "the two paths must give the same FGSM inputs"
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    paths = {"loop over eps": looped, "audit per eps": per_eps, "audit sweep": swept}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):  # interleaved
        for name, fn in paths.items():
            sync()
            start = time.perf_counter()
            fn(model, x, y, args.batch)
            sync()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["loop over eps"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, {args.n} samples in batches of {args.batch}, torch {torch.__version__}\n")
    print("| path | median s | speed-up |\n|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {base / med:.2f}× |")


if __name__ == "__main__":
    main()
