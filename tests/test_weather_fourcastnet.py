"""FourCastNet-compatible AFNO, official checkpoint layout, ERA5 readers and the rollout audit,
all at tiny size with random weights (no download)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from scirobust.errors import ConfigError, DataError
from scirobust.rollout import lat_weighted_rmse, latitude_weights, rollout
from scirobust.weather.era5 import (
    FOURCASTNET_CHANNELS,
    PhysicalUnits,
    era5_windows,
    fourcastnet_audit,
    hdf5_time_index,
    load_climatology,
    load_fourcastnet_stats,
    read_era5_netcdf,
    read_fourcastnet_hdf5,
)
from scirobust.weather.fourcastnet import (
    FourCastNetAFNO,
    infer_config,
    load_fourcastnet_checkpoint,
)

TINY = dict(img_size=(16, 32), patch_size=4, in_chans=3, out_chans=3, embed_dim=16, depth=2,
            num_blocks=4)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fourcastnet" / "run_fourcastnet.py"


def _tiny(**kw: object) -> FourCastNetAFNO:
    torch.manual_seed(0)
    return FourCastNetAFNO(**{**TINY, **kw}).eval()  # type: ignore[arg-type]


def test_forward_shapes_gradient_and_shape_error() -> None:
    net = _tiny()
    x = torch.randn(2, 3, 16, 32, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 3, 16, 32)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    with pytest.raises(DataError, match=r"\(batch, 3, 16, 32\)"):
        net(torch.randn(1, 3, 17, 32))


def test_head_layout_and_unused_final_norm_as_in_the_official_forward() -> None:
    net = _tiny()
    x = torch.randn(1, 3, 16, 32)
    with torch.no_grad():
        before = net(x)
        net.norm.weight.zero_()  # the official forward never applies `norm`
        assert torch.equal(net(x), before)
        # head rows are ordered (p1, p2, c): row (1·4 + 2)·3 + 1 feeds channel 1 at (1, 2)
        net.head.weight.zero_()
        net.head.weight[(1 * 4 + 2) * 3 + 1] = 1.0
        out = net(x)
    hit = out.abs() > 0
    assert hit[0, 1, 1::4, 2::4].all()
    assert hit.sum() == 4 * 8  # one pixel per patch, nowhere else


def test_state_dict_names_and_shapes_are_the_official_ones() -> None:
    # written by hand from NVlabs/FourCastNet networks/afnonet.py (depth 1)
    expected = {
        "pos_embed": (1, 32, 16),
        "patch_embed.proj.weight": (16, 3, 4, 4), "patch_embed.proj.bias": (16,),
        "blocks.0.norm1.weight": (16,), "blocks.0.norm1.bias": (16,),
        "blocks.0.filter.w1": (2, 4, 4, 4), "blocks.0.filter.b1": (2, 4, 4),
        "blocks.0.filter.w2": (2, 4, 4, 4), "blocks.0.filter.b2": (2, 4, 4),
        "blocks.0.norm2.weight": (16,), "blocks.0.norm2.bias": (16,),
        "blocks.0.mlp.fc1.weight": (64, 16), "blocks.0.mlp.fc1.bias": (64,),
        "blocks.0.mlp.fc2.weight": (16, 64), "blocks.0.mlp.fc2.bias": (16,),
        "norm.weight": (16,), "norm.bias": (16,),
        "head.weight": (48, 16),
    }
    state = _tiny(depth=1).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    # the released backbone's sizes, built with one block (12 would take 300 MB)
    one = FourCastNetAFNO(depth=1)
    per_block = sum(p.numel() for p in one.blocks[0].parameters())
    assert sum(p.numel() for p in one.parameters()) + 11 * per_block == 74_691_840
    assert infer_config(one.state_dict()) == {
        "in_chans": 20, "out_chans": 20, "embed_dim": 768, "patch_size": 8, "depth": 1,
        "num_patches": 90 * 180, "num_blocks": 8, "mlp_ratio": 4.0}


def test_filter_keeps_only_the_official_modes() -> None:
    # token grid 4×8: rfft columns 0..4; total = 4//2+1 = 3 modes, so columns 3 and 4 are
    # zeroed even at hard_thresholding_fraction 1.0 (as in the official layer)
    layer = _tiny().blocks[0].filter
    x = torch.randn(1, 4, 8, 16)
    mixed = torch.fft.rfft2(layer(x) - x, dim=(1, 2), norm="ortho")
    assert layer.kept_modes(4, 8) == (slice(0, 4), slice(0, 3))
    assert mixed[:, :, 3:].abs().max() < 1e-5
    assert mixed[:, :, :3].abs().max() > 1e-3


def _official_checkpoint(path: Path, model: FourCastNetAFNO) -> None:
    # Adam's state_dict layout, written out (constructing torch.optim.Adam first costs ~4 s)
    params = list(model.parameters())
    opt = {"state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.zeros_like(w),
                         "exp_avg_sq": torch.zeros_like(w)} for i, w in enumerate(params)},
           "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.999), "eps": 1e-8,
                             "weight_decay": 0.0, "amsgrad": False,
                             "params": list(range(len(params)))}]}
    torch.save({"iters": 10, "epoch": 1, "optimizer_state_dict": opt,
                "model_state": {f"module.{k}": v for k, v in model.state_dict().items()}},
               path)


def test_checkpoint_round_trip_with_module_prefix(tmp_path: Path) -> None:
    net = _tiny()
    _official_checkpoint(tmp_path / "best_ckpt.tar", net)
    loaded = load_fourcastnet_checkpoint(tmp_path / "best_ckpt.tar", **TINY)
    x = torch.randn(2, 3, 16, 32)
    assert not loaded.training
    assert torch.equal(loaded(x), net(x))


def test_checkpoint_of_another_size_names_key_and_config(tmp_path: Path) -> None:
    _official_checkpoint(tmp_path / "ckpt.tar", _tiny())
    with pytest.raises(ConfigError, match=r"embed_dim=16 \(from 'patch_embed.proj.weight'"):
        load_fourcastnet_checkpoint(tmp_path / "ckpt.tar", **{**TINY, "embed_dim": 32})
    with pytest.raises(ConfigError, match=r"depth=2 .*num_blocks=4"):
        load_fourcastnet_checkpoint(tmp_path / "ckpt.tar", **{**TINY, "depth": 3,
                                                                "num_blocks": 8})
    with pytest.raises(ConfigError, match=r"'pos_embed' holds 32 patches.*img_size"):
        load_fourcastnet_checkpoint(tmp_path / "ckpt.tar", **{**TINY, "img_size": (32, 32)})
    with pytest.raises(ConfigError, match="unknown FourCastNetAFNO options"):
        load_fourcastnet_checkpoint(tmp_path / "ckpt.tar", width=768)


def test_pickled_objects_need_trust(tmp_path: Path) -> None:
    net = _tiny()
    torch.save({"model_state": net.state_dict(), "params": argparse.Namespace(a=1)},
               tmp_path / "ckpt.tar")
    with pytest.raises(ConfigError, match="weights_only"):
        load_fourcastnet_checkpoint(tmp_path / "ckpt.tar", **TINY)
    loaded = load_fourcastnet_checkpoint(tmp_path / "ckpt.tar", trust_checkpoint=True, **TINY)
    assert torch.equal(loaded.head.weight, net.head.weight)


# --------------------------------------------------------------------------- data
def _fields(t: int = 5, n_lat: int = 17, n_lon: int = 32) -> np.ndarray:
    """(time, 21, lat, lon): channel c holds 100·c + time + a small smooth pattern."""
    rng = np.random.default_rng(0)
    base = 100.0 * np.arange(21)[None, :, None, None] + np.arange(t)[:, None, None, None]
    return (base + rng.normal(size=(t, 21, n_lat, n_lon))).astype(np.float32)


def _stats_files(tmp_path: Path) -> tuple[Path, Path]:
    means = (100.0 * np.arange(21) + 2.0).reshape(1, 21, 1, 1)
    stds = (1.0 + 0.1 * np.arange(21)).reshape(1, 21, 1, 1)
    np.save(tmp_path / "global_means.npy", means)
    np.save(tmp_path / "global_stds.npy", stds)
    return tmp_path / "global_means.npy", tmp_path / "global_stds.npy"


def _write_h5(path: Path, fields: np.ndarray) -> Path:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.create_dataset("fields", data=fields)
    return path


def test_hdf5_reader_crops_and_normalises_like_the_official_loader(tmp_path: Path) -> None:
    fields = _fields()
    h5 = _write_h5(tmp_path / "2018.h5", fields)
    stats = load_fourcastnet_stats(*_stats_files(tmp_path))
    assert stats.variables == FOURCASTNET_CHANNELS and stats.mean[3] == 302.0
    data = read_fourcastnet_hdf5(h5, [3, 1])
    assert data.values.shape == (2, 20, 16, 32)  # 17 rows → 16, channel 20 (of 21) left out
    np.testing.assert_array_equal(data.values, fields[[3, 1], :20, :16])
    assert data.lat[0] == 90.0 and data.lat[-1] == pytest.approx(90 - 15 * 180 / 16)
    w = era5_windows(h5, [0, 2], 2, stats)
    assert w.x0.shape == (2, 20, 16, 32) and w.targets.shape == (2, 2, 20, 16, 32)
    mean, std = stats.mean.reshape(20, 1, 1), stats.std.reshape(20, 1, 1)
    np.testing.assert_allclose(w.targets[1, 1].numpy(), (fields[4, :20, :16] - mean) / std,
                               rtol=1e-5, atol=1e-5)
    np.save(tmp_path / "time_means.npy", fields[:1])
    clim = load_climatology(tmp_path / "time_means.npy", stats)
    np.testing.assert_allclose(clim.numpy(), (fields[0, :20, :16] - mean) / std, atol=1e-5)
    assert hdf5_time_index("2018-01-02T06:00") == 5
    with pytest.raises(ConfigError, match="6-hourly"):
        hdf5_time_index("2018-01-02T03:00")
    with pytest.raises(DataError, match="holds 5 times"):
        read_fourcastnet_hdf5(h5, [5])


def test_netcdf_in_cds_layout_gives_the_fourcastnet_channel_order(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    fields = _fields(t=3)[:, :20]
    lat_desc = 90.0 - np.arange(17) * 180.0 / 16
    coords = {"valid_time": np.arange(3).astype("datetime64[h]").astype("datetime64[ns]"),
              "latitude": lat_desc[::-1], "longitude": np.arange(32) * 11.25}  # south → north
    flip = fields[:, :, ::-1]
    ch = {c: i for i, c in enumerate(FOURCASTNET_CHANNELS)}
    surface = {n: (("valid_time", "latitude", "longitude"), flip[:, ch[n]])
               for n in ("u10", "v10", "t2m", "sp", "msl", "tcwv")}
    xr.Dataset(surface, coords=coords).to_netcdf(tmp_path / "sfc.nc")
    levels = [1000, 50, 850, 500]  # deliberately not the FourCastNet order
    nan = np.full_like(flip[:, 0], np.nan)
    plev = {n: (("valid_time", "pressure_level", "latitude", "longitude"), np.stack(
        [flip[:, ch[f"{n}{lv}"]] if f"{n}{lv}" in ch else nan for lv in levels], axis=1))
        for n in "tuvzr"}
    xr.Dataset(plev, coords={**coords, "pressure_level": levels}).to_netcdf(tmp_path / "pl.nc")
    data = read_era5_netcdf([tmp_path / "sfc.nc", tmp_path / "pl.nc"], times=[2, 0])
    assert data.variables == list(FOURCASTNET_CHANNELS)
    np.testing.assert_array_equal(data.values, fields[[2, 0], :, :16])
    np.testing.assert_allclose(data.lat, lat_desc[:16])
    h5 = _write_h5(tmp_path / "same.h5", fields)
    np.testing.assert_array_equal(read_fourcastnet_hdf5(h5, [2, 0]).values, data.values)
    stats = load_fourcastnet_stats(*_stats_files(tmp_path))
    from_nc = era5_windows([tmp_path / "sfc.nc", tmp_path / "pl.nc"], [0], 2, stats)
    assert torch.equal(from_nc.targets, era5_windows(h5, [0], 2, stats).targets)
    with pytest.raises(DataError, match="no 300 hPa level"):
        read_era5_netcdf([tmp_path / "pl.nc"], variables=["z300"])


# --------------------------------------------------------------------------- audit
def _tiny20() -> FourCastNetAFNO:
    torch.manual_seed(1)
    return FourCastNetAFNO((16, 32), 4, 20, 20, embed_dim=16, depth=1, num_blocks=4).eval()


def test_physical_units_wrapper_is_the_normalised_model(tmp_path: Path) -> None:
    stats = load_fourcastnet_stats(*_stats_files(tmp_path))
    net = _tiny20()
    x = torch.randn(2, 20, 16, 32)
    phys = PhysicalUnits(net, stats)
    out = phys(stats.denormalize(x))
    torch.testing.assert_close(out, stats.denormalize(net(x)), rtol=1e-5, atol=1e-3)


def test_rollout_audit_fgsm_vs_random_end_to_end_and_chunks_pool(tmp_path: Path) -> None:
    h5 = _write_h5(tmp_path / "2018.h5", _fields(t=5))
    stats = load_fourcastnet_stats(*_stats_files(tmp_path))
    windows = era5_windows(h5, [0, 1, 2], 2, stats)
    net = _tiny20()
    whole = fourcastnet_audit(net, windows, stats, n_random=2, seed=3)
    rows = {(r.kind, r.variable, r.step): r for r in whole.records if r.metric == "lat_rmse"}
    assert len(rows) == 4 * 20 * 2  # clean, random, adversarial, ratio × variables × leads
    # clean rows are physical-unit RMSEs of the plain rollout
    pred = rollout(net, windows.x0, 2)
    rmse = lat_weighted_rmse(pred[:, 1], windows.targets[:, 1], latitude_weights(windows.lat))
    assert rows[("clean", "z500", 2)].value == pytest.approx(
        float(rmse[:, 14].mean()) * stats.std[14], rel=1e-5)
    # FGSM moves the one-step forecast further from the truth than random signs of its size
    adv = np.mean([rows[("adversarial", v, 1)].value / stats.std[i]
                   for i, v in enumerate(FOURCASTNET_CHANNELS)])
    rnd = np.mean([rows[("random", v, 1)].value / stats.std[i]
                   for i, v in enumerate(FOURCASTNET_CHANNELS)])
    assert adv > rnd
    chunked = fourcastnet_audit(net, windows, stats, n_random=2, seed=3, chunk_size=2)
    c_rows = {(r.kind, r.variable, r.step): r for r in chunked.records}
    for key in (("clean", "u10", 1), ("clean", "tcwv", 2), ("adversarial", "t850", 2)):
        assert c_rows[key].n == 3
        assert c_rows[key].value == pytest.approx(rows[key].value, rel=1e-5)
        assert c_rows[key].stderr == pytest.approx(rows[key].stderr, rel=1e-4)
    assert chunked.metadata["rollout"]["n_initial_conditions"] == 3


def test_example_script_runs_at_tiny_size(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("run_fourcastnet", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out"
    # the 20-panel figure costs ~8 s to draw on a shared core: rendered by hand, not here
    results = module.main(["--tiny", "--output", str(out), "--quiet", "--no-figures"])
    assert (out / "results.csv").is_file() and (out / "report.html").is_file()
    table = (out / "tables" / "fourcastnet_rmse_by_lead.csv").read_text().splitlines()
    assert len(table) == 1 + 20 * 3 and table[1].startswith("u10,6,m/s,")
    assert results.metadata["rollout"]["n_initial_conditions"] == 3
    assert {r.kind for r in results.records} == {"clean", "random", "adversarial", "ratio"}
