"""ERA5 fields for FourCastNet: the official HDF5 files, ERA5 netCDF, normalisation, audits.

Channels. FourCastNet's 20 input/output channels, in the order of the official data
preparation (``data_process/parallel_copy_small_set.py``; pressure levels in hPa):
``u10 v10 t2m sp msl t850 u1000 v1000 z1000 u850 v850 z850 u500 v500 z500 t500 z50 r500 r850
tcwv`` (`FOURCASTNET_CHANNELS`, units in `UNITS`).

Files read here:

* the official HDF5 files, one per year (``2018.h5``): dataset ``fields`` of shape
  ``(time, 20 or 21, 721, 1440)``, 6-hourly from 1 January 00 UTC, latitudes 90 → −90 and
  longitudes 0 → 359.75 (`read_fourcastnet_hdf5`, via h5py, reading only the times asked);
* ERA5 netCDF as the Copernicus Climate Data Store delivers it (`read_era5_netcdf`, via
  xarray): single-level variables ``u10 v10 t2m sp msl tcwv`` and pressure-level variables
  ``t u v z r`` with a ``level`` / ``pressure_level`` axis, in one or several files;
* the official statistics ``global_means.npy`` / ``global_stds.npy`` (shape ``(1, 21, 1, 1)``,
  channels selected as the official loader does, ``[:, channels]``) and ``time_means.npy``.

Grid. As the official loader, the last latitude row (the south pole) is dropped so that 721
rows become 720, divisible by the patch size 8; grids with an even number of rows are kept.

Units of an audit (`fourcastnet_audit`). The model eats normalised fields
``(x − global_mean) / global_std``; perturbations are applied there, so ``eps = 0.05`` moves
every grid value by at most 5 % of its channel's global standard deviation (the paper's
"roughly 5 %"), and the attacker's objective is the latitude-weighted MSE in normalised units
(every channel weighs the same, as in training). RMSE is reported in physical units (×
``global_std``), as the official inference script reports it. `PhysicalUnits` wraps the model
for users who want budgets or objectives in physical units instead (``Budget(eps, scale=std)``
is then the same perturbation set as ``eps`` in normalised units).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scirobust.errors import ConfigError, DataError
from scirobust.results import Results, ratio_records
from scirobust.rollout import Perturb, per_variable_budget, rollout_audit
from scirobust.weather.gridded import GriddedData, NormStats

__all__ = [
    "FOURCASTNET_CHANNELS",
    "STEP_HOURS",
    "UNITS",
    "PhysicalUnits",
    "Windows",
    "era5_windows",
    "fourcastnet_audit",
    "hdf5_time_index",
    "load_climatology",
    "load_fourcastnet_stats",
    "read_era5_netcdf",
    "read_fourcastnet_hdf5",
]

FOURCASTNET_CHANNELS: tuple[str, ...] = (
    "u10", "v10", "t2m", "sp", "msl", "t850", "u1000", "v1000", "z1000", "u850", "v850",
    "z850", "u500", "v500", "z500", "t500", "z50", "r500", "r850", "tcwv")
STEP_HOURS = 6.0
_SURFACE = ("u10", "v10", "t2m", "sp", "msl", "tcwv")
UNITS: dict[str, str] = {
    **{c: "m/s" for c in FOURCASTNET_CHANNELS if c[0] in "uv"},
    **{c: "K" for c in FOURCASTNET_CHANNELS if c[0] == "t" and c != "tcwv"},
    "sp": "Pa", "msl": "Pa", "z1000": "m²/s²", "z850": "m²/s²", "z500": "m²/s²",
    "z50": "m²/s²", "r500": "%", "r850": "%", "tcwv": "kg/m²"}
_TIME = ("time", "valid_time")
_LEVEL = ("level", "pressure_level", "isobaricInhPa", "plev")
_LAT, _LON = ("latitude", "lat"), ("longitude", "lon")


def _source(channel: str) -> tuple[str, int | None]:
    """ERA5 short name and pressure level (hPa) of a channel: ``z500`` → ``("z", 500)``."""
    if channel in _SURFACE:
        return channel, None
    name, level = channel[0], channel[1:]
    if name not in "tuvzr" or not level.isdigit():
        raise ConfigError(f"unknown FourCastNet channel {channel!r}; channels are "
                          f"{', '.join(FOURCASTNET_CHANNELS)}.")
    return name, int(level)


def _grid(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes 90 → −90 (equiangular, poles included) and longitudes from 0, degrees."""
    return (90.0 - np.arange(n_rows) * 180.0 / (n_rows - 1),
            np.arange(n_cols) * 360.0 / n_cols)


def _crop(n_rows: int) -> int:
    """Rows kept: the official loader drops the last (south-pole) row of the 721."""
    return n_rows - 1 if n_rows % 2 else n_rows


# --------------------------------------------------------------------------- statistics
def _channel_array(path: str | Path, channels: Sequence[int], what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist.")
    arr = np.load(path, allow_pickle=False)
    shape = arr.shape
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 1:
        arr = arr[:, None, None]
    if arr.ndim != 3:
        raise DataError(f"{path}: expected shape (1, channels, 1, 1) or (1, channels, lat, "
                        f"lon) as in FourCastNet's stats_v0; got {shape}.")
    if max(channels) >= arr.shape[0] or min(channels) < 0:
        raise DataError(f"{path} holds {arr.shape[0]} channels; channels {list(channels)} "
                        "were asked for.")
    return arr[list(channels)].astype(np.float64)


def load_fourcastnet_stats(means_path: str | Path, stds_path: str | Path,
                           channels: Sequence[int] = range(20),
                           variables: Sequence[str] = FOURCASTNET_CHANNELS) -> NormStats:
    """The official normalisation (``global_means.npy``, ``global_stds.npy``) as `NormStats`
    (physical units per channel); ``channels`` index the files' channel axis, as the
    official ``in_channels`` do."""
    channels = list(channels)
    if len(channels) != len(variables):
        raise ConfigError(f"{len(channels)} channels but {len(variables)} variable names.")
    mean = _channel_array(means_path, channels, "means").reshape(len(channels))
    std = _channel_array(stds_path, channels, "stds").reshape(len(channels))
    if not (std > 0).all():
        raise DataError(f"{stds_path}: standard deviations must be > 0; got {std}.")
    return NormStats(tuple(variables), mean, std)


def load_climatology(time_means_path: str | Path, stats: NormStats,
                     channels: Sequence[int] = range(20)) -> Tensor:
    """``time_means.npy`` (1, 21, 721, 1440) → normalised climatology ``(C, 720, 1440)``
    (float32), the reference of the anomaly correlation (ACC)."""
    clim = _channel_array(time_means_path, list(channels), "time means")
    clim = clim[:, :_crop(clim.shape[1])]
    return torch.as_tensor(stats.normalize(clim, axis=0), dtype=torch.float32)


# --------------------------------------------------------------------------- readers
def hdf5_time_index(when: str | datetime) -> int:
    """Index of a 6-hourly time in a FourCastNet year file (1 January 00 UTC is 0)."""
    t = datetime.fromisoformat(when) if isinstance(when, str) else when
    hours = (t - datetime(t.year, 1, 1, tzinfo=t.tzinfo)).total_seconds() / 3600.0
    if hours % STEP_HOURS or t.minute or t.second:
        raise ConfigError(f"{when}: FourCastNet files are 6-hourly (00, 06, 12, 18 UTC).")
    return int(hours // STEP_HOURS)


def read_fourcastnet_hdf5(path: str | Path, times: Sequence[int],
                          channels: Sequence[int] = range(20),
                          variables: Sequence[str] = FOURCASTNET_CHANNELS) -> GriddedData:
    """Times ``times`` (indices) of an official year file as `GriddedData` in physical units,
    ``(len(times), C, 720, 1440)`` float32, reading only those times."""
    import h5py

    path, channels = Path(path), [int(c) for c in channels]
    if len(channels) != len(variables):
        raise ConfigError(f"{len(channels)} channels but {len(variables)} variable names.")
    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    with h5py.File(path, "r") as f:
        if "fields" not in f:
            raise DataError(f"{path} has no dataset 'fields' (has {sorted(f)}): not a "
                            "FourCastNet HDF5 file.")
        ds = f["fields"]
        if ds.ndim != 4:
            raise DataError(f"{path}: 'fields' must be (time, channel, lat, lon); got {ds.shape}.")
        n_t, n_c, n_lat, n_lon = ds.shape
        bad = [t for t in times if not 0 <= t < n_t]
        if bad or max(channels) >= n_c or min(channels) < 0:
            raise DataError(f"{path} holds {n_t} times and {n_c} channels; asked for times "
                            f"{bad or list(times)[:5]} and channels {channels}.")
        rows = _crop(n_lat)
        # h5py reads increasing channel indices; reorder afterwards
        order = sorted(set(channels))
        values = np.stack([ds[int(t), order, :rows] for t in times]).astype(np.float32)
    values = values[:, [order.index(c) for c in channels]]
    lat, lon = _grid(n_lat, n_lon)
    return GriddedData(values, list(variables), lat[:rows], lon, np.asarray(times),
                       {v: UNITS.get(v, "") for v in variables})


def _dim(names: Sequence[str], candidates: Sequence[str], what: str, path: str) -> str:
    for c in candidates:
        if c in names:
            return c
    raise DataError(f"{path}: no {what} coordinate (looked for {list(candidates)}; has "
                    f"{list(names)}).")


def read_era5_netcdf(paths: str | Path | Sequence[str | Path], times: Any = None,
                     variables: Sequence[str] = FOURCASTNET_CHANNELS,
                     engine: str | None = None) -> GriddedData:
    """ERA5 netCDF (single-level and pressure-level files, as the CDS delivers them) as
    `GriddedData` in the FourCastNet channel order, physical units, float32.

    ``times``: None (all), integer indices, or times xarray can select (``"2018-01-01T00"``).
    A channel is read from a variable of its own name (``z500``) if the files hold one, else
    from the ERA5 short name at its pressure level (``z`` at 500 hPa). Latitudes are put in
    90 → −90 order and the south-pole row of 721 is dropped.
    """
    from scirobust.weather.gridded import _xr

    xr = _xr()
    files = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    missing = [str(p) for p in files if not p.is_file()]
    if not files or missing:
        raise DataError(f"netCDF files not found: {missing or 'none given'}.")
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(xr.open_dataset(p, engine=engine)) for p in files]
        ds = xr.merge(opened, compat="override", join="exact")
        return _from_era5_dataset(ds, times, variables, ", ".join(map(str, files)))


def _from_era5_dataset(ds: Any, times: Any, variables: Sequence[str], where: str) -> GriddedData:
    """`read_era5_netcdf` on an open (lazy) dataset; only the selected times are loaded."""
    dims = list(ds.dims)
    t_n, lat_n, lon_n = (_dim(dims, c, w, where) for c, w in
                         ((_TIME, "time"), (_LAT, "latitude"), (_LON, "longitude")))
    if times is not None:
        idx = list(np.atleast_1d(times))
        ds = ds.isel({t_n: idx}) if all(isinstance(i, int | np.integer) for i in idx) \
            else ds.sel({t_n: np.asarray(idx, dtype="datetime64[ns]")})
    if ds[lat_n].values[0] < ds[lat_n].values[-1]:
        ds = ds.isel({lat_n: slice(None, None, -1)})
    arrays = []
    for channel in variables:
        name, level = _source(channel)
        if channel in ds.data_vars:
            da = ds[channel]
        elif name in ds.data_vars and level is None:
            da = ds[name]
        elif name in ds.data_vars:
            lev_n = _dim(list(ds[name].dims), _LEVEL, f"pressure-level (for {channel})", where)
            levels = ds[lev_n].values.astype(float)
            hpa = levels / 100.0 if levels.max() > 2000 else levels  # Pa in some files
            hit = np.flatnonzero(np.isclose(hpa, level))
            if not hit.size:
                raise DataError(f"{where}: {name!r} has no {level} hPa level (has "
                                f"{hpa.tolist()} hPa) for channel {channel}.")
            da = ds[name].isel({lev_n: int(hit[0])})
        else:
            raise DataError(f"{where}: no variable {channel!r} or {name!r} for channel "
                            f"{channel}; data variables: {sorted(ds.data_vars)}.")
        arrays.append(da.transpose(t_n, lat_n, lon_n).values.astype(np.float32))
    rows = _crop(ds.sizes[lat_n])
    values = np.stack(arrays, axis=1)[:, :, :rows]
    lat = ds[lat_n].values.astype(np.float64)[:rows]
    return GriddedData(values, list(variables), lat, ds[lon_n].values, ds[t_n].values,
                       {v: UNITS.get(v, "") for v in variables})


@dataclass
class Windows:
    """Initial states ``x0 (n, C, lat, lon)`` and true states at lead 1..steps ``targets
    (n, steps, C, lat, lon)``, normalised (float32), with the grid and start times."""

    x0: Tensor
    targets: Tensor
    lat: np.ndarray
    lon: np.ndarray
    variables: list[str]
    starts: list[Any]


def _states(source: GriddedData | str | Path | Sequence[str | Path], times: list[int],
            read: dict[str, Any]) -> GriddedData:
    if isinstance(source, GriddedData):
        if times[0] < 0 or times[-1] >= source.values.shape[0]:
            raise DataError(f"times {times[0]}..{times[-1]} run past the "
                            f"{source.values.shape[0]} times of the data.")
        assert source.time is not None
        return GriddedData(source.values[times], source.variables, source.lat, source.lon,
                           source.time[times], source.units)
    if isinstance(source, str | Path) and Path(source).suffix in (".h5", ".hdf5"):
        return read_fourcastnet_hdf5(source, times, **read)
    return read_era5_netcdf(source, times, **read)


def era5_windows(source: GriddedData | str | Path | Sequence[str | Path],
                 starts: Sequence[int], steps: int, stats: NormStats, **read: Any) -> Windows:
    """Normalised rollout windows from `GriddedData`, an official ``.h5`` year file or
    netCDF file(s) (``read`` goes to the reader), reading one window at a time so that the
    peak memory is the windows themselves (10 × 21 states of 720×1440×20 are 17 GB).
    Normalised in float32, as the official loader does."""
    starts = [int(s) for s in starts]
    if steps < 1 or not starts:
        raise ConfigError("need at least one start and steps >= 1.")
    mean = stats.mean.astype(np.float32).reshape(1, -1, 1, 1)
    std = stats.std.astype(np.float32).reshape(1, -1, 1, 1)
    x0 = tg = None
    for i, s in enumerate(starts):
        data = _states(source, list(range(s, s + steps + 1)), read)
        if list(data.variables) != list(stats.variables):
            raise ConfigError(f"data channels {data.variables} differ from the stats' "
                              f"{list(stats.variables)}.")
        v = (data.values.astype(np.float32, copy=False) - mean) / std
        if x0 is None or tg is None:
            x0 = np.empty((len(starts), *v.shape[1:]), dtype=np.float32)
            tg = np.empty((len(starts), steps, *v.shape[1:]), dtype=np.float32)
        x0[i], tg[i] = v[0], v[1:]
    assert x0 is not None and tg is not None
    return Windows(torch.from_numpy(x0), torch.from_numpy(tg), data.lat, data.lon,
                   list(data.variables), starts)


# --------------------------------------------------------------------------- audits
class PhysicalUnits(nn.Module):
    """``model`` on physical fields: normalise with ``stats``, step, de-normalise.

    Use with ``per_variable_budget(eps, C, scale=stats.std)`` for eps in standard deviations,
    or a per-variable eps in physical units (e.g. 1 m/s, 1 K). Note the default objective is
    then the MSE in physical units, dominated by the channels of largest std (geopotential).
    """

    def __init__(self, model: nn.Module, stats: NormStats) -> None:
        super().__init__()
        self.model = model
        shape = (1, len(stats.variables), 1, 1)
        self.register_buffer("mean", torch.as_tensor(stats.mean, dtype=torch.float32)
                             .reshape(shape))
        self.register_buffer("std", torch.as_tensor(stats.std, dtype=torch.float32)
                             .reshape(shape))

    def forward(self, x: Tensor) -> Tensor:
        """Physical fields ``(B, C, lat, lon)`` at t → physical fields at t + one step."""
        return self.model((x - self.mean) / self.std) * self.std + self.mean


def _merge(parts: list[list[Any]]) -> list[Any]:
    """Pool clean/random/adversarial records of chunks of initial conditions: n-weighted mean,
    standard error from the pooled sum of squares (exact), spread assuming independent chunks
    (exact for one chunk)."""
    groups: dict[tuple, list[Any]] = {}
    for recs in parts:
        for r in recs:
            if r.kind != "ratio":
                groups.setdefault((r.model, r.attack, r.epsilon, r.metric, r.variable, r.step,
                                   r.kind), []).append(r)
    out = []
    for rs in groups.values():
        if len(rs) == 1:
            out.append(rs[0])
            continue
        n = sum(r.n for r in rs)
        mean = sum(r.n * r.value for r in rs) / n
        ss = sum((r.n - 1) * (0.0 if r.n < 2 else (r.stderr * math.sqrt(r.n)) ** 2)
                 + r.n * (r.value - mean) ** 2 for r in rs)
        spread = math.sqrt(sum((r.n / n * r.spread) ** 2 for r in rs))
        out.append(replace(rs[0], value=mean, n=n, spread=spread,
                           stderr=math.sqrt(ss / (n - 1)) / math.sqrt(n)))
    return out


def fourcastnet_audit(model: nn.Module, windows: Windows, stats: NormStats, *,
                      eps: float = 0.05, attacks: Sequence[str] = ("random_sign", "fgsm"),
                      n_random: int = 3, seed: int = 0, chunk_size: int | None = None,
                      device: str | torch.device | None = None,
                      climatology: Tensor | None = None, perturb: Perturb = "every_step",
                      model_name: str = "fourcastnet", progress: bool = False) -> Results:
    """The paper's experiment: clean vs random vs FGSM rollouts from ``windows`` with the
    state perturbed at every step by ``eps`` normalised units (L∞) per channel.

    Runs `scirobust.rollout.rollout_audit` on chunks of ``chunk_size`` initial conditions
    (all at once by default; 1 fits the 720×1440 model on one GPU) on ``device`` with seed
    ``seed + chunk index``, pools the chunks, and converts ``lat_rmse`` to physical units.
    Returns `Results` (``metadata["units"]`` per variable; ``step`` × 6 h is the lead time).
    """
    n, C = windows.x0.shape[:2]
    if tuple(stats.variables) != tuple(windows.variables):
        raise ConfigError(f"stats are for {stats.variables}, windows for {windows.variables}.")
    size = n if chunk_size is None else int(chunk_size)
    if size < 1:
        raise ConfigError(f"chunk_size must be >= 1; got {chunk_size}.")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    clim = None if climatology is None else climatology.to(dev)
    parts, meta = [], {}
    for i, lo in enumerate(range(0, n, size)):
        if progress:
            print(f"initial conditions {lo + 1}-{min(lo + size, n)} of {n}", flush=True)
        res, _ = rollout_audit(
            model, windows.x0[lo:lo + size].to(dev), windows.targets[lo:lo + size].to(dev),
            budget=per_variable_budget(1.0, C), epsilons=[eps], attacks=list(attacks),
            n_random=n_random, seed=seed + i, perturb=perturb,
            lat=windows.lat, climatology=clim, variables=windows.variables,
            case="fourcastnet", model_name=model_name)
        parts.append(res.records)
        meta = res.metadata
    std = dict(zip(stats.variables, stats.std.tolist(), strict=True))
    records = []
    for r in _merge(parts):
        if r.metric == "lat_rmse":
            s = std[r.variable]
            r = replace(r, value=r.value * s, stderr=r.stderr * s, spread=r.spread * s)
        records.append(r)
    results = Results()
    results.records = records + ratio_records(records, {"lat_rmse"})
    meta["rollout"] = {**meta.get("rollout", {}), "n_initial_conditions": n, "seed": seed}
    results.metadata = {
        **meta, "case": "fourcastnet", "step_hours": STEP_HOURS, "seed": seed,
        "chunk_size": size, "n_initial_conditions": n, "starts": [str(s) for s in
                                                                   windows.starts],
        "units": {**UNITS, "acc": "dimensionless"}, "standard_figures": False,
        "epsilon_label": "perturbation size ε (L∞, normalised units = per-channel std)",
        "notes": [f"lat_rmse in physical units (× global std); ε = {eps} normalised units at "
                  f"{'every step' if perturb == 'every_step' else 'the initial state'}; "
                  "objective: latitude-weighted MSE in normalised units."],
    }
    return results
