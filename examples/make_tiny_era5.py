"""Writes a tiny ERA5-like Zarr v2 store in the WeatherBench2 layout with xarray (for the quickstart).

usage: .venv/bin/python examples/make_tiny_era5.py OUT.zarr
"""
import sys

import numpy as np
import xarray as xr


def main(out):
    times = np.arange("2020-01-01T00", "2020-01-03T00", np.timedelta64(6, "h"), dtype="datetime64[ns]")
    levels = np.array([50, 250, 500, 850, 1000], dtype="int64")
    lat = np.linspace(90, -90, 33)
    lon = np.arange(0, 360, 5.625)
    t = np.arange(len(times))[:, None, None, None]
    la = np.deg2rad(lat)[None, None, :, None]
    lo = np.deg2rad(lon)[None, None, None, :]
    lev = levels[None, :, None, None]
    temperature = (200 + 60 * np.cos(la) ** 2 + 0.05 * lev + 3 * np.sin(lo + 0.3 * t)).astype("float32")
    geopotential = (9.81 * (16000 - 4700 * np.log(lev / 10.0)) * (1 + 0.01 * np.cos(la) * np.sin(lo - 0.2 * t)))
    t2m = temperature[:, -1] + 2.0
    ds = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), temperature, {"units": "K"}),
         "geopotential": (("time", "level", "latitude", "longitude"), geopotential.astype("float32"),
                          {"units": "m2 s-2"}),
         "2m_temperature": (("time", "latitude", "longitude"), t2m.astype("float32"), {"units": "K"})},
        coords={"time": times, "level": levels, "latitude": lat, "longitude": lon},
        attrs={"title": "tiny ERA5-like sample (synthetic)"})
    enc = {v: {"chunks": (1,) + ds[v].shape[1:]} for v in ds.data_vars}
    ds.to_zarr(out, zarr_format=2, consolidated=True, encoding=enc, mode="w")
    print(f"wrote {out}: {dict(ds.sizes)}")


if __name__ == "__main__":
    main(sys.argv[1])
