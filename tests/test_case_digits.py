"""The digits case (paper 001 Figs. 2 and 5, paper 004 Fig. 2) at a tiny size."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from scirobust import cases
from scirobust.layers import FeatureAttackModel
from scirobust.results import Results

pytest.importorskip("sklearn")

from scirobust.cases.digits import DigitsSettings, load_data, make_network, run_digits

torch.set_num_threads(1)


def test_settings_follow_the_papers() -> None:
    quick, full = DigitsSettings.quick(), DigitsSettings.full()
    assert quick.eps == full.eps == 0.1
    pgd = next(a for a in full.attacks() if a["name"] == "pgd_linf")
    assert pgd["steps"] == 4 and pgd["step_size"] == 0.25
    names = [a["name"] for a in full.attacks()]
    assert names == ["random_sign", "fgsm_targeted", "fgsm", "bim", "illc", "pgd_linf",
                     "sparsefool"]
    assert set(full.networks) == {"cnn", "resnet", "inception"}
    assert cases.get_case("digits").name == "digits"


@pytest.mark.parametrize("name", ["cnn", "resnet", "inception"])
def test_networks_split_at_the_feature_layer(name: str) -> None:
    x = torch.rand(4, 1, 8, 8)
    model = make_network(name).eval()
    wrapped = FeatureAttackModel(model, "features", x)  # checks the cut
    torch.testing.assert_close(wrapped(wrapped.features(x)), model(x))


def test_tiny_run_writes_the_standard_outputs(tmp_path) -> None:
    settings = replace(DigitsSettings.quick(), networks=("cnn",), feature_networks=("cnn",),
                       epochs=2, n_test=24, uncertainty_n=64)
    xtr, _, xte, _yte, _ = load_data(settings, 0)
    assert xtr.shape[1:] == (1, 8, 8) and xte.shape[0] == 24
    assert float(xte.min()) >= 0.0 and float(xte.max()) <= 1.0
    out = run_digits(settings, tmp_path, seed=0)
    res = Results.load(tmp_path)
    assert len(res) == len(out.results)
    models = {r.model for r in res}
    assert {"cnn@epoch=1", "cnn@epoch=2", "cnn:features@epoch=1", "cnn:features@epoch=2"} \
        <= models
    assert {"clean", "envelope", "fgsm", "sparsefool", "pgd_linf"} <= set(res.attacks)
    for model in ("cnn@epoch=2", "cnn:features@epoch=2"):
        env = res.value(model=model, attack="envelope", metric="accuracy")
        attacks = [r.value for r in res.select(model=model, metric="accuracy")
                   if r.attack not in ("clean", "envelope", "random_sign")]
        assert env == min(attacks)
    assert (tmp_path / "report.html").is_file()
    assert (tmp_path / "figures" / "case" / "fig2_pixels.png").is_file()
    assert (tmp_path / "figures" / "case" / "fig5_features.png").is_file()
    assert (tmp_path / "figures" / "case" / "fig_uncertainty.png").is_file()
    assert (tmp_path / "tables" / "trends_pixels.csv").is_file()
    unc = out.results.metadata["uncertainty"]
    assert len(unc) == 2 * 10 and all(math.isfinite(r["delta_x"]) for r in unc)
    notes = out.results.metadata["notes"]
    assert any("trade-off" in n for n in notes) and any("Δx" in n for n in notes)
    assert out.summary[0][0] == "model"


def _write_idx(path, array) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype("uint8").tobytes())


def test_local_mnist_and_cifar_folders_are_used(tmp_path) -> None:
    import pickle
    from fractions import Fraction

    import numpy as np

    from scirobust.cases.digits import load_cifar10, load_mnist

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    xtr, _, xte, yte = load_mnist(tmp_path)
    assert xtr.shape == (20, 1, 28, 28) and yte.shape == (10,) and float(xtr.max()) <= 1.0
    settings = replace(DigitsSettings.quick(), data_root=str(tmp_path), n_test=5)
    *_, desc = load_data(settings, 0)
    assert desc.startswith("MNIST")

    folder = tmp_path / "c" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8),
                 "labels": [1, 2, 3, 4]}
        (folder / name).write_bytes(pickle.dumps(batch))
    xtr, _, xte, _ = load_cifar10(tmp_path / "c")
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (4, 3, 32, 32)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": Fraction(1, 2), "labels": []}))
    with pytest.raises(Exception, match="only NumPy arrays"):
        load_cifar10(tmp_path / "c")
    assert load_mnist(tmp_path / "c") is None
    model = make_network("resnet", in_channels=3)
    assert model(xtr[:2]).shape == (2, 10)
