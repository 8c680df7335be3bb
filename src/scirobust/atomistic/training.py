"""Training a Behler–Parrinello model on energies (paper 002, Eq. 1).

The symmetry functions do not depend on the network weights, so they are computed once per
configuration and the per-element MLPs are trained on them with Adam on the mean squared
per-atom energy error (Eq. 1 divided by N², the same minimiser since N is fixed).
Early stopping (choice): training stops as soon as the validation RMSE reaches
``target_rmse_mev_per_atom`` (paper 002 trained its BP-NN to 5.1 meV/atom on purpose, to be
as accurate as realistic models), or after ``max_epochs`` keeping the best validation state.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from scirobust.atomistic.behler_parrinello import BehlerParrinello
from scirobust.atomistic.potential import DTYPE, PeriodicPotential


@dataclass
class TrainingLog:
    """Per-epoch train (running, over the epoch's mini-batches) and validation RMSE
    (meV/atom), epochs run, stop reason, wall times (s)."""

    train_rmse_mev_per_atom: list[float] = field(default_factory=list)
    val_rmse_mev_per_atom: list[float] = field(default_factory=list)
    epochs: int = 0
    stopped: str = ""
    descriptor_time_s: float = 0.0
    training_time_s: float = 0.0
    best_val: float = float("inf")

    @property
    def final_val_rmse(self) -> float:
        """Validation RMSE of the returned model (meV/atom)."""
        return self.best_val


def compute_descriptors(model: BehlerParrinello, positions: np.ndarray,
                        batch_size: int = 16) -> Tensor:
    """Raw symmetry functions (M, N, F) of positions (M, N, 3) Å, without gradients."""
    pos = torch.as_tensor(positions, dtype=DTYPE)
    out = []
    with torch.no_grad():
        for k in range(0, pos.shape[0], batch_size):
            out.append(model.descriptors(pos[k : k + batch_size]))
    return torch.cat(out)


def train_energy_model(
    model: BehlerParrinello,
    train_positions: np.ndarray,
    train_energies_ev: np.ndarray,
    val_positions: np.ndarray,
    val_energies_ev: np.ndarray,
    *,
    max_epochs: int = 500,
    learning_rate: float = 3e-3,
    batch_size: int = 32,
    target_rmse_mev_per_atom: float | None = None,
    seed: int = 0,
) -> TrainingLog:
    """Fit the model's MLPs to energies (eV); returns the `TrainingLog`.

    Features are standardised per element and energies per atom from the training set. With
    ``target_rmse_mev_per_atom``, training stops at the first epoch whose validation RMSE is
    at or below it; otherwise the best validation state is kept.
    """
    log = TrainingLog()
    start = time.perf_counter()
    x_train = compute_descriptors(model, train_positions)
    x_val = compute_descriptors(model, val_positions)
    log.descriptor_time_s = time.perf_counter() - start
    y_train = torch.as_tensor(train_energies_ev, dtype=DTYPE)
    y_val = torch.as_tensor(val_energies_ev, dtype=DTYPE)
    model.fit_normalisation(x_train, y_train)
    n_atoms = model.n_atoms
    xn_train, xn_val = model.normalise(x_train), model.normalise(x_val)
    shift, scale = model.energy_shift, model.energy_scale
    t_train = (y_train / n_atoms - shift) / scale
    params = [p for p in model.networks.parameters()]
    optimiser = torch.optim.Adam(params, lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=20)
    gen = torch.Generator().manual_seed(seed)
    best_state = copy.deepcopy(model.networks.state_dict())
    start = time.perf_counter()

    def rmse(xn: Tensor, y: Tensor) -> float:
        with torch.no_grad():
            pred = model.atomic_outputs(xn).mean(dim=1) * scale + shift
            return float(torch.sqrt(((pred - y / n_atoms) ** 2).mean()) * 1000.0)

    for epoch in range(max_epochs):
        order = torch.randperm(xn_train.shape[0], generator=gen)
        sq_sum = 0.0
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            pred = model.atomic_outputs(xn_train[idx]).mean(dim=1)
            loss = ((pred - t_train[idx]) ** 2).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            sq_sum += float(loss.detach()) * len(idx)
        # training RMSE over the epoch's mini-batches (the weights change during the epoch)
        train_rmse = math.sqrt(sq_sum / len(order)) * float(scale) * 1000.0
        val_rmse = rmse(xn_val, y_val)
        scheduler.step(val_rmse)
        log.train_rmse_mev_per_atom.append(train_rmse)
        log.val_rmse_mev_per_atom.append(val_rmse)
        log.epochs = epoch + 1
        if val_rmse < log.best_val:
            log.best_val = val_rmse
            best_state = copy.deepcopy(model.networks.state_dict())
        if target_rmse_mev_per_atom is not None and val_rmse <= target_rmse_mev_per_atom:
            log.stopped = (f"validation RMSE reached the target {target_rmse_mev_per_atom} "
                           "meV/atom")
            log.best_val = val_rmse
            best_state = copy.deepcopy(model.networks.state_dict())
            break
    else:
        log.stopped = f"max_epochs = {max_epochs} (best validation state kept)"
    model.networks.load_state_dict(best_state)
    for p in params:
        p.grad = None
    log.training_time_s = time.perf_counter() - start
    return log


def random_rotations(n: int, generator: torch.Generator, *, flips: bool = True,
                     group: str = "continuous") -> Tensor:
    """``n`` random rotations (n, 3, 3), each also a reflection with probability ½ when
    ``flips`` (the paper's "rotations and flips"). ``group="continuous"``: uniform over all
    rotations; ``"cubic"``: the 24 rotations (48 with flips) that map a cubic lattice onto
    itself, i.e. signed permutation matrices."""
    if group == "cubic":
        perms = torch.stack([torch.randperm(3, generator=generator) for _ in range(n)])
        signs = torch.where(torch.rand(n, 3, generator=generator) < 0.5, -1.0, 1.0)
        mats = torch.zeros(n, 3, 3, dtype=DTYPE)
        mats[torch.arange(n)[:, None], torch.arange(3)[None], perms] = signs.to(DTYPE)
        if not flips:  # keep proper rotations only
            mats = mats * torch.linalg.det(mats)[:, None, None]
        return mats
    if group != "continuous":
        from scirobust.errors import DataError

        raise DataError(f"group must be 'continuous' or 'cubic'; got {group!r}.")
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=generator, dtype=DTYPE))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]  # Haar measure
    det = torch.linalg.det(q)
    q = q * det[:, None, None].sign()  # proper rotations
    if flips:
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0).to(DTYPE)
        q = q * flip[:, None, None]
    return q


def fit_potential(
    model: PeriodicPotential,
    train_positions: np.ndarray,
    train_energies_ev: np.ndarray,
    val_positions: np.ndarray,
    val_energies_ev: np.ndarray,
    *,
    train_forces: np.ndarray | None = None,
    force_weight: float = 0.0,
    augment_rotations: bool | str = False,
    input_noise_angstrom: float = 0.0,
    epochs: int = 160,
    learning_rate: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
) -> TrainingLog:
    """Train any torch `PeriodicPotential` end to end with Adam on the per-atom energy MSE
    (eV²/atom²) plus ``force_weight`` × force MSE (eV²/Å²) when ``train_forces`` (M, N, 3)
    eV/Å are given; keeps the state of best validation energy RMSE (meV/atom).

    ``augment_rotations`` (True or ``"cubic"``, see `random_rotations`) draws a random
    rotation or flip per mini-batch and step, applied through the model's ``rotations``
    attribute (models without one are refused).
    ``input_noise_angstrom`` adds fresh Gaussian noise of that standard deviation (Å, per
    coordinate) to every training configuration at every step, labels unchanged (Gaussian
    data augmentation, paper 002's ref. 26). Models with
    ``energy_shift``/``energy_scale`` buffers get them from the training energies per atom.
    Defaults are paper 002's GNN settings (160 epochs, Adam 1e-3, batch 128).
    """
    from scirobust.errors import DataError

    if augment_rotations and not hasattr(model, "rotations"):
        raise DataError(f"{type(model).__name__} has no 'rotations' attribute: it cannot be "
                        "trained with rotation augmentation.")
    if input_noise_angstrom < 0:
        raise DataError(f"input_noise_angstrom must be >= 0 Å; got {input_noise_angstrom}.")
    if force_weight > 0 and train_forces is None:
        raise DataError("force_weight > 0 needs train_forces (M, N, 3) in eV/Å.")
    log = TrainingLog()
    n_atoms = model.n_atoms
    pos = torch.as_tensor(train_positions, dtype=DTYPE)
    y = torch.as_tensor(train_energies_ev, dtype=DTYPE)
    f = None if train_forces is None else torch.as_tensor(train_forces, dtype=DTYPE)
    if hasattr(model, "energy_shift") and hasattr(model, "energy_scale"):
        per_atom = y / n_atoms
        model.energy_shift.fill_(float(per_atom.mean()))
        model.energy_scale.fill_(float(per_atom.std()) if len(per_atom) > 1 else 1.0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=learning_rate)
    gen = torch.Generator().manual_seed(seed)
    best_state = copy.deepcopy(model.state_dict())
    start = time.perf_counter()

    def val_rmse() -> float:
        with torch.no_grad():
            pred = torch.cat([model(torch.as_tensor(val_positions[k:k + batch_size],
                                                    dtype=DTYPE))
                              for k in range(0, len(val_positions), batch_size)])
        err = (pred - torch.as_tensor(val_energies_ev, dtype=DTYPE)) / n_atoms
        return float(torch.sqrt((err ** 2).mean()) * 1000.0)

    use_forces = f is not None and force_weight > 0
    for epoch in range(epochs):
        order = torch.randperm(len(pos), generator=gen)
        sq_sum = 0.0
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            if augment_rotations:
                # one rotation per mini-batch: configurations of a batch may use different
                # neighbour lists, so a per-configuration rotation could not follow them
                model.rotations = random_rotations(
                    1, gen, group="cubic" if augment_rotations == "cubic" else "continuous")[0]
            try:
                p = pos[idx].clone()
                if input_noise_angstrom > 0:
                    p = p + input_noise_angstrom * torch.randn(p.shape, generator=gen,
                                                               dtype=DTYPE)
                p.requires_grad_(use_forces)
                energies = model(p)
                loss = (((energies - y[idx]) / n_atoms) ** 2).mean()
                if use_forces:
                    # the gradient is taken w.r.t. the unrotated positions, so it compares
                    # with the lab-frame forces even when the model sees a rotated copy
                    (grad,) = torch.autograd.grad(energies.sum(), p, create_graph=True)
                    loss = loss + force_weight * ((-grad - f[idx]) ** 2).mean()
            finally:
                if augment_rotations:
                    model.rotations = None
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            sq_sum += float(loss.detach()) * len(idx)
        log.train_rmse_mev_per_atom.append(math.sqrt(sq_sum / len(order)) * 1000.0)
        log.val_rmse_mev_per_atom.append(val_rmse())
        log.epochs = epoch + 1
        if log.val_rmse_mev_per_atom[-1] < log.best_val:
            log.best_val = log.val_rmse_mev_per_atom[-1]
            best_state = copy.deepcopy(model.state_dict())
    log.stopped = f"epochs = {epochs} (best validation state kept)"
    model.load_state_dict(best_state)
    for p in params:
        p.grad = None
    log.training_time_s = time.perf_counter() - start
    return log


__all__ = ["TrainingLog", "compute_descriptors", "fit_potential", "random_rotations",
           "train_energy_model"]
