"""Instructions per `scirobust.attack` call against the tight hand-written loop, counted by
callgrind: a measure of overhead that machine load cannot blur (wall time on a shared VM
varies by about ±10 %, more than the overhead being measured).

For each task the script runs three processes under ``valgrind --tool=callgrind`` with
``PYTHONHASHSEED=0`` and one thread: the hand loop ``K`` times, scirobust ``K`` times, and
``K = 0`` (same imports, model, data and warm-up calls of both paths). Per-call instructions
are the difference to the ``K = 0`` run divided by ``K``; two ``K = 0`` runs differ by tens of
instructions out of 5·10⁹. Instructions are not time: passes over memory cost more time per
instruction than interpreter work, so the wall-time ratio on large batches is higher.

    apt-get install valgrind
    .venv/bin/python benchmarks/attack_instructions.py [--tasks small:1:300 small:10:100 ...]

A task is ``MODEL:STEPS:K`` with MODEL ``small`` (MLP 16→32→4, batch 256) or ``mlp``
(16→128→128→4, batch 4096); STEPS 1 is FGSM, more is BIM/PGD without random start (step
2.5·eps/STEPS), the same computation as the hand loop (outputs are checked equal).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile

SHAPES = {"small": (256, (16, 32, 4)), "mlp": (4096, (16, 128, 128, 4))}


def child(model_name: str, path: str, k: int, steps: int) -> None:
    """Build the task, warm up both paths, then call ``path`` ``k`` times."""
    import torch
    from torch import nn

    import scirobust as sr
    from scirobust.budget import Budget

    torch.manual_seed(0)
    torch.set_num_threads(1)
    batch, dims = SHAPES[model_name]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).eval()
    x, y = torch.rand(batch, dims[0]), torch.randn(batch, dims[-1])
    eps = 0.05
    lower, upper = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    budget = Budget(eps=eps, bounds=(torch.zeros(dims[0]), torch.ones(dims[0])))
    objective = sr.objectives.mse(y)
    alpha = eps if steps == 1 else 2.5 * eps / steps

    def hand() -> torch.Tensor:
        xa = x
        for _ in range(steps):
            xg = xa.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(((model(xg) - y) ** 2).mean(dim=1).sum(), xg)
            xa = torch.clamp(xg.detach() + g.sign_().mul_(alpha), lower, upper)
        return xa

    def ours() -> torch.Tensor:
        return sr.attack(model, x, objective, budget, "fgsm" if steps == 1 else "bim",
                         steps=steps)

    if not torch.allclose(hand(), ours()):
        raise SystemExit("the two paths compute different attacks")
    paths = {"hand": hand, "scirobust": ours}
    for f in paths.values():
        f()
        f()
    for _ in range(k):
        paths[path]()


def count(model_name: str, path: str, k: int, steps: int) -> int:
    """Instructions of one child process under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, __file__, "--child", model_name, path, str(k), str(steps)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"},
        )
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in callgrind's output:\n{proc.stderr[-2000:]}")
    return int(match.group(1))


def main() -> None:
    """Print a markdown table of instructions per call and their ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Example: python benchmarks/attack_instructions.py --tasks small:1:300 "
               "mlp:10:5  (MODEL:STEPS:CALLS, MODEL small or mlp)")
    parser.add_argument("--tasks", nargs="+", default=["small:1:300", "small:10:100",
                                                       "mlp:1:30"])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model_name, path, k, steps = args.child
        child(model_name, path, int(k), int(steps))
        return
    tasks = [task.split(":") for task in args.tasks]
    for task, parts in zip(args.tasks, tasks, strict=True):
        if (len(parts) != 3 or parts[0] not in SHAPES or not parts[1].isdigit()
                or not parts[2].isdigit() or int(parts[1]) < 1 or int(parts[2]) < 1):
            parser.error(f"task {task!r} is not MODEL:STEPS:CALLS with MODEL one of "
                         f"{', '.join(SHAPES)} and STEPS, CALLS positive integers "
                         "(e.g. small:10:100).")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind).")
    print("| task | steps | calls | hand loop (instructions/call) | scirobust | ratio |")
    print("|---|---|---|---|---|---|")
    for model_name, steps, k in tasks:
        base = count(model_name, "hand", 0, int(steps))
        per_call = {p: (count(model_name, p, int(k), int(steps)) - base) / int(k)
                    for p in ("hand", "scirobust")}
        batch, dims = SHAPES[model_name]
        name = f"MLP {'→'.join(map(str, dims))}, batch {batch}"
        print(f"| {name} | {steps} | {k} | {per_call['hand']:,.0f} | "
              f"{per_call['scirobust']:,.0f} | {per_call['scirobust'] / per_call['hand']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
