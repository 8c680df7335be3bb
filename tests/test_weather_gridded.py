"""Gridded I/O (netCDF, zarr), normalisation and the gridded audit, on small files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scirobust.weather.gridded import (
    GriddedData,
    NormStats,
    audit_gridded,
    from_dataset,
    read_gridded,
    rollout_windows,
    write_gridded,
)

xr = pytest.importorskip("xarray")


def _data(t: int = 6) -> GriddedData:
    rng = np.random.default_rng(0)
    lat = np.linspace(90, -90, 9)
    lon = np.arange(0, 360, 22.5)
    vals = rng.normal(size=(t, 2, 9, 16))
    vals[:, 0] = vals[:, 0] * 50 + 5000
    return GriddedData(vals, ["z500", "u10"], lat, lon, np.arange(t), {"z500": "m", "u10": "m/s"})


@pytest.mark.parametrize("engine", ["h5netcdf", "scipy", "netcdf4"])
def test_netcdf_round_trip(tmp_path, engine: str) -> None:
    pytest.importorskip({"netcdf4": "netCDF4"}.get(engine, engine))
    data = _data()
    path = write_gridded(data, tmp_path / "era5_like.nc", engine=engine)
    back = read_gridded(path, engine=engine)
    assert back.variables == data.variables
    np.testing.assert_array_equal(back.values, data.values)
    np.testing.assert_array_equal(back.lat, data.lat)
    np.testing.assert_array_equal(back.lon, data.lon)
    assert back.units["z500"] == "m"


def test_zarr_round_trip(tmp_path) -> None:
    pytest.importorskip("zarr")
    data = _data()
    back = read_gridded(write_gridded(data, tmp_path / "era5_like.zarr"))
    np.testing.assert_array_equal(back.values, data.values)


def test_levels_and_channel_layouts() -> None:
    rng = np.random.default_rng(1)
    ds = xr.Dataset(
        {"z": (("valid_time", "pressure_level", "latitude", "longitude"),
               rng.normal(size=(3, 2, 5, 8))),
         "t2m": (("valid_time", "latitude", "longitude"), rng.normal(size=(3, 5, 8)))},
        coords={"pressure_level": [500, 850], "latitude": np.linspace(90, -90, 5),
                "longitude": np.arange(8) * 45.0, "valid_time": np.arange(3)},
    )
    data = from_dataset(ds)
    assert data.variables == ["z500", "z850", "t2m"]
    np.testing.assert_array_equal(data.values[:, 1], ds["z"].values[:, 1])
    fields = rng.normal(size=(2, 3, 5, 8))
    ds2 = xr.Dataset({"fields": (("time", "channel", "lat", "lon"), fields)},
                     coords={"channel": ["u", "v", "z"], "lat": np.linspace(90, -90, 5),
                             "lon": np.arange(8) * 45.0, "time": [0, 1]})
    assert from_dataset(ds2, variables=["z", "u"]).variables == ["z", "u"]


def test_norm_stats_round_trip(tmp_path) -> None:
    data = _data()
    stats = NormStats.compute(data)
    z = stats.normalize(data.values)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, rtol=1e-12)
    np.testing.assert_allclose(stats.denormalize(z), data.values)
    loaded = NormStats.load(stats.save(tmp_path / "stats.npz"))
    np.testing.assert_array_equal(loaded.std, stats.std)
    assert loaded.variables == stats.variables


def test_audit_on_gridded_file(tmp_path) -> None:
    data = read_gridded(write_gridded(_data(8), tmp_path / "f.nc"))
    stats = NormStats.compute(data)
    x0, tg = rollout_windows(data, [0, 2], 3, stats)
    assert x0.shape == (2, 2, 9, 16) and tg.shape == (2, 3, 2, 9, 16)
    torch.manual_seed(0)
    model = torch.nn.Conv2d(2, 2, 3, padding=1)
    res, _ = audit_gridded(model, data, stats, starts=[0, 2], steps=3, n_random=2)
    (fg,) = res.select(kind="adversarial", metric="lat_rmse", variable="u10", step=3)
    assert fg.kind == "adversarial" and fg.epsilon == 0.05
    assert res.select(attack="clean", metric="acc", variable="z500", step=1, kind="clean")
    (ratio,) = res.select(kind="ratio", variable="u10", step=3)
    assert ratio.baseline == "random_sign" and ratio.metric == "lat_rmse"
    res2, _ = audit_gridded(model, data, stats, starts=[0, 2], steps=1, eps=0.1, n_random=1)
    assert {r.epsilon for r in res2.select(kind="random")} == {0.1}
