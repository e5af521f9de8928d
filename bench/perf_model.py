#!/usr/bin/env python3
"""A performance model of a WeatherMixer training step with Jigsaw parallelism: step time and weak-scaling
efficiency on s x s meshes times data-parallel replicas, from
  - the GEMM FLOPs each rank does (the closed form of the trainer's products, as tests/train/oracle_check.cc
    checks them against the trainer's own counters),
  - the bytes each rank exchanges in the block products (the same closed form: a broadcast root sends its
    block to s - 1 ranks, a reduce sender its partial product) and in the data-parallel gradient all-reduce
    (ring: 2 (r - 1) / r of the rank's gradient bytes),
  - a measured GEMM rate and link bandwidths (NVLink inside a node for the mesh, InfiniBand between nodes
    for the replicas).
Two bounds: no overlap (compute + communication) and full overlap (the larger of the two); and the schedule
the trainer runs: each product's s steps pipelined (BlockMatmul's overlap: step q + 1's transfer beside step
q's GEMM, so a product takes one step's transfer + (s - 1) times the larger of a step's GEMM and transfer +
one step's GEMM); the data-parallel sums beside the backward (each parameter's started once its gradient is
final), except the embedding's, final only at the backward's end, whose sum is the step's tail.

  python3 bench/perf_model.py [--gemm-tflops 200] [--nvlink-gbs 450] [--ib-gbs 50] [--bytes-per-element 2]
                              [--io-gbs 2] [--io-share-tiles S] [--io-share-whole S] [--stored-ratio R]
                              [--tile-imbalance F]

The defaults: the bf16 rate cuBLAS reached at this model's own GEMM shapes on an H200 (bench/RESULTS.md:
~200 TFLOP/s for tokens of 1152; larger token counts run nearer 790), an H100/H200 node's NVLink (450 GB/s
each way per GPU) and one 400 Gb/s InfiniBand port per GPU. The paper's 256-GPU run is the comparison:
9-11 PFLOP/s and 68-72% weak-scaling efficiency (A100s, TF32).

The I/O term: each GPU reads its step's data through a link of --io-gbs, of which a reader uses the share that
bench_io_scaling.py measured (behind 8 MB/s links on a 2-core machine: at GB/s a reader's decoding may bound it
first; there the peer's 9 ranks decoded 237 MB/s in all on 2 cores, jigsaw's 506 MB/s); jigsaw reads the rank's tile of each sample (1/s^2 of it, times the largest
tile's excess over the mean), whole-sample loaders the whole sample. The loader prefetches, so a step takes the larger of its compute time and its read time.
"""
import argparse

# The shares of a per-rank link's bandwidth that the readers used in bench_io_scaling.py (bench/RESULTS.md),
# and the stored size of its synthetic ERA5 sample per float32 byte.
IO_SHARE_TILES = 0.99
IO_SHARE_WHOLE = 0.95
STORED_RATIO = 0.66
TILE_IMBALANCE = 1.12  # the largest tile's stored bytes over the mean tile's (2x2; 1.15 at 3x3)


def products(T, D, F, Hs, Hf, L, B, phases=False):
    """(kind, M, K, N) of a training step on B samples at once (the trainer's batched products: the samples'
    tokens are the rows, T B, of every product but the token mix's, whose columns are D B); kinds as
    block_matmul.h: NN, NT, TN. The weights' blocks are exchanged once per product, whatever B. With
    `phases`, (phase, kind, M, K, N), phase "forward" or "backward"."""
    TB, DB = T * B, D * B
    f, b = "forward", "backward"
    p = [(f, "NN", TB, F, D), (f, "NN", TB, D, F), (b, "TN", D, TB, F), (b, "NT", TB, F, D), (b, "TN", F, TB, D)]
    for _ in range(L):
        p += [(f, "TN", Hs, T, DB), (f, "TN", T, Hs, DB), (f, "NN", TB, D, Hf), (f, "NN", TB, Hf, D),
              (b, "TN", Hf, TB, D), (b, "NT", TB, D, Hf), (b, "TN", D, TB, Hf), (b, "NT", TB, Hf, D),
              (b, "NT", Hs, DB, T), (b, "NN", Hs, T, DB), (b, "NT", T, DB, Hs), (b, "NN", T, Hs, DB)]
    return p if phases else [q[1:] for q in p]


def product_costs(T, D, F, Hs, Hf, L, s, elem, B=1, phase=None):
    """(GEMM FLOPs, bytes sent) per rank of each product of a step (of one phase, when given)."""
    costs = []
    for ph, kind, m, k, n in products(T, D, F, Hs, Hf, L, B, phases=True):
        if phase and ph != phase:
            continue
        # Broadcast blocks travel as GEMM operands (`elem` bytes: 2 with bf16 products), partial sums in float32.
        broadcast, reduced = {"NN": (m * k + k * n, 0), "NT": (n * k, m * n), "TN": (k * m, m * n)}[kind]
        costs.append((2.0 * m * k * n / s ** 2, (s - 1) * (elem * broadcast + 4 * reduced) / s ** 2))
    return costs


def per_rank(T, D, F, Hs, Hf, L, s, elem, B=1):
    costs = product_costs(T, D, F, Hs, Hf, L, s, elem, B)
    params = 2 * F * D + L * (2 * T * Hs + 2 * D * Hf)
    return sum(f for f, _ in costs), sum(b for _, b in costs), params / s ** 2


def pipelined_seconds(costs, s, flop_rate, byte_rate):
    """The products' time as BlockMatmul overlaps them: s steps each, step q + 1's transfer beside step q's
    GEMM (one step alone on a 1x1 mesh: no transfer)."""
    total = 0.0
    for flops, bytes_ in costs:
        c, m = flops / flop_rate / s, bytes_ / byte_rate / s
        total += m + (s - 1) * max(c, m) + c if s > 1 else c
    return total


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, default=69)
    p.add_argument("--grid", default="720x1440")
    p.add_argument("--patch", type=int, default=60)
    p.add_argument("--dim", type=int, default=4320)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--token-hidden", type=int, default=576)
    p.add_argument("--channel-hidden", type=int, default=17280)
    p.add_argument("--batch", type=int, default=1, help="samples per replica per step")
    p.add_argument("--mesh", type=int, default=2, help="s: the s x s model-parallel mesh")
    p.add_argument("--gemm-tflops", type=float, default=200.0)
    p.add_argument("--nvlink-gbs", type=float, default=450.0)
    p.add_argument("--ib-gbs", type=float, default=50.0)
    p.add_argument("--bytes-per-element", type=int, default=2,
                   help="a broadcast block's element: 2 with bf16 products, 4 with float32 (partial sums: 4)")
    p.add_argument("--io-gbs", type=float, default=2.0,
                   help="each GPU's read bandwidth from the data's storage, GB/s (its share of a node's NICs or "
                        "of a parallel file system)")
    p.add_argument("--io-share-tiles", type=float, default=IO_SHARE_TILES,
                   help="the share of that bandwidth jigsaw's tile reads use (bench_io_scaling.py measures it)")
    p.add_argument("--io-share-whole", type=float, default=IO_SHARE_WHOLE,
                   help="the share whole-sample reads (xarray + zarr in a DataLoader) use (bench_io_scaling.py)")
    p.add_argument("--stored-ratio", type=float, default=STORED_RATIO,
                   help="stored bytes per float32 byte of a sample (its compression; bench_io_scaling.py prints it)")
    p.add_argument("--tile-imbalance", type=float, default=TILE_IMBALANCE,
                   help="the largest tile's stored bytes over the mean tile's: channel groups compress unequally, and "
                        "a group moves at the pace of its rank with the most to read (bench_io_scaling.py)")
    return p


def model(a):
    """The model's sizes and, per replica count, the step's terms in seconds: no overlap, full overlap, as built,
    and each rank's I/O per step with tile reads and with whole-sample reads."""
    h, w = map(int, a.grid.split("x"))
    T, F = (h // a.patch) * (w // a.patch), a.channels * a.patch ** 2
    s = a.mesh
    flops, mesh_bytes, params = per_rank(T, a.dim, F, a.token_hidden, a.channel_hidden, a.depth, s,
                                         a.bytes_per_element, a.batch)
    compute = flops / (a.gemm_tflops * 1e12)
    mesh_comm = mesh_bytes / (a.nvlink_gbs * 1e9)
    built = {ph: pipelined_seconds(product_costs(T, a.dim, F, a.token_hidden, a.channel_hidden, a.depth, s,
                                                 a.bytes_per_element, a.batch, ph), s, a.gemm_tflops * 1e12,
                                   a.nvlink_gbs * 1e9) for ph in ("forward", "backward")}
    embed_share = a.dim * F / s ** 2 / params  # the embedding's gradient: summed after the backward
    # A step reads `batch` samples per replica: the rank's tile of each (jigsaw), or each whole sample.
    sample_bytes = a.channels * h * w * 4 * a.stored_ratio
    io_tiles = a.batch * sample_bytes / s ** 2 * (a.tile_imbalance if s > 1 else 1) / (a.io_gbs * 1e9 * a.io_share_tiles)
    io_whole = a.batch * sample_bytes / (a.io_gbs * 1e9 * a.io_share_whole)
    rows = []
    for r in (1, 2, 4, 8, 16, 32, 64):
        dp = 2 * (r - 1) / r * params * 4 / (a.ib_gbs * 1e9) if r > 1 else 0.0
        comm = mesh_comm + dp
        lo, hi = max(compute, comm), compute + comm
        mid = built["forward"] + max(built["backward"], (1 - embed_share) * dp) + embed_share * dp
        rows.append({"gpus": r * s * s, "replicas": r, "no_overlap": hi, "overlap": lo, "built": mid,
                     "io_tiles": io_tiles, "io_whole": io_whole})
    return {"T": T, "F": F, "flops": flops, "mesh_bytes": mesh_bytes, "params": params,
            "sample_bytes": sample_bytes, "rows": rows}


def main():
    a = parser().parse_args()
    m = model(a)
    s, flops = a.mesh, m["flops"]
    print(f"WeatherMixer D={a.dim}, {a.depth} blocks, {m['T']} tokens, F={m['F']}; mesh {s}x{s}, batch {a.batch} "
          f"per replica")
    print(f"per rank per step: {flops / 1e12:.2f} TFLOP, {m['mesh_bytes'] / 1e9:.2f} GB exchanged in the block "
          f"products, {m['params'] * 4 / 1e9:.2f} GB of float32 gradients")
    print(f"{'GPUs':>6} {'replicas':>8} {'step s (no overlap)':>20} {'step s (overlap)':>17} {'PFLOP/s':>16} "
          f"{'weak scaling':>14} {'as built: s':>12} {'PFLOP/s':>8} {'scaling':>8}")
    base = None
    for row in m["rows"]:
        lo, hi, mid, gpus = row["overlap"], row["no_overlap"], row["built"], row["gpus"]
        base = base or (lo, hi, mid)
        print(f"{gpus:>6} {row['replicas']:>8} {hi:>20.4f} {lo:>17.4f} "
              f"{gpus * flops / hi / 1e15:>7.2f}-{gpus * flops / lo / 1e15:<7.2f} "
              f"{100 * base[1] / hi:>5.0f}-{100 * base[0] / lo:<5.0f}% {mid:>12.4f} {gpus * flops / mid / 1e15:>8.2f} "
              f"{100 * base[2] / mid:>7.0f}%")
    print("the paper, 256 A100s (TF32): 9-11 PFLOP/s, 68-72% weak-scaling efficiency")

    # I/O: the loader prefetches, so a step takes the larger of its compute-and-communication time and the
    # time its rank needs to read the step's data; I/O bounds the run where the second is larger.
    print(f"\nI/O: {a.io_gbs:g} GB/s per GPU; a sample is {m['sample_bytes'] / 1e6:.0f} MB stored "
          f"({a.stored_ratio:.2f} of float32); jigsaw's tile reads use {100 * a.io_share_tiles:.0f}% of the link, "
          f"whole-sample reads {100 * a.io_share_whole:.0f}% (bench_io_scaling.py)")
    print(f"{'GPUs':>6} {'as built: s':>12} {'tile reads: s':>14} {'step s':>8} {'PFLOP/s':>8} {'bound':>8} "
          f"{'whole reads: s':>15} {'step s':>8} {'PFLOP/s':>8} {'bound':>8}")
    for row in m["rows"]:
        cells = []
        for io in (row["io_tiles"], row["io_whole"]):
            step = max(row["built"], io)
            cells.append(f"{io:>8.4f} {step:>8.4f} {row['gpus'] * flops / step / 1e15:>8.2f} "
                         f"{'I/O' if io > row['built'] else 'step':>8}")
        print(f"{row['gpus']:>6} {row['built']:>12.4f} {cells[0]:>23} {cells[1]:>24}")
    big = m["rows"][-1]
    for name, share, io in (("tile reads", a.io_share_tiles, big["io_tiles"]),
                            ("whole-sample reads", a.io_share_whole, big["io_whole"])):
        need = io * a.io_gbs / big["built"]
        print(f"{big['gpus']} GPUs, {name}: I/O stops bounding the step above {need:.2f} GB/s per GPU")


if __name__ == "__main__":
    main()
