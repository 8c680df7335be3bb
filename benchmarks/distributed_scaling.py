"""Scaling of a sharded audit from 1 to N processes (``torchrun``, Gloo on CPU or NCCL on GPU).

One audit (a 16→256→256→256→4 tanh MLP, 32 768 samples in batches of 1024, eps sweep of 4 with
random_sign × 4 draws, FGSM and PGD-10) is run under ``torch.distributed.run`` with
``--nproc-per-node`` 1, 2, … ; each process uses one thread (CPU) or one GPU. The wall time of
the audit itself (after process start-up) is taken on rank 0, and the records are checked
identical across process counts.

    .venv/bin/python benchmarks/distributed_scaling.py --procs 1 2 [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(out: Path, device: str) -> None:
    """One process of the sharded audit; rank 0 writes time and records."""
    import torch
    from torch import nn

    from scirobust import Sweep, audit, distributed

    torch.set_num_threads(1)
    distributed.init_from_environment(device)
    torch.manual_seed(0)
    widths = (16, 256, 256, 256, 4)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.Tanh()]
    model = nn.Sequential(*layers[:-1]).eval()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32768, 16, generator=gen), torch.randn(32768, 4, generator=gen)
    sweep = Sweep(epsilons=(0.01, 0.03, 0.1, 0.3), attacks=("random_sign", "fgsm", "pgd_linf"),
                  n_random=4, batch_size=1024, distributed=True,
                  device=device if device != "cpu" else None)
    torch.distributed.barrier()
    start = time.perf_counter()
    results = audit(model, x, y, sweep, keep_per_sample=False)
    torch.distributed.barrier()
    elapsed = time.perf_counter() - start
    if distributed.is_main():
        records = [(r.attack, r.epsilon, r.metric, r.value) for r in results.records]
        out.write_text(json.dumps({"seconds": elapsed, "records": records}))
    torch.distributed.destroy_process_group()


def main() -> None:
    """Run the audit at each process count and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", type=Path)
    args = parser.parse_args()
    from scirobust.cli import _check_device
    from scirobust.errors import ConfigError

    try:  # the CLI's check: a named error instead of a failed worker's traceback
        _check_device(args.device)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.worker:
        worker(args.worker, args.device)
        return
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.procs:
            out = Path(tmp) / f"{k}.json"
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc-per-node={k}", __file__, "--worker", str(out),
                            "--device", args.device], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            data = json.loads(out.read_text())
            reference = reference or data["records"]
            same = data["records"] == reference
            rows.append((k, data["seconds"], same))
    base = rows[0][1]
    print(f"device={args.device}\n")
    print("| processes | audit wall time (s) | speed-up | records identical |")
    print("|---|---|---|---|")
    for k, seconds, same in rows:
        print(f"| {k} | {seconds:.2f} | {base / seconds:.2f}× | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
