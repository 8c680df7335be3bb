"""Sweep: one validated settings object, one seed derivation, accepted by every engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from scirobust import AttackRun, Budget, ConfigError, Sweep, audit
from scirobust.layers import feature_audit


def test_sweep_normalises_and_validates() -> None:
    sweep = Sweep(epsilons=[0, 0.1], attacks=["random_sign", {"name": "bim", "steps": 3}],
                  cache_dir="out", device="cpu")
    assert sweep.epsilons == (0.0, 0.1)
    assert sweep.attacks == (AttackRun("random_sign"), AttackRun("bim", steps=3))
    assert sweep.cache_dir == Path("out") and sweep.device == "cpu"
    assert sweep.baseline == "random_sign" and [r.key for r in sweep.adversarial_runs] == ["bim"]
    assert list(sweep.cells())[:3] == [(None, 0.0), (sweep.attacks[0], 0.0),
                                       (sweep.attacks[1], 0.0)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.seed = 3  # type: ignore[misc]
    bad = [
        ({"epsilons": []}, "epsilons must be a non-empty"),
        ({"epsilons": [-0.1]}, "epsilons must be a non-empty"),
        ({"epsilons": ["a"]}, "epsilons must be a non-empty"),
        ({"epsilons": [0.1], "attacks": []}, "at least one attack"),
        ({"epsilons": [0.1], "attacks": ["fgsm", "fgsm"]}, "distinct 'label'"),
        ({"epsilons": [0.1], "attacks": [{"name": "fgsm", "label": "clean"}]}, "reserved"),
        ({"epsilons": [0.1], "attacks": [{"name": "bim", "steps": 0}]}, "steps must be"),
        ({"epsilons": [0.1], "attacks": [{"name": "bim", "step_size": -1}]}, "step_size"),
        ({"epsilons": [0.1], "n_random": 0}, "n_random must be"),
        ({"epsilons": [0.1], "batch_size": 2.5}, "batch_size must be"),
        ({"epsilons": [0.1], "seed": "x"}, "seed must be"),
        ({"epsilons": [0.1], "budget": 0.1}, "scirobust.Budget"),
        ({"epsilons": [0.1], "attacks": ["random_sign", "pgd_l2"]}, "another norm"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ConfigError, match=message):
            Sweep(**kwargs)


def test_resolve_builds_from_keywords_or_takes_a_sweep() -> None:
    sweep = Sweep(epsilons=[0.1])
    assert Sweep.resolve(sweep) is sweep
    assert Sweep.resolve(None, defaults={"n_random": 3}, epsilons=[0.2]).n_random == 3
    with pytest.raises(ConfigError, match="either a Sweep or the keywords"):
        Sweep.resolve(sweep, n_random=2)
    with pytest.raises(ConfigError, match="Unknown sweep option"):
        Sweep.resolve(None, epsilons=[0.1], epsilon=[0.1])
    with pytest.raises(ConfigError, match="Give the perturbation sizes"):
        Sweep.resolve(None)
    assert sweep.replace(seed=4).seed == 4
    with pytest.raises(ConfigError, match="n_random"):
        sweep.replace(n_random=-1)


def test_cell_seeds_depend_on_the_cell_only() -> None:
    a, b = Sweep(epsilons=[0.1], seed=1), Sweep(epsilons=[0.1, 0.2], seed=1)
    assert a.cell_seed("random_sign", 0.1, 0) == b.cell_seed("random_sign", 0.1, 0)
    seeds = {a.cell_seed(label, eps, draw) for label in ("random_sign", "fgsm")
             for eps in (0.1, 0.2) for draw in range(3)}
    assert len(seeds) == 12
    assert Sweep(epsilons=[0.1], seed=2).cell_seed("random_sign", 0.1, 0) != \
        a.cell_seed("random_sign", 0.1, 0)
    draw = a.generator("random_sign", 0.1, 0)
    assert torch.equal(torch.rand(3, generator=draw),
                       torch.rand(3, generator=a.generator("random_sign", 0.1, 0)))


def _model_and_data() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
    return model, x, torch.randn(20, 2, generator=torch.Generator().manual_seed(2))


def test_audit_with_a_sweep_equals_audit_with_keywords() -> None:
    model, x, y = _model_and_data()
    kw = {"epsilons": [0.05, 0.2], "attacks": ["random_sign", "fgsm"], "n_random": 3,
          "budget": Budget(bounds=(-3.0, 3.0)), "batch_size": 7, "seed": 5}
    by_keywords = audit(model, x, y, **kw)
    by_sweep = audit(model, x, y, Sweep(**kw))
    assert [r.to_dict() for r in by_keywords] == [r.to_dict() for r in by_sweep]
    # an added epsilon leaves the cells already measured unchanged
    more = audit(model, x, y, Sweep(**{**kw, "epsilons": [0.05, 0.2, 0.4]}))
    for rec in by_sweep:
        assert more.value(attack=rec.attack, epsilon=rec.epsilon, metric=rec.metric,
                          kind=rec.kind) == rec.value
    with pytest.raises(ConfigError, match="either a Sweep or the keywords"):
        audit(model, x, y, Sweep(**kw), n_random=2)


def test_keep_perturbed_returns_the_attacked_inputs_and_outputs(tmp_path: Path) -> None:
    model, x, y = _model_and_data()
    sweep = Sweep(epsilons=[0.1], n_random=2, batch_size=8, cache_dir=tmp_path)
    res = audit(model, x, y, sweep, keep_perturbed=True)
    clean, rand, fgsm = (res.perturbed[k] for k in (("clean", 0.0), ("random_sign", 0.1),
                                                     ("fgsm", 0.1)))
    assert torch.equal(clean.inputs[0], x) and rand.inputs.shape == (2, 20, 3)
    assert torch.allclose((rand.inputs - x).abs(), torch.full_like(rand.inputs, 0.1))
    with torch.no_grad():
        assert torch.allclose(fgsm.outputs[0], model(fgsm.inputs[0]))
    err = (fgsm.outputs[0] - y).pow(2).mean().sqrt()
    assert res.value(attack="fgsm", metric="rmse", kind="adversarial") == pytest.approx(
        float(err), rel=1e-6)
    assert rand.kept.all() and not res.select(kind="ratio", attack="random_sign")
    # a cached re-run gives back the same perturbed inputs without recomputing them
    again = audit(model, x, y, sweep, keep_perturbed=True)
    assert again.metadata["cells_reused_from_cache"] == 3
    assert torch.equal(again.perturbed[("fgsm", 0.1)].inputs, fgsm.inputs)
    assert not audit(model, x, y, sweep).perturbed


def test_feature_audit_takes_a_sweep() -> None:
    model, x, _ = _model_and_data()
    labels = torch.randint(0, 2, (20,), generator=torch.Generator().manual_seed(3))
    sweep = Sweep(epsilons=[0.5], attacks=["random_sign", "fgsm"], n_random=2)
    res = feature_audit(model, "1", x, labels, sweep, task="classification")
    assert res.metadata["feature_layer"]["name"] == "1"
    assert res.kinds() == {"clean": "clean", "random_sign": "random", "fgsm": "adversarial"}


def test_per_sample_values_and_epsilons_are_read_by_name() -> None:
    from scirobust import DataError

    model, x, y = _model_and_data()
    res = audit(model, x, y, Sweep(epsilons=[0.2, 0.1], n_random=2, metrics=["mae"]))
    assert res.epsilons == [0.1, 0.2]
    clean = res.samples("clean", 0.0, "mae")
    with torch.no_grad():
        expected = (model(x) - y).abs().mean(dim=1, keepdim=True).double().numpy()
    assert clean.shape == (20, 1) and abs(clean - expected).max() < 1e-6
    assert res.samples("fgsm", 0.1, "mae").mean() > clean.mean()
    with pytest.raises(DataError, match=r"fgsm\|0\.1"):
        res.samples("fgsm", 0.3, "mae")


def test_one_step_attacks_share_one_gradient_across_epsilons() -> None:
    model, x, y = _model_and_data()
    graded: list[int] = []
    model.register_forward_hook(
        lambda *_: graded.append(1) if torch.is_grad_enabled() else None)
    kw = {"attacks": ["random_sign", "fgsm", {"name": "bim", "steps": 2}], "n_random": 2,
          "batch_size": 8, "metrics": ["rmse"]}
    swept = audit(model, x, y, Sweep(epsilons=[0.05, 0.1, 0.2], **kw))
    with_sharing = len(graded)
    for eps in (0.05, 0.1, 0.2):
        alone = audit(model, x, y, Sweep(epsilons=[eps], **kw))
        for rec in alone:
            if rec.epsilon == eps:
                assert swept.value(attack=rec.attack, epsilon=eps, metric="rmse",
                                   kind=rec.kind) == rec.value
    # 3 batches: the checks take 1 gradient, FGSM 3 (once for all eps), BIM 3 x 2 x 3 eps
    assert with_sharing == 1 + 3 + 18
