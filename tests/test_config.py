"""The YAML audit file: schema messages by key path, cross-field rules, building the audit."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from scirobust.config import build_audit, load_config, validate_config
from scirobust.errors import ConfigError

FACTORY = """
import torch
from torch import nn

def make(n_in=3, n_out=2, dtype="float32"):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_in, 4), nn.Tanh(), nn.Linear(4, n_out)).to(
        getattr(torch, dtype))

def make_classifier():
    torch.manual_seed(0)
    return nn.Linear(3, 3)

def not_a_module():
    return 42
"""

BASE: dict[str, Any] = {
    "model": {"factory": "cfgmodel:make"},
    "data": {"path": "data.npz", "inputs": "x", "targets": "y"},
    "epsilons": [0.1],
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with a factory module and data (16 samples, 3 inputs, 2 outputs)."""
    (tmp_path / "cfgmodel.py").write_text(textwrap.dedent(FACTORY))
    gen = np.random.default_rng(0)
    x = gen.normal(size=(16, 3)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=gen.normal(size=(16, 2)), y1=gen.normal(size=16),
             labels=np.arange(16) % 3, half=np.full(16, 0.5), short=np.zeros(15))
    return tmp_path


def config(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-key changes, e.g. config(**{"budget.norm": "l3"})."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return data


def problems(data: dict[str, Any], base_dir: Path) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(data, base_dir=base_dir, source="audit.yaml")
    return str(info.value)


def built_error(data: dict[str, Any], base_dir: Path, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        build_audit(validate_config(data, base_dir=base_dir), **kwargs)
    return str(info.value)


def test_defaults(project: Path) -> None:
    cfg = validate_config(config(), base_dir=project)
    assert cfg.objective_name == "mse" and cfg.task == "regression"
    assert [a.name for a in cfg.attacks] == ["random_sign", "fgsm"]
    assert cfg.n_random == 5 and cfg.budget.norm == "linf"
    assert cfg.resolve("data.npz") == project.resolve() / "data.npz"
    cls = validate_config(config(task="classification", **{"data.targets": "labels"}),
                          base_dir=project)
    assert cls.objective_name == "cross_entropy"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"epsilon": [0.1]}, "epsilon: unknown key (did you mean 'epsilons'?); allowed keys here:"),
    ({"budget.norm": "l3"}, "budget.norm: must be 'linf' or 'l2', got 'l3'"),
    ({"budget.outside": "wrap"}, "budget.outside: must be 'clip' or 'drop', got 'wrap'"),
    ({"budget.colour": 1}, "budget.colour: unknown key; allowed keys here: norm, relative"),
    ({"epsilons": [0.1, -0.5]}, "epsilons[1]: must be >= 0"),
    ({"epsilons": []}, "epsilons: must not be empty"),
    ({"epsilons": [".nan"]}, "epsilons[0]: must be a"),
    ({"attacks": ["fgsm", "fgsn"]}, "attacks[1].name: unknown attack 'fgsn'; valid attacks: "
                                    "random_sign"),
    ({"attacks": [{"name": "bim", "steps": 0}]}, "attacks[0].steps: must be >= 1, got 0"),
    ({"attacks": [{"name": "bim", "step": 3}]}, "attacks[0].step: unknown key (did you mean"),
    ({"attacks": [3]}, "attacks[0]: must be an attack name or a mapping"),
    ({"metrics": ["rmse", "rmsd"]}, "metrics[1]: unknown metric 'rmsd'; valid metrics:"),
    ({"n_random": 0}, "n_random: must be >= 1, got 0"),
    ({"n_random": "five"}, "n_random: must be an integer, got 'five'"),
    ({"task": "segmentation"}, "task: must be 'regression' or 'classification'"),
    ({"model.factory": "cfgmodel.make"}, "model.factory: must be 'module:function'"),
    ({"data.path": "data.h5"}, "data.path: unsupported file type '.h5'"),
    ({"data.inputs": 5}, "data.inputs: must be an array name"),
    ({"budget.mask": [0, 0, 0]}, "budget.mask: is false everywhere"),
    ({"budget.mask": [1, 2, 0]}, "budget.mask[1]: must be true or false"),
    ({"budget.scale": "var"}, "budget.scale: must be 'std' or a finite number"),
    ({"budget.scale": -1}, "budget.scale: must be >= 0"),
    ({"budget.bounds": [1, 0]}, "budget.bounds: lower bound exceeds upper bound"),
    ({"budget.bounds": [0]}, "budget.bounds: must be a pair [lower, upper]"),
])
def test_schema_messages_name_the_key(project: Path, changes: dict, expected: str) -> None:
    message = problems(config(**changes), project)
    assert expected in message, message


def test_missing_required_keys(project: Path) -> None:
    message = problems({"model": {"factory": "cfgmodel:make"}}, project)
    assert "data: required key is missing" in message
    assert "epsilons: required key is missing (a list of perturbation sizes >= 0)" in message


@pytest.mark.parametrize(("changes", "expected"), [
    ({"objective": "cross_entropy"}, "objective: 'cross_entropy' needs task: classification"),
    ({"task": "classification", "objective": "mse", "data.targets": "labels"},
     "objective: 'mse' compares real-valued outputs"),
    ({"metrics": ["accuracy"]}, "metrics[0]: 'accuracy' is a classification metric"),
    ({"attacks": ["random_sign", "illc"]}, "attacks[1]: 'illc' works on class decisions"),
    ({"attacks": ["fgsm", {"name": "fgsm", "steps": 2}]}, "attacks: 'fgsm' appears twice"),
    ({"budget.outside": "drop"}, "budget.outside: 'drop' needs budget.bounds"),
    ({"budget.relative": True, "budget.scale": "std"}, "budget.scale: give either relative"),
    ({"data.path": "nothere.npz"}, "data.path: file not found:"),
    ({"model.checkpoint": "w.pt"}, "model.checkpoint: file not found:"),
])
def test_cross_field_rules(project: Path, changes: dict, expected: str) -> None:
    message = problems(config(**changes), project)
    assert expected in message, message


def test_all_problems_reported_together(project: Path) -> None:
    message = problems(config(epsilons=[-1], **{"budget.norm": "l3"}), project)
    assert "epsilons[0]" in message and "budget.norm" in message


def test_load_config_from_file_resolves_relative_to_it(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "audit.yaml").write_text(yaml.safe_dump(config()))
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    cfg = load_config(project / "audit.yaml")
    assert cfg.label == "audit"
    assert cfg.output_dir() == Path("scirobust-output/audit")
    assert cfg.output_dir("mine") == Path("mine")
    plan = build_audit(cfg)
    assert plan.inputs.shape == (16, 3) and plan.model_name == "make"


def test_yaml_problems(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line 2"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "dup.yaml").write_text("seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config(tmp_path / "dup.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping with the keys model, data"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config(tmp_path / "none.yaml")


def test_yaml_scientific_notation_without_dot(tmp_path: Path, project: Path) -> None:
    # PyYAML reads 1e-2 as a string; it must still be accepted as a number.
    text = yaml.safe_dump(config()).replace("- 0.1", "- 1e-2")
    (project / "sci.yaml").write_text(text)
    assert load_config(project / "sci.yaml").epsilons == [0.01]


# --------------------------------------------------------------------------- building
@pytest.mark.parametrize(("changes", "expected"), [
    ({"model.factory": "nomodule:make"}, "model.factory: Cannot import the factory module "
                                         "'nomodule': no nomodule.py in"),
    ({"model.factory": "cfgmodel:build"}, "model.factory: Module 'cfgmodel'"),
    ({"model.factory": "cfgmodel:not_a_module"}, "returned a int; it must return a "
                                                 "torch.nn.Module"),
    ({"model.kwargs": {"width": 3}}, "model.factory: calling cfgmodel:make(**model.kwargs)"),
    ({"data.inputs": "u"}, "data.inputs: no array named 'u' in data.npz; available: x, y, y1"),
    ({"data.targets": "short"}, "data: inputs have 16 samples but targets have 15"),
    ({"budget.mask": [True, False]}, "budget.mask: has 2 entries but the inputs have 3 features"),
    ({"budget.scale": [1.0, 2.0]}, "budget.scale: has 2 entries"),
    ({"budget.bounds": [0.0, 1.0]}, "of 16 clean inputs already lie outside the bounds"),
    ({"model.kwargs": {"n_in": 4}}, "model: a forward pass on 2 samples"),
    ({"model.kwargs": {"n_out": 3}}, "data.targets: the model outputs shape (N, 3) but the "
                                     "targets have shape (16, 2)"),
    ({"data.variable_names": ["a"]}, "data.variable_names: 1 names for model outputs"),
    ({"task": "classification", "model.factory": "cfgmodel:make_classifier",
      "data.targets": "half"}, "data.targets: classification (cross_entropy) needs integer"),
    ({"task": "classification", "model.factory": "cfgmodel:make",
      "data.targets": "labels"}, "data.targets: labels go up to 2 but the model outputs 2"),
])
def test_build_errors_name_the_key(project: Path, changes: dict, expected: str) -> None:
    message = built_error(config(**changes), project)
    assert expected in message, message


def test_checkpoint_and_pickled_module(project: Path) -> None:
    from scirobust.io import import_factory

    model = import_factory("cfgmodel:make", project)()
    torch.save(model.state_dict(), project / "w.pt")
    torch.save(model, project / "full.pt")
    plan = build_audit(validate_config(config(**{"model.checkpoint": "w.pt"}),
                                       base_dir=project))
    assert torch.equal(plan.model[0].weight, model[0].weight) and not plan.model.training
    data = config(**{"model.checkpoint": "full.pt"})
    assert "--trust-checkpoint" in built_error(data, project)
    trusted = build_audit(validate_config(data, base_dir=project), trust_checkpoint=True)
    assert torch.equal(trusted.model[0].weight, model[0].weight)
    torch.save(import_factory("cfgmodel:make", project)(n_in=5).state_dict(), project / "x.pt")
    assert "does not fit the model" in built_error(config(**{"model.checkpoint": "x.pt"}),
                                                   project)


def test_budget_std_mask_bounds(project: Path) -> None:
    plan = build_audit(validate_config(config(**{
        "budget.scale": "std", "budget.mask": [1, 0, 1],
        "budget.bounds": [-10, [10, 10, 10]], "budget.outside": "drop",
    }), base_dir=project))
    assert torch.allclose(plan.budget.scale.float(), plan.inputs.std(dim=0))
    assert plan.budget.mask.tolist() == [True, False, True]
    assert plan.budget.outside == "drop"


def test_shapes_and_dtypes_adapted(project: Path) -> None:
    plan = build_audit(validate_config(config(**{"data.targets": "y1",
                                                  "model.kwargs": {"n_out": 1}}),
                                       base_dir=project))
    assert plan.targets.shape == (16, 1)  # (N,) targets of a (N, 1) model
    plan = build_audit(validate_config(config(**{"model.kwargs": {"dtype": "float64"}}),
                                       base_dir=project))
    assert plan.inputs.dtype == torch.float64 == plan.targets.dtype


def test_plan_runs(project: Path) -> None:
    cfg = validate_config(config(n_random=2, epsilons=[0.0, 0.2], name="tiny", case="c",
                                 metrics=["rmse", "rmse_per_variable"],
                                 **{"data.variable_names": ["u", "v"]}), base_dir=project)
    results = build_audit(cfg).run(seed=3)
    assert {r.case for r in results} == {"c"} and {r.model for r in results} == {"tiny"}
    assert results.variables == ["u", "v"] and results.metadata["seed"] == 3


def test_example_config_builds(tmp_path: Path) -> None:
    """examples/regression stays consistent: its config, factory and data layout fit."""
    import shutil

    from scirobust.io import import_factory

    example = Path(__file__).parents[1] / "examples" / "regression"
    for name in ("audit.yaml", "model.py", "make_data.py"):
        shutil.copy(example / name, tmp_path / name)
    x, y = import_factory("make_data:sample", tmp_path)(64, np.random.default_rng(0))
    np.savez(tmp_path / "data.npz", x=x, y=y)
    torch.save(import_factory("model:make_model", tmp_path)().state_dict(),
               tmp_path / "model.pt")
    plan = build_audit(load_config(tmp_path / "audit.yaml"))
    assert plan.variable_names == ["range_m", "height_m"]
    assert plan.budget.mask.tolist() == [True, True, False]


def test_yaml_alias_bomb_and_huge_files_are_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(tmp_path / "bomb.yaml")
    (tmp_path / "huge.yaml").write_text("# " + "x" * 1_100_000 + "\n")
    with pytest.raises(ConfigError, match="bytes; an audit file"):
        load_config(tmp_path / "huge.yaml")
