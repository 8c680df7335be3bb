"""A small AFNO forecaster in the architecture of FourCastNet (NVlabs/FourCastNet ``afnonet.py``).

Patch embedding (a strided convolution) → learned positional embedding → ``depth`` blocks of
``[LayerNorm → AFNO2D → residual → LayerNorm → MLP (ratio 4, GELU) → residual]`` → linear head
that maps every token back to its ``patch × patch`` pixels of every output variable.

Patch stripes: that linear head predicts every ``patch × patch`` tile on its own, so nothing ties
pixels on either side of a tile edge together, and the error jumps at the edges (visible as a
grid of stripes in maps; FourCastNet's outputs show the same artefact). ``head_channels > 0``
(our choice) replaces it by a *smoothing conv head*: the linear head writes ``head_channels``
features per pixel, then GELU and a 3×3 convolution (periodic in longitude, edge-padded at the
poles) map them to the output variables, so every output pixel sees its neighbours across
tile edges. ``head_channels = 0`` (the default) is FourCastNet's linear head.

AFNO2D (Guibas et al. 2022): 2-D real FFT over the token grid, a block-diagonal complex
two-layer MLP shared by all Fourier modes (``num_blocks`` diagonal blocks, ReLU between the
layers), soft-shrinkage (``sparsity_threshold``, 0.01 as in FourCastNet) for sparsity in
frequency, inverse FFT and a residual connection.

Written here (no maintained package with an AFNO installs cleanly beside torch 2.13 without
pulling other torch versions); sizes are laptop-scale. ``residual=True`` (our choice, as in
several later weather models) predicts the increment ``x_{t+1} − x_t``; FourCastNet predicts
``x_{t+1}`` directly (``residual=False``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AFNO2D(nn.Module):
    """Adaptive Fourier neural operator mixing of a token grid ``(B, h, w, C)``."""

    def __init__(self, hidden: int, num_blocks: int = 8, sparsity_threshold: float = 0.01,
                 hidden_factor: int = 1, scale: float = 0.02) -> None:
        super().__init__()
        if hidden % num_blocks:
            raise ValueError(f"hidden size {hidden} is not divisible by num_blocks {num_blocks}.")
        self.hidden, self.num_blocks = hidden, num_blocks
        self.block = hidden // num_blocks
        self.sparsity_threshold = sparsity_threshold
        b, f = self.block, self.block * hidden_factor
        self.w1 = nn.Parameter(scale * torch.randn(2, num_blocks, b, f))
        self.b1 = nn.Parameter(scale * torch.randn(2, num_blocks, f))
        self.w2 = nn.Parameter(scale * torch.randn(2, num_blocks, f, b))
        self.b2 = nn.Parameter(scale * torch.randn(2, num_blocks, b))

    def forward(self, x: Tensor) -> Tensor:
        bias = x
        dtype = x.dtype
        x = x.float()
        B, h, w, C = x.shape
        z = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
        z = z.reshape(B, h, w // 2 + 1, self.num_blocks, self.block)
        re, im = z.real, z.imag
        w1, b1, w2, b2 = self.w1, self.b1, self.w2, self.b2
        o1r = F.relu(torch.einsum("...bi,bio->...bo", re, w1[0])
                     - torch.einsum("...bi,bio->...bo", im, w1[1]) + b1[0])
        o1i = F.relu(torch.einsum("...bi,bio->...bo", im, w1[0])
                     + torch.einsum("...bi,bio->...bo", re, w1[1]) + b1[1])
        o2r = (torch.einsum("...bi,bio->...bo", o1r, w2[0])
               - torch.einsum("...bi,bio->...bo", o1i, w2[1]) + b2[0])
        o2i = (torch.einsum("...bi,bio->...bo", o1i, w2[0])
               + torch.einsum("...bi,bio->...bo", o1r, w2[1]) + b2[1])
        z = torch.stack([o2r, o2i], dim=-1)
        z = F.softshrink(z, lambd=self.sparsity_threshold)
        z = torch.view_as_complex(z.contiguous()).reshape(B, h, w // 2 + 1, C)
        x = torch.fft.irfft2(z, s=(h, w), dim=(1, 2), norm="ortho")
        return x.to(dtype) + bias


class AFNOBlock(nn.Module):
    """LayerNorm → AFNO2D → (+x) → LayerNorm → MLP → (+x), as FourCastNet's ``Block``."""

    def __init__(self, dim: int, num_blocks: int = 8, mlp_ratio: float = 4.0,
                 sparsity_threshold: float = 0.01) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.filter = AFNO2D(dim, num_blocks, sparsity_threshold)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        x = self.filter(self.norm1(x))  # AFNO2D adds its own input (the normed x) back
        x = x + residual  # FourCastNet's double skip
        residual = x
        return self.mlp(self.norm2(x)) + residual


class AFNONet(nn.Module):
    """FourCastNet-style AFNO mapping ``(B, C_in, H, W)`` to ``(B, C_out, H, W)``.

    Args:
        img_size: ``(H, W)``, each divisible by ``patch``.
        in_chans, out_chans: variables in / out (equal for autoregressive use).
        patch: patch size (FourCastNet: 8).
        embed_dim, depth, num_blocks: token width, number of blocks, AFNO diagonal blocks.
        residual: predict ``x + net(x)`` (True) or ``net(x)`` (False, FourCastNet).
        head_channels: 0 for FourCastNet's linear head; > 0 for the smoothing conv head (that
            many features per pixel, then GELU and a 3×3 convolution; see module docstring).
    """

    def __init__(self, img_size: tuple[int, int], in_chans: int, out_chans: int | None = None,
                 *, patch: int = 4, embed_dim: int = 64, depth: int = 2, num_blocks: int = 8,
                 mlp_ratio: float = 4.0, sparsity_threshold: float = 0.01,
                 residual: bool = True, head_channels: int = 0) -> None:
        super().__init__()
        H, W = img_size
        if H % patch or W % patch:
            raise ValueError(f"image size {img_size} must be divisible by the patch {patch}.")
        if head_channels < 0:
            raise ValueError(f"head_channels must be 0 (linear head) or positive; got "
                             f"{head_channels}.")
        self.img_size, self.patch = (H, W), patch
        self.in_chans = in_chans
        self.out_chans = out_chans or in_chans
        self.residual = residual and self.out_chans == in_chans
        self.h, self.w = H // patch, W // patch
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, kernel_size=patch, stride=patch)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, self.h, self.w, embed_dim))
        self.blocks = nn.ModuleList(
            AFNOBlock(embed_dim, num_blocks, mlp_ratio, sparsity_threshold) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head_channels = head_channels
        per_pixel = head_channels or self.out_chans
        self.head = nn.Linear(embed_dim, per_pixel * patch * patch, bias=False)
        # padding is done by hand in forward: periodic in longitude, edge at the poles
        self.smooth = nn.Conv2d(head_channels, self.out_chans, 3) if head_channels else None

    def forward(self, x: Tensor) -> Tensor:
        B = x.shape[0]
        t = self.patch_embed(x).permute(0, 2, 3, 1) + self.pos_embed  # (B, h, w, D)
        for block in self.blocks:
            t = block(t)
        t = self.head(self.norm(t))  # (B, h, w, C*p*p)
        p = self.patch
        c = self.head_channels or self.out_chans
        t = t.reshape(B, self.h, self.w, p, p, c)
        out = t.permute(0, 5, 1, 3, 2, 4).reshape(B, c, self.h * p, self.w * p)
        if self.smooth is not None:
            out = F.pad(F.gelu(out), (1, 1, 0, 0), mode="circular")
            out = self.smooth(F.pad(out, (0, 0, 1, 1), mode="replicate"))
        return x + out if self.residual else out
