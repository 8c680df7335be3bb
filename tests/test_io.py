"""Safe loading: checkpoints (weights_only unless trusted), data arrays, factory import."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from scirobust.errors import ConfigError, DataError
from scirobust.io import (
    apply_checkpoint,
    import_factory,
    load_arrays,
    load_checkpoint,
    read_cifar10,
    read_mnist,
)

FACTORY = """
from torch import nn

class Net(nn.Module):
    def __init__(self, hidden={hidden}):
        super().__init__()
        self.lin = nn.Linear(3, hidden)

    def forward(self, x):
        return self.lin(x)

def make(hidden={hidden}):
    return Net(hidden)

VALUE = 3
"""


def write_factory(directory: Path, hidden: int = 2, name: str = "tinymodel") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(FACTORY.format(hidden=hidden)))
    return path


# --------------------------------------------------------------------------- checkpoints
def test_state_dict_loads_safely_and_fits(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    other = apply_checkpoint(nn.Linear(3, 2), load_checkpoint(tmp_path / "w.pt"))
    assert torch.equal(other.weight, model.weight)


def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    torch.save(nn.Linear(3, 2), tmp_path / "full.pt")
    with pytest.raises(ConfigError, match="--trust-checkpoint") as info:
        load_checkpoint(tmp_path / "full.pt")
    assert "files you trust" in str(info.value)
    loaded = load_checkpoint(tmp_path / "full.pt", trust=True)
    assert isinstance(apply_checkpoint(nn.Linear(1, 1), loaded), nn.Linear)


def test_unreadable_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="Cannot read the checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ConfigError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_training_checkpoint_and_prefixes(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    wrapped = {"epoch": 3, "model_state_dict": {f"module.{k}": v
                                                for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "ckpt.pt")
    other = apply_checkpoint(nn.Linear(3, 2), load_checkpoint(tmp_path / "ckpt.pt"))
    assert torch.equal(other.bias, model.bias)


def test_mismatched_state_dict_and_non_state_dict() -> None:
    with pytest.raises(ConfigError, match="does not fit the model"):
        apply_checkpoint(nn.Linear(4, 2), nn.Linear(3, 2).state_dict())
    with pytest.raises(ConfigError, match="not a state_dict"):
        apply_checkpoint(nn.Linear(3, 2), {"epoch": 3})


# --------------------------------------------------------------------------- data
def test_npz_dtypes_and_shapes(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.arange(12.0).reshape(6, 2), y=np.arange(6.0),
             labels=np.array([0, 1, 2, 0, 1, 2]))
    x, y = load_arrays(tmp_path / "d.npz", "x", "y")
    assert x.dtype == torch.float32 and y.dtype == torch.float32 and x.shape == (6, 2)
    _, labels = load_arrays(tmp_path / "d.npz", "x", "labels", task="classification")
    assert labels.dtype == torch.int64 and labels.shape == (6,)
    _, from_float = load_arrays(tmp_path / "d.npz", "x", "y", task="classification")
    assert from_float.tolist() == [0, 1, 2, 3, 4, 5]
    x1, _ = load_arrays(tmp_path / "d.npz", "y", "y")
    assert x1.shape == (6, 1)  # 1-D inputs become one feature


def test_npz_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((6, 2)), y=np.zeros(5), half=np.full(6, 0.5))
    with pytest.raises(DataError, match=r"no array named 'u'.*available: x, y, half"):
        load_arrays(tmp_path / "d.npz", "u", "y")
    with pytest.raises(DataError, match="6 samples but targets have 5"):
        load_arrays(tmp_path / "d.npz", "x", "y")
    with pytest.raises(DataError, match="integer class labels"):
        load_arrays(tmp_path / "d.npz", "x", "half", task="classification")


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="object arrays"):
        load_arrays(tmp_path / "obj.npz", "x", "x")


def test_csv_columns(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,c\n1,2,3\n4,5,6\n\n7,8,9\n")
    x, y = load_arrays(tmp_path / "d.csv", ["a", "b"], ["c"])
    assert x.tolist() == [[1, 2], [4, 5], [7, 8]] and y.shape == (3, 1)
    with pytest.raises(DataError, match=r"no column named 'd' in d\.csv; available: a, b, c"):
        load_arrays(tmp_path / "d.csv", ["d"], ["c"])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"line 3, column 'b': 'oops' is not a number"):
        load_arrays(tmp_path / "bad.csv", ["a"], ["b"])


def test_pt_data_is_weights_only(tmp_path: Path) -> None:
    torch.save({"x": torch.ones(4, 2), "y": torch.zeros(4, 1)}, tmp_path / "d.pt")
    x, y = load_arrays(tmp_path / "d.pt", "x", "y")
    assert x.shape == (4, 2) and y.shape == (4, 1)
    torch.save({"x": nn.Linear(1, 1)}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="weights_only"):
        load_arrays(tmp_path / "evil.pt", "x", "x")


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "d.h5").write_bytes(b"")
    with pytest.raises(DataError, match=r"Unsupported data file type '\.h5'"):
        load_arrays(tmp_path / "d.h5", "x", "y")


# --------------------------------------------------------------------------- factories
def test_factory_next_to_config_wins_over_stale_module(tmp_path: Path) -> None:
    write_factory(tmp_path / "one", hidden=2)
    write_factory(tmp_path / "two", hidden=5)
    assert import_factory("tinymodel:make", tmp_path / "one")().lin.out_features == 2
    # Same module name in another directory (a second config in one process): fresh import.
    assert import_factory("tinymodel:make", tmp_path / "two")().lin.out_features == 5
    assert import_factory("tinymodel:Net", tmp_path / "two") is not None


def test_factory_errors(tmp_path: Path) -> None:
    write_factory(tmp_path, name="factorymod")
    with pytest.raises(ConfigError, match=r"no nowhere_xyz\.py in .* PYTHONPATH"):
        import_factory("nowhere_xyz:make", tmp_path)
    with pytest.raises(ConfigError, match=r"has no attribute 'build'.*make"):
        import_factory("factorymod:build", tmp_path)
    with pytest.raises(ConfigError, match="not a callable"):
        import_factory("factorymod:VALUE", tmp_path)
    with pytest.raises(ConfigError, match="'module:function'"):
        import_factory("factorymod.make", tmp_path)
    (tmp_path / "json.py").write_text("def make():\n    return 1\n")
    with pytest.raises(ConfigError, match="rename the file"):
        import_factory("json:make", tmp_path)
    (tmp_path / "reexport.py").write_text("from os import system\n")
    for spec in ("os:system", "builtins:exec", "subprocess:run", "reexport:system"):
        with pytest.raises(ConfigError, match="standard library"):
            import_factory(spec, tmp_path)
    (tmp_path / "broken.py").write_text("import not_a_real_package_xyz\n")
    with pytest.raises(ConfigError, match="not_a_real_package_xyz"):
        import_factory("broken:make", tmp_path)


def test_no_unsafe_unpickling_in_io() -> None:
    source = (Path(__file__).parents[1] / "src" / "scirobust" / "io.py").read_text()
    for unsafe in ("allow_pickle=True", "pickle.load(", "pickle.loads(", "weights_only=False"):
        assert unsafe not in source


def test_data_file_problems_are_named(tmp_path: Path) -> None:
    text = tmp_path / "data.npz"
    text.write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"is not an \.npz file"):
        load_arrays(text, "x", "y")
    np.savez(tmp_path / "d.npz", a=np.ones((3, 2)), s=np.array(["a", "b", "c"]))
    with pytest.raises(DataError) as info:
        load_arrays(tmp_path / "d.npz", "x", "y")
    assert "inputs: no array named 'x'" in str(info.value)
    assert "targets: no array named 'y'" in str(info.value)
    with pytest.raises(DataError, match="holds <U1 values, not numbers"):
        load_arrays(tmp_path / "d.npz", "s", "a")
    bad = np.ones((3, 2))
    bad[1, 0] = np.nan
    np.savez(tmp_path / "n.npz", x=bad, y=np.ones(3))
    with pytest.raises(DataError, match=r"inputs: 1 of 3 samples .* NaN or Inf"):
        load_arrays(tmp_path / "n.npz", "x", "y")


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype("uint8").tobytes())


def test_mnist_and_cifar10_folders_are_read_without_unpickling_code(tmp_path: Path) -> None:
    import pickle
    from fractions import Fraction

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    xtr, _, _, yte = read_mnist(tmp_path)
    assert xtr.shape == (20, 1, 28, 28) and yte.shape == (10,) and float(xtr.max()) <= 1.0

    folder = tmp_path / "c" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8),
                 "labels": [1, 2, 3, 4]}
        (folder / name).write_bytes(pickle.dumps(batch))
    xtr, _, xte, _ = read_cifar10(tmp_path / "c")
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (4, 3, 32, 32)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": Fraction(1, 2), "labels": []}))
    with pytest.raises(DataError, match="only NumPy arrays"):
        read_cifar10(tmp_path / "c")
    assert read_mnist(tmp_path / "c") is None and read_cifar10(tmp_path) is None
