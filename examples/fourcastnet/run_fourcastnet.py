"""Paper 000 Fig. 2B with the released FourCastNet: clean vs random vs FGSM RMSE over lead time.

Settings fixed before any run (the paper states only the first three):
* ε = 0.05 normalised units (5 % of each channel's global std), L∞, at every 6 h step;
* FGSM against the latitude-weighted MSE to the true next state (normalised units), random
  ±ε signs of the same size (3 draws here, mean and spread reported);
* 10 initial conditions in 2018 ("different time periods"; the paper does not list them):
  00 UTC on the first day of January .. October 2018;
* 20 lead steps (120 h; the paper does not state the horizon); RMSE latitude-weighted, in
  physical units, mean ± standard error over the initial conditions.

Run ``python run_fourcastnet.py --help``; README.md next to this file gives the commands.
``--tiny`` runs the same pipeline on a random-weight tiny model and synthetic files (CPU, a
few seconds), as the tests do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from scirobust.report import COLORS, save_case_figure, write_case_table, write_report
from scirobust.results import Results
from scirobust.weather.era5 import (
    FOURCASTNET_CHANNELS,
    STEP_HOURS,
    UNITS,
    era5_windows,
    fourcastnet_audit,
    hdf5_time_index,
    load_climatology,
    load_fourcastnet_stats,
)
from scirobust.weather.fourcastnet import FourCastNetAFNO, load_fourcastnet_checkpoint

STARTS_2018 = [f"2018-{m:02d}-01T00:00" for m in range(1, 11)]
KINDS = (("clean", "clean", "o"), ("random", "random ±ε", "s"), ("adversarial", "FGSM ε", "^"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, help="FCN_weights_v0/backbone.ckpt")
    p.add_argument("--stats", type=Path, help="folder with global_means.npy, global_stds.npy "
                   "(and time_means.npy for ACC)")
    p.add_argument("--data", type=Path, nargs="+", help="out_of_sample/2018.h5, or ERA5 "
                   "netCDF files (single and pressure levels)")
    p.add_argument("--starts", nargs="+", default=STARTS_2018, help="initial times (ISO)")
    p.add_argument("--steps", type=int, default=20, help="lead steps of 6 h")
    p.add_argument("--eps", type=float, default=0.05, help="L∞ size, normalised units")
    p.add_argument("--n-random", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--chunk-size", type=int, default=1,
                   help="initial conditions per batch (1 fits 720×1440 on one GPU)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow pickled objects in the checkpoint (runs code: trusted files only)")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-figures", action="store_true",
                   help="skip the 20-panel figure (results, table and report only)")
    p.add_argument("--tiny", action="store_true",
                   help="random-weight tiny model and synthetic data (a smoke test)")
    return p


def _start_indices(data: list[Path], starts: list[str]) -> list[int]:
    """Time indices of ``starts`` in an official year file or in the netCDF files."""
    if data[0].suffix in (".h5", ".hdf5"):
        return [hdf5_time_index(s) for s in starts]
    import xarray as xr

    with xr.open_dataset(data[0]) as ds:
        name = "valid_time" if "valid_time" in ds.coords else "time"
        times = ds[name].values.astype("datetime64[h]")
    index = {t: i for i, t in enumerate(times)}
    missing = [s for s in starts if np.datetime64(s, "h") not in index]
    if missing:
        raise SystemExit(f"start times {missing} are not in {data[0]}.")
    return [index[np.datetime64(s, "h")] for s in starts]


def _tiny_inputs(folder: Path) -> argparse.Namespace:
    """Official-layout files at 16×32 (17 rows before the crop): checkpoint, stats, data."""
    import h5py

    torch.manual_seed(0)
    model = FourCastNetAFNO((16, 32), 4, 20, 20, embed_dim=16, depth=1, num_blocks=4)
    torch.save({"epoch": 0, "model_state": {f"module.{k}": v
                                            for k, v in model.state_dict().items()}},
               folder / "backbone.ckpt")
    rng = np.random.default_rng(0)
    base = rng.normal(size=(21, 17, 32)).cumsum(axis=2)
    fields = np.stack([np.roll(base, t, axis=2) for t in range(12)]).astype(np.float32)
    with h5py.File(folder / "2018.h5", "w") as f:
        f.create_dataset("fields", data=fields)
    np.save(folder / "global_means.npy", fields.mean(axis=(0, 2, 3)).reshape(1, 21, 1, 1))
    np.save(folder / "global_stds.npy", fields.std(axis=(0, 2, 3)).reshape(1, 21, 1, 1))
    np.save(folder / "time_means.npy", fields.mean(axis=0, keepdims=True))
    return argparse.Namespace(
        checkpoint=folder / "backbone.ckpt", stats=folder, data=[folder / "2018.h5"],
        starts=["2018-01-01T00:00", "2018-01-01T06:00", "2018-01-01T12:00"], steps=3,
        config={"img_size": (16, 32), "patch_size": 4, "embed_dim": 16, "depth": 1,
                "num_blocks": 4})


def _figure(results: Results, directory: Path, steps: int) -> None:
    """RMSE against lead time for every channel (paper Fig. 2B)."""
    rows = {(r.kind, r.variable, r.step): r for r in results.records
            if r.metric == "lat_rmse"}
    leads = np.arange(1, steps + 1) * STEP_HOURS
    fig = Figure(figsize=(15.0, 10.5), layout="constrained")
    axes = fig.subplots(4, 5).ravel()
    for ax, var in zip(axes, FOURCASTNET_CHANNELS, strict=True):
        for kind, label, marker in KINDS:
            recs = [rows[(kind, var, k)] for k in range(1, steps + 1)]
            ax.errorbar(leads, [r.value for r in recs], yerr=[r.stderr for r in recs],
                        color=COLORS[kind], marker=marker, markersize=3, capsize=2,
                        label=label)
        ax.set_title(var, fontsize=10)
        ax.set_ylabel(f"RMSE ({UNITS[var]})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[-5:]:
        ax.set_xlabel("lead time (h)", fontsize=8)
    axes[0].legend(fontsize=7)
    eps = results.metadata["rollout"]["epsilons"][0]
    fig.suptitle(f"FourCastNet under perturbations at every step (ε = {eps:g} normalised "
                 "units): latitude-weighted RMSE, mean ± SE over initial conditions")
    save_case_figure(fig, directory, "fourcastnet_rmse_vs_lead",
                     "Paper 000 Fig. 2B: RMSE per channel against lead time, clean (black), "
                     "random ±ε (blue), FGSM ε (vermillion), perturbed at every 6 h step.")


def main(argv: list[str] | None = None) -> Results:
    """Run the audit from the command line; returns the `Results` it wrote."""
    args = _parser().parse_args(argv)
    config: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            tiny = _tiny_inputs(Path(tmp))
            args.checkpoint, args.stats, args.data = tiny.checkpoint, tiny.stats, tiny.data
            args.starts, args.steps, config = tiny.starts, tiny.steps, tiny.config
            args.device = "cpu"
        if args.checkpoint is None or args.stats is None or not args.data:
            raise SystemExit("give --checkpoint, --stats and --data (or --tiny).")
        stats = load_fourcastnet_stats(args.stats / "global_means.npy",
                                       args.stats / "global_stds.npy")
        model = load_fourcastnet_checkpoint(args.checkpoint, **config,
                                            trust_checkpoint=args.trust_checkpoint)
        model = model.to(args.device)
        source = args.data[0] if len(args.data) == 1 else args.data
        windows = era5_windows(source, _start_indices(args.data, args.starts), args.steps,
                                  stats)
        windows.starts = list(args.starts)
        clim_path = args.stats / "time_means.npy"
        clim = load_climatology(clim_path, stats) if clim_path.is_file() else None
        results = fourcastnet_audit(model, windows, stats, eps=args.eps,
                                    n_random=args.n_random, seed=args.seed,
                                    chunk_size=args.chunk_size, device=args.device,
                                    climatology=clim, progress=not args.quiet)
    out = args.output
    results.save(out)
    rows = {(r.kind, r.variable, r.step): r for r in results.records if r.metric == "lat_rmse"}
    write_case_table(out / "tables" / "fourcastnet_rmse_by_lead.csv",
                     ["variable", "lead_h", "units", "clean", "clean_se", "random",
                      "random_se", "fgsm", "fgsm_se", "fgsm_over_random"],
                     [[v, k * STEP_HOURS, UNITS[v], rows[("clean", v, k)].value,
                       rows[("clean", v, k)].stderr, rows[("random", v, k)].value,
                       rows[("random", v, k)].stderr, rows[("adversarial", v, k)].value,
                       rows[("adversarial", v, k)].stderr, rows[("ratio", v, k)].value]
                      for v in FOURCASTNET_CHANNELS for k in range(1, args.steps + 1)])
    if not args.no_figures:
        _figure(results, out, args.steps)
    write_report(results, out, title="FourCastNet: FGSM vs random perturbations")
    if not args.quiet:
        last = args.steps
        print(f"FGSM / random RMSE at +{last * STEP_HOURS:g} h: " + ", ".join(
            f"{v} {rows[('ratio', v, last)].value:.2f}" for v in FOURCASTNET_CHANNELS))
        print(f"wrote {out}/report.html")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
