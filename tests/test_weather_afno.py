"""The small AFNO forecaster: shapes, gradients, softshrink sparsity, trainability."""

from __future__ import annotations

import pytest
import torch

from scirobust.weather.afno import AFNO2D, AFNONet


def test_afno_shapes_and_input_gradient() -> None:
    torch.manual_seed(0)
    net = AFNONet((16, 32), 4, patch=4, embed_dim=32, depth=2, num_blocks=4)
    x = torch.randn(2, 4, 16, 32, requires_grad=True)
    y = net(x)
    assert y.shape == x.shape
    (g,) = torch.autograd.grad(y.square().sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_afno2d_is_identity_plus_filter_and_shrinks() -> None:
    torch.manual_seed(0)
    layer = AFNO2D(16, num_blocks=4, sparsity_threshold=1e6)  # shrinks every mode to zero
    x = torch.randn(2, 4, 8, 16)
    assert torch.equal(layer(x), x)


def test_afno_non_residual_and_learns() -> None:
    torch.manual_seed(0)
    net = AFNONet((8, 16), 2, patch=4, embed_dim=16, depth=1, num_blocks=2, residual=False)
    x = torch.randn(8, 2, 8, 16)
    target = torch.roll(x, 1, dims=-1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(net(x), target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first


def _column_sensitivity(head_channels: int) -> tuple[float, float]:
    """Change of the output at the first and middle pixel columns when only the head output
    of the last token column changes."""
    torch.manual_seed(0)
    net = AFNONet((8, 16), 2, patch=4, embed_dim=16, depth=1, num_blocks=2, residual=False,
                  head_channels=head_channels)
    x = torch.randn(1, 2, 8, 16)
    base = net(x).detach()

    def bump(module, inputs, out):
        out = out.clone()
        out[:, :, -1] += 1.0
        return out

    handle = net.head.register_forward_hook(bump)
    moved = (net(x).detach() - base).abs()
    handle.remove()
    return float(moved[..., 0].max()), float(moved[..., 8].max())


def test_conv_head_blends_across_tile_edges_periodically() -> None:
    first, middle = _column_sensitivity(head_channels=8)
    assert first > 0 and middle == 0  # the 3×3 conv wraps in longitude, and is local
    first, _ = _column_sensitivity(head_channels=0)
    assert first == 0  # FourCastNet's linear head: every tile on its own


def test_conv_head_shapes_and_bad_channels() -> None:
    net = AFNONet((8, 16), 3, patch=4, embed_dim=16, depth=1, num_blocks=2, head_channels=4)
    assert net(torch.randn(2, 3, 8, 16)).shape == (2, 3, 8, 16)
    assert AFNONet((8, 16), 3, patch=4, embed_dim=16, depth=1, num_blocks=2).smooth is None
    with pytest.raises(ValueError, match="head_channels"):
        AFNONet((8, 16), 3, patch=4, embed_dim=16, depth=1, num_blocks=2, head_channels=-1)
