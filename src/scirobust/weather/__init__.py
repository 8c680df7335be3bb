"""Weather domain: gridded-field I/O and normalisation, a small AFNO forecaster, and
shallow-water trajectories on the sphere.

Optional extra (``pip install 'scirobust[weather]'``): xarray with a netCDF backend (h5netcdf
or netCDF4), zarr, and torch-harmonics for the shallow-water data. Nothing here is imported by
``import scirobust``; the submodules import xarray / torch_harmonics only when used.
"""

from __future__ import annotations

__all__ = ["afno", "gridded", "shallow_water"]
