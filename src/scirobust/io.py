"""Safe loading of user files: model factories, checkpoints and data arrays.

Nothing here unpickles arbitrary objects unless asked to: checkpoints and ``.pt`` data are read
with ``torch.load(weights_only=True)`` (tensors, containers and numbers only), ``.npz`` with
``allow_pickle=False`` and ``.csv`` as plain text. Only `load_checkpoint` with ``trust=True``
(the CLI's ``--trust-checkpoint``) runs the full unpickler, because a pickle can execute code.

Error messages of the data functions start with the role of the offending item (``inputs``,
``targets``) so the config layer can prefix its key path (``data.inputs: ...``).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib
import pickle  # its exception class; read_cifar10's unpickler builds NumPy arrays only
import re
import sys
import sysconfig
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from scirobust.errors import ConfigError, DataError

__all__ = [
    "DATA_SUFFIXES",
    "apply_checkpoint",
    "import_factory",
    "load_arrays",
    "load_checkpoint",
    "parse_factory",
    "read_arrays",
    "read_cifar10",
    "read_mnist",
]

DATA_SUFFIXES = (".npz", ".pt", ".csv")
Names = str | Sequence[str]

_TRUST_HINT = (
    "Pass --trust-checkpoint (Python: trust=True) only for files you trust, because loading "
    "them runs code stored in the file; otherwise save the weights with "
    "torch.save(model.state_dict(), path) and load that instead."
)


# --------------------------------------------------------------------------- factories
def parse_factory(spec: str) -> tuple[str, str]:
    """Split ``"module:function"`` into its two parts (ConfigError if malformed)."""
    module, sep, attr = spec.partition(":")
    parts = [*module.split("."), *attr.split(".")]
    if not sep or not all(p.isidentifier() for p in parts):
        raise ConfigError(
            f"A model factory must be written 'module:function' (e.g. 'model:make_model'); "
            f"got {spec!r}."
        )
    return module, attr


def _local_module(module: str, search_dir: Path) -> Path | None:
    """The file or package directory of ``module``'s top-level name inside ``search_dir``."""
    top = module.split(".")[0]
    for candidate in (search_dir / f"{top}.py", search_dir / top):
        if candidate.is_file() or (candidate.is_dir() and any(candidate.glob("*.py"))):
            return candidate
    return None


def _is_installed(mod: Any) -> bool:
    """True for modules of the standard library or of site-packages."""
    origin = getattr(mod, "__file__", None)
    if origin is None:
        return True  # built-in or namespace: never shadow those
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")}
    return any(Path(origin).resolve().is_relative_to(Path(r).resolve()) for r in roots)


@contextlib.contextmanager
def _sys_path_first(directory: Path) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` while a module (and its siblings) import."""
    entry = str(directory)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _import_local(module: str, local: Path, search_dir: Path) -> Any:
    top = module.split(".")[0]
    cached = sys.modules.get(top)
    if cached is not None:
        origin = getattr(cached, "__file__", None) or ""
        if origin and Path(origin).resolve().is_relative_to(local.resolve()):
            return importlib.import_module(module)
        if _is_installed(cached):
            raise ConfigError(
                f"The factory module {local.name!r} next to the config file has the same name "
                f"as the installed module {top!r}; rename the file (e.g. {top}_model.py)."
            )
        # A same-named module from another directory (e.g. a previous config in the same
        # process) is stale here: the user asked for the file next to this config.
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
    importlib.invalidate_caches()
    with _sys_path_first(search_dir):
        return importlib.import_module(module)


def import_factory(spec: str, search_dir: str | Path | None = None) -> Callable[..., Any]:
    """Import ``"module:function"``; the module is looked up in ``search_dir`` first.

    ``search_dir`` is the directory of the config file, so ``factory: model:make_model`` finds
    ``model.py`` beside it; otherwise the module is imported from ``sys.path`` (PYTHONPATH and
    installed packages). ``function`` may be dotted (``module:Class.build``).
    """
    module_name, attr = parse_factory(spec)
    local = _local_module(module_name, Path(search_dir)) if search_dir is not None else None
    if local is None:  # a local file named like a standard module is refused below
        _refuse_standard_library(spec, module_name)
    try:
        if local is not None:
            module = _import_local(module_name, local, Path(search_dir))  # type: ignore[arg-type]
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if local is None and (module_name == missing or module_name.startswith(missing + ".")):
            where = f"no {module_name.split('.')[0]}.py in {search_dir} and " if search_dir else ""
            raise ConfigError(
                f"Cannot import the factory module {module_name!r}: {where}no module of that "
                "name on PYTHONPATH. Put the file next to the config file or add its "
                "directory to PYTHONPATH."
            ) from exc
        raise ConfigError(
            f"Importing the factory module {module_name!r} failed: {exc}. Install the missing "
            "package. Re-run with --debug for the traceback."
        ) from exc
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"Importing the factory module {module_name!r} failed with "
            f"{type(exc).__name__}: {exc}. Re-run with --debug for the traceback."
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            public = sorted(n for n in dir(module) if not n.startswith("_")
                            and callable(getattr(module, n)))
            raise ConfigError(
                f"Module {module_name!r} ({getattr(module, '__file__', '?')}) has no attribute "
                f"{attr!r}. Callables defined there: {', '.join(public) or 'none'}."
            )
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{spec!r} is a {type(target).__name__}, not a callable factory.")
    # A factory module may re-export a standard-library callable (from os import system).
    _refuse_standard_library(spec, str(getattr(target, "__module__", None) or ""))
    return target


def _refuse_standard_library(spec: str, module_name: str) -> None:
    """Refuse factories from Python's standard library or builtins.

    A config file is data, but its ``model.factory`` names code that scirobust calls with
    the config's keyword arguments; ``os:system`` would run a shell command. Factories may
    only come from a module file beside the config or from an installed package, and the user
    who runs the config runs that code.
    """
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in ("builtins", "__main__"):
        raise ConfigError(
            f"model.factory {spec!r} refers to {module_name!r} from Python's standard library; "
            "a factory must be a function in a module file beside the config (or in an "
            "installed package) that builds and returns your model. scirobust never calls "
            "standard-library functions named in a config file."
        )


# --------------------------------------------------------------------------- checkpoints
def load_checkpoint(path: str | Path, *, trust: bool = False) -> Any:
    """Load a checkpoint on the CPU with ``weights_only=True`` unless ``trust=True``.

    A state_dict (or a dict of tensors and numbers) loads safely. A whole pickled module
    needs ``trust=True``; the error says so.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Checkpoint file not found: {path}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        # The weights-only unpickler names the first Python object it refused to build.
        refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if not trust and refused:
            raise ConfigError(
                f"The checkpoint {path} holds Python objects, not only tensors (it needs "
                f"{refused.group(1)}; for example a whole pickled model), so it cannot be "
                f"loaded safely with weights_only=True. {_TRUST_HINT}"
            ) from exc
        raise ConfigError(
            f"Cannot read the checkpoint {path}: it is not a file written by torch.save, or "
            f"it is damaged ({' '.join(str(exc).split())[:160]})."
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"Cannot read the checkpoint {path}: {type(exc).__name__}: {exc}. Is it a file "
            "written by torch.save?"
        ) from exc


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    )


def _strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop a wrapper prefix shared by every key (DataParallel 'module.', torch.compile)."""
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def apply_checkpoint(model: nn.Module, checkpoint: Any) -> nn.Module:
    """Load ``checkpoint`` into ``model`` and return the model to audit.

    Accepts a state_dict, a training checkpoint holding one under ``state_dict``,
    ``model_state_dict`` or ``model``, or (trusted loads only) a whole ``nn.Module``, which
    then replaces ``model``.
    """
    if isinstance(checkpoint, nn.Module):
        return checkpoint
    state = checkpoint
    if isinstance(checkpoint, Mapping) and not _is_state_dict(checkpoint):
        state = next((checkpoint[k] for k in ("state_dict", "model_state_dict", "model")
                      if _is_state_dict(checkpoint.get(k))), None)
    if not _is_state_dict(state):
        keys = f" with keys {sorted(map(str, checkpoint))[:10]}" if isinstance(
            checkpoint, Mapping) else ""
        raise ConfigError(
            f"The checkpoint holds a {type(checkpoint).__name__}{keys}, not a state_dict "
            "(a mapping of parameter names to tensors). Save it with "
            "torch.save(model.state_dict(), path)."
        )
    try:
        model.load_state_dict(_strip_prefix(state), strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(
            f"The checkpoint's state_dict does not fit the model built by the factory "
            f"({type(model).__name__}): {detail[:600]}. Check the factory's kwargs (layer "
            "sizes) against the saved model."
        ) from exc
    return model


# --------------------------------------------------------------------------- data
def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with path.open("rb") as handle:
        magic = handle.read(4)
    # np.load treats any non-zip file as a pickle, whose refusal would be misreported below.
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise DataError(f"{path} is not an .npz file (an .npz is a zip archive written by "
                        "np.savez(path, x=inputs, y=targets)); check the file or its suffix.")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except ValueError as exc:  # object arrays need pickle: refuse rather than unpickle
        raise DataError(
            f"{path} contains object arrays, which cannot be read without unpickling; save "
            "numeric arrays with np.savez(path, x=inputs, y=targets)."
        ) from exc
    except Exception as exc:
        raise DataError(f"Cannot read {path} as .npz: {type(exc).__name__}: {exc}") from exc


def _read_pt(path: Path) -> dict[str, Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(
            f"Cannot read {path} safely (weights_only=True): {' '.join(str(exc).split())[:200]}"
            ". Data files must hold a dict of tensors: torch.save({'x': x, 'y': y}, path)."
        ) from exc
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise DataError(
            f"{path} holds a {type(data).__name__}; a .pt data file must hold a dict of "
            "tensors: torch.save({'x': x, 'y': y}, path)."
        )
    return {str(k): v for k, v in data.items()}


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path} is empty; a .csv data file needs a header row.")
        header = [h.strip() for h in header]
        rows = [r for r in reader if any(cell.strip() for cell in r)]
    columns: dict[str, list[float]] = {h: [] for h in header}
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields but the header has "
                            f"{len(header)}.")
        for name, cell in zip(header, row, strict=True):
            try:
                columns[name].append(float(cell))
            except ValueError:
                raise DataError(
                    f"{path}, line {line}, column {name!r}: {cell!r} is not a number."
                ) from None
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def read_arrays(path: str | Path) -> dict[str, np.ndarray | Tensor]:
    """All named arrays of a ``.npz``, ``.pt`` (dict of tensors) or ``.csv`` (columns) file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file not found: {path}.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return dict(_read_npz(path))
    if suffix == ".pt":
        return dict(_read_pt(path))
    if suffix == ".csv":
        return dict(_read_csv(path))
    raise DataError(
        f"Unsupported data file type {suffix!r} ({path.name}); use .npz, .pt (a dict of "
        "tensors) or .csv (with a header row)."
    )


def _select(arrays: Mapping[str, Any], names: Names, role: str, path: Path) -> Tensor:
    """One array by name, or 1-D arrays/columns stacked as features (a list of names)."""
    kind = "column" if path.suffix.lower() == ".csv" else "array"
    wanted = [names] if isinstance(names, str) else list(names)
    if not wanted:
        raise DataError(f"{role}: give at least one {kind} name.")
    missing = [n for n in wanted if n not in arrays]
    if missing:
        raise DataError(
            f"{role}: no {kind} named {', '.join(map(repr, missing))} in {path.name}; "
            f"available: {', '.join(arrays) or 'none'}."
        )
    for n in wanted:
        value = arrays[n]
        if not isinstance(value, Tensor) and np.asarray(value).dtype.kind not in "biuf":
            raise DataError(f"{role}: the {kind} {n!r} in {path.name} holds "
                            f"{np.asarray(value).dtype} values, not numbers.")
    tensors = [torch.as_tensor(np.asarray(arrays[n]) if not isinstance(arrays[n], Tensor)
                               else arrays[n]) for n in wanted]
    if isinstance(names, str) and kind == "array":
        return tensors[0]
    bad = [n for n, t in zip(wanted, tensors, strict=True) if t.dim() != 1]
    if bad:
        raise DataError(f"{role}: a list of names stacks 1-D arrays as features, but "
                        f"{', '.join(map(repr, bad))} is not 1-D; give a single array name.")
    lengths = {t.shape[0] for t in tensors}
    if len(lengths) != 1:
        raise DataError(f"{role}: the {kind}s {wanted} have different lengths {sorted(lengths)}.")
    return torch.stack(tensors, dim=1)


def _as_labels(targets: Tensor, role: str) -> Tensor:
    """Integer class labels of shape (N,), from ints or integer-valued floats."""
    if targets.dim() == 2 and targets.shape[1] == 1:
        targets = targets[:, 0]
    if targets.dim() != 1:
        raise DataError(
            f"{role}: classification needs integer class labels of shape (N,); got shape "
            f"{tuple(targets.shape)} (one-hot? store labels = onehot.argmax(1))."
        )
    if targets.dtype == torch.bool or targets.is_complex():
        raise DataError(f"{role}: class labels must be integers; got dtype {targets.dtype}.")
    if targets.is_floating_point() and (
            not torch.isfinite(targets).all() or (targets != targets.round()).any()):
        raise DataError(
            f"{role}: classification (cross_entropy) needs integer class labels 0..C-1, "
            "but the targets hold non-integer values; use task: regression for "
            "real-valued targets."
        )
    labels = targets.long()
    if labels.numel() and labels.min() < 0:
        raise DataError(f"{role}: class labels must be >= 0; found {int(labels.min())}.")
    return labels


def load_arrays(
    path: str | Path, inputs: Names, targets: Names, *, task: str = "regression"
) -> tuple[Tensor, Tensor]:
    """Inputs (float32, shape (N, ...)) and targets from a ``.npz``, ``.pt`` or ``.csv`` file.

    ``inputs``/``targets`` name an array (npz, dict in .pt) or a list of columns (csv, or 1-D
    arrays stacked as features). 1-D inputs become shape (N, 1). Targets are float32 for
    ``task="regression"`` and int64 labels of shape (N,) for ``"classification"``.
    """
    path = Path(path)
    arrays = read_arrays(path)
    selected: dict[str, Tensor] = {}
    problems: list[str] = []
    for role, names in (("inputs", inputs), ("targets", targets)):
        try:  # report every missing or unreadable array at once
            selected[role] = _select(arrays, names, role, path)
        except DataError as exc:
            problems.append(str(exc))
    if problems:
        raise DataError(" ".join(problems))
    x, y = selected["inputs"], selected["targets"]
    for role, t in (("inputs", x), ("targets", y)):
        if t.dtype == torch.bool or t.is_complex():
            raise DataError(f"{role}: must be real numbers; got dtype {t.dtype}.")
    n_bad = int((~torch.isfinite(x.to(torch.float64))).reshape(x.shape[0], -1).any(1).sum()) \
        if x.numel() else 0
    if n_bad:
        raise DataError(f"inputs: {n_bad} of {x.shape[0]} samples in {path.name} contain NaN or "
                        "Inf; remove or impute them before the audit.")
    x = x.to(torch.float32)
    if x.dim() == 1:
        x = x[:, None]
    if x.shape[0] != y.shape[0]:
        raise DataError(
            f"inputs have {x.shape[0]} samples but targets have {y.shape[0]}; the first "
            "axis of both must index the same samples."
        )
    if x.shape[0] == 0:
        raise DataError(f"{path.name} holds no samples.")
    if task == "classification":
        return x, _as_labels(y, "targets")
    return x, y.to(torch.float32)


# --------------------------------------------------------------------------- image data sets
def _read_idx(path: Path) -> np.ndarray:
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
        data = handle.read()
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def read_mnist(root: str | Path) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """MNIST from a torchvision-layout folder (``root/MNIST/raw/*-ubyte[.gz]``), or None if
    absent: ``(x_train, y_train, x_test, y_test)``, images ``(N, 1, 28, 28)`` in [0, 1]."""
    raw = Path(root) / "MNIST" / "raw"
    paths = [next((p for p in (raw / stem, raw / f"{stem}.gz") if p.is_file()), None)
             for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    if any(p is None for p in paths):
        return None
    xtr, ytr, xte, yte = (torch.tensor(_read_idx(p)) for p in paths if p is not None)
    return xtr[:, None].float() / 255.0, ytr.long(), xte[:, None].float() / 255.0, yte.long()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and NumPy arrays (the CIFAR-10 python batches)."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        (core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"CIFAR-10 batch refers to {module}.{name}; only NumPy arrays are "
                        "accepted (is this the original cifar-10-python archive?).")


def read_cifar10(root: str | Path) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (torchvision layout), or None if absent:
    ``(x_train, y_train, x_test, y_test)``, images ``(N, 3, 32, 32)`` in [0, 1].

    The batches are pickles; they are read with an unpickler that builds NumPy arrays only.
    """
    folder = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all((folder / n).is_file() for n in names):
        return None
    xs, ys = [], []
    for name in names:
        with (folder / name).open("rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="latin1").load()
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        xs.append(torch.tensor(data, dtype=torch.float32) / 255.0)
        ys.append(torch.tensor(np.asarray(batch["labels"])).long())
    return torch.cat(xs[:5]), torch.cat(ys[:5]), xs[5], ys[5]
