"""jigsaw-store as a user meets it: help, listing, slices, JSON output, the round trip of a copy."""
import json
import os

import numpy as np
import zarr


def test_help_explains_every_command(jigsaw):
    out = jigsaw.store("--help").stdout
    for cmd in ("ls", "get", "copy", "verify"):
        assert cmd in out
    copy_help = jigsaw.store("copy", "--help").stdout
    for flag in ("--format", "--codec", "--shard", "zarr2", "blosc-lz4"):
        assert flag in copy_help


def test_ls_text_and_json(jigsaw, tmp_path):
    path = tmp_path / "s.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=3, attributes={"title": "t"})
    a = g.create_array("temperature", shape=(4, 6), chunks=(2, 3), dtype="float32", dimension_names=["lat", "lon"])
    a[...] = 1.0
    text = jigsaw.store("ls", path).stdout
    assert "temperature" in text and "float32 [4, 6] (lat, lon)" in text and "chunks [2, 3]" in text
    j = json.loads(jigsaw.store("ls", path, "--json").stdout)
    node = next(n for n in j["nodes"] if n["path"] == "temperature")
    assert node["shape"] == [4, 6] and node["stored_objects"] == 4 and node["stored_bytes"] > 0
    assert j["nodes"][0]["attributes"] == {"title": "t"}


def test_get_slices_and_memory_copy(jigsaw, tmp_path):
    path = tmp_path / "s.zarr"
    data = np.arange(120, dtype="int32").reshape(4, 5, 6)
    zarr.create_array(store=str(path), name="x", data=data, chunks=(3, 2, 4), zarr_format=3)
    np.testing.assert_array_equal(jigsaw.get(path, "x", tmp_path, "1:3,:,-2"), data[1:3, :, -2])
    np.testing.assert_array_equal(jigsaw.get(path, "x", tmp_path, "2"), data[2])
    out = tmp_path / "copy.zarr"
    r = jigsaw.store("copy", path, f"file://{out}", "--format", "zarr2", "--codec", "zstd", "--threads", "1")
    assert "copied x" in r.stdout
    np.testing.assert_array_equal(zarr.open_array(str(out / "x"), mode="r")[...], data)
    v = json.loads(jigsaw.store("verify", out, "--json").stdout)
    assert v["ok"] and v["arrays"] == 1 and v["chunks_checked"] == 2 * 3 * 2


def test_quickstart_runs_as_the_readme_says(jigsaw, tmp_path):
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")  # Open MPI's own allocations outlive MPI_Finalize
    r = subprocess.run(["bash", os.path.join(root, "examples", "quickstart.sh"), str(tmp_path / "qs")], cwd=root,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "qs" / "rank3_t0.npy").exists()
    # The tile store verifies, every chunk read (what verify counted, not only its exit status).
    v = json.loads(jigsaw.store("verify", tmp_path / "qs" / "tiles.zarr", "--json").stdout)
    files = [p for p in (tmp_path / "qs" / "tiles.zarr").rglob("*") if p.is_file()]
    chunks = [p for p in files if p.name not in ("zarr.json", "jigsaw-checksums.json")]
    assert v["ok"] and v["chunks_checked"] == len(chunks) > 0, (v, len(chunks))
    assert v["checksum_record"] and v["objects_checked_against_record"] == len(files) - 1, v  # all but the record
    tile = np.load(tmp_path / "qs" / "rank3_t0.npy")
    assert tile.shape == (34, 33, 32) and np.isfinite(tile).all()
    # The same box as zarr-python reads it from the store, and the channels the README's comment names.
    store = zarr.open_group(str(tmp_path / "qs" / "tiles.zarr"), mode="r")
    np.testing.assert_array_equal(tile, store["data"][0, 35:69, :, 32:64])
    assert list(store["channel"][35:37]) == list(store.attrs["channels"][35:37])
    # It ends in a 4-rank training run whose loss falls, and a checkpoint that verifies.
    assert "jigsaw-train: finished step 60" in r.stdout, r.stdout
    steps = [json.loads(l) for l in (tmp_path / "qs" / "train.jsonl").read_text().splitlines() if '"loss"' in l]
    assert len(steps) == 60 and steps[-1]["loss"] < 0.25 * steps[0]["loss"], (steps[0], steps[-1])
    assert "step-00000060: ok" in r.stdout
    scores = json.loads((tmp_path / "qs" / "scores.json").read_text())
    assert set(scores["channels"]) == {"geopotential_500", "temperature_850", "2m_temperature"}


def test_every_tool_says_its_version_and_commit(jigsaw, tmp_path):
    import re
    import subprocess
    from conftest import BIN_DIR
    commit = subprocess.run(["git", "-C", str(BIN_DIR), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    for tool in ("jigsaw-shard", "jigsaw-train", "jigsaw-rollout", "jigsaw-score", "jigsaw-ckpt", "jigsaw-store",
                 "jigsaw-bench"):
        p = subprocess.run([str(BIN_DIR / tool), "--version"], capture_output=True, text=True)
        assert p.returncode == 0 and re.fullmatch(r"jigsaw \d+\.\d+\.\d+ \([0-9a-f]{12}(-dirty)?\)\n", p.stdout), (tool, p)
        assert not commit or commit in p.stdout, (tool, p.stdout, commit)
    # ... and what the tools write records it.
    jigsaw.shard("synth", tmp_path / "src.zarr", "--grid", "8x16", "--times", "4")
    jigsaw.shard("run", "--source", tmp_path / "src.zarr", "--vars", "t2m", "--end", "2020-01-01", "--start", "2020",
                 "--tiles", "1x1x1", "--out", tmp_path / "t.zarr")
    attrs = json.loads((tmp_path / "t.zarr" / "zarr.json").read_text())["attributes"]["jigsaw"]
    assert attrs["written_by"] == p.stdout.strip() and attrs["plan"]["num_times"] == 4  # a bare --end: its whole day


def test_the_tutorial_runs_as_written(tmp_path):
    """docs/tutorial.md: every command it shows runs, on cfgrib's sample GRIB, and says what the page shows."""
    import re
    import shutil
    import subprocess
    from conftest import BIN_DIR
    from test_grib import cfgrib_sample_data
    root = BIN_DIR.parents[1]
    page = (root / "docs" / "tutorial.md").read_text()
    shutil.copy(cfgrib_sample_data() / "era5-levels-members.grib", tmp_path)
    (tmp_path / "model.json").write_text(re.search(r"```\n(\{\"patch\".*\})\n```", page).group(1))
    blocks = re.findall(r"```\n\$ ([^\n]*)\n(.*?)\n```", page, re.S)
    assert len(blocks) == 8
    env = {**os.environ, "PATH": f"{BIN_DIR}:{os.environ['PATH']}"}
    for cmd, shown in blocks:
        p = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, (cmd, p.stdout + p.stderr)
        first = shown.splitlines()[0]
        # The first line shown, but for what varies from run to run (timings, the commit, the clock).
        pattern = re.sub(r"[0-9]+(?:\\\.[0-9]+)*", r"[0-9.]+", re.escape(re.sub(r"\([0-9a-f]{12}\)", "(COMMIT)", first)))
        pattern = pattern.replace(r"\(COMMIT\)", r"\([0-9a-f]{12}(-dirty)?\)")
        # Sizes and rates change unit with the machine's speed (461 kB, 6.81 MB/s or 610 kB/s).
        pattern = re.sub(r"\[0-9\.\]\+\\ [kMGT]?B", lambda _: r"[0-9.]+\ [kMGT]?B", pattern)
        assert re.search(pattern, (p.stdout + p.stderr).splitlines()[0]), (cmd, first, p.stdout + p.stderr)
