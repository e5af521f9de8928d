"""jigsaw-train as a user runs it: on 1 rank and on a 2x2 mesh under mpirun, checkpoints that resume on the
same mesh bit for bit and on another mesh within float tolerance, a clean stop on SIGTERM, training that
beats persistence on a learnable signal, the exported checkpoint in the PyTorch oracle, and refusals."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN_DIR, MPI_ENV, mpi_command, run_ranks

HERE = Path(__file__).resolve().parent
CONFIG = {"patch": [3, 4], "dim": 16, "depth": 2, "token_hidden": 16, "channel_hidden": 32, "lr": 3e-3,
          "min_lr": 3e-4, "warmup_steps": 3, "weight_decay": 0.01, "clip": 1.0, "seed": 3,
          "channel_weights": {"2m_temperature": 2.0}}


@pytest.fixture(scope="module")
def store(jigsaw, tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    return jigsaw.training_store(d, 12, "2020-01-03T18", CONFIG)


def train(store, tmp, *args, ranks=1, mesh="domain=1,tensor=1", check=True, config=None, data=None, env=None):
    """Runs jigsaw-train; returns (process, the per-step JSON records of its log)."""
    log = tmp / f"log-{time.monotonic_ns()}.jsonl"
    cmd = [BIN_DIR / "jigsaw-train", "--data", data or store / "tiles.zarr", "--mesh", mesh,
           "--config", config or store / "model.json", "--log", log, "--blas-threads", "1", *args]
    p = run_ranks(cmd, ranks, check=check, env=env)
    records = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    return p, records


def losses(records):
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def test_one_rank_and_2x2_mesh_agree(store, tmp_path):
    val = ["--val-start", "2020-01-03T00", "--val-end", "2020-01-03T18"]
    _, one = train(store, tmp_path, "--steps", "6", *val)
    _, four = train(store, tmp_path, "--steps", "6", *val, ranks=4, mesh="domain=2,tensor=2")
    a, b = losses(one), losses(four)
    assert sorted(a) == list(range(6)) and sorted(b) == list(range(6))
    for s in a:
        assert abs(a[s] - b[s]) <= 1e-4 * abs(a[s]), (s, a[s], b[s])
    va, vb = [r for r in one if "val_loss" in r][0], [r for r in four if "val_loss" in r][0]
    assert abs(va["val_loss"] - vb["val_loss"]) <= 1e-4 * va["val_loss"]
    for c, mse in va["val_mse_by_channel"].items():  # each rank scores its own channels and pixels
        assert abs(mse - vb["val_mse_by_channel"][c]) <= 1e-4 * mse, c


def test_bf16_products_train_close_to_float32_with_less_bytes_on_the_mesh(store, tmp_path):
    # cpu:bf16 (cuda:bf16's arithmetic on the CPU): losses within bfloat16's rounding of the float32 run's, on
    # 1 rank and a 2x2 mesh, where the broadcast blocks travel as bfloat16 and the partial sums in float32.
    for ranks, mesh in ((1, "domain=1,tensor=1"), (4, "domain=2,tensor=2")):
        _, f32 = train(store, tmp_path, "--steps", "4", ranks=ranks, mesh=mesh)
        _, b16 = train(store, tmp_path, "--steps", "4", "--backend", "cpu:bf16", ranks=ranks, mesh=mesh)
        a, b = losses(f32), losses(b16)
        assert sorted(b) == list(range(4)) and a != b, (a, b)
        for s in a:
            assert abs(a[s] - b[s]) <= 2e-2 * abs(a[s]), (mesh, s, a[s], b[s])
        sent = lambda rs: [r["bytes_sent_per_rank"] for r in rs if "bytes_sent_per_rank" in r]
        if ranks == 1:
            assert set(sent(b16)) == {0}
        else:
            assert 0.5 * sent(f32)[0] < sent(b16)[0] < 0.75 * sent(f32)[0], (sent(f32), sent(b16))


def test_steps_show_their_gemm_rate_beside_the_ceiling(store, tmp_path):
    # The ceiling: the backend's GEMM rate at the rank's own product shapes, measured before the first step;
    # every step's rate is shown as a share of it, and the summary has the median rate and the ceiling. (A step,
    # which does more than its GEMMs, stays below the ceiling on a quiet machine; on a loaded one the ceiling's
    # measurement can catch a busy moment and a step a quiet one, so the share is checked for what it is.)
    p, records = train(store, tmp_path, "--steps", "4", "--json")
    summary = json.loads(p.stdout)
    assert "GEMM ceiling" in p.stderr and summary["gemm_ceiling_flop_per_s_per_rank"] > 0
    steps = [r for r in records if "loss" in r and "step" in r]
    assert len(steps) == 4
    ceiling = summary["gemm_ceiling_flop_per_s_per_rank"]
    for r in steps:
        assert r["gemm_ceiling_share"] > 0, r
        assert abs(r["gemm_ceiling_share"] - r["gflop_per_s_per_rank"] * 1e9 / ceiling) <= 1e-3 * r["gemm_ceiling_share"], r
    rates = sorted(r["gflop_per_s_per_rank"] * 1e9 for r in steps)
    # GFLOP/s in the log, FLOP/s in the summary: the same median to rounding (x / 1e9 * 1e9 need not be x).
    assert rates[1] * (1 - 1e-9) <= summary["gemm_flop_per_s_per_rank"] <= rates[2] * (1 + 1e-9)
    p, records = train(store, tmp_path, "--steps", "2", "--json", "--no-gemm-ceiling")
    assert json.loads(p.stdout)["gemm_ceiling_flop_per_s_per_rank"] == 0 and "GEMM ceiling" not in p.stderr
    assert all("gemm_ceiling_share" not in r for r in records)


def test_recompute_trains_bit_identically_on_one_rank_and_a_2x2_mesh(store, tmp_path):
    for ranks, mesh in ((1, "domain=1,tensor=1"), (4, "domain=2,tensor=2")):
        _, kept = train(store, tmp_path, "--steps", "3", ranks=ranks, mesh=mesh)
        _, again = train(store, tmp_path, "--steps", "3", "--recompute", ranks=ranks, mesh=mesh)
        assert losses(kept) == losses(again) and len(losses(kept)) == 3, (mesh, losses(kept), losses(again))
        # The model's FLOPs per step do not count the recomputed products.
        flops = lambda rs: [r["gflop_per_s_per_rank"] * r["seconds"] for r in rs if "loss" in r and "step" in r]
        for a, b in zip(flops(kept), flops(again)):
            assert abs(a - b) <= 1e-9 * a, (a, b)
    # The exchanges of each product's steps waited for one by one instead of overlapping the GEMMs: the same
    # arithmetic, bit for bit.
    _, waited = train(store, tmp_path, "--steps", "3", "--no-overlap", ranks=4, mesh="domain=2,tensor=2")
    assert losses(waited) == losses(kept), (losses(kept), losses(waited))


def test_micro_batches_train_alike(store, tmp_path):
    # The batch through the model at once (its tokens the rows of every product) or one sample at a time:
    # the same losses up to the order of the gradient sums.
    # Validation likewise (its forecasts go through the model as the training samples do).
    val = ["--val-start", "2020-01-03T00", "--val-end", "2020-01-03T18"]
    _, whole = train(store, tmp_path, "--steps", "4", "--batch-size", "3", *val, ranks=4, mesh="domain=2,tensor=2")
    _, ones = train(store, tmp_path, "--steps", "4", "--batch-size", "3", "--micro-batch", "1", *val, ranks=4,
                    mesh="domain=2,tensor=2")
    a, b = losses(whole), losses(ones)
    assert sorted(a) == list(range(4)) and sorted(b) == list(range(4))
    for s in a:
        assert abs(a[s] - b[s]) <= 1e-5 * abs(a[s]), (s, a[s], b[s])
    va, vb = [r["val_loss"] for r in whole if "val_loss" in r], [r["val_loss"] for r in ones if "val_loss" in r]
    # By default about 10 validations a run: here after each of the 4 steps.
    assert len(va) == 4 and all(abs(x - y) <= 1e-5 * x for x, y in zip(va, vb)), (va, vb)
    p, _ = train(store, tmp_path, "--steps", "1", "--micro-batch", "-1", check=False)
    assert p.returncode == 2 and "--micro-batch" in p.stderr


def test_the_performance_model_counts_what_the_trainer_does(store, tmp_path):
    # bench/perf_model.py predicts from the closed form of the step's products: its FLOPs and bytes per rank
    # (float32 exchanges, and bf16 blocks) equal the trainer's own counters, per step, on a 2x2 mesh with 3
    # samples at once.
    sys.path.insert(0, str(HERE.parent.parent / "bench"))
    import perf_model
    _, records = train(store, tmp_path, "--steps", "2", "--batch-size", "3", ranks=4, mesh="domain=2,tensor=2")
    cfg = json.loads((store / "model.json").read_text())
    steps = [r for r in records if "bytes_sent_per_rank" in r]
    assert len(steps) == 2
    T = (33 // cfg["patch"][0]) * (64 // cfg["patch"][1])
    F = 6 * cfg["patch"][0] * cfg["patch"][1]
    flops, bytes_, _ = perf_model.per_rank(T, cfg["dim"], F, cfg["token_hidden"], cfg["channel_hidden"], cfg["depth"],
                                           2, 4, 3)
    for r in steps:
        assert r["gemm_flops_per_rank"] == flops and r["bytes_sent_per_rank"] == bytes_, (r, flops, bytes_)
    # bf16 products: broadcast blocks of 2 bytes an element, partial sums of 4, as the model counts them.
    _, records = train(store, tmp_path, "--steps", "1", "--batch-size", "3", "--backend", "cpu:bf16", ranks=4,
                       mesh="domain=2,tensor=2")
    _, bytes16, _ = perf_model.per_rank(T, cfg["dim"], F, cfg["token_hidden"], cfg["channel_hidden"], cfg["depth"],
                                        2, 2, 3)
    assert [r["bytes_sent_per_rank"] for r in records if "bytes_sent_per_rank" in r] == [bytes16], (records, bytes16)


def test_resume_on_the_same_mesh_is_bit_identical(store, tmp_path):
    # In float32 and with bf16 products (whose weight copies are made again from the resumed float32 masters).
    for backend in ("cpu", "cpu:bf16"):
        b = ("--backend", backend)
        _, whole = train(store, tmp_path, "--steps", "8", *b, ranks=4, mesh="domain=2,tensor=2")
        ck = tmp_path / f"ck-{backend}"
        p, first = train(store, tmp_path, "--steps", "8", "--stop-at", "3", "--ckpt", ck, *b, ranks=4,
                         mesh="domain=2,tensor=2")
        assert "stopped at step 3" in p.stdout
        _, rest = train(store, tmp_path, "--steps", "8", "--resume", "--ckpt", ck, *b, ranks=4, mesh="domain=2,tensor=2")
        joined = {**losses(first), **losses(rest)}
        assert joined == losses(whole), backend  # exact: weights, Adam moments, schedule, loader position
        assert subprocess.run([str(BIN_DIR / "jigsaw-ckpt"), "verify", str(ck)], capture_output=True).returncode == 0


def test_resume_on_another_mesh_continues_within_tolerance(store, tmp_path):
    _, whole = train(store, tmp_path, "--steps", "8", ranks=4, mesh="domain=2,tensor=2")
    ck = tmp_path / "ck"
    train(store, tmp_path, "--steps", "8", "--stop-at", "4", "--ckpt", ck, ranks=4, mesh="domain=2,tensor=2")
    p, rest = train(store, tmp_path, "--steps", "8", "--resume", "--ckpt", ck)  # 1x1: the store read whole
    assert "resumed from step-00000004" in p.stdout
    w, r = losses(whole), losses(rest)
    assert sorted(r) == [4, 5, 6, 7]
    for s in r:
        assert abs(w[s] - r[s]) <= 1e-4 * abs(w[s]), (s, w[s], r[s])


def test_sigterm_saves_a_checkpoint_that_resumes(store, tmp_path):
    ck = tmp_path / "ck"
    log = tmp_path / "sig.jsonl"
    cmd = [str(BIN_DIR / "jigsaw-train"), "--data", str(store / "tiles.zarr"), "--config", str(store / "model.json"),
           "--steps", "100000", "--ckpt", str(ck), "--log", str(log), "--blas-threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped at step" in out
    step = int(out.split("stopped at step ")[1].split(",")[0])
    assert (ck / "LATEST").read_text().strip() == f"step-{step:08d}"
    p, rest = train(store, tmp_path, "--steps", str(step + 2), "--resume", "--ckpt", ck)
    assert sorted(losses(rest)) == [step, step + 1]


def test_export_loads_into_the_pytorch_oracle(jigsaw, store, tmp_path):
    """The checkpoint's tensors, exported to safetensors, are the oracle's state_dict: torch computes the
    same loss on the same sample as jigsaw's validation does."""
    ck = tmp_path / "ck"
    _, recs = train(store, tmp_path, "--steps", "3", "--ckpt", ck, "--val-start", "2020-01-01T00",
                    "--val-end", "2020-01-01T06", "--batch-size", "1")
    val = [r for r in recs if "val_loss" in r][-1]  # the last: of the weights the checkpoint holds
    jigsaw.ckpt("export", ck, "--out", tmp_path / "model.safetensors")
    url = store / "tiles.zarr"
    info = json.loads(jigsaw.shard("info", url, "--json").stdout)
    np.savez(tmp_path / "sample.npz", data=jigsaw.get(url, "data", tmp_path, "0:2,:,:,:"),
             mean=jigsaw.get(url, "mean", tmp_path), std=jigsaw.get(url, "std", tmp_path),
             latitude=jigsaw.get(url, "latitude", tmp_path), channels=np.array(info["plan"]["channels"]),
             tiles=np.array(info["plan"]["tiles"]))
    script = HERE.parent / "train" / "oracle_loss.py"
    p = subprocess.run(["/usr/bin/python3", str(script), str(tmp_path / "model.safetensors"), str(tmp_path / "sample.npz"),
                        str(store / "model.json")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    torch_loss = float(p.stdout.strip())
    assert abs(torch_loss - val["val_loss"]) <= 1e-4 * val["val_loss"], (torch_loss, val["val_loss"])


def test_refusals_name_the_problem(store, tmp_path):
    p, _ = train(store, tmp_path, "--steps", "2", ranks=4, mesh="domain=4,tensor=1", check=False)
    assert p.returncode == 2 and "domain=4,tensor=1 is not" in p.stderr
    # Every rank finds the same mistake: said once, by rank 0, with no rank prefix.
    said = [l for l in p.stderr.splitlines() if "domain=4,tensor=1 is not" in l]
    assert len(said) == 1 and said[0].startswith("jigsaw-train: a Jigsaw mesh"), p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CONFIG, "dimm": 3}))
    p, _ = train(store, tmp_path, "--steps", "2", config=bad, check=False)
    assert p.returncode == 2 and '"dimm" is not a key' in p.stderr
    bad.write_text(json.dumps({**CONFIG, "patch": [4, 4]}))  # 33 rows are no whole 4-row patches
    p, _ = train(store, tmp_path, "--steps", "2", config=bad, check=False)
    assert p.returncode == 2 and "33 latitude rows" in p.stderr
    bad.write_text(json.dumps({**CONFIG, "channel_weights": {"nosuch": 1.0}}))
    p, _ = train(store, tmp_path, "--steps", "2", config=bad, check=False)
    assert p.returncode == 2 and "nosuch" in p.stderr
    # A checkpoint of another model is refused, naming what differs.
    ck = tmp_path / "ck"
    train(store, tmp_path, "--steps", "1", "--ckpt", ck)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**CONFIG, "dim": 24}))
    p, _ = train(store, tmp_path, "--steps", "2", "--resume", "--ckpt", ck, config=other, check=False)
    assert p.returncode == 2 and "dim 16 (this run: 24)" in p.stderr
    # The CUDA backend where there is no GPU (or a build without it): refused, saying which, on every rank.
    if not os.path.exists("/dev/nvidia0"):
        p, _ = train(store, tmp_path, "--steps", "2", "--backend", "cuda", ranks=2, mesh="domain=1,tensor=1",
                     check=False)
        assert p.returncode != 0 and ("no CUDA device is visible" in p.stderr or "no CUDA backend" in p.stderr), p.stderr


def test_learns_a_travelling_wave_well_below_persistence(jigsaw, tmp_path):
    """The synthetic source's fields carry a wave that moves a fixed phase per step: a learnable tendency.
    300 tiny steps take the validation loss (held-out times) far below persistence's."""
    jigsaw.shard("synth", tmp_path / "src.zarr", "--grid", "33x64", "--times", "24")
    jigsaw.shard("run", "--source", tmp_path / "src.zarr", "--vars", "t2m,msl,z,t", "--levels", "500,850",
                 "--start", "2020-01-01T00", "--end", "2020-01-06T18", "--tiles", "1x2x2", "--out", tmp_path / "tiles.zarr")
    (tmp_path / "model.json").write_text(json.dumps({**CONFIG, "dim": 32, "token_hidden": 32, "channel_hidden": 64,
                                                      "warmup_steps": 10, "channel_weights": {}}))
    _, recs = train(tmp_path, tmp_path, "--steps", "300", "--batch-size", "2", "--train-end", "2020-01-05T00",
                    "--val-start", "2020-01-05T06", "--val-end", "2020-01-06T18")
    val = [r for r in recs if "val_loss" in r][-1]
    assert val["val_loss"] < 0.25 * val["persistence_loss"], val
    # Per channel: with every channel weighing 1, the loss is the mean of the channels' weighted MSEs.
    by_channel = val["val_mse_by_channel"]
    assert len(by_channel) == 6 and abs(np.mean(list(by_channel.values())) - val["val_loss"]) < 1e-5 * val["val_loss"]
    assert all(by_channel[c] < val["persistence_mse_by_channel"][c] for c in by_channel), val


def test_streamed_from_s3_equals_local_disk_step_for_step(jigsaw, store, tmp_path):
    """Data and checkpoints on the test S3 server (moto, a real server process): the same losses, bit for
    bit, as from local disk, and a checkpoint on S3 that resumes."""
    sys.path.insert(0, str(HERE.parent / "tools"))
    from servers import Moto
    with Moto() as moto:
        moto.create_bucket("bkt")
        jigsaw.store("copy", store / "tiles.zarr", "s3://bkt/tiles.zarr", env=moto.env())
        _, local = train(store, tmp_path, "--steps", "5", ranks=4, mesh="domain=2,tensor=2")
        _, remote = train(store, tmp_path, "--steps", "5", "--stop-at", "3", "--ckpt", "s3://bkt/ck", ranks=4,
                          mesh="domain=2,tensor=2", data="s3://bkt/tiles.zarr", env=moto.env())
        _, rest = train(store, tmp_path, "--steps", "5", "--resume", "--ckpt", "s3://bkt/ck", ranks=4,
                        mesh="domain=2,tensor=2", data="s3://bkt/tiles.zarr", env=moto.env())
        assert {**losses(remote), **losses(rest)} == losses(local)
        assert jigsaw.ckpt("verify", "s3://bkt/ck", env=moto.env()).returncode == 0


def test_a_rank_that_dies_fails_the_job_without_a_hang_and_latest_stays_valid(jigsaw, store, tmp_path):
    ck = tmp_path / "ck"
    log = tmp_path / "dies.jsonl"
    cmd = mpi_command([BIN_DIR / "jigsaw-train", "--data", store / "tiles.zarr", "--mesh", "domain=2,tensor=2",
                       "--config", store / "model.json", "--steps", "100000", "--ckpt", ck, "--ckpt-every", "2",
                       "--log", log, "--blas-threads", "1"], 4)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **MPI_ENV})
    deadline = time.time() + 120
    while time.time() < deadline and not (ck / "LATEST").exists():
        time.sleep(0.1)
    assert (ck / "LATEST").exists()
    ranks = subprocess.run(["pgrep", "-f", f"jigsaw-train.*{ck}"], capture_output=True, text=True).stdout.split()
    victims = [int(p) for p in ranks if int(p) != proc.pid]
    assert len(victims) >= 4, ranks
    os.kill(victims[-1], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)  # no hang: mpirun ends the job
    assert proc.returncode != 0
    assert "exited on signal 9" in err or "signal 9" in err or "Killed" in err, err
    assert jigsaw.ckpt("verify", ck).returncode == 0  # whatever step LATEST names is whole


def test_a_missing_chunk_of_a_complete_store_is_an_error_not_nan(store, tmp_path):
    """A complete store holds every chunk of every time it lists: one gone is corruption, named."""
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copytree(store / "tiles.zarr", broken / "tiles.zarr")
    (broken / "model.json").write_text((store / "model.json").read_text())
    chunk = sorted(p for p in (broken / "tiles.zarr" / "data").rglob("*") if p.is_file() and p.name != "zarr.json")[0]
    chunk.unlink()
    p, _ = train(broken, tmp_path, "--steps", "30", "--batch-size", "4", check=False)
    assert p.returncode != 0 and "is missing (data that must be there" in p.stderr, p.stderr
    # On a 2x2 mesh only the rank whose tile it is fails; the others wait in the step's exchanges. It says its
    # own error, named by rank, and ends the job (no hang).
    t0 = time.monotonic()
    p, _ = train(broken, tmp_path, "--steps", "30", "--batch-size", "4", "--no-gemm-ceiling", ranks=4,
                 mesh="domain=2,tensor=2", check=False)
    said = [l for l in p.stderr.splitlines() if "is missing (data that must be there" in l]
    assert p.returncode != 0 and len(said) == 1 and re.match(r"jigsaw-train: rank \d: ", said[0]), p.stderr
    assert time.monotonic() - t0 < 60


def test_rollout_loss_trains_alike_on_one_rank_and_a_2x2_mesh(store, tmp_path):
    """--rollout-steps 2: the mean loss of two autoregressive applications (the oracle test checks its
    gradients); the same run on one rank and on a 2x2 mesh."""
    _, one = train(store, tmp_path, "--steps", "4", "--rollout-steps", "2")
    _, four = train(store, tmp_path, "--steps", "4", "--rollout-steps", "2", ranks=4, mesh="domain=2,tensor=2")
    a, b = losses(one), losses(four)
    assert sorted(a) == [0, 1, 2, 3]
    for s in a:
        assert abs(a[s] - b[s]) <= 1e-4 * abs(a[s]), (s, a[s], b[s])
    _, single = train(store, tmp_path, "--steps", "1")
    assert a[0] > losses(single)[0]  # two steps ahead are harder to get right than one


def test_3x3_mesh_resumes_a_one_rank_run_and_forecasts_as_one_rank(jigsaw, tmp_path):
    """A store cut 3x1x3 (three domain parts, three channel groups): a run started on one rank resumes on a
    3x3 mesh (9 processes) within float tolerance, and a rollout on 9 ranks equals the one on 1 rank."""
    jigsaw.shard("synth", tmp_path / "src.zarr", "--grid", "36x64", "--times", "12")
    jigsaw.shard("run", "--source", tmp_path / "src.zarr", "--vars", "t2m,msl,z,t", "--levels", "500,850",
                 "--start", "2020-01-01T00", "--end", "2020-01-03T18", "--tiles", "3x1x3", "--out", tmp_path / "tiles.zarr")
    (tmp_path / "model.json").write_text(json.dumps({**CONFIG, "dim": 18, "token_hidden": 12, "channel_hidden": 24,
                                                      "channel_weights": {}}))
    _, whole = train(tmp_path, tmp_path, "--steps", "6")
    ck = tmp_path / "ck"
    train(tmp_path, tmp_path, "--steps", "6", "--stop-at", "3", "--ckpt", ck)
    p, rest = train(tmp_path, tmp_path, "--steps", "6", "--resume", "--ckpt", ck, ranks=9, mesh="domain=3,tensor=3")
    w, r = losses(whole), losses(rest)
    assert sorted(r) == [3, 4, 5], p.stdout + p.stderr
    for s in r:
        assert abs(w[s] - r[s]) <= 1e-4 * abs(w[s]), (s, w[s], r[s])
    forecasts = {}
    for ranks, mesh in ((1, "domain=1,tensor=1"), (9, "domain=3,tensor=3")):
        out = tmp_path / f"f{ranks}.zarr"
        run_ranks([BIN_DIR / "jigsaw-rollout", "--ckpt", ck, "--data", tmp_path / "tiles.zarr", "--mesh", mesh,
                   "--init", "2020-01-03T00", "--lead", "12h", "--out", out, "--blas-threads", "1"], ranks)
        import xarray as xr
        forecasts[ranks] = xr.open_zarr(out).forecast.values
    a, b = forecasts[1], forecasts[9]
    scale = np.abs(a).max(axis=(0, 1, 3, 4), keepdims=True)
    assert (np.abs(a - b) / scale).max() < 1e-5


def test_the_shipped_configs_parse_and_fit_their_grids(store, tmp_path):
    """examples/model_c1.json is refused on the small test store for the reason it should be (60-row
    patches), naming the numbers: the config itself parses (its "_comment" is a note)."""
    c1 = HERE.parents[1] / "examples" / "model_c1.json"
    p, _ = train(store, tmp_path, "--steps", "1", config=c1, check=False)
    assert p.returncode == 2 and "33 latitude rows do not split into 1 parts of whole 60-row patches" in p.stderr, p.stderr
    assert "jigsaw-shard run --lat-crop N" in p.stderr, p.stderr
    tiny = HERE.parents[1] / "examples" / "model_tiny.json"
    train(store, tmp_path, "--steps", "1", config=tiny)


def test_jigsaw_bench_gemm_measures_the_steps_own_shapes(jigsaw, tmp_path):
    r = json.loads(jigsaw.run("jigsaw-bench", "gemm", "--shapes", "64x32x16,8x8x8", "--json").stdout)
    assert r["flops"] == 2 * (64 * 32 * 16 + 8 * 8 * 8) and r["shapes"] == 2 and r["flop_per_s"] > 0
    (tmp_path / "m.json").write_text(json.dumps(CONFIG))
    r = json.loads(jigsaw.run("jigsaw-bench", "gemm", "--config", tmp_path / "m.json", "--grid", "33x64", "--channels", "6",
                              "--json").stdout)
    T, F, D, Hs, Hf, L = 11 * 16, 6 * 12, CONFIG["dim"], CONFIG["token_hidden"], CONFIG["channel_hidden"], CONFIG["depth"]
    # One sample's step: embedding and head forward and backward, then 2 x 4 products per block and pass.
    want = 2 * (T * F * D * 2 + T * D * F * 3 + L * 3 * (2 * Hs * T * D + 2 * T * D * Hf))
    assert r["shapes"] == 5 + 12 * L and r["flops"] == want
    p = jigsaw.run("jigsaw-bench", "gemm", "--shapes", "5x5", check=False)
    assert p.returncode == 2 and "MxNxK" in p.stderr


def test_static_fields_are_inputs_alike_on_one_rank_and_a_2x2_mesh_and_in_torch(jigsaw, store, tmp_path):
    """A store with static fields (jigsaw-shard --static): the model takes them as extra inputs (static_w),
    on 1 rank and a 2x2 mesh alike; the exported checkpoint gives the PyTorch oracle jigsaw's validation
    loss; a rollout forecasts from it, and refuses a store without the static fields."""
    d = tmp_path / "st"
    d.mkdir()
    jigsaw.shard("synth", d / "src.zarr", "--grid", "33x64", "--times", "12")
    jigsaw.shard("run", "--source", d / "src.zarr", "--vars", "t2m,msl,z,t", "--levels", "500,850", "--static",
                 "lsm,z", "--start", "2020-01-01T00", "--end", "2020-01-03T18", "--tiles", "1x2x2",
                 "--out", d / "tiles.zarr")
    (d / "model.json").write_text(json.dumps(CONFIG))
    val = ["--val-start", "2020-01-01T00", "--val-end", "2020-01-01T06", "--batch-size", "1"]  # one sample
    ck = tmp_path / "ck"
    _, one = train(d, tmp_path, "--steps", "4", "--ckpt", ck, *val)
    _, four = train(d, tmp_path, "--steps", "4", *val, ranks=4, mesh="domain=2,tensor=2")
    a, b = losses(one), losses(four)
    assert sorted(a) == list(range(4))
    for s in a:
        assert abs(a[s] - b[s]) <= 1e-4 * abs(a[s]), (s, a[s], b[s])
    # Without the static fields the same run learns other losses: they are inputs.
    _, plain = train(store, tmp_path, "--steps", "4", *val)
    assert losses(plain)[3] != a[3]
    jigsaw.ckpt("export", ck, "--out", tmp_path / "model.safetensors")
    raw = (tmp_path / "model.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert header["static_w"]["shape"] == [2, 12, 16]  # S, ph pw, D
    url = d / "tiles.zarr"
    info = json.loads(jigsaw.shard("info", url, "--json").stdout)
    np.savez(tmp_path / "sample.npz", data=jigsaw.get(url, "data", tmp_path, "0:2,:,:,:"),
             mean=jigsaw.get(url, "mean", tmp_path), std=jigsaw.get(url, "std", tmp_path),
             latitude=jigsaw.get(url, "latitude", tmp_path), channels=np.array(info["plan"]["channels"]),
             tiles=np.array(info["plan"]["tiles"]), static=jigsaw.get(url, "static", tmp_path),
             static_mean=jigsaw.get(url, "static_mean", tmp_path), static_std=jigsaw.get(url, "static_std", tmp_path))
    p = subprocess.run(["/usr/bin/python3", str(HERE.parent / "train" / "oracle_loss.py"), str(tmp_path / "model.safetensors"),
                        str(tmp_path / "sample.npz"), str(d / "model.json")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    val_loss = [r for r in one if "val_loss" in r][-1]["val_loss"]
    assert abs(float(p.stdout) - val_loss) <= 1e-4 * val_loss, (p.stdout, val_loss)
    # A rollout from the checkpoint reads the store's static fields; a store without them is refused.
    jigsaw.run("jigsaw-rollout", "--ckpt", ck, "--data", url, "--init", "2020-01-03T00", "--lead", "12h",
               "--out", tmp_path / "f.zarr")
    r = jigsaw.run("jigsaw-rollout", "--ckpt", ck, "--data", store / "tiles.zarr", "--init", "2020-01-03T00",
                   "--lead", "12h", "--out", tmp_path / "g.zarr", check=False)
    assert r.returncode == 2 and "0 static fields, but the checkpoint's model takes 2" in r.stderr, r.stderr


def test_a_run_under_mpirun_says_what_it_is_and_how_it_goes(store, tmp_path):
    """No terminal (mpirun, a batch job): rank 0 says what the run is, then a line per step here (the first,
    the last, and every --print-every seconds: 0 here), each record of the log has its kind and time."""
    t0 = time.time()
    p, recs = train(store, tmp_path, "--steps", "4", "--val-start", "2020-01-02T00", "--val-end", "2020-01-03T18",
                    "--print-every", "0", ranks=4, mesh="domain=1,tensor=1")
    out = p.stdout
    assert "4 ranks = 4 replicas x mesh domain=1,tensor=1" in out, out
    assert "note: no --mesh: each of the 4 ranks trains a whole copy of the model" in out, out
    assert re.search(r"samples an epoch in the training window, \d+ in the validation window \(every 1 steps\)", out), out
    assert re.search(r"parameters on each rank, [0-9.]+k in the model", out), out
    steps = re.findall(r"jigsaw-train: step (\d)/4  loss [0-9.e-]+  lr [0-9.e-]+  \S+ samples/s  loader wait \d+%  ETA ", out)
    assert steps == ["1", "2", "3", "4"], out
    assert out.count("jigsaw-train ") == 1  # the summary once, from rank 0
    kinds = {r["kind"] for r in recs}
    assert kinds == {"step", "validation", "checkpoint"} or kinds == {"step", "validation"}, kinds
    assert all(t0 - 1 <= r["time"] <= time.time() + 1 for r in recs)
    # jigsaw-plot-train draws that log: loss and validation beside persistence, learning rate, throughput.
    log = sorted(tmp_path.glob("log-*.jsonl"))[-1]
    p = subprocess.run([str(BIN_DIR / "jigsaw-plot-train"), str(log), "--out", str(tmp_path / "train.png")],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "4 steps, 4 validations" in p.stdout, p.stdout + p.stderr
    png = (tmp_path / "train.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 720


def test_tensorboard_reads_every_number_of_the_log(store, tmp_path):
    """--tensorboard on a 2x2 mesh: TensorBoard's own reader (EventAccumulator, which checks each record's
    CRCs) finds every number of the JSON log under train/, val/ and checkpoint/ tags, at its step and time."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    board = tmp_path / "tb"
    p, recs = train(store, tmp_path, "--steps", "4", "--val-start", "2020-01-02T00", "--val-end", "2020-01-03T18",
                    "--val-every", "2", "--ckpt", tmp_path / "ck", "--ckpt-every", "2", "--tensorboard", board,
                    "--no-gemm-ceiling", ranks=4, mesh="domain=2,tensor=2")
    files = list(board.glob("events.out.tfevents.*"))
    assert len(files) == 1 and f"TensorBoard: {files[0]}" in p.stdout, p.stdout
    acc = EventAccumulator(str(board), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    def check(tag, records, key, at="step"):
        got = [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]
        want = [(r[at], float(np.float32(r[key])), r["time"]) for r in records]
        assert [g[:2] for g in got] == [w[:2] for w in want], (tag, got, want)
        assert all(abs(g[2] - w[2]) < 1e-3 for g, w in zip(got, want)), tag

    steps = [r for r in recs if r["kind"] == "step"]
    assert len(steps) == 4
    for key in ("loss", "lr", "grad_norm", "samples_per_s", "loader_wait_s", "seconds"):
        check("train/" + key, steps, key)
    vals = [r for r in recs if r["kind"] == "validation"]
    assert [r["step"] for r in vals] == [2, 4]
    check("val/loss", vals, "val_loss")
    check("val/persistence_loss", vals, "persistence_loss")
    for channel in vals[0]["val_mse_by_channel"]:
        got = [e.value for e in acc.Scalars("val/mse_by_channel/" + channel)]
        assert got == [float(np.float32(r["val_mse_by_channel"][channel])) for r in vals], channel
    saves = [r for r in recs if r["kind"] == "checkpoint"]
    if saves:
        check("checkpoint/stall_s", saves, "stall_s", at="checkpoint")
    assert "train/step" not in tags and "train/time" not in tags and "checkpoint/checkpoint" not in tags


def test_the_multi_node_launch_script_runs_with_a_local_hostfile(store, tmp_path):
    """examples/launch_mpirun.sh as a cluster user runs it, on this machine's hostfile: 4 ranks of a 2x2
    mesh, stopped and resubmitted (the script always resumes)."""
    from conftest import MPI_ENV
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("localhost slots=4\n")
    script = HERE.parents[1] / "examples" / "launch_mpirun.sh"
    env = {**os.environ, **MPI_ENV, "JIGSAW_BIN": str(BIN_DIR), "JIGSAW_MPIRUN_FLAGS": "--oversubscribe"}
    args = [str(script), str(hosts), "4", "domain=2,tensor=2", str(store / "tiles.zarr"), str(store / "model.json"),
            str(tmp_path / "ck"), "--blas-threads", "1", "--no-gemm-ceiling", "--resume"]
    for steps in ("2", "3"):
        p = subprocess.run(args + ["--steps", steps], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "4 ranks = 1 replica x mesh domain=2,tensor=2" in p.stdout, p.stdout
    assert (tmp_path / "ck" / "LATEST").read_text().strip() == "step-00000003"
    assert "resumed from step-00000002" in p.stdout, p.stdout
    p = subprocess.run([str(script)], capture_output=True, text=True)
    assert p.returncode == 2 and "HOSTFILE RANKS MESH" in p.stderr
