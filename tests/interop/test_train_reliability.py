"""jigsaw-train never loses work or goes silently wrong (issue 28, training and checkpoints): a mesh with its
axes in the other order, validation windows and flags checked before any work, damaged or missing LATEST,
a fresh run into a root holding a finished run, two trainers on one root, a stop right after a resume,
non-finite losses, and a resume with another batch size."""
import json
import os
import signal
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import BIN_DIR, run_ranks

CONFIG = {"patch": [3, 4], "dim": 16, "depth": 1, "token_hidden": 16, "channel_hidden": 32, "lr": 3e-3,
          "min_lr": 3e-4, "warmup_steps": 2, "weight_decay": 0.01, "clip": 1.0, "seed": 3}


@pytest.fixture(scope="module")
def store(jigsaw, tmp_path_factory):
    d = tmp_path_factory.mktemp("reliability")
    return jigsaw.training_store(d, 12, "2020-01-03T18", CONFIG)


def train(store, tmp, *args, ranks=1, mesh="domain=1,tensor=1", check=True, steps=6, data=None):
    log = tmp / f"log-{os.urandom(4).hex()}.jsonl"
    cmd = [BIN_DIR / "jigsaw-train", "--data", data or store / "tiles.zarr", "--mesh", mesh, "--config",
           store / "model.json", "--log", log, "--blas-threads", "1", "--steps", str(steps), *args]
    p = run_ranks(cmd, ranks, check=check)
    recs = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    return p, {r["step"]: r["loss"] for r in recs if "loss" in r}


def test_a_mesh_with_its_axes_swapped_is_the_same_mesh(store, tmp_path):
    _, whole = train(store, tmp_path, ranks=4, mesh="domain=2,tensor=2")
    ck = tmp_path / "ck"
    train(store, tmp_path, "--stop-at", "3", "--ckpt", ck, ranks=4, mesh="tensor=2,domain=2")
    _, rest = train(store, tmp_path, "--resume", "--ckpt", ck)  # one rank: a transposed save would jump the loss
    assert sorted(rest) == [3, 4, 5]
    for s in rest:
        assert abs(rest[s] - whole[s]) <= 1e-4 * whole[s], (s, rest[s], whole[s])


@pytest.mark.parametrize("args,message", [
    (["--val-start", "2030-01-01", "--val-end", "2030-01-02"], "validation window"),
    (["--val-start", "garbage", "--val-end", "2020-01-02"], "--val-start"),
    (["--val-start", "2020-01-03", "--val-end", "2020-01-02"], "--val-end 2020-01-02 lies before --val-start"),
    (["--val-start", "2020-01-03"], "give both --val-start and --val-end"),
    (["--resume"], "--resume needs --ckpt"),
    (["--stop-at", "-1"], "--stop-at"),
    (["--ckpt-every", "-1"], "--ckpt-every"),
    (["--blas-threads", "-1"], "--blas-threads"),
    (["--prefetch", "9223372036854775807"], "prefetch 9223372036854775807 is not in [1, 1024]"),
])
def test_bad_flags_are_refused_before_any_step(store, tmp_path, args, message):
    t0 = time.monotonic()
    extra = [] if "--resume" in args else ["--ckpt", tmp_path / "x"]
    p, losses = train(store, tmp_path, *args, *extra, steps=1000, check=False)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not losses and time.monotonic() - t0 < 30
    assert not list(tmp_path.glob("x/step-*"))


def test_a_damaged_or_missing_latest_never_starts_over(store, tmp_path):
    ck = tmp_path / "ck"
    train(store, tmp_path, "--ckpt", ck, "--ckpt-every", "2", steps=4)  # step-2, step-4
    before = sorted(p.name for p in ck.glob("step-*"))
    (ck / "LATEST").write_text("foo/bar\n")
    p, losses = train(store, tmp_path, "--resume", "--ckpt", ck, steps=6, check=False)
    assert p.returncode != 0 and "LATEST is damaged" in p.stderr and not losses, p.stderr
    (ck / "LATEST").write_text("step-00000009\n")
    p, _ = train(store, tmp_path, "--resume", "--ckpt", ck, steps=6, check=False)
    assert p.returncode != 0 and "LATEST names step-00000009, which does not load" in p.stderr, p.stderr
    (ck / "LATEST").unlink()
    # Without LATEST: the newest step that verifies (step-4 is damaged here, so step-2).
    data = sorted((ck / "step-00000004").glob("rank-*.bin"))[0]
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    p, losses = train(store, tmp_path, "--resume", "--ckpt", ck, steps=6)
    assert "resuming from step-00000002, the newest step that verifies" in p.stdout, p.stdout
    assert sorted(losses) == [2, 3, 4, 5]
    assert set(before) <= {p.name for p in ck.glob("step-*")}


def test_a_fresh_run_never_takes_a_finished_runs_steps_for_unfinished_ones(store, tmp_path):
    ck = tmp_path / "ck"
    train(store, tmp_path, "--ckpt", ck, "--ckpt-every", "2", steps=4)
    before = {p.name: p.stat().st_mtime_ns for p in ck.glob("step-*/manifest.json") for p in [p.parent]}
    p, losses = train(store, tmp_path, "--ckpt", ck, steps=6, check=False)
    assert p.returncode != 0 and "holds committed steps (step-00000002, step-00000004)" in p.stderr, p.stderr
    assert "--resume" in p.stderr and not losses
    assert {p.name: p.stat().st_mtime_ns for p in ck.glob("step-*")} == before


def test_a_second_trainer_on_one_root_is_refused(store, tmp_path):
    ck = tmp_path / "ck"
    log = tmp_path / "first.jsonl"
    first = subprocess.Popen([str(BIN_DIR / "jigsaw-train"), "--data", str(store / "tiles.zarr"), "--config",
                              str(store / "model.json"), "--steps", "100000", "--ckpt", str(ck), "--log", str(log),
                              "--blas-threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (not log.exists() or not log.read_text()):
            time.sleep(0.05)
        p, losses = train(store, tmp_path, "--resume", "--ckpt", ck, steps=3, check=False)
        assert p.returncode != 0 and "another jigsaw-train is writing" in p.stderr, p.stderr
        assert not losses
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_a_stop_right_after_a_resume_exits_0(store, tmp_path):
    ck = tmp_path / "ck"
    # A stop on a periodic save's step saves it once (a second save of one step raced its own commit).
    p, _ = train(store, tmp_path, "--ckpt", ck, "--ckpt-every", "3", "--stop-at", "3", steps=6)
    assert "stopped at step 3" in p.stdout
    p, losses = train(store, tmp_path, "--resume", "--ckpt", ck, "--stop-at", "3", steps=6)
    assert "stopped at step 3" in p.stdout and not losses
    assert (ck / "LATEST").read_text().strip() == "step-00000003"


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_latest(store, tmp_path):
    ck = tmp_path / "ck"
    train(store, tmp_path, "--ckpt", ck, "--ckpt-every", "2", steps=4)
    hot = tmp_path / "hot.json"
    hot.write_text(json.dumps({**CONFIG, "lr": 1e30, "clip": 0}))  # finite, but the weights overflow at once
    p, _ = run_ranks([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--config", hot, "--steps", "8",
                      "--resume", "--ckpt", ck, "--ckpt-every", "1", "--blas-threads", "1"], 1, check=False), None
    assert p.returncode == 1 and "the loss is" in p.stderr and "times 2020-01-0" in p.stderr, p.stderr
    assert "LATEST keeps the last good step" in p.stderr
    latest = (ck / "LATEST").read_text().strip()
    # The save of the weights that gave the non-finite loss (step 5's, saved after step 4) is not committed.
    assert latest == "step-00000004", (latest, p.stderr)
    from safetensors.numpy import load_file
    subprocess.run([str(BIN_DIR / "jigsaw-ckpt"), "export", str(ck), "--out", str(tmp_path / "m.safetensors")],
                   check=True, capture_output=True)
    assert all(np.isfinite(v).all() for v in load_file(tmp_path / "m.safetensors").values()), latest


def test_an_infinite_setting_is_refused_naming_the_key(store, tmp_path):
    for key, value in (("lr", 1e39), ("beta1", 0.99999999), ("weight_decay", -1)):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**CONFIG, key: value}))
        p = run_ranks([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--config", bad, "--steps", "2"], 1,
                      check=False)
        assert p.returncode == 2 and key in p.stderr and '"lr":' not in p.stderr, (key, p.stderr)
    bad.write_text(json.dumps({**CONFIG, "channel_weights": {"2m_temperature": 1e39}}))
    p = run_ranks([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--config", bad, "--steps", "2"], 1,
                  check=False)
    assert p.returncode == 2 and "2m_temperature" in p.stderr, p.stderr
    for key, value in (("dim", 9223372036854775807), ("token_mix_ratio", 1e30)):
        bad.write_text(json.dumps({**{k: v for k, v in CONFIG.items() if k != "token_hidden"}, key: value,
                                   **({"token_hidden": 16} if key == "dim" else {})}))
        p = run_ranks([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--config", bad, "--steps", "2"], 1,
                      check=False)
        assert p.returncode == 2 and key in p.stderr, (key, p.returncode, p.stderr)


def test_a_resume_with_another_batch_size_continues_at_the_same_sample(store, tmp_path):
    ck = tmp_path / "ck"
    train(store, tmp_path, "--ckpt", ck, "--batch-size", "2", "--stop-at", "2", steps=6)  # 4 samples read
    p, losses = train(store, tmp_path, "--resume", "--ckpt", ck, "--batch-size", "4", steps=3)
    assert sorted(losses) == [2], p.stdout + p.stderr
    ck2 = tmp_path / "ck2"
    train(store, tmp_path, "--ckpt", ck2, "--batch-size", "2", "--stop-at", "1", steps=6)  # 2 samples read
    p, _ = train(store, tmp_path, "--resume", "--ckpt", ck2, "--batch-size", "4", steps=3, check=False)
    assert p.returncode == 2 and "stopped after sample 2 of its epoch (batches of 2 on 1 replicas)" in p.stderr, p.stderr


def test_a_rollout_never_writes_over_what_it_did_not_make(jigsaw, store, tmp_path):
    ck = tmp_path / "ck"
    train(store, tmp_path, "--ckpt", ck, steps=2)
    data = store / "tiles.zarr"
    args = ["--init", "2020-01-02T00", "--lead", "12h", "--blas-threads", "1"]
    p = run_ranks([BIN_DIR / "jigsaw-rollout", "--ckpt", ck, "--data", data, *args, "--out", data], 1, check=False)
    assert p.returncode != 0 and "holds something that is not this forecast" in p.stderr, p.stderr
    assert jigsaw.shard("verify", data).returncode == 0
    # The same checkpoint spelled relative and absolute is the same forecast; another data store is not.
    out = tmp_path / "f.zarr"
    run_ranks([BIN_DIR / "jigsaw-rollout", "--ckpt", ck, "--data", data, *args, "--out", out], 1)
    rel = os.path.relpath(ck, os.getcwd())
    p = run_ranks([BIN_DIR / "jigsaw-rollout", "--ckpt", rel, "--data", data, *args, "--out", out], 1)
    assert "0 written, 1 already there" in p.stdout, p.stdout
    jigsaw.shard("run", "--source", store / "src.zarr", "--vars", "t2m,msl,z,t", "--levels", "500,850", "--start",
                 "2020-01-01T00", "--end", "2020-01-03T18", "--tiles", "1x1x1", "--out", tmp_path / "other.zarr")
    p = run_ranks([BIN_DIR / "jigsaw-rollout", "--ckpt", ck, "--data", tmp_path / "other.zarr", *args, "--out", out], 1,
                  check=False)
    assert p.returncode != 0 and "holds another forecast" in p.stderr, p.stderr


def test_durations_and_windows_that_overflow_are_refused(jigsaw, store, tmp_path):
    p = jigsaw.shard("plan", "--source", store / "src.zarr", "--vars", "t2m", "--start", "2020-01-01T00",
                     "--end", "2020-01-02T00", "--step", "144115188075855871d", "--tiles", "1x1x1", check=False)
    assert p.returncode == 2 and "over a thousand years" in p.stderr, p.stderr
    for window in ("1001", "2147483647"):
        p = jigsaw.shard("climatology", store / "tiles.zarr", "--window", window, "--out", tmp_path / "c.zarr",
                         check=False)
        assert p.returncode == 2 and "up to 365" in p.stderr, p.stderr


def test_a_climatology_never_writes_over_what_it_did_not_make(jigsaw, store, tmp_path):
    data = store / "tiles.zarr"
    p = jigsaw.shard("climatology", data, "--out", data, check=False)
    assert p.returncode != 0 and "holds something that is not this climatology" in p.stderr, p.stderr
    assert jigsaw.shard("verify", data).returncode == 0
    out = tmp_path / "clim.zarr"
    jigsaw.shard("climatology", data, "--end", "2020-01-02T18", "--out", out)
    jigsaw.shard("climatology", data, "--end", "2020-01-02T18", "--out", out)  # the same one again: fine
    p = jigsaw.shard("climatology", data, "--end", "2020-01-03T18", "--out", out, check=False)
    assert p.returncode != 0 and "holds something that is not this climatology" in p.stderr, p.stderr


def test_a_source_that_is_no_regular_file_is_refused_not_read_for_ever(jigsaw, tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.grib")
    os.mkfifo(tmp_path / "pipe.grib")
    for name in ("zero.grib", "pipe.grib"):
        t0 = time.monotonic()
        p = jigsaw.shard("plan", "--source", tmp_path / name, "--vars", "t2m", "--start", "2020-01-01T00",
                         "--end", "2020-01-01T06", "--tiles", "1x1x1", check=False, timeout=60)
        assert p.returncode != 0 and "is not a regular file" in p.stderr, p.stderr
        assert time.monotonic() - t0 < 30


def test_a_member_of_a_source_without_members_is_refused(jigsaw, store):
    p = jigsaw.shard("plan", "--source", store / "src.zarr", "--vars", "t2m", "--start", "2020-01-01T00",
                     "--end", "2020-01-01T06", "--tiles", "1x1x1", "--member", "5", check=False)
    assert p.returncode == 2 and "--member 5: no source has a member dimension" in p.stderr, p.stderr


def test_data_parallel_replicas_train_as_one_rank_with_their_batches_together(store, tmp_path):
    """2 replicas x 1x1 and 2 replicas x 2x2, batch 1 each, against 1 rank with batch 2: replicas read
    disjoint samples (replica r every other one), their averaged gradients give the same losses; validation
    is averaged over them; a checkpoint of replicas resumes on one rank with batch 2 where they stopped."""
    val = ["--val-start", "2020-01-03T00", "--val-end", "2020-01-03T18"]
    log = tmp_path / "one.jsonl"
    run_ranks([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--config", store / "model.json",
               "--steps", "4", "--batch-size", "2", "--log", log, "--blas-threads", "1", *val], 1)
    one = [json.loads(l) for l in log.read_text().splitlines()]
    want = {r["step"]: r["loss"] for r in one if "loss" in r}
    want_val = [r for r in one if "val_loss" in r][0]["val_loss"]
    for ranks, mesh in ((2, "domain=1,tensor=1"), (8, "domain=2,tensor=2")):
        log = tmp_path / f"r{ranks}.jsonl"
        run_ranks([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--config", store / "model.json",
                   "--mesh", mesh, "--steps", "4", "--batch-size", "1", "--log", log, "--blas-threads", "1", *val],
                  ranks)
        recs = [json.loads(l) for l in log.read_text().splitlines()]
        got = {r["step"]: r["loss"] for r in recs if "loss" in r}
        assert sorted(got) == sorted(want)
        for s in want:
            assert abs(got[s] - want[s]) <= 1e-4 * want[s], (ranks, s, got[s], want[s])
        got_val = [r for r in recs if "val_loss" in r][0]["val_loss"]
        assert abs(got_val - want_val) <= 1e-4 * want_val, (ranks, got_val, want_val)
    ck = tmp_path / "ck"
    run_ranks([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--config", store / "model.json",
               "--steps", "4", "--batch-size", "1", "--stop-at", "2", "--ckpt", ck, "--blas-threads", "1"], 2)
    p, rest = train(store, tmp_path, "--resume", "--ckpt", ck, "--batch-size", "2", steps=4)
    assert sorted(rest) == [2, 3], p.stdout + p.stderr
    for s in rest:
        assert abs(rest[s] - want[s]) <= 1e-4 * want[s], (s, rest[s], want[s])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_run_stopped_by_a_signal_resumes_with_the_uninterrupted_losses(store, tmp_path, sig):
    steps = 300  # long enough that the signal lands mid-run on a fast machine too
    _, whole = train(store, tmp_path, steps=steps)
    ck, log = tmp_path / "ck", tmp_path / "sig.jsonl"
    proc = subprocess.Popen([str(BIN_DIR / "jigsaw-train"), "--data", str(store / "tiles.zarr"), "--config",
                             str(store / "model.json"), "--steps", str(steps), "--ckpt", str(ck), "--log", str(log),
                             "--blas-threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    first = {json.loads(l)["step"]: json.loads(l)["loss"] for l in log.read_text().splitlines() if '"loss"' in l}
    stopped = int(out.split("stopped at step ")[1].split(",")[0])
    assert 0 < stopped < steps, out
    _, rest = train(store, tmp_path, "--resume", "--ckpt", ck, steps=steps)
    assert sorted({**first, **rest}) == list(range(steps))
    assert {**first, **rest} == whole  # bit for bit: weights, moments, schedule and loader position


def test_rollout_targets_are_the_next_k_times_of_the_store(jigsaw, store, tmp_path):
    """With --rollout-steps 2 the targets of a sample at t are the states at t + 1 and t + 2 steps: the
    validation's persistence error per channel equals NumPy's over the window's (t, t + k) pairs (were every
    target t + 1, it would not)."""
    import xarray as xr
    log = tmp_path / "k2.jsonl"
    run_ranks([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--config", store / "model.json",
               "--steps", "1", "--rollout-steps", "2", "--val-start", "2020-01-02T00", "--val-end", "2020-01-03T18",
               "--log", log, "--blas-threads", "1"], 1)
    rec = [json.loads(l) for l in log.read_text().splitlines() if "val_loss" in l][0]
    ds = xr.open_zarr(store / "tiles.zarr")
    x = ds.data.sel(time=slice("2020-01-02T00", "2020-01-03T18")).values.astype(np.float64)
    x = (x - ds["mean"].values[None, :, None, None]) / ds["std"].values[None, :, None, None]
    lat = np.deg2rad(ds.latitude.values)
    edges = np.concatenate([[np.pi / 2], (lat[1:] + lat[:-1]) / 2, [-np.pi / 2]])
    w = np.abs(np.sin(edges[:-1]) - np.sin(edges[1:]))
    w = w / w.mean()
    K, n = 2, x.shape[0] - 2
    err = sum(((x[k:k + n] - x[0:n]) ** 2 * w[None, None, :, None]).sum(axis=(0, 2, 3)) for k in (1, 2))
    want = err / (n * K * x.shape[2] * x.shape[3])
    for c, name in enumerate(ds.channel.values):
        got = rec["persistence_mse_by_channel"][str(name)]
        assert abs(got - want[c]) <= 1e-5 * want[c], (name, got, want[c])


@pytest.mark.skipif("asan" in str(BIN_DIR), reason="AddressSanitizer reserves more address space than the limit")
def test_a_model_that_does_not_fit_in_memory_is_an_error_not_an_abort(store, tmp_path):
    import resource
    big = tmp_path / "big.json"
    big.write_text(json.dumps({**CONFIG, "dim": 100_000_000}))
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # noqa: E731
    p = subprocess.run([str(BIN_DIR / "jigsaw-train"), "--data", str(store / "tiles.zarr"), "--config", str(big),
                        "--steps", "1", "--blas-threads", "1"], capture_output=True, text=True, timeout=120,
                       preexec_fn=limit)
    assert p.returncode == 1 and "out of memory" in p.stderr and "bytes asked for" in p.stderr, (p.returncode, p.stderr)


def test_a_shard_copied_over_another_is_caught_when_first_read(jigsaw, store, tmp_path):
    """A v3 store of 4 time steps per shard object: its chunks are read by byte range, which the checksum
    record of whole objects cannot check piece by piece. The whole object is checked when first read, so a
    shard copied over another is caught by the trainer and the rollout, not read as other times' data."""
    out = tmp_path / "sharded.zarr"
    jigsaw.shard("run", "--source", store / "src.zarr", "--vars", "t2m,msl,z,t", "--levels", "500,850", "--start",
                 "2020-01-01T00", "--end", "2020-01-03T18", "--tiles", "1x2x2", "--time-per-shard", "4", "--out", out)
    train(store, tmp_path, steps=1, data=out)  # intact: trains
    first, second = out / "data" / "c" / "0" / "0" / "0" / "0", out / "data" / "c" / "1" / "0" / "0" / "0"
    assert first.is_file() and second.is_file()
    shutil.copyfile(first, second)
    p, _ = train(store, tmp_path, steps=10, data=out, check=False)  # 10 of its 11 samples: shard 1 is read
    assert p.returncode != 0 and "data/c/1/0/0/0" in p.stderr and "crc32c" in p.stderr, p.stderr


def test_verify_reports_values_that_are_not_finite_unless_the_plan_asked_for_them(jigsaw, tmp_path):
    import xarray as xr
    t = np.array(["2020-01-01T00", "2020-01-01T06"], dtype="datetime64[ns]")
    lat, lon = np.linspace(90, -90, 9), np.arange(0, 360, 22.5)
    data = np.random.default_rng(0).standard_normal((2, 9, 16)).astype(np.float32) + 280
    data[1, 2:4, 5:7] = np.nan  # a 2x2 corner of one field at one time
    xr.Dataset({"2m_temperature": (("time", "latitude", "longitude"), data)},
               coords={"time": t, "latitude": lat, "longitude": lon}).to_zarr(tmp_path / "src.zarr", zarr_format=2)
    args = ["--source", tmp_path / "src.zarr", "--vars", "t2m", "--start", "2020-01-01T00", "--end",
            "2020-01-01T06", "--tiles", "1x1x1"]
    p = jigsaw.shard("run", *args, "--out", tmp_path / "refused.zarr", check=False)
    assert p.returncode == 2 and "2m_temperature at 2020-01-01T06:00:00 holds 4 values that are not finite" in p.stderr
    jigsaw.shard("run", *args, "--allow-missing", "--out", tmp_path / "kept.zarr")
    assert jigsaw.shard("verify", tmp_path / "kept.zarr").returncode == 0  # asked for: not a problem
    # A store whose plan did not ask for them (as one written before the run refused them): reported.
    meta = json.loads((tmp_path / "kept.zarr" / "zarr.json").read_text())
    del meta["attributes"]["jigsaw"]["plan"]["allow_missing"]
    (tmp_path / "kept.zarr" / "zarr.json").write_text(json.dumps(meta))
    p = jigsaw.shard("verify", tmp_path / "kept.zarr", check=False)
    assert p.returncode == 1 and "2m_temperature at 2020-01-01T06:00:00 holds 4 values that are not finite" in p.stdout
