#!/usr/bin/env bash
# Quickstart: generate a small synthetic ERA5-like source (WeatherBench2 layout), plan and write a
# tile-aligned store for a 4-way Jigsaw grid (1x2x2), inspect and verify it, read one rank's tile back, then
# train a tiny WeatherMixer on it with 4 ranks (a 2x2 Jigsaw mesh) and watch the loss fall.
# Run from the repository root after scripts/setup.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/jigsaw-quickstart}
BIN=${JIGSAW_BIN_DIR:-build/cli}
rm -rf "$OUT" && mkdir -p "$OUT"
VARS=geopotential,temperature,u_component_of_wind,v_component_of_wind,specific_humidity,2m_temperature,mean_sea_level_pressure,10m_u_component_of_wind,10m_v_component_of_wind
SEL=(--source "$OUT/era5.zarr" --vars "$VARS" --start 2020-01-01T00 --end 2020-01-04T18 --step 6h --tiles 1x2x2)

$BIN/jigsaw-shard synth "$OUT/era5.zarr" --grid 33x64 --times 16
$BIN/jigsaw-shard plan "${SEL[@]}"
$BIN/jigsaw-shard run "${SEL[@]}" --out "$OUT/tiles.zarr" --time-per-shard 4
$BIN/jigsaw-shard info "$OUT/tiles.zarr"
$BIN/jigsaw-shard verify "$OUT/tiles.zarr"
# Rank 3 of 1x2x2 owns tile (i=0, j=1, k=1): channels 35..68, all latitudes, longitudes 32..63.
$BIN/jigsaw-store get "$OUT/tiles.zarr" data --slice "0,35:69,:,32:64" --out "$OUT/rank3_t0.npy"
echo "rank 3's tile of the first sample: $OUT/rank3_t0.npy"

# Train: 4 processes, one per tile (mesh domain=2,tensor=2 = the store's 1x2x2 grid), 60 steps on the first
# three days, validated on the fourth against persistence; a checkpoint every 20 steps.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np 4 --oversubscribe $BIN/jigsaw-train --data "$OUT/tiles.zarr" --mesh domain=2,tensor=2 \
  --config examples/model_tiny.json --steps 60 --batch-size 2 --blas-threads 1 \
  --train-end 2020-01-03T18 --val-start 2020-01-04T00 --val-end 2020-01-04T18 \
  --ckpt "$OUT/ckpt" --ckpt-every 20 --log "$OUT/train.jsonl"
/usr/bin/python3 - "$OUT/train.jsonl" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
print("loss by step:", ", ".join(f"{r['step']}: {r['loss']:.4f}" for r in steps[::10]))
PY
$BIN/jigsaw-ckpt verify "$OUT/ckpt"

# Forecast a day ahead from the last checkpoint on the same 4 ranks, and score it beside persistence.
mpirun -np 4 --oversubscribe $BIN/jigsaw-rollout --ckpt "$OUT/ckpt" --data "$OUT/tiles.zarr" --mesh domain=2,tensor=2 \
  --init 2020-01-04T00 --lead 18h --out "$OUT/forecast.zarr" --blas-threads 1
$BIN/jigsaw-score "$OUT/forecast.zarr" --truth "$OUT/tiles.zarr" --channels z500,t850,t2m --json-out "$OUT/scores.json"
