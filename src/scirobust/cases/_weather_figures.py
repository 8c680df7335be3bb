"""Figures of the weather case (paper 000 Fig. 2): wind-speed maps of the fed inputs and
predictions, and latitude-weighted RMSE per variable at one lead and against lead time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from scirobust.report import COLORS, save_case_figure
from scirobust.results import Record
from scirobust.weather.gridded import NormStats
from scirobust.weather.shallow_water import FIELDS, UNITS

__all__ = ["ROLLOUTS", "rmse_figures", "wind_maps"]

# (record kind, attack label, legend): the three rollouts every figure and table shows
ROLLOUTS = (("clean", "clean", "clean"), ("random", "random_sign", "random ±ε"),
            ("adversarial", "fgsm", "FGSM ε"))


def wind_maps(directory: Path, fields: list[torch.Tensor], lat: np.ndarray, lon: np.ndarray,
          stats: NormStats, lead_h: float) -> None:
    """Wind speed (m/s) at lead ``lead_h`` (h) of initial condition 1: ``fields`` = the three
    fed inputs and three predictions (clean, random, FGSM), then the truth, normalised
    ``(4, lat, lon)``."""
    titles = ["input, clean", "input + random ±ε", "input + FGSM ε", "prediction, clean",
              "prediction, random", "prediction, FGSM", f"ground truth (+{lead_h:g} h)"]
    speeds = [np.hypot(*(f[i].numpy() * stats.std[i] + stats.mean[i] for i in (1, 2)))
              for f in fields]
    vmax = float(np.percentile(np.concatenate([s.ravel() for s in speeds]), 99.5))
    fig = Figure(figsize=(13.0, 6.4), layout="constrained")
    axes = fig.subplots(2, 4)
    extent = (lon[0], lon[-1], lat[-1], lat[0])
    # zoom: the 40°×60° box around the largest FGSM-vs-truth wind-speed error
    j, i = np.unravel_index(np.argmax(np.abs(speeds[5] - speeds[6])), speeds[5].shape)
    # kept inside the map: a box across the date line would show blank margins
    box = (float(np.clip(lon[i] - 30, lon[0], lon[-1] - 60)),
           float(np.clip(lat[j] - 20, lat[-1], lat[0] - 40)), 60, 40)
    panels = [*axes[0, :3], *axes[1, :3], axes[0, 3]]
    for ax, title, sp in zip(panels, titles, speeds, strict=True):
        im = ax.imshow(sp, extent=extent, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("longitude (°E)", fontsize=8)
        ax.set_ylabel("latitude (°N)", fontsize=8)
    for ax in (axes[0, 3], axes[1, 2]):
        ax.add_patch(Rectangle(box[:2], box[2], box[3], fill=False, ec="white", lw=1.2))
    ax = axes[1, 3]
    ax.imshow(speeds[5], extent=extent, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
    ax.contour(lon, lat, speeds[6], levels=6, colors="white", linewidths=0.6)
    ax.set_xlim(box[0], box[0] + box[2])
    ax.set_ylim(box[1], box[1] + box[3])
    ax.set_title("zoom: FGSM prediction (colour)\nvs truth (white contours)", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8).set_label("wind speed |(u, v)| (m/s)")
    fig.suptitle(f"Wind speed at lead +{lead_h:g} h, initial condition 1, perturbed at every "
                 "step")
    save_case_figure(fig, directory, "weather_1_wind_maps",
                     "Paper Fig. 2A analogue: wind speed of the state fed to the model at the "
                     "verdict's lead (top: clean, random ±ε, FGSM ε = 0.05 normalised units), the "
                     "predictions (bottom), the ground truth (top right) and a zoom on the box "
                     "of largest FGSM error.")


def rmse_figures(directory: Path, rows: dict[tuple, Record], leads: list[int], hours: float,
            bar_lead: int) -> None:
    """Bars at lead ``bar_lead`` (steps) and curves against lead time of lat-weighted RMSE per
    variable; ``rows[(kind, variable, step)]`` are the physical-unit lat_rmse records."""
    fig = Figure(figsize=(11.0, 3.0), layout="constrained")
    for ax, var in zip(fig.subplots(1, len(FIELDS)), FIELDS, strict=True):
        recs = [rows[(kind, var, bar_lead)] for kind, _, _ in ROLLOUTS]
        ax.bar([0, 1, 2], [r.value for r in recs], yerr=[r.stderr for r in recs], capsize=3,
               color=[COLORS[kind] for kind, _, _ in ROLLOUTS])
        ax.set_xticks([0, 1, 2], ["clean", "random", "FGSM"])
        ax.set_title(var)
        ax.set_ylabel(f"lat-weighted RMSE ({UNITS[var]})")
    fig.suptitle(f"RMSE per variable at lead +{bar_lead * hours:g} h (mean over initial "
                 "conditions ± standard error)")
    save_case_figure(fig, directory, "weather_2_rmse_bars",
                     "Paper Fig. 2B analogue: latitude-weighted RMSE per variable at the "
                     "verdict's lead time, clean (black), random ±ε (blue, mean of the draws), "
                     "FGSM ε (vermillion); error bars: standard error over the initial conditions.")
    fig = Figure(figsize=(11.0, 3.0), layout="constrained")
    axes = fig.subplots(1, len(FIELDS))
    for ax, var in zip(axes, FIELDS, strict=True):
        for (kind, _, legend), marker in zip(ROLLOUTS, "oos", strict=True):
            recs = [rows[(kind, var, k)] for k in leads]
            ax.errorbar(np.array(leads) * hours, [r.value for r in recs],
                        yerr=[r.stderr for r in recs], color=COLORS[kind], marker=marker,
                        label=legend, capsize=2)
        ax.set_xlabel("lead time (h)")
        ax.set_ylabel(f"RMSE ({UNITS[var]})")
        ax.set_title(var)
    axes[0].legend(fontsize=7)
    save_case_figure(fig, directory, "weather_3_rmse_vs_lead",
                     "Latitude-weighted RMSE against lead time per variable (mean over initial "
                     "conditions ± standard error), perturbation at every step.")

