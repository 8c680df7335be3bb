"""Gridded fields in and out of netCDF / zarr through xarray, and per-variable normalisation.

Layout in memory: `GriddedData` holds ``values`` of shape ``(time, variable, lat, lon)`` with
variable names, units, latitudes and longitudes in degrees, and times. On disk (ERA5-like):

* one data variable per field with dimensions ``(time, lat, lon)``, or ``(time, level, lat,
  lon)`` (each level becomes a variable named ``<name><level>``, e.g. ``z500``), or
* one data variable with a channel dimension (``variable``/``channel``/``level``), as in the
  FourCastNet HDF5 files: ``fields(time, channel, lat, lon)``.

Coordinate names ``latitude``/``longitude``/``valid_time`` are accepted too. Paths ending in
``.zarr`` (or directories) are zarr stores, anything else netCDF.

Normalisation (`NormStats`): per-variable mean and standard deviation over time, lat and lon
(the FourCastNet convention); a model trained on normalised fields sees
``(x - mean) / std`` and a budget of eps = 0.05 in normalised units is 5 % of each variable's
standard deviation in physical units.

xarray is imported inside the functions so ``import scirobust`` does not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scirobust.errors import DataError

_LAT = ("lat", "latitude")
_LON = ("lon", "longitude")
_TIME = ("time", "valid_time")
_CHANNEL = ("variable", "channel", "level", "pressure_level", "isobaricInhPa")


def _xr() -> Any:
    try:
        import xarray
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installation
        raise DataError(
            "Reading gridded files needs xarray and a netCDF backend: "
            "pip install 'scirobust[weather]'."
        ) from exc
    return xarray


@dataclass
class GriddedData:
    """Fields ``values (time, variable, lat, lon)`` with coordinates and units."""

    values: np.ndarray
    variables: list[str]
    lat: np.ndarray
    lon: np.ndarray
    time: np.ndarray | None = None
    units: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 4:
            raise DataError(f"values must be (time, variable, lat, lon); got shape {v.shape}.")
        if v.shape[1] != len(self.variables):
            raise DataError(f"{v.shape[1]} variables in values but {len(self.variables)} names.")
        if v.shape[2] != len(self.lat) or v.shape[3] != len(self.lon):
            raise DataError(
                f"grid {v.shape[2:]} does not match lat ({len(self.lat)}) / lon ({len(self.lon)})."
            )
        self.values = v
        self.lat = np.asarray(self.lat, dtype=np.float64)
        self.lon = np.asarray(self.lon, dtype=np.float64)
        if self.time is None:
            self.time = np.arange(v.shape[0])

    def select(self, variables: Sequence[str]) -> GriddedData:
        """Only the named variables, in the given order."""
        missing = [v for v in variables if v not in self.variables]
        if missing:
            raise DataError(f"variables {missing} not in the data; have {self.variables}.")
        idx = [self.variables.index(v) for v in variables]
        return GriddedData(self.values[:, idx], list(variables), self.lat, self.lon, self.time,
                           {v: self.units.get(v, "") for v in variables})


def _find(names: Sequence[str], candidates: Sequence[str], what: str) -> str:
    for c in candidates:
        if c in names:
            return c
    raise DataError(f"no {what} dimension found (looked for {list(candidates)}); have {names}.")


def from_dataset(ds: Any, variables: Sequence[str] | None = None) -> GriddedData:
    """Convert an ``xarray.Dataset`` (layouts in the module docstring) to `GriddedData`."""
    dims = list(ds.dims)
    lat_n, lon_n = _find(dims, _LAT, "latitude"), _find(dims, _LON, "longitude")
    time_n = _find(dims, _TIME, "time")
    arrays, names, units = [], [], {}
    for name, da in ds.data_vars.items():
        if lat_n not in da.dims or lon_n not in da.dims or time_n not in da.dims:
            continue
        extra = [d for d in da.dims if d not in (time_n, lat_n, lon_n)]
        if len(extra) > 1:
            raise DataError(f"variable {name!r} has more than one extra dimension: {extra}.")
        if extra:
            dim = extra[0]
            da = da.transpose(time_n, dim, lat_n, lon_n)
            labels = [str(x) for x in da[dim].values] if dim in ds.coords else None
            for i in range(da.sizes[dim]):
                if dim in ("variable", "channel") and labels is not None:
                    label = labels[i]
                elif labels is not None:
                    label = f"{name}{labels[i].split('.')[0]}"
                else:
                    label = f"{name}{i}"
                arrays.append(da.isel({dim: i}).values)
                names.append(label)
                units[label] = str(da.attrs.get("units", ""))
        else:
            arrays.append(da.transpose(time_n, lat_n, lon_n).values)
            names.append(str(name))
            units[str(name)] = str(da.attrs.get("units", ""))
    if not arrays:
        raise DataError(f"no data variable with dimensions ({time_n}, [level,] {lat_n}, {lon_n}).")
    data = GriddedData(np.stack(arrays, axis=1), names, ds[lat_n].values, ds[lon_n].values,
                       ds[time_n].values, units)
    if variables is None and isinstance(ds.attrs.get("scirobust_variables"), str):
        order = ds.attrs["scirobust_variables"].split(",")
        if sorted(order) == sorted(names):
            variables = order
    return data.select(variables) if variables is not None else data


def read_gridded(path: str | Path, variables: Sequence[str] | None = None,
                 engine: str | None = None) -> GriddedData:
    """Read a netCDF file or zarr store (``.zarr`` or a directory) into `GriddedData`."""
    xr = _xr()
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist.")
    if path.suffix == ".zarr" or path.is_dir():
        ds = xr.open_zarr(path)
    else:
        ds = xr.open_dataset(path, engine=engine)
    with ds:
        return from_dataset(ds.load(), variables)


def to_dataset(data: GriddedData) -> Any:
    """`GriddedData` → ``xarray.Dataset`` with one ``(time, lat, lon)`` variable per field."""
    xr = _xr()
    coords = {"time": data.time, "lat": ("lat", data.lat, {"units": "degrees_north"}),
              "lon": ("lon", data.lon, {"units": "degrees_east"})}
    data_vars = {
        name: (("time", "lat", "lon"), data.values[:, i], {"units": data.units.get(name, "")})
        for i, name in enumerate(data.variables)
    }
    # zarr lists data variables alphabetically: keep the order in an attribute
    return xr.Dataset(data_vars, coords=coords,
                      attrs={"scirobust_variables": ",".join(data.variables)})


def write_gridded(data: GriddedData, path: str | Path, engine: str | None = None) -> Path:
    """Write `GriddedData` as netCDF (default) or zarr (path ending ``.zarr``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = to_dataset(data)
    if path.suffix == ".zarr":
        ds.to_zarr(path, mode="w")
    else:
        ds.to_netcdf(path, engine=engine)
    return path


@dataclass(frozen=True)
class NormStats:
    """Per-variable ``mean`` and ``std`` (physical units), shape ``(C,)``."""

    variables: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def compute(cls, data: GriddedData) -> NormStats:
        """Mean and standard deviation of every variable over time, lat and lon."""
        v = data.values.astype(np.float64)
        std = v.std(axis=(0, 2, 3))
        if (std == 0).any():
            bad = [n for n, s in zip(data.variables, std, strict=True) if s == 0]
            raise DataError(f"variables {bad} are constant: they cannot be normalised.")
        return cls(tuple(data.variables), v.mean(axis=(0, 2, 3)), std)

    def _shape(self, ndim: int) -> tuple[int, ...]:
        return (len(self.variables),) + (1,) * (ndim - 1)

    def normalize(self, x: np.ndarray | torch.Tensor, axis: int = 1) -> Any:
        """``(x - mean) / std`` with variables on ``axis``."""
        return (x - self._b(x, self.mean, axis)) / self._b(x, self.std, axis)

    def denormalize(self, x: np.ndarray | torch.Tensor, axis: int = 1) -> Any:
        """Inverse of `normalize`."""
        return x * self._b(x, self.std, axis) + self._b(x, self.mean, axis)

    def _b(self, x: Any, v: np.ndarray, axis: int) -> Any:
        shape = [1] * x.ndim
        shape[axis] = len(self.variables)
        if isinstance(x, torch.Tensor):
            return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(shape)
        return v.reshape(shape)

    def save(self, path: str | Path) -> Path:
        """Save as ``.npz`` (variables, mean, std)."""
        path = Path(path)
        np.savez(path, variables=np.array(self.variables), mean=self.mean, std=self.std)
        return path

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        """Read a file written by `save`."""
        with np.load(path, allow_pickle=False) as f:
            return cls(tuple(str(v) for v in f["variables"]), f["mean"], f["std"])


def rollout_windows(data: GriddedData, starts: Sequence[int], steps: int,
                    stats: NormStats | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial states ``(n, C, lat, lon)`` at time indices ``starts`` and the true states at
    lead 1..steps, ``(n, steps, C, lat, lon)``, normalised with ``stats`` if given (float32)."""
    v = data.values
    for s in starts:
        if s < 0 or s + steps >= v.shape[0]:
            raise DataError(f"start {s} + {steps} steps runs past the {v.shape[0]} times.")
    x0 = np.stack([v[s] for s in starts])
    tg = np.stack([v[s + 1: s + 1 + steps] for s in starts])
    if stats is not None:
        x0, tg = stats.normalize(x0), stats.normalize(tg, axis=2)
    return torch.as_tensor(x0, dtype=torch.float32), torch.as_tensor(tg, dtype=torch.float32)


def audit_gridded(model: Any, data: GriddedData, stats: NormStats, *, starts: Sequence[int],
                  steps: int, eps: float = 0.05, **kwargs: Any) -> Any:
    """Audit an autoregressive model trained on normalised fields on a user's gridded data.

    Normalises with ``stats``, sweeps ``eps`` normalised units on every variable (records'
    ``epsilon`` = ``eps``; a ``sweep`` keyword brings its own budget and epsilons), uses
    the file's latitudes for weighting and the time mean of ``data`` as climatology for ACC,
    and calls `scirobust.rollout.rollout_audit` (extra keyword arguments are passed on).
    Returns ``(results, traces)``; metrics are in normalised units (multiply by ``stats.std``
    for physical units).
    """
    from scirobust.rollout import per_variable_budget, rollout_audit

    x0, targets = rollout_windows(data, starts, steps, stats)
    clim = torch.as_tensor(stats.normalize(data.values.mean(axis=0), axis=0),
                           dtype=torch.float32)
    kwargs.setdefault("variables", data.variables)
    if kwargs.get("sweep") is None:
        # a budget of one normalised unit per variable, scaled by the sweep's epsilon
        kwargs.setdefault("budget", per_variable_budget(1.0, len(data.variables)))
        kwargs.setdefault("epsilons", [eps])
    return rollout_audit(model, x0, targets, steps, lat=data.lat, climatology=clim, **kwargs)
