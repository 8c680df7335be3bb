"""FourCastNet's AFNO (NVlabs/FourCastNet ``networks/afnonet.py``) with the official parameter
names, so the released checkpoint (``backbone.ckpt``) loads with ``load_state_dict``.

Written here from the published architecture (no code copied), module for module:

* ``patch_embed.proj``: ``Conv2d(in_chans, embed_dim, patch, stride=patch)``, tokens flattened
  row-major to ``(B, h·w, embed_dim)``, plus ``pos_embed`` of shape ``(1, h·w, embed_dim)``;
* ``blocks.i`` (``depth`` of them): ``norm1`` → ``filter`` (AFNO2D) → ``+ x`` → ``norm2`` →
  ``mlp.fc1`` → GELU → ``mlp.fc2`` → ``+ x`` ("double skip"; AFNO2D adds its own input too);
* ``head``: ``Linear(embed_dim, out_chans·patch·patch, bias=False)``, un-patchified as
  ``b h w (p1 p2 c) -> b c (h p1) (w p2)``.

AFNO2D: 2-D real FFT of the token grid (``norm="ortho"``), a block-diagonal complex two-layer
MLP (``w1 b1 w2 b2`` of shape ``(2, num_blocks, ...)``, real and imaginary parts, ReLU between)
on the kept modes, soft-shrinkage ``sparsity_threshold``, inverse FFT. Modes kept: with
``total = h // 2 + 1`` and ``kept = int(total · hard_thresholding_fraction)``, rows
``total − kept .. total + kept`` and the first ``kept`` columns of the rfft; every other mode
is set to zero. At the production size (h, w = 90, 180) that keeps all 90 rows but only 46 of
the 91 rfft columns even at fraction 1.0; we reproduce this exactly, since the released
weights were trained with it.

Two more quirks of the official code are kept on purpose: the LayerNorms use ``eps=1e-6``, and
the final ``norm`` has parameters in the state_dict but is never applied in ``forward``.
Dropout and drop-path are 0 in the released configuration and are left out (they hold no
parameters). Units: the model maps normalised fields ``(x − mean) / std`` at time t to
normalised fields at t + 6 h (see `scirobust.weather.era5`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scirobust.errors import ConfigError, DataError

__all__ = [
    "OFFICIAL_CONFIG",
    "FourCastNetAFNO",
    "infer_config",
    "load_fourcastnet_checkpoint",
    "model_state_from_checkpoint",
    "parameter_count",
]

# The released backbone: config/AFNO.yaml (patch_size 8, num_blocks 8, 20 channels) and the
# AFNONet defaults it does not override (img 720×1440, width 768, depth 12, mlp ratio 4).
OFFICIAL_CONFIG: dict[str, Any] = {
    "img_size": (720, 1440),
    "patch_size": 8,
    "in_chans": 20,
    "out_chans": 20,
    "embed_dim": 768,
    "depth": 12,
    "mlp_ratio": 4.0,
    "num_blocks": 8,
    "sparsity_threshold": 0.01,
    "hard_thresholding_fraction": 1.0,
}


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ConfigError(f"{name} must be a positive int or a pair of them; got {value!r}.")
    return pair  # type: ignore[return-value]


class Mlp(nn.Module):
    """``fc1`` → GELU → ``fc2`` (the official ``Mlp`` without its zero dropout)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AFNO2D(nn.Module):
    """Adaptive Fourier mixing of a token grid ``(B, h, w, hidden_size)``; output + input."""

    def __init__(self, hidden_size: int, num_blocks: int = 8, sparsity_threshold: float = 0.01,
                 hard_thresholding_fraction: float = 1.0, hidden_size_factor: int = 1) -> None:
        super().__init__()
        if hidden_size % num_blocks:
            raise ConfigError(f"embed_dim {hidden_size} is not divisible by num_blocks "
                              f"{num_blocks}; choose num_blocks dividing embed_dim.")
        if not 0.0 < hard_thresholding_fraction <= 1.0:
            raise ConfigError("hard_thresholding_fraction must be in (0, 1]; got "
                              f"{hard_thresholding_fraction}.")
        self.hidden_size, self.num_blocks = hidden_size, num_blocks
        self.block_size = hidden_size // num_blocks
        self.sparsity_threshold = sparsity_threshold
        self.hard_thresholding_fraction = hard_thresholding_fraction
        b, f, scale = self.block_size, self.block_size * hidden_size_factor, 0.02
        self.w1 = nn.Parameter(scale * torch.randn(2, num_blocks, b, f))
        self.b1 = nn.Parameter(scale * torch.randn(2, num_blocks, f))
        self.w2 = nn.Parameter(scale * torch.randn(2, num_blocks, f, b))
        self.b2 = nn.Parameter(scale * torch.randn(2, num_blocks, b))

    def kept_modes(self, h: int, w: int) -> tuple[slice, slice]:
        """Rows and columns of the ``(h, w // 2 + 1)`` rfft grid the filter acts on."""
        total = h // 2 + 1
        kept = int(total * self.hard_thresholding_fraction)
        return slice(max(total - kept, 0), min(total + kept, h)), slice(0, min(kept, w // 2 + 1))

    def forward(self, x: Tensor) -> Tensor:
        bias, dtype = x, x.dtype
        B, h, w, C = x.shape
        # float32 FFT whatever the input dtype, as the official layer does (bf16/fp16 AMP)
        z = torch.fft.rfft2(x.float(), dim=(1, 2), norm="ortho")
        z = z.reshape(B, h, w // 2 + 1, self.num_blocks, self.block_size)
        rows, cols = self.kept_modes(h, w)
        zk = z[:, rows, cols]
        re, im = zk.real, zk.imag

        def mix(a: Tensor, weight: Tensor) -> Tensor:
            return torch.einsum("...bi,bio->...bo", a, weight)

        w1, b1, w2, b2 = self.w1, self.b1, self.w2, self.b2
        h_re = F.relu(mix(re, w1[0]) - mix(im, w1[1]) + b1[0])
        h_im = F.relu(mix(im, w1[0]) + mix(re, w1[1]) + b1[1])
        o_re = mix(h_re, w2[0]) - mix(h_im, w2[1]) + b2[0]
        o_im = mix(h_im, w2[0]) + mix(h_re, w2[1]) + b2[1]
        out = torch.zeros(*z.shape, 2, device=x.device, dtype=o_re.dtype)
        out[:, rows, cols] = torch.stack([o_re, o_im], dim=-1)  # modes not kept stay zero
        out = F.softshrink(out, lambd=self.sparsity_threshold)
        z = torch.view_as_complex(out).reshape(B, h, w // 2 + 1, C)
        y = torch.fft.irfft2(z, s=(h, w), dim=(1, 2), norm="ortho")
        return y.to(dtype) + bias


class Block(nn.Module):
    """``norm1 → filter → +x → norm2 → mlp → +x`` (official ``Block`` with double skip)."""

    def __init__(self, dim: int, mlp_ratio: float, num_blocks: int, sparsity_threshold: float,
                 hard_thresholding_fraction: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.filter = AFNO2D(dim, num_blocks, sparsity_threshold, hard_thresholding_fraction)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = self.filter(self.norm1(x)) + x
        return self.mlp(self.norm2(x)) + x


class PatchEmbed(nn.Module):
    """Strided convolution from ``(B, C, H, W)`` to tokens ``(B, h·w, embed_dim)``."""

    def __init__(self, img_size: tuple[int, int], patch_size: tuple[int, int], in_chans: int,
                 embed_dim: int) -> None:
        super().__init__()
        self.img_size, self.patch_size = img_size, patch_size
        self.num_patches = (img_size[0] // patch_size[0]) * (img_size[1] // patch_size[1])
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class FourCastNetAFNO(nn.Module):
    """FourCastNet's AFNONet: ``(B, in_chans, H, W)`` → ``(B, out_chans, H, W)``.

    Defaults are the released backbone (`OFFICIAL_CONFIG`: 720×1440 grid, patch 8, width 768,
    depth 12, 20 channels, 8 diagonal blocks, mlp ratio 4, softshrink 0.01, all modes).
    Inputs and outputs are normalised fields (dimensionless, ``(x − mean) / std``); one call
    is one 6-hour step for the released weights. Parameter names equal the official ones.
    """

    def __init__(self, img_size: int | tuple[int, int] = (720, 1440),
                 patch_size: int | tuple[int, int] = 8, in_chans: int = 20,
                 out_chans: int = 20, embed_dim: int = 768, depth: int = 12,
                 mlp_ratio: float = 4.0, num_blocks: int = 8, sparsity_threshold: float = 0.01,
                 hard_thresholding_fraction: float = 1.0) -> None:
        super().__init__()
        img, patch = _pair(img_size, "img_size"), _pair(patch_size, "patch_size")
        if img[0] % patch[0] or img[1] % patch[1]:
            raise ConfigError(f"img_size {img} is not divisible by patch_size {patch}.")
        for name, value in (("in_chans", in_chans), ("out_chans", out_chans),
                            ("embed_dim", embed_dim), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive int; got {value!r}.")
        self.config = {"img_size": img, "patch_size": patch[0] if patch[0] == patch[1]
                       else patch, "in_chans": in_chans, "out_chans": out_chans,
                       "embed_dim": embed_dim, "depth": depth, "mlp_ratio": float(mlp_ratio),
                       "num_blocks": num_blocks, "sparsity_threshold": sparsity_threshold,
                       "hard_thresholding_fraction": hard_thresholding_fraction}
        self.img_size, self.patch_size = img, patch
        self.in_chans, self.out_chans, self.embed_dim = in_chans, out_chans, embed_dim
        self.h, self.w = img[0] // patch[0], img[1] // patch[1]
        self.patch_embed = PatchEmbed(img, patch, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, mlp_ratio, num_blocks, sparsity_threshold,
                  hard_thresholding_fraction) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)  # in the state_dict, unused (see above)
        self.head = nn.Linear(embed_dim, out_chans * patch[0] * patch[1], bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """The official initialisation: truncated normal (std 0.02) for ``pos_embed`` and
        linear weights, zero biases, unit LayerNorms; conv and AFNO weights as constructed."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """One step: normalised fields ``(B, in_chans, H, W)`` → ``(B, out_chans, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_chans or tuple(x.shape[2:]) != self.img_size:
            raise DataError(
                f"FourCastNetAFNO expects (batch, {self.in_chans}, {self.img_size[0]}, "
                f"{self.img_size[1]}); got {tuple(x.shape)}. The released model needs the "
                "first 720 of ERA5's 721 latitude rows (scirobust.weather.era5 crops them)."
            )
        B = x.shape[0]
        t = self.patch_embed(x) + self.pos_embed
        t = t.reshape(B, self.h, self.w, self.embed_dim)
        for block in self.blocks:
            t = block(t)
        t = self.head(t)
        p1, p2 = self.patch_size
        t = t.reshape(B, self.h, self.w, p1, p2, self.out_chans)
        return t.permute(0, 5, 1, 3, 2, 4).reshape(B, self.out_chans, self.h * p1, self.w * p2)


# --------------------------------------------------------------------------- checkpoints
def model_state_from_checkpoint(checkpoint: Any) -> dict[str, Tensor]:
    """The model's state_dict from a loaded checkpoint, DistributedDataParallel's
    ``module.`` prefix removed.

    Accepts the official training checkpoint (``{'iters', 'epoch', 'model_state',
    'optimizer_state_dict'}``), a dict holding ``state_dict`` / ``model_state_dict``, or a
    bare state_dict.
    """
    state: Any = checkpoint
    if isinstance(checkpoint, Mapping):
        for key in ("model_state", "state_dict", "model_state_dict"):
            if isinstance(checkpoint.get(key), Mapping):
                state = checkpoint[key]
                break
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        keys = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, Mapping) else []
        raise ConfigError(
            f"Not a FourCastNet checkpoint: expected a dict with 'model_state' (a mapping of "
            f"parameter names to tensors); got a {type(checkpoint).__name__}"
            + (f" with keys {keys}" if keys else "") + "."
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def infer_config(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Sizes a state_dict was trained with: ``in_chans, out_chans, embed_dim, patch_size,
    depth, num_blocks, mlp_ratio`` and ``num_patches`` (= (H/patch)·(W/patch))."""
    need = ("patch_embed.proj.weight", "pos_embed", "head.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise ConfigError(f"The state_dict lacks {missing}: it is not an AFNONet (FourCastNet) "
                          f"state_dict. Its first keys: {sorted(state)[:6]}.")
    proj = state["patch_embed.proj.weight"]
    embed_dim, in_chans, p1, p2 = proj.shape
    depth = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("blocks.")),
                    default=-1)
    out: dict[str, Any] = {
        "in_chans": in_chans, "embed_dim": embed_dim,
        "patch_size": p1 if p1 == p2 else (p1, p2),
        "out_chans": state["head.weight"].shape[0] // (p1 * p2),
        "depth": depth, "num_patches": state["pos_embed"].shape[1],
    }
    if depth:
        out["num_blocks"] = state["blocks.0.filter.w1"].shape[1]
        out["mlp_ratio"] = state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    return out


# which state_dict key reveals each size, for the error message
_EVIDENCE = {"in_chans": "patch_embed.proj.weight", "embed_dim": "patch_embed.proj.weight",
             "patch_size": "patch_embed.proj.weight", "out_chans": "head.weight",
             "depth": "blocks.<i>", "num_blocks": "blocks.0.filter.w1",
             "mlp_ratio": "blocks.0.mlp.fc1.weight"}


def _check_fits(model: FourCastNetAFNO, state: Mapping[str, Tensor]) -> None:
    found = infer_config(state)
    wrong = [f"{name}={found[name]!r} (from {key!r}; the model has "
             f"{model.config[name]!r})" for name, key in _EVIDENCE.items()
             if name in found and found[name] != model.config[name]]
    if wrong:
        raise ConfigError("The checkpoint does not fit the FourCastNetAFNO config: pass "
                          + "; ".join(wrong) + ".")
    if found["num_patches"] != model.patch_embed.num_patches:
        raise ConfigError(
            f"'pos_embed' holds {found['num_patches']} patches, but img_size "
            f"{model.img_size} with patch_size {model.patch_size} gives "
            f"{model.patch_embed.num_patches}: pass the img_size the model was trained on "
            "(the released backbone: img_size=(720, 1440)).")


def load_fourcastnet_checkpoint(path: str | Path, *, trust_checkpoint: bool = False,
                                **config: Any) -> FourCastNetAFNO:
    """Build a `FourCastNetAFNO` and load an official checkpoint into it (eval mode, CPU).

    ``path``: e.g. ``FCN_weights_v0/backbone.ckpt``, read with ``torch.load(weights_only=True)``
    (tensors and plain containers only); ``trust_checkpoint=True`` allows any pickle, which
    can run code: only for files you trust. ``config``: keyword arguments of
    `FourCastNetAFNO` that differ from `OFFICIAL_CONFIG`. A checkpoint of another size
    raises `ConfigError` naming the key and the config value to pass.
    """
    from scirobust.io import load_checkpoint

    unknown = set(config) - set(OFFICIAL_CONFIG)
    if unknown:
        raise ConfigError(f"unknown FourCastNetAFNO options {sorted(unknown)}; known: "
                          f"{sorted(OFFICIAL_CONFIG)}.")
    state = model_state_from_checkpoint(load_checkpoint(path, trust=trust_checkpoint))
    model = FourCastNetAFNO(**{**OFFICIAL_CONFIG, **config})
    _check_fits(model, state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"The checkpoint {path} does not load into FourCastNetAFNO: "
                          f"{' '.join(str(exc).split())[:600]}") from exc
    return model.eval()


def parameter_count(model: nn.Module) -> int:
    """Number of scalar parameters (the released backbone: about 74 million)."""
    return sum(math.prod(p.shape) for p in model.parameters())
