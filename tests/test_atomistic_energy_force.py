"""Energy-and-force audits: forces by autograd, the DeePMD-kit loss, metrics, masks and the
``task: atomistic`` YAML path (torch Lennard-Jones model against ASE's EMT)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("ase", reason="needs ase: pip install 'scirobust[atomistic]'")

import ase.io
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Icosahedron

from scirobust.atomistic.config import (
    build_atomistic_audit,
    load_atomistic_config,
    validate_atomistic_config,
)
from scirobust.atomistic.deepmd_training import read_deepmd_npy, write_deepmd_npy
from scirobust.atomistic.energy_force import (
    ENERGY_FORCE_METRICS,
    EnergyForceModel,
    atom_mask,
    audit_energy_forces,
    energy_force_objective,
    label_rows,
)
from scirobust.budget import Budget
from scirobust.errors import ConfigError, DataError

LJ_MODULE = textwrap.dedent('''
    import torch
    from torch import nn

    class LennardJones(nn.Module):
        supports_batch = True

        def __init__(self, sigma=2.3, epsilon=0.4):
            super().__init__()
            self.sigma = nn.Parameter(torch.tensor(float(sigma), dtype=torch.float64))
            self.epsilon = nn.Parameter(torch.tensor(float(epsilon), dtype=torch.float64))

        def forward(self, positions):
            pos = positions[None] if positions.dim() == 2 else positions
            n = pos.shape[1]
            iu = torch.triu_indices(n, n, 1)
            r = (pos[:, iu[0]] - pos[:, iu[1]]).norm(dim=-1)
            s6 = (self.sigma / r) ** 6
            energy = (4 * self.epsilon * (s6 ** 2 - s6)).sum(dim=1)
            return energy[0] if positions.dim() == 2 else energy

    def make(sigma=2.3, epsilon=0.4):
        return LennardJones(sigma, epsilon)
''')


def _lj() -> torch.nn.Module:
    namespace: dict = {}
    exec(LJ_MODULE, namespace)
    return namespace["make"]()


def _cu_frames(n: int = 5, seed: int = 0, labelled: bool = True) -> list:
    rng = np.random.default_rng(seed)
    base = Icosahedron("Cu", 2)
    frames = []
    for _ in range(n):
        atoms = base.copy()
        atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
        if labelled:
            atoms.calc = EMT()
            e, f = atoms.get_potential_energy(), atoms.get_forces()
            atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        frames.append(atoms)
    return frames


def test_forces_are_minus_energy_gradient_and_differentiable() -> None:
    frames = _cu_frames(2, labelled=False)
    net = EnergyForceModel(_lj(), len(frames[0]))
    x = torch.tensor(np.stack([a.positions for a in frames]).reshape(2, -1),
                     dtype=torch.float64)
    out = net(x)
    assert out.shape == (2, 1 + 3 * 13) and not out.requires_grad
    h = 1e-6
    for k in (0, 7, 38):
        xp, xm = x.clone(), x.clone()
        xp[0, k] += h
        xm[0, k] -= h
        fd = -(net(xp)[0, 0] - net(xm)[0, 0]).item() * 13 / (2 * h)
        assert out[0, 1 + k].item() == pytest.approx(fd, rel=1e-6, abs=1e-8)
    # the force rows carry a graph when the attack differentiates them
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((net(xg)[:, 1:] ** 2).sum(), xg)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_loss_is_deepmd_energy_loss() -> None:
    labels = label_rows(np.array([-2.0]), np.ones((1, 2, 3)))
    assert labels.tolist()[0][:2] == [-1.0, 1.0]
    objective = energy_force_objective(pref_e=2.0, pref_f=3.0)(labels)
    output = labels.clone()
    output[0, 0] += 0.1  # ΔE/N = 0.1 eV/atom
    output[0, 1:] += 0.2  # every force component off by 0.2 eV/Å
    assert objective(output, output).item() == pytest.approx(2 * 0.01 + 3 * 0.04)
    with pytest.raises(DataError, match="not both 0"):
        energy_force_objective(0.0, 0.0)


def test_metrics_units() -> None:
    truth = label_rows(np.zeros(2), np.zeros((2, 1, 3)))
    out = truth.clone()
    out[:, 0] = torch.tensor([0.001, -0.003])  # eV/atom → 1 and 3 meV/atom
    out[:, 1:] = 0.5
    energy = ENERGY_FORCE_METRICS["energy_rmse"]
    rows = energy.reduce(energy.components(out, truth).numpy())
    assert rows[0].value == pytest.approx(np.sqrt((1 + 9) / 2))
    force = ENERGY_FORCE_METRICS["force_mse"]
    assert force.reduce(force.components(out, truth).numpy())[0].value == pytest.approx(0.25)


def test_mask_moves_only_selected_atoms() -> None:
    frames = _cu_frames(3)
    mask = atom_mask(frames[0], indices=[0, 4])
    assert mask.shape == (39,) and int(mask.sum()) == 6
    res = audit_energy_forces(frames, _lj(), epsilons=[0.02], reference=EMT(), n_random=1,
                              budget=Budget(norm="linf", mask=mask), keep_perturbed=True)
    clean = np.stack([a.positions for a in frames]).reshape(3, -1)
    moved = res.perturbed[("fgsm", 0.02)].inputs[0].numpy() - clean
    assert np.allclose(moved[:, ~mask.numpy()], 0)
    assert np.allclose(np.abs(moved[:, mask.numpy()]), 0.02)
    with pytest.raises(DataError, match="not in the structure"):
        atom_mask(frames[0], elements=["O"])


def test_adversarial_beats_random_against_reference() -> None:
    frames = _cu_frames(6)
    res = audit_energy_forces(frames, _lj(), epsilons=[0.05], reference=EMT(), n_random=3,
                              energy_offset_ev=-28.0)
    assert res.metadata["attack_target"] == "reference"
    for metric in ("energy_rmse", "force_rmse"):
        fgsm = res.value(attack="fgsm", epsilon=0.05, metric=metric, kind="adversarial")
        rand = res.value(attack="random_sign", epsilon=0.05, metric=metric)
        assert fgsm > rand > 0
    assert "re-evaluated" in res.metadata["errors_against"]
    fixed = audit_energy_forces(frames, _lj(), epsilons=[0.05], reference=EMT(), n_random=3,
                                energy_offset_ev=-28.0, attack_target="labels")
    # labels of the clean frames, then clean, 3 random draws and FGSM: no extra evaluations
    assert fixed.metadata["reference_evaluations"] == 6 * (1 + 1 + 3 + 1)


def test_calculator_reference_gradient_matches_autograd() -> None:
    """The finite-difference Hessian–vector product of a calculator reference equals the
    exact autograd gradient of the same potential given as a torch model."""
    from scirobust.atomistic.calculators import TorchCalculator
    from scirobust.atomistic.energy_force import ReferenceEnergyForces

    frames = _cu_frames(2, labelled=False)
    exact = ReferenceEnergyForces(_lj(), frames[0], energy_offset_ev=0.5)
    by_calc = ReferenceEnergyForces(TorchCalculator(_lj()), frames[0], energy_offset_ev=0.5)
    x = torch.tensor(np.stack([a.positions for a in frames]).reshape(2, -1),
                     dtype=torch.float64)
    weights = torch.randn(2, 1 + 39, dtype=torch.float64, generator=torch.Generator()
                          .manual_seed(0))
    grads = []
    for ref in (exact, by_calc):
        xg = x.clone().requires_grad_(True)
        rows = ref(xg)
        (g,) = torch.autograd.grad((rows * weights).sum(), xg)
        grads.append(g)
    assert torch.allclose(exact(x), by_calc(x), atol=1e-10)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_calculator_model_refused_for_force_loss() -> None:
    frames = _cu_frames(2)
    with pytest.raises(DataError, match="pref_f=0"):
        audit_energy_forces(frames, EMT(), epsilons=[0.01], reference=EMT())
    from ase.calculators.lj import LennardJones

    res = audit_energy_forces(frames, EMT(), epsilons=[0.01], pref_f=0.0, n_random=1,
                              reference=LennardJones(sigma=2.3, epsilon=0.4, rc=6.0))
    assert res.value(attack="fgsm", epsilon=0.01, metric="energy_rmse", kind="ratio") > 0


def test_deepmd_npy_round_trip(tmp_path: Path) -> None:
    frames = _cu_frames(3)
    e = np.array([a.get_potential_energy() for a in frames])
    f = np.stack([a.get_forces() for a in frames])
    write_deepmd_npy(tmp_path / "sys", frames, e, f, type_map=["Cu"])
    atoms, e2, f2 = read_deepmd_npy(tmp_path / "sys")
    assert (tmp_path / "sys" / "nopbc").exists()
    assert np.allclose(e2, e) and np.allclose(f2, f)
    assert np.allclose(atoms[1].positions, frames[1].positions)
    with pytest.raises(DataError, match="type_map"):
        write_deepmd_npy(tmp_path / "bad", frames, e, f, type_map=["H"])


def _yaml_case(tmp_path: Path, body: str) -> Path:
    (tmp_path / "ljmodel.py").write_text(LJ_MODULE)
    ase.io.write(tmp_path / "cu13.extxyz", _cu_frames(4))
    path = tmp_path / "audit.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_yaml_end_to_end(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from scirobust.cli import app
    from scirobust.results import Results

    path = _yaml_case(tmp_path, """
        task: atomistic
        model: {factory: "ljmodel:make", kwargs: {sigma: 2.3}}
        reference: {calculator: "ase.calculators.emt:EMT"}
        structures: {path: cu13.extxyz}
        energy_offset_ev: mean
        budget: {elements: [Cu]}
        epsilons: [0.02]
        n_random: 2
        metrics: [energy_rmse, force_rmse]
    """)
    result = CliRunner().invoke(app, ["audit", str(path), "--output", str(tmp_path / "out"),
                                      "-q"])
    assert result.exit_code == 0, result.output
    res = Results.load(tmp_path / "out")
    assert {r.metric for r in res.records} >= {"energy_rmse", "force_rmse",
                                                "mean_abs_cos_theta"}
    assert res.value(attack="fgsm", epsilon=0.02, metric="force_rmse", kind="ratio") > 1
    assert (tmp_path / "out" / "report.html").exists()


def test_yaml_errors_name_the_key(tmp_path: Path) -> None:
    path = _yaml_case(tmp_path, """
        task: atomistic
        model: {factory: "ljmodel:make", deepmd: x.pth}
        structures: {path: cu13.extxyz}
        metrics: [energy_rmse, accuracy]
        epsilons: [0.02]
    """)
    with pytest.raises(ConfigError) as err:
        load_atomistic_config(path)
    text = str(err.value)
    assert "model: " in text and "exactly one of deepmd" in text
    assert "metrics: " in text and "accuracy" in text
    cfg = validate_atomistic_config(
        {"task": "atomistic", "model": {"factory": "ljmodel:make"}, "epsilons": [0.1],
         "structures": {"path": "cu13.extxyz"}}, base_dir=tmp_path)
    ase.io.write(tmp_path / "cu13.extxyz", _cu_frames(2, labelled=False))
    with pytest.raises(ConfigError, match="no energies and forces"):
        build_atomistic_audit(cfg)


def test_atomistic_example_runs(tmp_path: Path) -> None:
    """examples/atomistic: its structures script, factory and audit file work together."""
    import shutil
    import subprocess
    import sys

    from typer.testing import CliRunner

    from scirobust.cli import app
    from scirobust.results import Results

    example = Path(__file__).parents[1] / "examples" / "atomistic"
    for name in ("audit.yaml", "potential.py", "make_structures.py"):
        shutil.copy(example / name, tmp_path / name)
    subprocess.run([sys.executable, str(tmp_path / "make_structures.py")], check=True,
                   capture_output=True)
    result = CliRunner().invoke(app, ["audit", str(tmp_path / "audit.yaml"), "--output",
                                      str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    res = Results.load(tmp_path / "out")
    assert res.value(attack="fgsm", epsilon=0.02, metric="force_rmse", kind="ratio") > 1


@pytest.mark.parametrize("along", ["adversarial", "model_forces", "random"])
def test_adversarial_samples_move_along_direction_with_reference_labels(along: str) -> None:
    from scirobust.atomistic.calculators import TorchEvaluator
    from scirobust.atomistic.direction import compute_directions
    from scirobust.atomistic.sampling import adversarial_samples

    frames = _cu_frames(3)
    model = _lj()
    samples = adversarial_samples(frames, model, EMT(), step_angstrom=0.1, along=along,
                                  energy_offset_ev="mean", seed=1)
    for k, (before, after) in enumerate(zip(frames, samples, strict=True)):
        move = (after.positions - before.positions).ravel()
        assert np.linalg.norm(move) == pytest.approx(0.1, rel=1e-12)
        assert after.info["sampled_along"] == along and after.info["source_index"] == k
        check = after.copy()
        check.calc = EMT()
        assert after.get_potential_energy() == pytest.approx(check.get_potential_energy())
        assert np.allclose(after.get_forces(), check.get_forces())
        if along == "adversarial":
            a = compute_directions(frames, model, EMT(), energy_offset_ev="mean").direction[k]
            expected = a.ravel() / np.linalg.norm(a)
        elif along == "model_forces":
            f = TorchEvaluator(model).energies_and_forces(before.positions[None])[1][0]
            expected = f.ravel() / np.linalg.norm(f)
        else:
            continue
        assert np.allclose(move / 0.1, expected, atol=1e-10)


def test_augment_cli_writes_labelled_samples(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from scirobust.cli import app

    path = _yaml_case(tmp_path, """
        task: atomistic
        model: {factory: "ljmodel:make"}
        reference: {calculator: "ase.calculators.emt:EMT"}
        structures: {path: cu13.extxyz}
        energy_offset_ev: mean
        epsilons: [0.02]
    """)
    for fmt, target in (("extxyz", tmp_path / "new.extxyz"), ("deepmd", tmp_path / "new_dp")):
        result = CliRunner().invoke(app, ["augment", str(path), "--step", "0.2", "--along",
                                          "model_forces", "--format", fmt, "--output",
                                          str(target)])
        assert result.exit_code == 0, result.output
    frames = ase.io.read(tmp_path / "new.extxyz", index=":")
    atoms, energies, _ = read_deepmd_npy(tmp_path / "new_dp")
    assert len(frames) == len(atoms) == 4
    assert np.allclose([a.get_potential_energy() for a in frames], energies)
    bad = CliRunner().invoke(app, ["augment", str(path), "--along", "sideways", "--output",
                                   str(tmp_path / "x.extxyz")])
    assert bad.exit_code == 2 and "--along must be one of" in bad.output


def test_yaml_with_pyscf_reference(tmp_path: Path) -> None:
    """task: atomistic with reference: {pyscf: ...} on H₂ (STO-3G): labels, re-labelling and
    the finite-difference reference gradient all go through the cached PySCF evaluator."""
    pytest.importorskip("pyscf", reason="needs PySCF: pip install 'scirobust[dft]'")
    from ase import Atoms

    (tmp_path / "bond.py").write_text(textwrap.dedent('''
        import torch
        from torch import nn

        class Bond(nn.Module):
            supports_batch = True

            def __init__(self):
                super().__init__()
                self.k = nn.Parameter(torch.tensor(20.0, dtype=torch.float64))

            def forward(self, positions):
                pos = positions[None] if positions.dim() == 2 else positions
                r = (pos[:, 0] - pos[:, 1]).norm(dim=-1)
                e = -31.0 + self.k * (r - 0.71) ** 2
                return e[0] if positions.dim() == 2 else e

        def make():
            return Bond()
    '''))
    frames = [Atoms("H2", positions=[[0, 0, 0], [0, 0, d]]) for d in (0.70, 0.73, 0.76)]
    ase.io.write(tmp_path / "h2.extxyz", frames)
    path = tmp_path / "audit.yaml"
    path.write_text(textwrap.dedent("""
        task: atomistic
        model: {factory: "bond:make"}
        reference: {pyscf: {xc: pbe, basis: sto-3g, processes: 1}}
        structures: {path: h2.extxyz}
        energy_offset_ev: mean
        epsilons: [0.01]
        n_random: 1
        alignment: false
    """))
    cfg = load_atomistic_config(path)
    plan = build_atomistic_audit(cfg, output=tmp_path / "out")
    res = plan.run(cache_dir=tmp_path / "out" / "cache")
    assert res.metadata["attack_target"] == "reference"
    evaluator = plan.reference
    assert evaluator.computed > 0 and evaluator.cache_hits >= 3  # clean = labels, from cache
    assert list((tmp_path / "out" / "pyscf-cache").rglob("*.npz"))
    assert res.value(attack="fgsm", epsilon=0.01, metric="force_rmse", kind="ratio") > 0


def test_objective_and_reference_fingerprints_are_stable_across_processes() -> None:
    """The resume cache keys of a closure objective (with nested functions) and of a
    calculator reference must not depend on memory addresses, or an interrupted audit could
    never reuse its cells in a new process."""
    import subprocess
    import sys

    from scirobust.atomistic.energy_force import ReferenceEnergyForces, energy_force_objective
    from scirobust.audit import _callable_fingerprint

    script = ("from ase.cluster import Icosahedron; from ase.calculators.emt import EMT; "
              "from scirobust.atomistic.energy_force import ReferenceEnergyForces, "
              "energy_force_objective; from scirobust.audit import _callable_fingerprint; "
              "print(_callable_fingerprint(energy_force_objective(1.0, 2.0))); "
              "print(_callable_fingerprint(ReferenceEnergyForces(EMT(), Icosahedron('Cu', 2))))")
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    here = [_callable_fingerprint(energy_force_objective(1.0, 2.0)),
            _callable_fingerprint(ReferenceEnergyForces(EMT(), Icosahedron("Cu", 2)))]
    assert other == here
    assert _callable_fingerprint(energy_force_objective(1.0, 1.0)) != here[0]
