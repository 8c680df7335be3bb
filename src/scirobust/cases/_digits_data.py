"""Data and networks of the digits case (`scirobust.cases.digits`).

Images (N, C, H, W) in [0, 1]: MNIST or CIFAR-10 from a local folder when present, else
scikit-learn's bundled 8×8 digits; three small classifiers split as ``Sequential(features,
classifier)`` so that ``features`` is the attacked (and integrated-over) feature layer.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import sklearn.datasets  # the `cases` extra
import torch
from torch import Tensor, nn

from scirobust.errors import ConfigError
from scirobust.io import read_cifar10, read_mnist

if TYPE_CHECKING:
    from scirobust.cases.digits import DigitsSettings


# --------------------------------------------------------------------------- data
def load_data(settings: DigitsSettings, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """(x_train, y_train, x_test, y_test, description); images (N, C, H, W) in [0, 1]: MNIST,
    else CIFAR-10 from ``data_root`` (`scirobust.io` readers), else the bundled 8×8 digits."""
    root = settings.data_root or os.environ.get("SCIROBUST_DATA_ROOT")
    for loader, desc in ((read_mnist, "MNIST (28×28)"), (read_cifar10, "CIFAR-10 (32×32)")):
        found = loader(root) if root else None
        if found is not None:
            xtr, ytr, xte, yte = found
            gen = torch.Generator().manual_seed(seed)
            if settings.max_train is not None:
                keep = torch.randperm(xtr.shape[0], generator=gen)[: settings.max_train]
                xtr, ytr = xtr[keep], ytr[keep]
            pick = torch.randperm(xte.shape[0], generator=gen)[: settings.n_test]
            return xtr, ytr, xte[pick], yte[pick], f"{desc} from {root}"
    digits = sklearn.datasets.load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    y = torch.from_numpy(digits.target.astype(np.int64))
    rng, test, t = np.random.default_rng(seed), [], digits.target  # stratified: 360 for testing
    for c in np.unique(t):
        idx = rng.permutation(np.flatnonzero(t == c))
        test.extend(idx[: round(360 * len(idx) / len(t))].tolist())
    train_idx = np.setdiff1d(np.arange(len(t)), test)
    test_idx = np.array(sorted(test))[np.random.default_rng(seed + 1).permutation(len(test))]
    test_idx = np.sort(test_idx[: settings.n_test])
    return (x[train_idx], y[train_idx], x[test_idx], y[test_idx],
            "scikit-learn 8×8 digits (1797 images, pixels/16)")


# --------------------------------------------------------------------------- networks
class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class _Inception(nn.Module):
    def __init__(self, cin: int, branch: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(cin, branch, 1)
        self.b3, self.b5 = (nn.Sequential(nn.Conv2d(cin, branch, 1), nn.ReLU(), nn.Conv2d(
            branch, branch, k, padding=k // 2)) for k in (3, 5))  # created in this order
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(cin, branch, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1))


def make_network(name: str, in_channels: int = 1, n_classes: int = 10) -> nn.Module:
    """``cnn`` (4 layers), ``resnet`` (2 residual blocks) or ``inception`` (1 block), as
    ``Sequential(features, classifier)``; ``features`` is the attacked feature layer."""
    stem = (nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU())
    if name == "cnn":
        features = nn.Sequential(*stem, nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(4), nn.Flatten())
        classifier = nn.Sequential(nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, n_classes))
    elif name == "resnet":
        features = nn.Sequential(*stem, _ResBlock(16), _ResBlock(16), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten())
        classifier = nn.Linear(16 * 4, n_classes)
    elif name == "inception":
        features = nn.Sequential(*stem, _Inception(16, 8), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        classifier = nn.Linear(32 * 4, n_classes)
    else:
        raise ConfigError(f"Unknown network {name!r}; use cnn, resnet or inception.")
    return nn.Sequential(OrderedDict(features=features, classifier=classifier))


__all__ = ["load_data", "make_network"]
