"""scirobust.policy: budget conversion, objectives, closed vs open loop, attacks on a policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from scirobust import attack
from scirobust.budget import Budget
from scirobust.errors import ConfigError
from scirobust.policy import Normalisation, greedy_cross_entropy, policy_audit, q_margin
from scirobust.sweep import Sweep
from scirobust.wireless.bmqn import QLearningSettings, normalisation, train_bmqn
from scirobust.wireless.channels import los_channels
from scirobust.wireless.environment import BeamTracking, RadioSettings, logged_transitions


def _moving_channels(n: int, steps: int, seed: int) -> np.ndarray:
    """A line-of-sight path whose direction drifts (a turning handset) plus a reflection 6 dB
    weaker, so the best beam changes now and then."""
    rng = np.random.default_rng(seed)
    s0, rate = rng.uniform(-0.8, 0.8, n), rng.uniform(-0.02, 0.02, n)
    t = np.arange(steps)
    los = los_channels(np.clip(s0[:, None] + rate[:, None] * t, -1, 1))
    refl = los_channels(np.clip(-s0[:, None] * 0.7 + 0.1, -1, 1)[:, [0] * steps])
    phase = np.exp(2j * np.pi * rng.random((n, steps, 1)))
    return los + 0.5 * refl * phase


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, BeamTracking]:
    torch.set_num_threads(1)
    train = BeamTracking(_moving_channels(96, 24, 0), RadioSettings(history=4), seed=0)
    model, _ = train_bmqn(logged_transitions(train, seed=0),
                          QLearningSettings(updates=600, hidden=32, batch_size=128), seed=0)
    test = BeamTracking(_moving_channels(48, 24, 1), RadioSettings(history=4), seed=1)
    return model, test


def test_physical_budget_converts_exactly_through_the_normalisation() -> None:
    norm = Normalisation(bias=torch.tensor([100.0, 0.0], dtype=torch.float64),
                         scale=torch.tensor([10.0, 1.0], dtype=torch.float64))
    budget = norm.budget(Budget(eps=0.2, mask=torch.tensor([True, False])))
    assert torch.equal(torch.as_tensor(budget.eps), torch.tensor([0.02, 0.2], dtype=torch.float64))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5)).double()
    x_dbm = -100.0 + 5 * torch.randn(6, 4, 2, 2, dtype=torch.float64)
    x = norm(x_dbm)
    clean = model(x).argmax(dim=1)
    x_adv = attack(model, x, greedy_cross_entropy(clean), budget, "fgsm")
    delta_dbm = (x_adv - x) * torch.tensor([10.0, 1.0], dtype=torch.float64)
    assert torch.allclose(delta_dbm[..., 0].abs(), torch.full((6, 4, 2), 0.2,
                                                              dtype=torch.float64), atol=1e-12)
    assert (delta_dbm[..., 1] == 0).all()  # the masked plane never moves
    with pytest.raises(ConfigError, match="non-zero"):
        Normalisation(scale=0.0)


def test_q_margin_is_best_other_minus_chosen() -> None:
    q = torch.tensor([[1.0, 3.0, 2.0], [0.5, -1.0, 0.0]])
    margin = q_margin(torch.tensor([1, 0]))(q, q)
    assert torch.allclose(margin, torch.tensor([-1.0, -0.5]))


def test_attack_changes_actions_more_often_than_random_noise(trained) -> None:
    model, env = trained
    results, _ = policy_audit(model, env, normalisation=normalisation(), epsilons=[0.5],
                              attacks=["random_sign", "fgsm"], n_random=2, seed=0,
                              case="t", model_name="bmqn")
    clean = results.value(attack="clean", metric="value", step=None)
    optimal = float(env.optimal_rates().mean())
    assert clean > 0.75 * optimal  # the policy learned to track the beam (staying: ~0.4)
    agree_fgsm = results.value(attack="fgsm", metric="agreement", step=None)
    agree_rand = results.value(attack="random_sign", metric="agreement", step=None)
    assert agree_fgsm < agree_rand - 0.02
    assert {r.kind for r in results} == {"clean", "random", "adversarial", "ratio"}
    steps = {r.step for r in results.select(attack="fgsm", metric="value")}
    assert steps == {*range(env.n_steps), None}
    assert results.metadata["step_label"] == "episode step"


def test_closed_and_open_loop_differ_only_where_actions_differ(trained) -> None:
    model, env = trained
    sweep = Sweep(epsilons=(0.0, 1.0), attacks=("fgsm",), seed=0)
    _, closed = policy_audit(model, env, sweep, normalisation=normalisation(), loop="closed")
    _, open_ = policy_audit(model, env, sweep, normalisation=normalisation(), loop="open")
    clean = closed[("clean", 0.0)]
    for loop in (closed, open_):  # eps = 0 perturbs nothing: exactly the clean episodes
        assert np.array_equal(loop[("fgsm", 0.0)].actions, clean.actions)
        assert np.array_equal(loop[("fgsm", 0.0)].values, clean.values)
    o, c = open_[("fgsm", 1.0)], closed[("fgsm", 1.0)]
    assert np.array_equal(o.clean_actions, clean.actions)  # open loop follows the clean run
    same = o.actions == clean.actions
    assert not same.all()
    assert np.array_equal(o.values[same], clean.values[same])
    # Per episode, closed and open loop coincide up to the first changed decision.
    for e in range(o.actions.shape[1]):
        k = int(np.argmax(~same[:, e])) if not same[:, e].all() else o.actions.shape[0] - 1
        assert np.array_equal(c.actions[: k + 1, e], o.actions[: k + 1, e])
        assert np.array_equal(c.values[: k + 1, e], o.values[: k + 1, e])
    assert not np.array_equal(c.actions, o.actions)  # afterwards the loop matters


def test_bad_options_are_refused(trained) -> None:
    model, env = trained
    with pytest.raises(ConfigError, match="objective"):
        policy_audit(model, env, epsilons=[0.1], objective="nope")
    with pytest.raises(ConfigError, match="loop"):
        policy_audit(model, env, epsilons=[0.1], loop="half")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lacks"):
        policy_audit(model, object(), epsilons=[0.1])  # type: ignore[arg-type]
