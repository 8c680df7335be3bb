"""The DeePMD-kit adapter against the real package: a tiny se_e2_a model trained for a few
steps with ``dp --pt train``, frozen with ``dp --pt freeze``, loaded both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("ase", reason="needs ase: pip install 'scirobust[atomistic]'")
from scirobust.atomistic.deepmd import DEEPMD_INSTALL

pytest.importorskip("deepmd.pt.cxx_op", reason=DEEPMD_INSTALL)

from ase import Atoms

from scirobust.atomistic.deepmd import (
    DeepMDCalculator,
    DeepMDPotential,
    load_deepmd_model,
)
from scirobust.atomistic.deepmd_training import (
    SE_E2_A_CH4,
    train_deepmd,
    write_deepmd_npy,
)
from scirobust.atomistic.energy_force import EnergyForceModel
from scirobust.errors import ConfigError, DataError

CH4 = np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                [0.63, -0.63, -0.63]], dtype=float)


def _frames(n: int, seed: int) -> tuple[list[Atoms], np.ndarray, np.ndarray]:
    """CH₄ geometries labelled by a toy harmonic C–H bond energy (eV, eV/Å)."""
    rng = np.random.default_rng(seed)
    frames, energies, forces = [], [], []
    for _ in range(n):
        pos = CH4 + 0.05 * rng.standard_normal((5, 3))
        d = pos[1:] - pos[0]
        r = np.linalg.norm(d, axis=1)
        energies.append(float((10.0 * (r - 1.09) ** 2).sum()))
        f = np.zeros((5, 3))
        f[1:] = -20.0 * (r - 1.09)[:, None] * d / r[:, None]
        f[0] = -f[1:].sum(axis=0)
        forces.append(f)
        frames.append(Atoms("CH4", positions=pos))
    return frames, np.array(energies), np.stack(forces)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deepmd")
    for name, n, seed in (("train", 12, 0), ("valid", 4, 1)):
        write_deepmd_npy(root / name, *_frames(n, seed), type_map=["H", "C"])
    run = train_deepmd(root / "run", root / "train", root / "valid", steps=20, seed=1)
    assert run.frozen_model.exists() and not run.reused
    assert run.learning_curve["step"][-1] == 20
    again = train_deepmd(root / "run", root / "train", root / "valid", steps=20, seed=1)
    assert again.reused and again.wall_s == 0.0
    return root / "run"


def test_frozen_and_checkpoint_agree(trained: Path) -> None:
    atoms = Atoms("CH4", positions=CH4)
    frozen = DeepMDPotential.from_file(trained / "frozen_model.pth", atoms)
    checkpoint = DeepMDPotential.from_file(trained / "model.ckpt.pt", atoms)
    pos = torch.tensor(np.stack([CH4, CH4 + 0.02]), dtype=torch.float64)
    assert torch.allclose(frozen(pos), checkpoint(pos), atol=1e-10)
    atoms.calc = DeepMDCalculator(trained / "frozen_model.pth")
    assert atoms.get_potential_energy() == pytest.approx(float(frozen(pos[0]).detach()),
                                                          abs=1e-10)
    assert atoms.get_forces().shape == (5, 3)


def test_forces_equal_finite_differences(trained: Path) -> None:
    atoms = Atoms("CH4", positions=CH4 + 0.01)
    atoms.calc = DeepMDCalculator(trained / "frozen_model.pth")
    forces = atoms.get_forces()
    potential = DeepMDPotential.from_file(trained / "frozen_model.pth", atoms)
    h = 1e-5
    for atom, axis in ((0, 0), (2, 1), (4, 2)):
        plus, minus = atoms.positions.copy(), atoms.positions.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        e = [float(potential(torch.tensor(p)).detach()) for p in (plus, minus)]
        assert forces[atom, axis] == pytest.approx(-(e[0] - e[1]) / (2 * h), rel=1e-5,
                                                   abs=1e-7)


def test_force_loss_is_differentiable(trained: Path) -> None:
    atoms = Atoms("CH4", positions=CH4)
    net = EnergyForceModel(DeepMDPotential.from_file(trained / "frozen_model.pth", atoms), 5)
    x = torch.tensor(CH4.reshape(1, -1), requires_grad=True)
    (grad,) = torch.autograd.grad((net(x)[:, 1:] ** 2).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().max() > 0


def test_clear_errors(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"contains \['O'\]"):
        DeepMDPotential.from_file(trained / "frozen_model.pth", Atoms("CO"))
    (tmp_path / "graph.pb").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"dp convert-backend graph\.pb graph\.pth"):
        load_deepmd_model(tmp_path / "graph.pb")
    with pytest.raises(ConfigError, match="not found"):
        load_deepmd_model(tmp_path / "missing.pth")
    torch.save({"model": {"weights": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a DeePMD-kit training checkpoint"):
        load_deepmd_model(tmp_path / "other.pt")
    assert SE_E2_A_CH4["descriptor"]["sel"] == [4, 1]
