"""Create data.npz and a trained model.pt for the regression example (a few seconds on CPU).

Physics: a projectile launched at speed v [m/s] and angle θ [rad] under gravity g [m/s²]
lands at range R = v² sin(2θ) / g [m] and peaks at height H = v² sin²θ / (2g) [m].

Run from anywhere:  python examples/regression/make_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# model.py sits next to this script, whose directory Python puts on sys.path.
from model import make_model

HERE = Path(__file__).resolve().parent


def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n launches: inputs (speed, angle, g) and targets (range, apex height), float32."""
    speed = rng.uniform(5.0, 20.0, n)
    angle = rng.uniform(0.2, 1.35, n)
    g = rng.uniform(9.78, 9.83, n)  # gravity varies with latitude
    reach = speed**2 * np.sin(2 * angle) / g
    height = speed**2 * np.sin(angle) ** 2 / (2 * g)
    x = np.stack([speed, angle, g], axis=1).astype(np.float32)
    y = np.stack([reach, height], axis=1).astype(np.float32)
    return x, y


def train(x: np.ndarray, y: np.ndarray, epochs: int = 800, seed: int = 0) -> torch.nn.Module:
    """Full-batch Adam on mean squared error in standardised units."""
    torch.manual_seed(seed)
    model = make_model(hidden=32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    with torch.no_grad():
        model.x_mean.copy_(xt.mean(0))
        model.x_std.copy_(xt.std(0))
        model.y_mean.copy_(yt.mean(0))
        model.y_std.copy_(yt.std(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        loss = (((model(xt) - yt) / model.y_std) ** 2).mean()
        loss.backward()
        opt.step()
    print(f"final training loss (standardised MSE): {loss.item():.2e}")
    return model.eval()


def main() -> None:
    torch.set_num_threads(1)  # tiny network: threading costs more than it saves
    rng = np.random.default_rng(0)
    x_train, y_train = sample(1000, rng)
    x_test, y_test = sample(256, rng)
    model = train(x_train, y_train)
    np.savez(HERE / "data.npz", x=x_test, y=y_test)
    torch.save(model.state_dict(), HERE / "model.pt")  # weights only: loads safely
    print(f"wrote {HERE / 'data.npz'} and {HERE / 'model.pt'}")


if __name__ == "__main__":
    main()
