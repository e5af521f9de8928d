#!/usr/bin/env bash
# jigsaw-train on several machines with Open MPI: one rank per GPU (or per CPU socket), a hostfile naming
# the machines and their slots. Every machine must see the same paths (or URLs) for the store, the model
# config and the checkpoint root: a shared file system, or s3:// URLs for the store and checkpoints.
#
#   examples/launch_mpirun.sh HOSTFILE RANKS MESH STORE CONFIG CKPT [jigsaw-train flags...]
#   examples/launch_mpirun.sh hosts.txt 8 domain=2,tensor=2 s3://bucket/era5.zarr model.json s3://bucket/ck \
#       --backend cuda:bf16 --steps 100000 --ckpt-every 1000 --resume
#
# hosts.txt, one line per machine: "gpu-node-01 slots=4". RANKS = replicas x s^2 for MESH domain=s,tensor=s
# (8 ranks on a 2x2 mesh: 2 data-parallel replicas). Each rank takes the GPU of its place among the ranks of
# its machine. --resume makes the script safe to resubmit after a preemption: it continues from LATEST.
set -euo pipefail
[ $# -ge 6 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
HOSTFILE=$1 RANKS=$2 MESH=$3 STORE=$4 CONFIG=$5 CKPT=$6
shift 6
BIN=${JIGSAW_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/cli}
# --map-by slot fills each machine's slots in turn; --bind-to none leaves threads free for the loader.
exec mpirun --hostfile "$HOSTFILE" -np "$RANKS" --map-by slot --bind-to none ${JIGSAW_MPIRUN_FLAGS:-} \
  "$BIN/jigsaw-train" --data "$STORE" --config "$CONFIG" --mesh "$MESH" --ckpt "$CKPT" "$@"
