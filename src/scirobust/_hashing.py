"""Content hashes for cache keys and seeds (stable across runs, platforms and processes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def stable_int(*parts: Any) -> int:
    """A 63-bit integer determined by ``parts`` alone (SHA-256 of their JSON form)."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def fingerprint_tensors(tensors: Sequence[Tensor | None]) -> str:
    """16 hex digits identifying the shapes, dtypes and contents of ``tensors``."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]
