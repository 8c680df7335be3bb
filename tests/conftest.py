"""Shared fixtures for the core tests: tiny models and data, one CPU thread.

Everything here is deliberately small: the suite runs on a shared two-core machine.
"""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

# Other engineers share the two cores; intra-op threading would only slow everyone down.
torch.set_num_threads(1)


class LinearModel(nn.Module):
    """f(x) = w·x + b with known weights, so input-gradients are known analytically."""

    def __init__(self, w: torch.Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(w.numel(), 1, dtype=w.dtype)
        with torch.no_grad():
            self.linear.weight.copy_(w.reshape(1, -1))
            self.linear.bias.fill_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def make_blobs(
    n_per_class: int = 40,
    n_features: int = 10,
    n_classes: int = 3,
    n_informative: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs (sklearn is not installed); the class centres differ only in the first
    ``n_informative`` features (default: all), the other features are pure noise."""
    gen = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(n_classes, n_features, generator=gen)
    if n_informative is not None:
        centres[:, n_informative:] = 0.0
    x = torch.cat([c + torch.randn(n_per_class, n_features, generator=gen) for c in centres])
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    return x, y


def train_mlp(x: torch.Tensor, y: torch.Tensor, hidden: int = 16, seed: int = 0) -> nn.Module:
    """Full-batch Adam on a one-hidden-layer MLP; returns it in eval mode, trained."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.Tanh(), nn.Linear(hidden, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded CPU generator (fresh per test)."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def linear64() -> tuple[LinearModel, torch.Tensor, torch.Tensor]:
    """Float64 linear model and a batch with targets far from the prediction (no zero grads)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([0.5, -2.0, 1.5, -0.25], dtype=torch.float64)
    model = LinearModel(w, b=0.3)
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    # Targets alternate above and below the prediction so the gradient sign differs per sample.
    with torch.no_grad():
        pred = model(x)
    offset = torch.tensor([1.0, -1.0, 2.0, -0.5, 0.7, -3.0], dtype=torch.float64)[:, None]
    return model, x, pred + offset


@pytest.fixture(scope="session")
def blobs() -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic 3-class classification data (120 samples, 10 features)."""
    return make_blobs()


@pytest.fixture(scope="session")
def trained_mlp(blobs: tuple[torch.Tensor, torch.Tensor]) -> nn.Module:
    """A small MLP trained on `blobs`; tests must not modify it (the attacks must not either)."""
    x, y = blobs
    return train_mlp(x, y)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test (use with
    ``pytestmark = pytest.mark.usefixtures("no_network")``; not autouse, since the
    distributed tests talk to localhost)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
