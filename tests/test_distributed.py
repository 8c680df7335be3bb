"""Sharded audits on torch.distributed (two Gloo processes on the CPU) give the records of one
process bit for bit, and resume per process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from scirobust import Budget, ConfigError, Sweep, audit

SWEEP = {"epsilons": [0.05, 0.2], "n_random": 2, "batch_size": 7, "seed": 11,
         "attacks": ["random_sign", "random_gaussian", "fgsm",
                     {"name": "pgd_linf", "steps": 3, "random_start": True}],
         "budget": Budget(bounds=(-3.0, 3.0), outside="drop")}


def _problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(30, 3, generator=gen).clamp(-2.9, 2.9)  # 5 batches of 7: uneven split
    return model, x, torch.randn(30, 2, generator=gen)


def _worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                            world_size=world)
    try:
        model, x, y = _problem()
        cache = Path(folder) / f"cache-rank{rank}"
        sweep = Sweep(**SWEEP, distributed=True, cache_dir=cache)
        first = audit(model, x, y, sweep, keep_perturbed=True)
        again = audit(model, x, y, sweep)
        out = {"records": [r.to_dict() for r in first.records],
               "reused": again.metadata["cells_reused_from_cache"],
               "perturbed": first.perturbed[("random_sign", 0.2)].inputs.tolist(),
               "again": [r.to_dict() for r in again.records]}
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_records_of_one(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    model, x, y = _problem()
    single = audit(model, x, y, Sweep(**SWEEP), keep_perturbed=True)
    expected = [r.to_dict() for r in single.records]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["records"] == expected  # bit for bit, on every process
        assert got["again"] == expected
        assert got["reused"] == 1 + 2 * 4  # every cell resumed from this rank's cache
        assert torch.equal(torch.tensor(got["perturbed"]),
                           single.perturbed[("random_sign", 0.2)].inputs)


def test_distributed_sweep_without_a_process_group_is_refused() -> None:
    model, x, y = _problem()
    with pytest.raises(ConfigError, match=r"needs a torch\.distributed process group"):
        audit(model, x, y, Sweep(**SWEEP, distributed=True))
