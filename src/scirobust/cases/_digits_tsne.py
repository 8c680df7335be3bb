"""Paper 004 Fig. 1 on the digits data: t-SNE pictures of class regions and PGD-moved points,
and one class's region over training with its effective radius (issue #17.8).

Fixed before the first run:

* Snapshots: after epochs ``tsne_epochs`` (default 1, the middle and the last epoch; paper:
  1, 21, 41 of 50) the network's class probabilities on the test images, and the same test
  images moved by the paper's PGD (eps 0.1 on [0, 1] pixels, 4 steps of 0.25·eps, random
  start) with their probabilities.
* Embedding: one scikit-learn ``TSNE`` (2-D, PCA start, ``random_state`` = the run's seed) of
  the test images and every snapshot's PGD-moved images together, in pixel space, so that the
  map is the same at every epoch (only the network changes). "Regions" are drawn by giving each
  point of the plane the prediction of its nearest embedded clean image (t-SNE has no inverse
  map; no shading farther than 3 median neighbour spacings from any image).
* Effective radius of class ``k`` (paper: 8): ``R = (Σ_j w_j ‖x_j − c‖² / Σ_j w_j)^½`` with
  ``w_j = p_k(x_j)`` the network's probability of class k and ``c = Σ w_j x_j / Σ w_j`` — the
  p_k-weighted RMS distance to the p_k-weighted centroid, in **pixel space** (pixel units):
  the analogue of Δx with the network's confidence in place of ψ². Over the clean test images
  it is the radius of the class region; over the PGD-moved images that of the attacked points.
  Pixel space decides (t-SNE distorts distances); the same formula in t-SNE space is only
  drawn as circles. Paper 004 Fig. 1c/d: the region's radius shrinks, the attacked points'
  grows.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from matplotlib.ticker import MaxNLocator
from torch import Tensor, nn

from scirobust.attacks import attack
from scirobust.budget import Budget
from scirobust.objectives import cross_entropy

CAPTION = ("Paper 004 Fig. 1 on the digits data ({network}, seed {seed}): one t-SNE map (pixel "
           "space, PCA start, fixed seed) of the test images and of their PGD-moved copies "
           "(eps 0.1, 4 × 0.25·eps, random start) at every snapshot. (a) shading: the final "
           "network's predicted class of the nearest test image; points: test images coloured "
           "by true class; (b) the same images after PGD (×, true-class colour); (c) class {k}: "
           "grey = the network's p_{k} of the nearest test image, points = images predicted "
           "{k}; (d) the same with PGD-moved images; dashed circle: p_{k}-weighted RMS radius in "
           "t-SNE space; (e) the radius in pixel space (what is judged).")
NOTE = ("Effective radius of class {k} (paper 004 Fig. 1c/d, defined here): the p_{k}-weighted "
        "RMS distance of the test images (region) or of their PGD-moved copies (attacked points) "
        "to their p_{k}-weighted centroid, in pixel space (t-SNE distorts distances; the t-SNE "
        "circles only illustrate). The t-SNE map is fitted once on the clean and all "
        "snapshots' attacked images, so it is the same at every epoch.")


def snapshot(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, steps: int,
             step_size: float, seed: int) -> dict[str, np.ndarray]:
    """Class probabilities of ``x`` and of its PGD-moved copy (eps in pixel units on [0, 1])."""
    x_adv = attack(model, x, cross_entropy(y), Budget(eps=eps, bounds=(0.0, 1.0)), "pgd_linf",
                   steps=steps, step_size=step_size, random_start=True,
                   generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        was = model.training
        model.eval()
        probs, probs_adv = (torch.softmax(model(v), 1).double().numpy() for v in (x, x_adv))
        model.train(was)
    return {"probs": probs, "probs_adv": probs_adv,
            "x_adv": x_adv.reshape(x.shape[0], -1).double().numpy()}


def effective_radius(points: np.ndarray, weights: np.ndarray) -> float:
    """Weighted RMS distance of ``points`` (N, d) to their weighted centroid (units of the
    points); NaN when every weight is zero."""
    w = np.asarray(weights, dtype=float)
    if not w.sum() > 0:
        return math.nan
    c = (w[:, None] * points).sum(0) / w.sum()
    return float(np.sqrt((w * ((points - c) ** 2).sum(1)).sum() / w.sum()))


def embed(x: Tensor, snaps: dict[int, dict], seed: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """t-SNE of the clean images and every snapshot's PGD-moved images, fitted together:
    (clean (N, 2), {epoch: attacked (N, 2)})."""
    from sklearn.manifold import TSNE  # the `cases` extra; imported only when drawn

    clean = x.reshape(x.shape[0], -1).double().numpy()
    parts = [clean, *(s["x_adv"] for s in snaps.values())]
    data = np.concatenate(parts)
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(data) - 1) / 3.0), init="pca",
                random_state=seed)
    emb = tsne.fit_transform(data)
    n = clean.shape[0]
    return emb[:n], {e: emb[n * (i + 1): n * (i + 2)] for i, e in enumerate(snaps)}


def radius_rows(x: Tensor, y: Tensor, snaps: dict[int, dict], target: int) -> list[dict]:
    """Per snapshot epoch: clean and attacked accuracy and the class-``target`` effective
    radii (pixel units) of the clean and the PGD-moved test images."""
    clean = x.reshape(x.shape[0], -1).double().numpy()
    yn = y.numpy()
    return [{"epoch": e, "class": target,
             "accuracy": float((s["probs"].argmax(1) == yn).mean()),
             "accuracy_pgd": float((s["probs_adv"].argmax(1) == yn).mean()),
             "radius_region": effective_radius(clean, s["probs"][:, target]),
             "radius_attacked": effective_radius(s["x_adv"], s["probs_adv"][:, target])}
            for e, s in snaps.items()]


def _nearest_map(points: np.ndarray, values: np.ndarray, res: int = 160
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid over ``points``' extent with each cell's value taken from its nearest point (NaN
    farther than 3 median nearest-neighbour spacings)."""
    lo, hi = points.min(0), points.max(0)
    pad = 0.05 * (hi - lo)
    gx, gy = (np.linspace(lo[i] - pad[i], hi[i] + pad[i], res) for i in (0, 1))
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    def sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # without an (a, b, 2) array
        return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T, 0.0)

    d2, pp = sq_dist(grid, points), sq_dist(points, points)
    np.fill_diagonal(pp, np.inf)
    near = d2.argmin(1)
    out = np.asarray(values, dtype=float)[near]
    out[np.sqrt(d2.min(1)) > 3 * np.median(np.sqrt(pp.min(1)))] = np.nan
    return gx, gy, out.reshape(res, res)


def _shade(ax: object, gx: np.ndarray, gy: np.ndarray, values: np.ndarray, **style: object
           ) -> None:
    """A raster image, not a mesh: a vector mesh of every grid cell makes huge, slow SVGs."""
    ax.imshow(values, extent=(gx[0], gx[-1], gy[0], gy[-1]), origin="lower",
              interpolation="nearest", aspect="auto", **style)


def plot_tsne(emb: np.ndarray, emb_adv: dict[int, np.ndarray], y: Tensor, snaps: dict[int, dict],
              radii: list[dict], target: int, network: str) -> Figure:
    """Paper 004 Fig. 1: (a) class regions and test images, (b) PGD-moved images, (c)/(d)
    class ``target``'s region over training with the clean / attacked points, (e) radii."""
    epochs, last = list(snaps), list(snaps)[-1]
    yn = y.numpy()
    cmap = colormaps["tab10"]
    fig = Figure(figsize=(4.0 * max(3, len(epochs)), 11.5), layout="constrained")
    axes = fig.subplots(3, max(3, len(epochs)), squeeze=False)
    pred = snaps[last]["probs"].argmax(1)
    gx, gy, regions = _nearest_map(emb, pred)
    every = np.vstack([emb, *emb_adv.values()])
    lims = (every.min(0), every.max(0))
    for ax, pts, title in ((axes[0, 0], emb, f"(a) class regions after epoch {last}, test "
                            "images"), (axes[0, 1], emb_adv[last], "(b) the same images moved by "
                                        "PGD")):
        _shade(ax, gx, gy, regions, cmap=cmap, vmin=-0.5, vmax=9.5, alpha=0.25)
        ax.scatter(*pts.T, c=yn, cmap=cmap, vmin=-0.5, vmax=9.5, s=9,
                   marker="o" if pts is emb else "x", lw=0.8)
        for k in np.unique(yn):  # the digit at its class's centroid: colour is not the only cue
            ax.text(*np.median(emb[yn == k], 0), str(k), fontsize=12, weight="bold",
                    ha="center", va="center", color="black")
        ax.set_title(title, fontsize=9)
    ax = axes[0, 2]
    for key, style, label in (("radius_region", "-o", "class region (clean images)"),
                              ("radius_attacked", "--s", "PGD-moved images")):
        ax.plot([r["epoch"] for r in radii], [r[key] for r in radii], style, label=label,
                color="black" if key == "radius_region" else "#D55E00")
    ax.set(xlabel="epoch", ylabel=f"effective radius of class {target} (pixel units)",
           )
    ax.set_title(f"(e) class {target}: p_{target}-weighted RMS radius (pixel space)", fontsize=9)
    ax.legend(fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    for extra in axes[0, 3:]:
        extra.set_axis_off()
    for j, e in enumerate(epochs):
        gx, gy, conf = _nearest_map(emb, snaps[e]["probs"][:, target])
        for row, (pts, w, marker, what) in enumerate((
                (emb, snaps[e]["probs"][:, target], "o", "test images"),
                (emb_adv[e], snaps[e]["probs_adv"][:, target], "x", "PGD-moved images"))):
            ax = axes[row + 1, j]
            _shade(ax, gx, gy, conf, cmap="Greys", vmin=0, vmax=1, alpha=0.6)
            sel = snaps[e][("probs" if row == 0 else "probs_adv")].argmax(1) == target
            ax.scatter(*pts[sel].T, color="#D55E00", s=14, marker=marker, lw=1.0,
                       label=f"{what} predicted {target}")
            c = (w[:, None] * pts).sum(0) / w.sum()
            r = float(np.sqrt((w * ((pts - c) ** 2).sum(1)).sum() / w.sum()))
            ax.add_patch(Circle(c, r, fill=False, ls="--", lw=1.2, color="#0072B2"))
            ax.set_title(f"({'cd'[row]}) class {target} after epoch {e}: {what}", fontsize=9)
            ax.legend(fontsize=7, loc="lower right")
    for ax in axes[:, :].ravel():
        if ax.get_title() and not ax.get_title().startswith("(e"):
            ax.set(xlim=(lims[0][0] - 2, lims[1][0] + 2), ylim=(lims[0][1] - 2, lims[1][1] + 2),
                   xticks=[], yticks=[], xlabel="t-SNE 1", ylabel="t-SNE 2")
    for row in axes[1:]:
        for extra in row[len(epochs):]:
            extra.set_axis_off()
    fig.suptitle(f"t-SNE of the test images (pixels) and their PGD-moved copies, {network} "
                 f"(paper 004 Fig. 1)\n(c, d): grey = p_{target} of the nearest test image; "
                 "dashed circle: the radius formula in t-SNE space", fontsize=10)
    return fig


__all__ = ["CAPTION", "NOTE", "effective_radius", "embed", "plot_tsne", "radius_rows", "snapshot"]
