#!/usr/bin/python3
"""The loaders weather-ML users run today, for bench_io_scaling.py: one rank of an s x s model-parallel group
reading samples of a WeatherBench2-layout Zarr store over HTTP with xarray + zarr-python (through fsspec's
HTTP file system, as `xr.open_zarr("https://.../era5.zarr")` does), in a PyTorch DataLoader with worker
processes. A sleep after each batch stands in for the training step.

  whole  each rank reads whole samples: every channel, the whole grid (data parallelism, or "load, then
         scatter the tiles"; the group moves at the pace of one whole sample per rank's link)
  crop   the Jigsaw reference pattern: each rank opens the sample lazily and crops its tile with xarray
         (isel), so it fetches every chunk its tile touches; WeatherBench2 chunks hold a variable's whole
         grid (and all its levels), so that is every chunk of the variables in its channel group
  rotate load, then scatter, with the loading rotating over the group: rank r reads whole samples r,
         r + s^2, ... and would send the other ranks their tiles over the interconnect (not done here); each
         rank needs a sample every s^2 steps, so pass --step-s s^2 x the step

The tile of rank r on tiles 1 x s x s (LAT x LON x CH, as jigsaw-train's --mesh domain=s,tensor=s stores):
longitude block r // s, channel group r % s, channels in the store's order (pressure variables level by
level, then surface variables), blocks of ceil(n / s).

usage: /usr/bin/python3 bench/peer_io_torch.py whole|crop|rotate URL --mesh S --rank R --samples N
                        [--workers 2] [--step-s 0] [--times T]
Prints one JSON object: samples, seconds, samples_per_s, wait_seconds, wait_share, delivered_bytes, the
sample's shape and the variables it reads; and, as jigsaw-bench loader does, first_batch_seconds (the
pipeline filling, paid once a run), steady_samples_per_s and steady_wait_share (from the arrival of the
sample that fills the pipeline, workers x prefetch_factor, to the last's).
Needs Debian's python3-torch, python3-xarray, python3-zarr, python3-fsspec and python3-aiohttp.
"""
import argparse
import json
import time

import numpy as np
import torch
import xarray as xr

PRESSURE = ["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind", "specific_humidity"]
SURFACE = ["2m_temperature", "mean_sea_level_pressure", "10m_u_component_of_wind", "10m_v_component_of_wind"]


class Samples(torch.utils.data.Dataset):
    """Sample i: time i % T, as a float32 tensor [channels, lat, lon] (the rank's tile in crop mode)."""

    def __init__(self, url, mode, s, rank, n):
        self.url, self.mode, self.s, self.rank, self.n = url, mode, s, rank, n
        self.ds = None  # opened in each worker: an HTTP session does not survive fork

    def open(self):
        if self.ds is None:
            self.ds = xr.open_zarr(self.url, consolidated=True)
        return self.ds

    def channels(self):
        ds = self.open()
        chans = [(v, l) for v in PRESSURE for l in range(ds.sizes["level"])] + [(v, None) for v in SURFACE]
        if self.mode != "crop":
            return chans, slice(None)
        cs, ws = -(-len(chans) // self.s), -(-ds.sizes["longitude"] // self.s)
        j, k = divmod(self.rank, self.s)
        return chans[k * cs:(k + 1) * cs], slice(j * ws, (j + 1) * ws)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        ds = self.open()
        chans, lon = self.channels()
        if self.mode == "rotate":
            i = self.rank + i * self.s * self.s
        sample = ds.isel(time=i % ds.sizes["time"], longitude=lon)
        planes = []
        for v in dict.fromkeys(v for v, _ in chans):  # each variable once, in order
            levels = [l for w, l in chans if w == v]
            a = sample[v].isel(level=levels).values if levels[0] is not None else sample[v].values[None]
            planes.append(a)
        tensor = torch.from_numpy(np.concatenate(planes).astype(np.float32, copy=False))
        return tensor, ",".join(dict.fromkeys(v for v, _ in chans))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["whole", "crop", "rotate"])
    p.add_argument("url")
    p.add_argument("--mesh", type=int, default=1)
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--step-s", type=float, default=0.0)
    a = p.parse_args()
    data = Samples(a.url, a.mode, a.mesh, a.rank, a.samples)
    loader = torch.utils.data.DataLoader(data, batch_size=1, num_workers=a.workers,
                                         prefetch_factor=2)
    t0 = time.perf_counter()
    delivered, arrivals, waits = 0, [], []
    it = iter(loader)
    for i in range(a.samples):
        tw = time.perf_counter()
        batch, variables = next(it)
        arrivals.append(time.perf_counter() - t0)
        waits.append(time.perf_counter() - tw)
        delivered += batch.numel() * batch.element_size()
        time.sleep(a.step_s)
    seconds = time.perf_counter() - t0
    # The steady state as jigsaw-bench loader measures it: from the arrival of the sample that fills the
    # pipeline (workers x prefetch_factor samples are asked for at once) to the last's.
    depth = max(1, a.workers * 2)
    steady = arrivals[-1] - arrivals[depth - 1] if a.samples > depth else 0.0
    print(json.dumps({"samples": a.samples, "seconds": seconds, "samples_per_s": a.samples / seconds,
                      "wait_seconds": sum(waits), "wait_share": sum(waits) / seconds, "delivered_bytes": delivered,
                      "first_batch_seconds": arrivals[0],
                      "steady_samples_per_s": (a.samples - depth) / steady if steady > 0 else 0.0,
                      "steady_wait_share": sum(waits[depth:]) / steady if steady > 0 else 0.0,
                      "shape": list(batch.shape), "variables": variables[0].split(",")}))


if __name__ == "__main__":
    main()
