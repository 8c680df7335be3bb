"""Statistics of the digits case (`scirobust.cases.digits`): trends over epochs, means over
seeds, and Δx/Δp of the neural packets on pixels and on the feature layer.

Fixed before the multi-seed and feature-level runs (issues #15.4, #17.7):

* Seed means: per (model, attack, eps, metric, step, kind) the mean over seeds, ``spread`` =
  SD over seeds, ``stderr`` = SD/√seeds (as `cases.binary2d`).
* Feature box: each feature's observed range (min, max) over the *training* images at that
  epoch (features move during training); features constant on the training set are held fixed
  (zero-width axes of the `Box`).
* Trade-off strength of Δx and Δp (paper 004 Fig. 2: Δx falls, Δp rises): of the class-mean
  curves, ``s = ln(Δp_last/Δp_first) − ln(Δx_last/Δx_first)`` (dimensionless; > 0 when the
  trade-off shows, larger = more pronounced; comparable between pixels and features because
  both terms are ratios). This reading decides.
* Side reading (added after the first quick run showed the feature box widening several-fold
  over training; not judged): Δx in units of the flat packet's ``Δx_flat = (Σ_i w_i²/12)^½``
  of that epoch's box (widths w_i) and Δp in units of 1/Δx_flat, whose strength is
  ``s_box = s + 2 ln(Δx_flat,last/Δx_flat,first)`` (equal to s on the fixed pixel box).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from scirobust.results import Record, Results
from scirobust.training import ENVELOPE, history
from scirobust.uncertainty import Box, class_spreads

UNCERTAINTY_FIELDS = ("delta_x", "delta_x_stderr", "delta_p", "delta_p_stderr", "product",
                      "product_stderr", "n_evaluations")  # of `uncertainty.Spreads`
LEVELS = ("pixels", "features")
FEATURE_QMC_OFFSET = 104_729  # feature-level QMC seed = pixel-level seed + this (a prime)


def seed_label(label: str, seed: int, n_seeds: int) -> str:
    """Model name of one seed's records: ``label`` alone for a one-seed run, else
    ``<label>_seed<seed>`` (the unsuffixed name then holds the mean over seeds)."""
    return label if n_seeds == 1 else f"{label}_seed{seed}"


def seed_means(records: Sequence[Record], labels: dict[str, list[str]]) -> list[Record]:
    """For each mean label and its per-seed labels: per (attack, eps, metric, variable, step,
    kind) the mean over seeds; ``spread`` = SD over seeds, ``stderr`` = SD/√seeds, ``n`` =
    seeds. Ratio rows are left out (their mean is not a ratio of means)."""
    out: list[Record] = []
    for label, members in labels.items():
        groups: dict[tuple, list[float]] = {}
        case = ""
        for r in records:
            if r.model in members and r.kind != "ratio":
                case = r.case
                key = (r.attack, r.epsilon, r.metric, r.variable, r.step, r.kind)
                groups.setdefault(key, []).append(r.value)
        for (attack, eps, metric, variable, step, kind), values in groups.items():
            n = len(values)
            sd = float(np.std(values, ddof=1)) if n > 1 else math.nan
            out.append(Record(case, label, attack, eps, metric, float(np.mean(values)),
                              sd / math.sqrt(n), n, sd, kind=kind, variable=variable, step=step))
    return out


def curve(results: Results, attack: str, model: str, eps: float) -> tuple[list[int], ...]:
    """(epochs, values, stderrs) of one attack's records of ``model`` over epochs."""
    rows = sorted((r.step, r.value, r.stderr) for r in results.select(model=model, attack=attack)
                  if r.step is not None and r.kind != "ratio" and r.metric == "accuracy"
                  and (r.kind == "clean" or math.isclose(r.epsilon, eps)))
    return tuple(list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [])


def slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (per epoch)."""
    return float(np.polyfit(np.arange(len(values), dtype=float), values, 1)[0]
                 if len(values) >= 2 else "nan")


def trend(results: Results, label: str, eps: float) -> dict:
    """Clean accuracy and envelope of one tracked model over epochs: ends, slopes, kick."""
    clean = history(results, "clean", model_name=label)
    env = history(results, ENVELOPE, epsilon=eps, model_name=label)
    cv, ev = [v for _, v in clean], [v for _, v in env]
    rc, re_ = np.argsort(np.argsort(cv)), np.argsort(np.argsort(ev))
    spearman = (float(np.corrcoef(rc, re_)[0, 1]) if len(cv) >= 3 and rc.std() and re_.std()
                else float("nan"))
    # After the learning "kick" (paper 004): from the first epoch at ≥ 95 % of the maximal clean
    # accuracy (added after the first full run: the envelope rose with it in the first epochs).
    k = next(i for i, v in enumerate(cv) if v >= 0.95 * max(cv))
    clean_after, env_after = slope(cv[k:]), slope(ev[k:])
    return {"model": label, "epochs": f"{clean[0][0]}-{clean[-1][0]}",
        "clean_first": cv[0], "clean_last": cv[-1], "clean_max": max(cv),
        "envelope_first": ev[0], "envelope_last": ev[-1], "envelope_mean": float(np.mean(ev)),
        "envelope_slope_per_epoch": slope(ev), "clean_slope_per_epoch": slope(cv),
        "spearman_clean_vs_envelope": spearman,
        "tradeoff_seen": bool(cv[-1] > cv[0] and ev[-1] < ev[0]),
        "kick_epoch": clean[k][0], "clean_at_kick": cv[k], "envelope_at_kick": ev[k],
        "envelope_slope_after_kick": env_after, "clean_slope_after_kick": clean_after,
        "tradeoff_after_kick": bool(len(cv) - k >= 3 and clean_after >= 0 and env_after < 0)}


def seed_spread(per_seed: list[dict], key: str) -> tuple[float, float]:
    """Mean and standard error (SD/√n; NaN for one seed) of ``key`` over per-seed trends."""
    values = [float(t[key]) for t in per_seed]
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(np.mean(values)), se


# --------------------------------------------------------------------------- Δx, Δp
def feature_box(model: nn.Module, x_train: Tensor, batch_size: int = 512) -> Box:
    """Each feature's observed range over ``x_train`` (feature units): the integration box of
    the packet on the feature layer (``model.features``)."""
    with torch.no_grad():
        feats = torch.cat([model.features(x_train[i:i + batch_size])
                           for i in range(0, x_train.shape[0], batch_size)])
    return Box(feats.min(0).values, feats.max(0).values)


def packet_rows(model: nn.Module, level: str, domain: Box, n_classes: int, n: int,
                generator_seed: int, meta: dict) -> list[dict]:
    """One row per class: ``meta`` + `UNCERTAINTY_FIELDS` of the class's packet, QMC with ``n``
    points over ``domain``; on ``features`` the packet is a function of the feature vector and
    only ``model.classifier`` is evaluated (the box is in feature units)."""
    net = model if level == "pixels" else model.classifier
    with warnings.catch_warnings(action="ignore"):  # small QMC sample's notes
        spreads = class_spreads(net, list(range(n_classes)), domain, method="qmc",
                                batch_size=512, n=n,
                                generator=torch.Generator().manual_seed(generator_seed))
    width = (domain.upper - domain.lower).double()
    flat = float((width**2).sum().div(12).sqrt())
    return [{**meta, "class": k, **{f: getattr(s, f) for f in UNCERTAINTY_FIELDS},
             "delta_x_flat": flat} for k, s in spreads.items()]


def class_mean_curves(rows: list[dict], network: str, level: str) -> dict[str, np.ndarray]:
    """Class-mean Δx, Δp, Δx·Δp per epoch and seed of one network and level:
    ``epochs`` (E,), ``<field>`` (seeds, E)."""
    sub = [r for r in rows if r["network"] == network and r["level"] == level]
    epochs = sorted({r["epoch"] for r in sub})
    seeds = sorted({r["seed"] for r in sub})
    out: dict[str, np.ndarray] = {"epochs": np.array(epochs), "seeds": np.array(seeds)}
    for key in ("delta_x", "delta_p", "product", "delta_x_flat"):
        out[key] = np.array([[np.mean([r[key] for r in sub if r["seed"] == s
                                       and r["epoch"] == e]) for e in epochs] for s in seeds])
    return out


def tradeoff_strength(curves: dict[str, np.ndarray]) -> np.ndarray:
    """Per seed: ln(Δp_last/Δp_first) − ln(Δx_last/Δx_first) of the class-mean curves."""
    dx, dp = curves["delta_x"], curves["delta_p"]
    return np.log(dp[:, -1] / dp[:, 0]) - np.log(dx[:, -1] / dx[:, 0])


def uncertainty_summary(rows: list[dict]) -> list[dict]:
    """Per network and level: class-mean Δx, Δp first → last epoch and the trade-off strength,
    each the mean over seeds with its standard error."""
    out = []
    for network in dict.fromkeys(r["network"] for r in rows):
        for level in LEVELS:
            if not any(r["network"] == network and r["level"] == level for r in rows):
                continue
            c = class_mean_curves(rows, network, level)
            s = tradeoff_strength(c)
            entry = {"network": network, "level": level, "seeds": len(c["seeds"]),
                     "epochs": f"{c['epochs'][0]}-{c['epochs'][-1]}"}
            for key in ("delta_x", "delta_p", "product"):
                for end, idx in (("first", 0), ("last", -1)):
                    m, se = _mean_se(c[key][:, idx])
                    entry |= {f"{key}_{end}": m, f"{key}_{end}_se": se}
            m, se = _mean_se(s)
            flat = c["delta_x_flat"]
            mb, seb = _mean_se(s + 2 * np.log(flat[:, -1] / flat[:, 0]))
            out.append(entry | {"tradeoff_strength": m, "tradeoff_strength_se": se,
                                "tradeoff_seeds": int((s > 0).sum()),
                                "tradeoff_strength_box": mb, "tradeoff_strength_box_se": seb})
    return out


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    return float(np.mean(values)), (float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1
                                    else math.nan)


__all__ = [
    "LEVELS",
    "UNCERTAINTY_FIELDS",
    "class_mean_curves",
    "curve",
    "feature_box",
    "packet_rows",
    "seed_label",
    "seed_means",
    "seed_spread",
    "slope",
    "tradeoff_strength",
    "trend",
    "uncertainty_summary",
]
