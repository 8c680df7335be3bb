"""The small AFNO forecaster: shapes, gradients, softshrink sparsity, trainability."""

from __future__ import annotations

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
