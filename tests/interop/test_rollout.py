"""jigsaw-rollout and jigsaw-score as a user runs them: a model trained on the synthetic travelling wave,
forecasts on 1 and 4 ranks from one checkpoint, the first lead against the PyTorch oracle's forward, a
killed rollout finished by a rerun, the forecast in xarray, and scores against an independent NumPy
computation of WeatherBench2's formulas."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conftest import BIN_DIR, debian_read, run_ranks
from wb2_climatology import hourly_climatology

HERE = Path(__file__).resolve().parent
# The jigsaw Python module of the release build (the sanitizer build makes none), for test data only.
RELEASE_PYTHONPATH = str(HERE.parents[1] / "build" / "python")
NAN_CHECKPOINT = """
import sys, numpy as np, jigsaw.checkpoint as jc
m = jc.manifest(sys.argv[1])
state = {name: jc.read(sys.argv[1], name) for name in m["tensors"]}
head = next(n for n in state if n.endswith("head_b") and "/" not in n)  # the weight, not its moments
state[head] = np.full_like(state[head], np.nan)
mesh = ",".join(f"{axis}={n}" for axis, n in m["mesh"])  # one rank: every tensor whole
jc.save(sys.argv[2], m["step"], mesh, state, metadata=m["metadata"])
"""
CONFIG = {"patch": [3, 4], "dim": 32, "depth": 2, "token_hidden": 32, "channel_hidden": 64, "lr": 3e-3,
          "min_lr": 3e-4, "warmup_steps": 10, "weight_decay": 0.01, "clip": 1.0, "seed": 3}
INIT = ["--init", "2020-01-05T06", "--init-end", "2020-01-05T18", "--lead", "1d"]


def run(tool, *args, ranks=1, check=True):
    return run_ranks([BIN_DIR / tool, *args], ranks, check=check)


@pytest.fixture(scope="module")
def trained(jigsaw, tmp_path_factory):
    d = tmp_path_factory.mktemp("rollout")
    jigsaw.training_store(d, 24, "2020-01-06T18", CONFIG)
    run("jigsaw-train", "--data", d / "tiles.zarr", "--config", d / "model.json", "--steps", "300", "--batch-size", "2",
        "--train-end", "2020-01-05T00", "--ckpt", d / "ck", "--blas-threads", "1")
    run("jigsaw-rollout", "--ckpt", d / "ck", "--data", d / "tiles.zarr", *INIT, "--out", d / "f1.zarr")
    return d


def test_one_rank_and_a_2x2_mesh_forecast_alike(trained, tmp_path):
    run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", "--mesh", "domain=2,tensor=2",
        *INIT, "--out", tmp_path / "f4.zarr", "--blas-threads", "1", ranks=4)
    a = xr.open_zarr(trained / "f1.zarr").forecast.values
    b = xr.open_zarr(tmp_path / "f4.zarr").forecast.values
    assert a.shape == (3, 5, 6, 33, 64) and np.isfinite(a).all()
    scale = np.abs(a).max(axis=(0, 1, 3, 4), keepdims=True)  # per channel: msl is ~1e5, t2m ~3e2
    assert (np.abs(a - b) / scale).max() < 1e-5
    # Each rank wrote its tiles; rank 0's checksum record covers them all, and every object verifies.
    for store in (trained / "f1.zarr", tmp_path / "f4.zarr"):
        files = [p for p in store.rglob("*") if p.is_file() and p.name != "jigsaw-checksums.json"]
        v = json.loads(run("jigsaw-store", "verify", store, "--json").stdout)
        assert v["ok"] and v["checksum_record"] and v["objects_checked_against_record"] == len(files), v


def test_forecasts_together_or_one_at_a_time_alike(trained, tmp_path):
    # The default takes the 3 initial times through the model together (176 tokens: up to 5 at once); one at
    # a time and in groups of 2 (2 + 1) give the same forecasts but for the order of the products' sums.
    a = xr.open_zarr(trained / "f1.zarr").forecast.values
    scale = np.abs(a).max(axis=(0, 1, 3, 4), keepdims=True)
    for batch in ("1", "2"):
        out = tmp_path / f"b{batch}.zarr"
        run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", *INIT, "--out", out,
            "--micro-batch", batch, "--blas-threads", "1")
        b = xr.open_zarr(out).forecast.values
        assert (np.abs(a - b) / scale).max() < 1e-5, batch
    p = run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", *INIT, "--out",
            tmp_path / "b0.zarr", "--batch", "-1", check=False)
    assert p.returncode != 0 and "--micro-batch: -1 is below 0" in p.stderr, p.stderr


def test_xarray_opens_the_forecast_as_it_is(trained):
    ds = xr.open_zarr(trained / "f1.zarr")
    assert list(ds.forecast.dims) == ["init_time", "lead_time", "channel", "latitude", "longitude"]
    assert ds.lead_time.dtype.kind == "m" and int(ds.lead_time[-1] / np.timedelta64(1, "h")) == 24
    assert str(ds.init_time.values[0])[:16] == "2020-01-05T06:00"
    assert ds.attrs["channels"][0] == "2m_temperature" and ds.attrs["jigsaw"]["complete"]


def test_v2_forecast_and_climatology_open_in_debians_zarr2_by_channel_name(jigsaw, trained, tmp_path):
    """--format zarr2 outputs read by Debian 12's zarr 2.13 / xarray, channels selected by name."""
    run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", *INIT, "--format", "zarr2",
        "--out", tmp_path / "f2.zarr")
    jigsaw.shard("climatology", trained / "tiles.zarr", "--format", "zarr2", "--out", tmp_path / "clim2.zarr")
    ref = xr.open_zarr(trained / "f1.zarr")
    got = debian_read(tmp_path / "f2.zarr", tmp_path / "f.npz", "geopotential_850", "forecast")
    assert list(got["channel"]) == list(ref.attrs["channels"])
    np.testing.assert_array_equal(got["_sel"], ref.forecast.sel(channel="geopotential_850").values)
    got = debian_read(tmp_path / "clim2.zarr", tmp_path / "c.npz", "2m_temperature", "climatology")
    clim = xr.open_zarr(tmp_path / "clim2.zarr", zarr_format=2)
    np.testing.assert_array_equal(got["_sel"], clim.climatology.sel(channel="2m_temperature").values)


def test_first_lead_is_the_pytorch_oracles_forward(jigsaw, trained, tmp_path):
    jigsaw.ckpt("export", trained / "ck", "--out", tmp_path / "model.safetensors")
    url = trained / "tiles.zarr"
    info = json.loads(jigsaw.shard("info", url, "--json").stdout)
    times = jigsaw.get(url, "time", tmp_path)
    t0 = int(np.searchsorted(times, np.datetime64("2020-01-05T06:00", "s").astype(np.int64)))  # the first init
    np.savez(tmp_path / "sample.npz", data=jigsaw.get(url, "data", tmp_path, f"{t0}:{t0 + 2},:,:,:"),
             mean=jigsaw.get(url, "mean", tmp_path), std=jigsaw.get(url, "std", tmp_path),
             latitude=jigsaw.get(url, "latitude", tmp_path), channels=np.array(info["plan"]["channels"]),
             tiles=np.array(info["plan"]["tiles"]))
    p = subprocess.run(["/usr/bin/python3", str(HERE.parent / "train" / "oracle_loss.py"), str(tmp_path / "model.safetensors"),
                        str(tmp_path / "sample.npz"), str(trained / "model.json"), "--forecast", str(tmp_path / "pred.npy")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    ours = xr.open_zarr(trained / "f1.zarr").forecast.values[0, 1]
    torch = np.load(tmp_path / "pred.npy")
    scale = np.abs(torch).max(axis=(1, 2), keepdims=True)
    assert (np.abs(ours - torch) / scale).max() < 1e-5


def test_a_rerun_finishes_a_killed_rollout(trained, tmp_path):
    out = tmp_path / "f.zarr"
    shutil.copytree(trained / "f1.zarr", out)
    # What a kill during the last forecast leaves: some of its chunks, and the store not marked complete.
    chunks = sorted((out / "forecast" / "c" / "2").rglob("*"))
    removed = [c for c in chunks if c.is_file() and c.parts[-4] in ("3", "4")]
    assert removed
    for c in removed:
        c.unlink()
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"]["jigsaw"]["complete"] = False
    (out / "zarr.json").write_text(json.dumps(meta))
    p = run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", *INIT, "--out", out, "--json")
    report = json.loads(p.stdout)
    assert report["written"] == 1 and report["skipped"] == 2
    assert 0 < report["model_seconds"] < report["seconds"]  # the model's steps, one forecast's: part of the run
    assert 10 << 20 < report["peak_rss_bytes_rank0"] < 2 << 30  # bounded by the batch, not the lead or inits
    p = run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", *INIT, "--out", out)
    m = re.search(r"3 forecasts of \d+ steps .*: 0 written, 3 already there; [0-9.e+]+ forecast steps/s, "
                  r"peak memory (\d+) MiB \(rank 0\)", p.stdout)
    assert m and 10 < int(m.group(1)) < 2048, p.stdout
    # The forecasts there were kept bit for bit; the redone one went through the model alone (not with the
    # others), which changes only the order of the products' sums.
    got, want = xr.open_zarr(out).forecast.values, xr.open_zarr(trained / "f1.zarr").forecast.values
    np.testing.assert_array_equal(got[:2], want[:2])
    scale = np.abs(want).max(axis=(0, 1, 3, 4), keepdims=True)
    assert (np.abs(got - want) / scale).max() < 1e-5
    # Another forecast into the same store is refused.
    p = run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", "--init", "2020-01-05T06",
            "--lead", "12h", "--out", out, check=False)
    assert p.returncode != 0 and "holds another forecast" in p.stderr


def wb2_scores(forecast, truth_url, jigsaw, tmp_path, lats=(-90, 90), lons=None):
    """WeatherBench2's RMSE and bias, written out with NumPy from the stores' arrays; over a region as WB2's
    SliceRegion selects it (latitudes and longitudes within the bounds, inclusive; a longitude range whose
    start exceeds its end wraps), the latitude weights of the whole grid restricted to it."""
    f = xr.open_zarr(forecast)
    lat = jigsaw.get(truth_url, "latitude", tmp_path)
    lon = jigsaw.get(truth_url, "longitude", tmp_path)
    times = jigsaw.get(truth_url, "time", tmp_path)
    data = jigsaw.get(truth_url, "data", tmp_path)
    edges = np.concatenate([[90.0], (lat[1:] + lat[:-1]) / 2, [-90.0]])
    area = np.abs(np.sin(np.deg2rad(edges[:-1])) - np.sin(np.deg2rad(edges[1:])))
    rows = (lat >= lats[0]) & (lat <= lats[1])
    if lons is None:
        cols = np.ones(lon.shape, bool)
    elif lons[0] <= lons[1]:
        cols = (lon >= lons[0]) & (lon <= lons[1])
    else:
        cols = (lon >= lons[0]) | (lon <= lons[1])
    w = np.broadcast_to((area / area.mean())[rows][:, None], (rows.sum(), cols.sum()))
    mean = lambda x: np.average(x[rows][:, cols], weights=w)
    inits = f.init_time.values.astype("datetime64[s]").astype(np.int64)
    leads = (f.lead_time.values / np.timedelta64(1, "s")).astype(np.int64)
    out = {}
    for c, name in enumerate(f.attrs["channels"]):
        rmse, bias, prmse = [], [], []
        for l, lead in enumerate(leads):
            mse, err, pmse = [], [], []
            for i, t in enumerate(inits):
                v, t0 = np.searchsorted(times, t + lead), np.searchsorted(times, t)
                truth = data[v, c].astype(np.float64)
                e = f.forecast.values[i, l, c].astype(np.float64) - truth
                mse.append(mean(e ** 2))
                err.append(mean(e))
                pmse.append(mean((data[t0, c] - truth) ** 2))
            rmse.append(np.sqrt(np.mean(mse)))
            bias.append(np.mean(err))
            prmse.append(np.sqrt(np.mean(pmse)))
        out[name] = (np.array(rmse), np.array(bias), np.array(prmse))
    return out


def test_scores_are_weatherbench2s_and_the_model_beats_persistence(jigsaw, trained, tmp_path):
    p = run("jigsaw-score", trained / "f1.zarr", "--truth", trained / "tiles.zarr", "--json-out", tmp_path / "s.json",
            "--csv", tmp_path / "s.csv", "--region", "box=-40:10,300:60")
    assert "latitude-weighted RMSE" in p.stdout
    got = json.loads((tmp_path / "s.json").read_text())
    want = wb2_scores(trained / "f1.zarr", trained / "tiles.zarr", jigsaw, tmp_path)
    assert set(got["channels"]) == set(want) and got["skipped_without_truth"] == 0
    for name, (rmse, bias, prmse) in want.items():
        g = got["channels"][name]
        np.testing.assert_allclose(g["rmse"], rmse, rtol=1e-6, atol=1e-9 * np.abs(rmse).max())
        np.testing.assert_allclose(g["bias"], bias, rtol=1e-6, atol=1e-6 * np.abs(rmse).max())
        np.testing.assert_allclose(g["persistence_rmse"], prmse, rtol=1e-6)
        assert g["rmse"][0] == 0 and g["persistence_rmse"][0] == 0  # lead 0 is the initial state
        assert all(m < p for m, p in zip(g["rmse"][1:], g["persistence_rmse"][1:])), (name, g)
    # Every region: WB2's five and the box given (its longitudes wrapping through 0), each against NumPy.
    regions = got["forecasts"][0]["regions"]
    assert got["regions"] == ["global", "tropics", "extra-tropics", "northern-hemisphere", "southern-hemisphere", "box"]
    assert set(regions) == set(got["regions"])
    for region, lats, lons in [("tropics", (-20, 20), None), ("northern-hemisphere", (20, 90), None),
                               ("southern-hemisphere", (-90, -20), None), ("box", (-40, 10), (300, 60))]:
        for name, (rmse, bias, prmse) in wb2_scores(trained / "f1.zarr", trained / "tiles.zarr", jigsaw, tmp_path,
                                                    lats, lons).items():
            g = regions[region]["channels"][name]
            np.testing.assert_allclose(g["rmse"], rmse, rtol=1e-6, atol=1e-9 * np.abs(rmse).max(), err_msg=region)
            np.testing.assert_allclose(g["bias"], bias, rtol=1e-6, atol=1e-6 * np.abs(rmse).max(), err_msg=region)
            np.testing.assert_allclose(g["persistence_rmse"], prmse, rtol=1e-6, err_msg=region)
        assert f"2m_temperature, {region}: latitude-weighted RMSE" in p.stdout
    csv = (tmp_path / "s.csv").read_text().splitlines()
    assert csv[0].startswith("forecast,region,channel,lead_hours") and len(csv) == 1 + 6 * 6 * 5
    # --json prints the same scores on stdout.
    p = run("jigsaw-score", trained / "f1.zarr", "--truth", trained / "tiles.zarr", "--json", "--regions", "tropics")
    j = json.loads(p.stdout)
    assert j["regions"] == ["global", "tropics"] and set(j["forecasts"][0]["regions"]) == {"global", "tropics"}
    assert j["forecasts"][0]["regions"]["tropics"] == regions["tropics"]


def test_forecasts_side_by_side_and_channels_by_short_name(trained, tmp_path):
    """Two forecasts (here: one checkpoint's, under two labels, and one from another initial state set) in one
    table, JSON and plot; channels asked as <short name><level>; an unknown one refused with the list."""
    other = tmp_path / "f2.zarr"
    run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", *INIT, "--out", other,
        "--batch", "1")  # the old name still works
    p = run("jigsaw-score", trained / "f1.zarr", other, "--truth", trained / "tiles.zarr", "--label", "together",
            "--label", "one-by-one", "--channels", "z500,t850,t2m", "--regions", "global", "--json-out",
            tmp_path / "s.json", "--plot", tmp_path / "s.png")
    j = json.loads((tmp_path / "s.json").read_text())
    assert [f["label"] for f in j["forecasts"]] == ["together", "one-by-one"]
    assert [f["checkpoint_step"] for f in j["forecasts"]] == [300, 300]
    assert set(j["channels"]) == {"geopotential_500", "temperature_850", "2m_temperature"}
    a, b = (f["regions"]["global"]["channels"]["temperature_850"]["rmse"] for f in j["forecasts"])
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert "latitude-weighted RMSE (together / one-by-one / persistence)" in p.stdout, p.stdout
    png = (tmp_path / "s.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (360 * 3, 320 + 80), (width, height)  # a column per channel, one row (no climatology)
    assert j["channel_names"] == ["geopotential_500", "temperature_850", "2m_temperature"]  # as asked
    p = run("jigsaw-score", trained / "f1.zarr", "--truth", trained / "tiles.zarr", "--channels", "z300", check=False)
    assert p.returncode == 2 and "channel z300 is not in the forecast" in p.stderr and "geopotential_500" in p.stderr
    p = run("jigsaw-score", trained / "f1.zarr", other, "--truth", trained / "tiles.zarr", "--label", "x", check=False)
    assert p.returncode == 2 and "1 --label for 2 forecasts" in p.stderr
    p = run("jigsaw-score", trained / "f1.zarr", "--truth", trained / "tiles.zarr", "--region", "x=95:100", check=False)
    assert p.returncode == 2 and "leave -90..90" in p.stderr


def test_refusals_name_the_problem(trained, tmp_path):
    p = run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", "--init", "2020-01-05T06",
            "--lead", "5h", "--out", tmp_path / "x.zarr", check=False)
    assert p.returncode == 2 and "not a multiple of the store's step (6h)" in p.stderr
    p = run("jigsaw-rollout", "--ckpt", trained / "ck", "--data", trained / "tiles.zarr", "--init", "2021-01-01T00",
            "--lead", "6h", "--out", tmp_path / "x.zarr", check=False)
    assert p.returncode == 2 and "no state at 2021-01-01T00:00:00" in p.stderr
    p = run("jigsaw-score", trained / "f1.zarr", "--truth", trained / "tiles.zarr", "--channels", "q700", check=False)
    assert p.returncode == 2 and "channel q700 is not in the forecast" in p.stderr and "temperature_850" in p.stderr


def test_score_reads_the_forecast_strictly(trained, tmp_path):
    """A chunk gone, a forecast not finished, another grid: refused, naming it. A NaN forecast (from NaN
    weights) is scored NaN and said so, never taken for missing truth."""
    def score(forecast, truth=trained / "tiles.zarr"):
        return run("jigsaw-score", forecast, "--truth", truth, "--json-out", tmp_path / "s.json", check=False)

    gone = tmp_path / "gone.zarr"
    shutil.copytree(trained / "f1.zarr", gone)
    chunk = sorted(p for p in (gone / "forecast").rglob("*") if p.is_file() and p.name not in ("zarr.json", ".zarray"))[3]
    chunk.unlink()
    p = score(gone)
    assert p.returncode != 0 and chunk.name in p.stderr and "missing" in p.stderr, p.stderr

    unfinished = tmp_path / "unfinished.zarr"
    shutil.copytree(trained / "f1.zarr", unfinished)
    meta = json.loads((unfinished / "zarr.json").read_text())
    meta["attributes"]["jigsaw"]["complete"] = False
    (unfinished / "zarr.json").write_text(json.dumps(meta))
    p = score(unfinished)
    assert p.returncode != 0 and "not complete" in p.stderr, p.stderr

    no_record = tmp_path / "no_record.zarr"
    shutil.copytree(trained / "f1.zarr", no_record)
    (no_record / "jigsaw-checksums.json").unlink()
    p = score(no_record)
    assert p.returncode != 0 and "checksum record" in p.stderr, p.stderr

    # NaN weights: a copy of the checkpoint with its head's bias NaN (written by the jigsaw Python module of the
    # release build, whatever build is under test) gives a NaN forecast.
    subprocess.run(["/usr/bin/python3", "-c", NAN_CHECKPOINT, str(trained / "ck"), str(tmp_path / "nan_ck")], check=True,
                   env={**os.environ, "PYTHONPATH": RELEASE_PYTHONPATH})
    run("jigsaw-rollout", "--ckpt", tmp_path / "nan_ck", "--data", trained / "tiles.zarr", *INIT, "--out",
        tmp_path / "nan.zarr")
    p = score(tmp_path / "nan.zarr")
    assert p.returncode == 0, p.stderr
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["skipped_without_truth"] == 0
    for name, c in scores["channels"].items():
        assert c["rmse"][0] == 0 and c["rmse"][1] is None and c["forecast_nan_count"][1:] == [3] * 4, (name, c)
    assert "the forecast holds NaN at 12 (initial time, lead) pairs" in p.stdout, p.stdout


def test_climatology_and_acc_are_weatherbench2s(jigsaw, trained, tmp_path):
    """jigsaw-shard climatology against WeatherBench2's definition in NumPy (wb2_climatology.py; here 6 days
    of one year: each hour's axis is those 6 days, which the 61-day window wraps round), and jigsaw-score's
    ACC and climatology RMSE against NumPy."""
    url = trained / "tiles.zarr"
    jigsaw.shard("climatology", url, "--out", tmp_path / "clim.zarr")
    clim = xr.open_zarr(tmp_path / "clim.zarr").climatology
    data = jigsaw.get(url, "data", tmp_path).astype(np.float64)
    times = jigsaw.get(url, "time", tmp_path).astype("datetime64[s]")
    doy = np.array([t.astype("datetime64[D]").astype(object).timetuple().tm_yday for t in times])
    hour = (times - times.astype("datetime64[D]")).astype(np.int64) // 3600
    for (d, h), want in hourly_climatology(times, data).items():
        np.testing.assert_allclose(clim.sel(dayofyear=d, hour=h).values, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    assert np.isnan(clim.sel(dayofyear=200, hour=0).values).all()  # no sample on that day

    p = run("jigsaw-score", trained / "f1.zarr", "--truth", url, "--climatology", tmp_path / "clim.zarr",
            "--json-out", tmp_path / "s.json", "--plot", tmp_path / "s.png", "--regions", "global,tropics")
    scores = json.loads((tmp_path / "s.json").read_text())
    got = scores["channels"]
    # The table and the plot: every channel, RMSE above ACC for each region, 360 x 320 pixels a panel.
    assert all(f"{n}, {r}: latitude-weighted RMSE" in p.stdout for n in got for r in ("global", "tropics"))
    png = (tmp_path / "s.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (360 * len(got), 640 * 2 + 80), (width, height)
    f = xr.open_zarr(trained / "f1.zarr")
    lat = jigsaw.get(url, "latitude", tmp_path)
    edges = np.concatenate([[90.0], (lat[1:] + lat[:-1]) / 2, [-90.0]])
    area = np.abs(np.sin(np.deg2rad(edges[:-1])) - np.sin(np.deg2rad(edges[1:])))
    w = (area / area.mean())[:, None]
    tsec = times.astype(np.int64)
    inits = f.init_time.values.astype("datetime64[s]").astype(np.int64)
    leads = (f.lead_time.values / np.timedelta64(1, "s")).astype(np.int64)
    for c, name in enumerate(f.attrs["channels"]):
        acc_want, crmse_want = [], []
        for l, lead in enumerate(leads):
            accs, cmse = [], []
            for i, t in enumerate(inits):
                v = int(np.searchsorted(tsec, t + lead))
                c_plane = clim.isel(dayofyear=doy[v] - 1).sel(hour=hour[v]).values[c].astype(np.float64)
                fa = f.forecast.values[i, l, c] - c_plane
                ta = data[v, c] - c_plane
                accs.append((w * fa * ta).sum() / np.sqrt((w * fa ** 2).sum() * (w * ta ** 2).sum()))
                cmse.append((w * (c_plane - data[v, c]) ** 2).mean())
            acc_want.append(np.mean(accs))
            crmse_want.append(np.sqrt(np.mean(cmse)))
        np.testing.assert_allclose(got[name]["acc"], acc_want, rtol=1e-5)
        np.testing.assert_allclose(got[name]["climatology_rmse"], crmse_want, rtol=1e-5)
        assert abs(got[name]["acc"][0] - 1) < 1e-6  # lead 0: the truth against itself
        assert all(a > p for a, p in zip(got[name]["acc"][1:], got[name]["persistence_acc"][1:])), (name, got[name])


def test_a_weatherbench2_layout_climatology_scores_as_ours(jigsaw, trained, tmp_path):
    """WB2's climatologies hold a variable per quantity, levels as a dimension, latitude south to north and,
    at coarse resolution, (longitude, latitude) order: the same numbers laid out so give the same scores."""
    url = trained / "tiles.zarr"
    jigsaw.shard("climatology", url, "--out", tmp_path / "clim.zarr")
    ours = xr.open_zarr(tmp_path / "clim.zarr")
    names = list(ours.attrs["channels"])
    wb2 = xr.Dataset(coords={"hour": ours.hour.values, "dayofyear": ours.dayofyear.values, "level": [500, 850],
                             "latitude": ours.latitude.values[::-1], "longitude": ours.longitude.values})
    clim = ours.climatology.values  # [doy, hour, channel, lat, lon]
    surface = {"2m_temperature", "mean_sea_level_pressure"}
    for var in ["2m_temperature", "mean_sea_level_pressure", "geopotential", "temperature"]:
        if var in surface:
            v = clim[:, :, names.index(var), ::-1, :]                       # doy, hour, lat (S->N), lon
            wb2[var] = (("hour", "dayofyear", "longitude", "latitude"), v.transpose(1, 0, 3, 2).astype(np.float64))
        else:
            v = np.stack([clim[:, :, names.index(f"{var}_{lv}"), ::-1, :] for lv in (500, 850)], axis=2)
            wb2[var] = (("hour", "dayofyear", "level", "longitude", "latitude"), v.transpose(1, 0, 2, 4, 3))
    wb2.to_zarr(tmp_path / "wb2.zarr", zarr_format=2, consolidated=True)
    for name, c in (("ours", tmp_path / "clim.zarr"), ("wb2", tmp_path / "wb2.zarr")):
        run("jigsaw-score", trained / "f1.zarr", "--truth", url, "--climatology", c, "--json-out", tmp_path / f"{name}.json")
    a = json.loads((tmp_path / "ours.json").read_text())["channels"]
    b = json.loads((tmp_path / "wb2.json").read_text())["channels"]
    for ch in a:
        np.testing.assert_allclose(a[ch]["acc"], b[ch]["acc"], rtol=1e-6)
        np.testing.assert_allclose(a[ch]["climatology_rmse"], b[ch]["climatology_rmse"], rtol=1e-6)
    p = run("jigsaw-score", trained / "f1.zarr", "--truth", url, "--climatology", tmp_path / "wb2.zarr", "--channels",
            "q700", check=False)
    assert p.returncode == 2
