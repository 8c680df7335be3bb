"""The YAML audit file: pydantic models, up-front validation and building of the audit.

`load_config` reads and validates the whole file (schema, then cross-field rules and file
existence) and raises one `ConfigError` that names every offending key path, e.g.
``budget.norm: must be 'linf' or 'l2', got 'l3'``. `build_audit` then imports the model
factory, loads the checkpoint and data, runs one forward pass and builds the `Budget`, checking
everything that needs the model or data (array names, sample counts, mask length, labels)
before any attack runs. `AuditPlan.run` performs the audit.

Schema (top-level keys exactly these; paths are relative to the config file)::

    model:      {factory: "module:function", kwargs: {...}, checkpoint: weights.pt}
    data:       {path: data.npz|.pt|.csv, inputs: NAME|[COLUMNS], targets: NAME|[COLUMNS],
                 variable_names: [...]}
    task:       regression | classification                      (default regression)
    objective:  mse | relative_l2 | cross_entropy                (default by task)
    budget:     {norm: linf|l2, relative: bool, mask: [true/false or 0/1 per feature],
                 bounds: [lower, upper], outside: clip|drop, scale: number|[...]|std}
    attacks:    [fgsm, {name: pgd_linf, steps: 20, step_size: 0.25, random_start: true,
                 label: pgd20}]                                   (default random_sign, fgsm)
    epsilons:   [0.01, 0.03, 0.1]                                 (required, each >= 0)
    metrics:    [rmse, relative_l2, rmse_per_variable]            (default by task)
    n_random: 5, batch_size: 1024, seed: 0, output: DIR, case: LABEL, name: MODEL_LABEL
"""

from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from torch import Tensor, nn

from scirobust.attacks import ATTACKS
from scirobust.audit import audit as run_audit
from scirobust.budget import Budget
from scirobust.errors import ConfigError, ScirobustError
from scirobust.io import (
    DATA_SUFFIXES,
    apply_checkpoint,
    import_factory,
    load_arrays,
    load_checkpoint,
    parse_factory,
)
from scirobust.metrics import METRICS
from scirobust.results import Results
from scirobust.sweep import AttackRun, Sweep

__all__ = [
    "AttackSection",
    "AuditConfig",
    "AuditPlan",
    "BudgetSection",
    "DataSection",
    "ModelSection",
    "build_audit",
    "build_model",
    "load_config",
    "validate_config",
]

DEFAULT_OBJECTIVE = {"regression": "mse", "classification": "cross_entropy"}
METRIC_NAMES = (*METRICS, "rmse_per_variable")


# --------------------------------------------------------------------------- value checks
def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: Any) -> float:
    """A finite float from a YAML number (or a numeric string such as '1e-3')."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def _number_or_list(value: Any, what: str) -> float | list[float]:
    """A number, or a flat list of numbers (one per input feature); ``what`` starts the error."""
    try:
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError
            return [_number(v) for v in value]
        return _number(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"{what} a finite number or a list of finite numbers (one per input feature), "
            f"got {_short(value)}"
        ) from None


def _names(value: Any) -> str | list[str]:
    if isinstance(value, str) and value.strip():
        return value
    if (isinstance(value, list) and value
            and all(isinstance(v, str) and v.strip() for v in value)):
        return list(value)
    raise ValueError(
        f"must be an array name (npz/pt) or a list of column names (csv), got {_short(value)}"
    )


def _metric_name(name: str) -> str:
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; valid metrics: {', '.join(METRIC_NAMES)}")
    return name


Names = Annotated[str | list[str], BeforeValidator(_names)]
Epsilon = Annotated[float, Field(ge=0, allow_inf_nan=False)]
MetricName = Annotated[str, AfterValidator(_metric_name)]
FeatureValue = float | list[float]


# --------------------------------------------------------------------------- schema
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    """How to build the model: a factory, its kwargs, optionally a state_dict checkpoint."""

    factory: str = Field(description="'module:function' returning a torch.nn.Module (the "
                         "module is looked up next to the config file first, then on PYTHONPATH)")
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="keyword arguments passed to the factory")
    checkpoint: str | None = Field(None, description="path of a state_dict saved with "
                                   "torch.save(model.state_dict(), path)")

    @field_validator("factory")
    @classmethod
    def _factory_form(cls, value: str) -> str:
        try:
            parse_factory(value)
        except ConfigError:
            raise ValueError(
                f"must be 'module:function' (e.g. 'model:make_model'), got {value!r}"
            ) from None
        return value

    @field_validator("kwargs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class DataSection(_Section):
    """Where the inputs and targets are: one file and the names of its arrays or columns."""

    path: str = Field(description="a .npz, .pt (dict of tensors) or .csv (with header) file")
    inputs: Names = Field(description="array name (npz/pt) or list of column names (csv)")
    targets: Names = Field(description="array name (npz/pt) or list of column names (csv)")
    variable_names: list[str] | None = Field(None, description="names of the output variables")

    @field_validator("path")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if Path(value).suffix.lower() not in DATA_SUFFIXES:
            raise ValueError(
                f"unsupported file type {Path(value).suffix or '(none)'!r} in {value!r}; use "
                ".npz, .pt (a dict of tensors) or .csv (with a header row)"
            )
        return value


class BudgetSection(_Section):
    """Geometry of the allowed perturbation; each epsilon multiplies it (eps = 1 here)."""

    norm: Literal["linf", "l2"] = Field("linf", description="'linf' or 'l2'")
    relative: bool = Field(False, description="eps is a fraction of |x| (linf) or ||x||_2 (l2)")
    mask: list[bool] | None = Field(None, description="true/false (or 1/0) per input feature")
    bounds: tuple[FeatureValue, FeatureValue] | None = Field(
        None, description="[lower, upper], each a number or a list with one per input feature")
    outside: Literal["clip", "drop"] = Field("clip", description="'clip' or 'drop'")
    scale: FeatureValue | Literal["std"] | None = Field(
        None, description="unit of eps: a number, a list per feature, or 'std'")

    @field_validator("mask")
    @classmethod
    def _some_true(cls, value: list[bool] | None) -> list[bool] | None:
        if value is not None and not any(value):
            raise ValueError("is false everywhere, so nothing could be perturbed; mark the "
                             "features that may move with true (or 1)")
        return value

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, value: Any) -> Any:
        if value is None or value == "std":
            return value
        scale = _number_or_list(value, "must be 'std' or")
        if min(scale if isinstance(scale, list) else [scale]) < 0:
            raise ValueError(f"must be >= 0 (it is a unit of length), got {_short(value)}")
        return scale

    @field_validator("bounds", mode="before")
    @classmethod
    def _bounds(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError(f"must be a pair [lower, upper], got {_short(value)}")
        lower = _number_or_list(value[0], "the lower bound must be")
        upper = _number_or_list(value[1], "the upper bound must be")
        pairs = list(zip(
            lower if isinstance(lower, list) else [lower] * _len(upper),
            upper if isinstance(upper, list) else [upper] * _len(lower), strict=False))
        if any(lo > hi for lo, hi in pairs):
            raise ValueError(f"lower bound exceeds upper bound in {_short(value)}")
        return (lower, upper)


def _len(value: FeatureValue) -> int:
    return len(value) if isinstance(value, list) else 1


class AttackSection(_Section):
    """One attack of the sweep: a name from `scirobust.attacks.ATTACKS` and its parameters."""

    name: str = Field(description="attack name")
    steps: int | None = Field(None, ge=1, description="gradient steps")
    step_size: float | None = Field(None, gt=0, allow_inf_nan=False,
                                    description="step length as a fraction of eps")
    random_start: bool | None = Field(None, description="start from a random point")
    label: str | None = Field(None, description="name of this attack in the results")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if not isinstance(value, Mapping):
            raise ValueError(
                "must be an attack name or a mapping {name, steps, step_size, random_start, "
                f"label}}, got {_short(value)}"
            )
        return value

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ATTACKS:
            raise ValueError(f"unknown attack {value!r}; valid attacks: {', '.join(ATTACKS)}")
        return value

    @property
    def key(self) -> str:
        """Name of this attack in the results."""
        return self.label or self.name


def _default_attacks() -> list[AttackSection]:
    return [AttackSection(name="random_sign"), AttackSection(name="fgsm")]


class FileConfig(_Section):
    """What every YAML audit file has beside its model and data: the sweep's attacks,
    epsilons, draws, batch size and seed, and where and under which labels results go.
    Relative paths are resolved against the config file's directory."""

    attacks: list[AttackSection] = Field(default_factory=_default_attacks, min_length=1,
                                         description="attack names or mappings")
    epsilons: list[Epsilon] = Field(min_length=1,
                                    description="a list of perturbation sizes >= 0")
    n_random: int = Field(5, ge=1, description="draws per random control (>= 1)")
    batch_size: int = Field(1024, ge=1, description="samples per forward pass (>= 1)")
    seed: int = Field(0, description="seed of every random draw (an integer)")
    output: str | None = Field(None, description="output directory (relative to the config)")
    case: str | None = Field(None, description="label of this audit in the results")
    name: str | None = Field(None, description="label of the model in the results")

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the file refer to (the config file's)."""
        return self._base_dir

    @property
    def source(self) -> Path | None:
        """The config file, if loaded from one."""
        return self._source

    def located(self, base_dir: str | Path, source: str | Path | None) -> None:
        """Record where the file lies (relative paths are resolved against ``base_dir``)."""
        self._base_dir = Path(base_dir).resolve()
        self._source = Path(source) if source is not None else None

    def resolve(self, path: str | Path) -> Path:
        """``path`` made absolute relative to the config file's directory."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self._base_dir / path

    @property
    def label(self) -> str:
        """Case label of the records: ``case``, else the config file's stem."""
        return self.case or (self._source.stem if self._source else "audit")

    def output_dir(self, override: str | Path | None = None) -> Path:
        """``override`` (CLI --output), else ``output`` from the file, else
        ``scirobust-output/<label>`` in the working directory."""
        if override is not None:
            return Path(override)
        if self.output is not None:
            return self.resolve(self.output)
        label = self.label
        # The label names a folder: a path in it would escape scirobust-output/.
        if not label.strip() or label in (".", "..") or any(c in label for c in "/\\\0"):
            raise ConfigError(
                f"case: {label!r} cannot name the output folder (it is empty or contains a "
                "path separator); give a plain name, or set output: / --output."
            )
        return Path("scirobust-output") / label


class AuditConfig(FileConfig):
    """The audit file of a regression or classification model (see the module docstring)."""

    model: ModelSection = Field(description="the model factory and checkpoint")
    data: DataSection = Field(description="the data file and array names")
    task: Literal["regression", "classification"] = Field(
        "regression", description="'regression', 'classification' (or 'atomistic', see "
        "scirobust.atomistic.config)")
    objective: Literal["mse", "relative_l2", "cross_entropy"] | None = Field(
        None, description="what the attacker maximises (default: mse or cross_entropy)")
    budget: BudgetSection = Field(default_factory=BudgetSection,
                                  description="norm, relative, mask, bounds, outside, scale")
    metrics: list[MetricName] | None = Field(None, description=f"any of {METRIC_NAMES}")

    @field_validator("budget", mode="before")
    @classmethod
    def _empty_budget(cls, value: Any) -> Any:
        return {} if value is None else value  # `budget:` with every line commented out

    @property
    def objective_name(self) -> str:
        """The objective, defaulted by task."""
        return self.objective or DEFAULT_OBJECTIVE[self.task]


# --------------------------------------------------------------------------- errors
def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X``, ``list[X]`` or ``X | None``."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_class(arg)
            if found is not None:
                return found
    return None


def _walk(loc: tuple[int | str, ...], root: type[BaseModel] = AuditConfig
          ) -> tuple[type[BaseModel] | None, Any]:
    """(model class at ``loc``, field info of its last key) for describing an error."""
    model: type[BaseModel] | None = root
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None, None
        info = model.model_fields[part]
        model = _model_class(info.annotation)
    return model, info


_TYPE_WORDS = {
    "int": "an integer", "float": "a number", "bool": "true or false (or 1/0)",
    "string": "a string", "list": "a list", "dict": "a mapping (key: value lines)",
    "model": "a mapping (key: value lines)", "tuple": "a list", "finite": "a finite number",
}


def _describe(error: Mapping[str, Any], root: type[BaseModel] = AuditConfig) -> str:
    loc = tuple(error["loc"])
    path, kind, ctx = _key_path(loc), error["type"], error.get("ctx") or {}
    got = _short(error.get("input"))
    if kind == "extra_forbidden":
        parent, _ = _walk(loc[:-1], root)
        allowed = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{path}: unknown key{hint}; allowed keys here: {', '.join(allowed)}"
    _, info = _walk(loc, root)
    expected = f" ({info.description})" if info is not None and info.description else ""
    if kind == "missing":
        return f"{path}: required key is missing{expected}"
    if kind == "literal_error":
        return f"{path}: must be {ctx.get('expected')}, got {got}"
    if kind == "value_error":
        return f"{path}: {ctx.get('error')}"
    bounds = {"greater_than_equal": ">= {ge}", "greater_than": "> {gt}",
              "less_than_equal": "<= {le}", "less_than": "< {lt}"}
    if kind in bounds:
        return f"{path}: must be {bounds[kind].format(**ctx)}, got {got}"
    if kind == "too_short":
        return f"{path}: must not be empty{expected}"
    for prefix, words in _TYPE_WORDS.items():
        if kind.startswith(prefix):
            return f"{path}: must be {words}, got {got}{expected}"
    return f"{path}: {error.get('msg')}, got {got}{expected}"


def _config_error(source: str, problems: list[str]) -> ConfigError:
    lines = "\n".join(f"  - {p}" for p in problems)
    return ConfigError(f"Invalid config {source}:\n{lines}")


def _semantic_problems(cfg: AuditConfig) -> list[str]:
    """Cross-field rules and file existence: cheap checks that need no model or data."""
    problems: list[str] = []
    objective = cfg.objective_name
    if cfg.task == "regression" and objective == "cross_entropy":
        problems.append("objective: 'cross_entropy' needs task: classification (integer labels);"
                        " for regression use mse or relative_l2")
    if cfg.task == "classification" and objective != "cross_entropy":
        problems.append(f"objective: {objective!r} compares real-valued outputs and does not "
                        "fit task: classification; use cross_entropy (the default)")
    for i, name in enumerate(cfg.metrics or []):
        metric_task = METRICS[name].task if name in METRICS else "regression"
        if metric_task != cfg.task:
            valid = [m for m in METRIC_NAMES
                     if (METRICS[m].task if m in METRICS else "regression") == cfg.task]
            problems.append(f"metrics[{i}]: {name!r} is a {metric_task} metric but task is "
                            f"{cfg.task}; use one of {', '.join(valid)}")
    for i, run in enumerate(cfg.attacks):
        spec = ATTACKS[run.name]
        if cfg.task == "regression" and (spec.targeted or spec.kind == "sparse"):
            problems.append(f"attacks[{i}]: {run.name!r} works on class decisions and needs "
                            "task: classification")
    keys = [run.key for run in cfg.attacks]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"attacks: {key!r} appears twice; give one of them a distinct 'label'")
    if cfg.budget.outside == "drop" and cfg.budget.bounds is None:
        problems.append("budget.outside: 'drop' needs budget.bounds to say what the domain is")
    if cfg.budget.relative and cfg.budget.scale is not None:
        problems.append("budget.scale: give either relative: true or a scale, not both")
    if not cfg.resolve(cfg.data.path).is_file():
        problems.append(f"data.path: file not found: {cfg.resolve(cfg.data.path)} (relative "
                        "paths are resolved against the config file's directory)")
    if cfg.model.checkpoint is not None and not cfg.resolve(cfg.model.checkpoint).is_file():
        problems.append(f"model.checkpoint: file not found: {cfg.resolve(cfg.model.checkpoint)}"
                        " (relative paths are resolved against the config file's directory)")
    return problems


# --------------------------------------------------------------------------- loading
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_NODES = 100_000  # after expanding aliases; a real audit file has a few hundred


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate keys (PyYAML would keep the last silently) and
    documents that expand to more than `MAX_CONFIG_NODES` nodes through aliases (a few lines
    of nested ``&a [*a, *a, ...]`` expand to billions: the "billion laughs")."""

    def construct_document(self, node: yaml.Node) -> Any:
        sizes: dict[int, int] = {}

        def expanded(n: yaml.Node) -> int:
            if id(n) not in sizes:
                sizes[id(n)] = 0  # a recursive alias counts once and ends the recursion
                children: list[yaml.Node] = []
                if isinstance(n, yaml.SequenceNode):
                    children = list(n.value)
                elif isinstance(n, yaml.MappingNode):
                    children = [c for pair in n.value for c in pair]
                sizes[id(n)] = min(1 + sum(expanded(c) for c in children),
                                   MAX_CONFIG_NODES + 1)
            return sizes[id(n)]

        if expanded(node) > MAX_CONFIG_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"the document expands to more than {MAX_CONFIG_NODES} values "
                "through aliases (&/*); an audit file needs far fewer", node.start_mark)
        return super().construct_document(node)


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: Path) -> Any:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is {path.stat().st_size} bytes; an audit file is a few "
                          f"hundred (limit {MAX_CONFIG_BYTES}). Is it the right file?")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the config file {path}: {exc}") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {exc.problem}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def config_keys(config: type[FileConfig]) -> list[str]:
    """Top-level keys of an audit file: its own sections first, then the sweep's."""
    common = list(FileConfig.model_fields)
    return [k for k in config.model_fields if k not in common] + common


def parse_config(data: Any, config: type[FileConfig], *, base_dir: str | Path = ".",
                 source: str | Path | None = None) -> Any:
    """Validate a parsed mapping against the schema ``config``; one `ConfigError` lists every
    problem by key path."""
    name = str(source) if source is not None else "(mapping)"
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"Invalid config {name}: expected a mapping with the keys "
            f"{', '.join(config_keys(config))}; got {type(data).__name__}."
        )
    try:
        cfg = config.model_validate(data)
    except ValidationError as exc:
        raise _config_error(name, [_describe(e, config) for e in exc.errors()]) from None
    cfg.located(base_dir, source)
    return cfg


def validate_config(
    data: Any, *, base_dir: str | Path = ".", source: str | Path | None = None
) -> AuditConfig:
    """Validate a parsed config mapping; one `ConfigError` lists every problem by key path."""
    if isinstance(data, Mapping) and data.get("task") == "atomistic":
        raise ConfigError("task: atomistic files describe potentials and structures; read them "
                          "with scirobust.atomistic.config.load_atomistic_config (the "
                          "`scirobust audit` command does).")
    cfg = parse_config(data, AuditConfig, base_dir=base_dir, source=source)
    problems = _semantic_problems(cfg)
    if problems:
        raise _config_error(str(source) if source is not None else "(mapping)", problems)
    return cfg


def load_config(path: str | Path) -> AuditConfig:
    """Read and validate a YAML audit file (schema, cross-field rules, referenced files)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}.")
    return validate_config(read_yaml(path), base_dir=path.parent, source=path)


# --------------------------------------------------------------------------- building
@dataclass
class AuditPlan:
    """Everything an audit needs, built and checked from an `AuditConfig`: the model, the
    data and the `Sweep` (the same object the Python API takes)."""

    config: AuditConfig
    model: nn.Module
    inputs: Tensor
    targets: Tensor
    sweep: Sweep
    model_name: str
    variable_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def budget(self) -> Budget:
        """The sweep's budget."""
        return self.sweep.budget

    @property
    def attacks(self) -> list[AttackRun]:
        """The sweep's attacks."""
        return list(self.sweep.attacks)

    def run(
        self,
        *,
        cache_dir: str | Path | None = None,
        seed: int | None = None,
        device: str | None = None,
        progress: bool = False,
        distributed: bool = False,
    ) -> Results:
        """Run `scirobust.audit` with the config's sweep (``seed`` overrides the file's;
        ``distributed`` shards it across the torch.distributed process group)."""
        cfg = self.config
        sweep = self.sweep.replace(cache_dir=cache_dir, device=device,
                                   seed=cfg.seed if seed is None else seed,
                                   distributed=distributed)
        return run_audit(
            self.model, self.inputs, self.targets, sweep, task=cfg.task,
            objective=cfg.objective_name, case=cfg.label, model_name=self.model_name,
            variable_names=self.variable_names, progress=progress,
        )


def _prefixed(exc: ScirobustError, key: str) -> ConfigError:
    """Prefix an io/budget message with its key path (``data.inputs: ...``)."""
    message = str(exc)
    head = message.split(":", 1)[0]
    if head in ("inputs", "targets"):
        return ConfigError(f"{key}.{message}")
    return ConfigError(f"{key}: {message}")


def _build_model(cfg: AuditConfig, trust_checkpoint: bool,
                 checkpoint: str | Path | Literal["config"] | None = "config") -> nn.Module:
    section = cfg.model
    if checkpoint != "config":  # `build_model` (scirobust track): another checkpoint
        section = section.model_copy(
            update={"checkpoint": None if checkpoint is None else str(checkpoint)})
    try:
        factory = import_factory(section.factory, cfg.base_dir)
    except ScirobustError as exc:
        raise _prefixed(exc, "model.factory") from exc
    try:
        model = factory(**section.kwargs)
    except Exception as exc:
        raise ConfigError(
            f"model.factory: calling {section.factory}(**model.kwargs) with kwargs "
            f"{section.kwargs} failed with {type(exc).__name__}: {exc}. Check model.kwargs. "
            "Re-run with --debug for the traceback."
        ) from exc
    if section.checkpoint is not None:
        try:
            loaded = load_checkpoint(cfg.resolve(section.checkpoint), trust=trust_checkpoint)
            model = apply_checkpoint(model, loaded) if isinstance(model, nn.Module) \
                else loaded
        except ScirobustError as exc:
            raise _prefixed(exc, "model.checkpoint") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model.factory: {section.factory} returned a {type(model).__name__}; it must "
            "return a torch.nn.Module."
        )
    return model.eval()  # audits evaluate the deployed model; dropout/batch-norm frozen


def _model_dtype(model: nn.Module) -> torch.dtype:
    floating = [p.dtype for p in [*model.parameters(), *model.buffers()]
                if p.is_floating_point()]
    return floating[0] if floating else torch.float32


def _check_outputs(
    cfg: AuditConfig, model: nn.Module, inputs: Tensor, targets: Tensor
) -> tuple[Tensor, Tensor]:
    """One forward pass on two samples: output shape must fit the targets or labels."""
    probe = inputs[:2]
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as exc:
        raise ConfigError(
            f"model: a forward pass on {probe.shape[0]} samples of data.inputs, shape "
            f"{tuple(probe.shape)} ({probe.dtype}), failed with {type(exc).__name__}: {exc}. "
            "The model must take a batch (N, ...) of the inputs. Re-run with --debug for the "
            "traceback."
        ) from exc
    if not isinstance(out, Tensor):
        raise ConfigError(f"model: the forward pass returned a {type(out).__name__}; it must "
                          "return one tensor.")
    if cfg.task == "classification":
        if out.dim() != 2:
            raise ConfigError(f"model: a classifier must output logits of shape (N, classes); "
                              f"got {tuple(out.shape)}.")
        if int(targets.max()) >= out.shape[1]:
            raise ConfigError(f"data.targets: labels go up to {int(targets.max())} but the "
                              f"model outputs {out.shape[1]} classes (labels 0..C-1).")
        return out, targets
    if targets.dim() == 1 and out.shape[1:] == (1,):
        targets = targets[:, None]  # (N,) targets for a (N, 1) model: unambiguous
    if out.shape[1:] != targets.shape[1:]:
        raise ConfigError(
            f"data.targets: the model outputs shape (N, {', '.join(map(str, out.shape[1:]))}) "
            f"but the targets have shape {tuple(targets.shape)}; they must match."
        )
    return out, targets.to(out.dtype)


def _feature_tensor(value: Any, n_features: int, key: str) -> Tensor | float:
    if not isinstance(value, list):
        return value
    if len(value) != n_features:
        raise ConfigError(f"{key}: has {len(value)} entries but the inputs have {n_features} "
                          "features (last axis of data.inputs); give one per feature.")
    return torch.tensor(value, dtype=torch.float64)


def _build_budget(cfg: AuditConfig, inputs: Tensor, notes: list[str]) -> Budget:
    section, n_features = cfg.budget, inputs.shape[-1]
    mask = None
    if section.mask is not None:
        mask = _feature_tensor(section.mask, n_features, "budget.mask")
        assert isinstance(mask, Tensor)
        mask = mask.bool()
    scale: Tensor | float | None
    if section.scale == "std":
        scale = inputs.double().std(dim=0) if inputs.shape[0] > 1 else None
        if scale is None:
            raise ConfigError("budget.scale: 'std' needs at least two samples.")
        if (scale == 0).any():
            notes.append(f"{int((scale == 0).sum())} input feature(s) have zero standard "
                         "deviation; with scale: std they are never perturbed.")
    else:
        scale = None if section.scale is None else _feature_tensor(
            section.scale, n_features, "budget.scale")
    bounds = None
    if section.bounds is not None:
        bounds = tuple(_feature_tensor(b, n_features, f"budget.bounds[{i}]")
                       for i, b in enumerate(section.bounds))
    try:
        budget = Budget(eps=1.0, norm=section.norm, relative=section.relative, scale=scale,
                        mask=mask, bounds=bounds, outside=section.outside)
        budget.check_input(inputs)
    except ScirobustError as exc:
        raise _prefixed(exc, "budget") from exc
    outside = ~budget.inside(inputs)
    if outside.any():
        raise ConfigError(f"budget.bounds: {int(outside.sum())} of {inputs.shape[0]} clean "
                          "inputs already lie outside the bounds; widen the bounds or fix the "
                          "data.")
    return budget


def _variable_names(cfg: AuditConfig, out: Tensor) -> list[str] | None:
    if cfg.task != "regression":
        return None
    names = cfg.data.variable_names
    if names is None and isinstance(cfg.data.targets, list) and len(cfg.data.targets) > 1:
        names = list(cfg.data.targets)
    if names is not None and (out.dim() != 2 or len(names) != out.shape[1]):
        raise ConfigError(f"data.variable_names: {len(names)} names for model outputs of shape "
                          f"(N, {', '.join(map(str, out.shape[1:]))}); give one per output "
                          "variable.")
    return names


def build_audit(cfg: AuditConfig, *, trust_checkpoint: bool = False) -> AuditPlan:
    """Import the model, load checkpoint and data, and check they fit, before any attack.

    Raises `ConfigError` naming the key path of whatever does not fit (array names, sample
    counts, output shape vs targets, mask/scale/bounds length, labels vs classes).
    """
    model = _build_model(cfg, trust_checkpoint)
    try:
        inputs, targets = load_arrays(cfg.resolve(cfg.data.path), cfg.data.inputs,
                                      cfg.data.targets, task=cfg.task)
    except ScirobustError as exc:
        raise _prefixed(exc, "data") from exc
    # A float64 model gets float64 inputs rather than failing on a dtype mismatch.
    inputs = inputs.to(_model_dtype(model))
    out, targets = _check_outputs(cfg, model, inputs, targets)
    notes: list[str] = []
    budget = _build_budget(cfg, inputs, notes)
    try:
        sweep = Sweep(
            epsilons=tuple(cfg.epsilons), budget=budget,
            attacks=tuple(AttackRun(a.name, a.steps, a.step_size, a.random_start, a.label)
                          for a in cfg.attacks),
            metrics=tuple(cfg.metrics) if cfg.metrics else None, n_random=cfg.n_random,
            seed=cfg.seed, batch_size=cfg.batch_size,
        )
    except ScirobustError as exc:
        raise _prefixed(exc, "sweep") from exc
    model_name = cfg.name or parse_factory(cfg.model.factory)[1].split(".")[-1]
    return AuditPlan(cfg, model, inputs, targets, sweep, model_name,
                     _variable_names(cfg, out), notes)


def build_model(
    cfg: AuditConfig, *, checkpoint: str | Path | None = None, trust_checkpoint: bool = False
) -> nn.Module:
    """The config's model (factory and kwargs) with ``checkpoint`` loaded instead of
    ``model.checkpoint`` (None: the factory's own weights), in eval mode.

    Used by ``scirobust track`` to audit several checkpoints of one model; the checkpoint is
    loaded with ``weights_only=True`` unless ``trust_checkpoint``.
    """
    return _build_model(cfg, trust_checkpoint, checkpoint)
