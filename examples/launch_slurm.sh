#!/usr/bin/env bash
# jigsaw-train under SLURM: submit with sbatch; srun starts one rank per task (one task per GPU).
#
#   sbatch examples/launch_slurm.sh STORE CONFIG CKPT [jigsaw-train flags...]
#
# Two nodes of 4 GPUs each: 8 ranks = 2 replicas of a 2x2 mesh. Change MESH and the #SBATCH lines together
# (ntasks = replicas x s^2). srun needs Open MPI built with PMIx (Debian's is); the store, config and
# checkpoint root must be visible from every node (a shared file system or s3:// URLs). The job resubmits
# safely: --resume continues from the checkpoint root's LATEST.
#SBATCH --job-name=jigsaw-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
STORE=$1 CONFIG=$2 CKPT=$3
shift 3
MESH=${MESH:-domain=2,tensor=2}
BIN=${JIGSAW_BIN:-$SLURM_SUBMIT_DIR/build/cli}
# SIGTERM 120 s before the time limit (--signal): jigsaw-train saves a checkpoint and exits 0.
exec srun --mpi=pmix --kill-on-bad-exit=1 "$BIN/jigsaw-train" --data "$STORE" --config "$CONFIG" --mesh "$MESH" \
  --ckpt "$CKPT" --resume --backend cuda:bf16 "$@"
