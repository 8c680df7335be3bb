"""Weather domain: gridded-field I/O and normalisation, a small AFNO forecaster, FourCastNet's
AFNO with official checkpoint loading (`fourcastnet`), ERA5/FourCastNet file readers
(`era5`), and shallow-water trajectories on the sphere.

Optional extra (``pip install 'scirobust[weather]'``): xarray with a netCDF backend (h5netcdf
or netCDF4), zarr, and torch-harmonics for the shallow-water data. Nothing here is imported by
``import scirobust``; the submodules import xarray / torch_harmonics only when used.
"""

from __future__ import annotations

__all__ = ["afno", "era5", "fourcastnet", "gridded", "shallow_water"]
