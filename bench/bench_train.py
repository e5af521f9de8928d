#!/usr/bin/env python3
"""jigsaw's training step beside the PyTorch oracle's (tests/train/oracle.py) on the same WeatherMixer
config, threads and batch, in one run: median step seconds of each, the ratio, and jigsaw's step FLOP/s
as a share of its backend's GEMM rate at the step's own shapes (the ceiling, measured by train_step).

  /usr/bin/python3 bench/bench_train.py [--backend cpu|cuda] [--threads 2] [--steps 5] [model flags]

CPU: torch uses `--threads` intra-op threads and jigsaw as many OpenBLAS threads. CUDA: `--precision`
fp32 (both strict float32, TF32 off), tf32 (TF32 tensor cores for both), or bf16 (bfloat16 products with
float32 accumulation: torch.autocast beside jigsaw's cuda:bf16 backend).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "train"))


def torch_step_seconds(a):
    import torch
    from oracle import WeatherMixer, loss_fn, latitude_weights
    torch.set_num_threads(a.threads)
    dev = torch.device(a.backend)
    if a.backend == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16") if a.backend == "cuda" \
        else torch.autocast("cpu", enabled=False)
    h, w = map(int, a.grid.split("x"))
    ph, pw = map(int, a.patch.split("x"))
    m = WeatherMixer(a.channels, h, w, ph, pw, a.dim, a.depth, a.token_hidden, a.channel_hidden).to(dev)
    with torch.no_grad():
        for name, p in m.named_parameters():
            rows = p[..., 0].numel() if name.endswith("token_w1") else p.shape[0]  # [PR, PC, Hs]: T rows
            p.uniform_(-1 / math.sqrt(rows), 1 / math.sqrt(rows))
    lat = [90 - 180 * (i + 0.5) / h for i in range(h)]
    w_lat, w_c = latitude_weights(lat).to(dev), torch.ones(a.channels, device=dev)
    x0 = torch.randn(a.batch, a.channels, h, w, device=dev)
    x1 = x0 + 0.1 * torch.randn(a.batch, a.channels, h, w, device=dev)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95))

    def step():
        opt.zero_grad()
        with autocast:
            loss = loss_fn(m, x0, x1, w_lat, w_c)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        return float(loss.detach())  # waits for the step, as jigsaw's returned loss does

    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"], help="CUDA products")
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bench", "train_step"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--grid", default="32x64")
    p.add_argument("--patch", default="4x4")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--token-hidden", type=int, default=256)
    p.add_argument("--channel-hidden", type=int, default=1024)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--micro-batch", type=int, default=0, help="jigsaw: samples through the model at once (0: all)")
    p.add_argument("--recompute", action="store_true", help="jigsaw: recompute activations in the backward")
    p.add_argument("--no-peer", action="store_true", help="time jigsaw alone (no PyTorch step)")
    p.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    a = p.parse_args()
    backend = a.backend if a.backend == "cpu" or a.precision == "fp32" else f"cuda:{a.precision}"
    flags = ["--backend", backend, "--threads", str(a.threads), "--steps", str(a.steps), "--warmup", str(a.warmup),
             "--channels", str(a.channels), "--grid", a.grid, "--patch", a.patch, "--dim", str(a.dim),
             "--depth", str(a.depth), "--token-hidden", str(a.token_hidden), "--channel-hidden",
             str(a.channel_hidden), "--batch", str(a.batch), "--micro-batch", str(a.micro_batch),
             "--recompute", "1" if a.recompute else "0"]
    ours = json.loads(subprocess.run([a.bin] + flags, check=True, capture_output=True, text=True).stdout)
    theirs = float("nan") if a.no_peer else torch_step_seconds(a)
    result = {"backend": a.backend, "threads": a.threads, "jigsaw_step_s": ours["step_s"], "torch_step_s": theirs,
              "speedup": theirs / ours["step_s"], "jigsaw_step_flop_per_s": ours["step_flop_per_s"],
              "gemm_ceiling_flop_per_s": ours["gemm_ceiling_flop_per_s"],
              "share_of_ceiling": ours["share_of_ceiling"], "peak_bytes": ours["peak_bytes"],
              "peak_over_needed": ours["peak_over_needed"], "config": vars(a)}
    if a.json:
        print(json.dumps(result))
        return
    print(f"WeatherMixer step, {a.backend} {a.precision}, {a.threads} threads, batch {a.batch}: C={a.channels} grid {a.grid} "
          f"patch {a.patch} D={a.dim} L={a.depth} Hs={a.token_hidden} Hf={a.channel_hidden}")
    print(f"  PyTorch oracle  {theirs * 1e3:9.2f} ms/step")
    print(f"  jigsaw          {ours['step_s'] * 1e3:9.2f} ms/step   {theirs / ours['step_s']:.2f}x PyTorch")
    print(f"  jigsaw memory   peak {ours['peak_bytes'] / 1e6:.1f} MB through the backend = "
          f"{ours['peak_over_needed']:.2f}x weights, gradients and Adam moments ({ours['parameter_state_bytes'] / 1e6:.1f} MB) "
          f"+ activations ({ours['activation_bytes'] / 1e6:.1f} MB)")
    print(f"  jigsaw step     {ours['step_flop_per_s'] / 1e9:9.1f} GFLOP/s = {ours['share_of_ceiling'] * 100:.0f}% of "
          f"the GEMM ceiling at the step's shapes ({ours['gemm_ceiling_flop_per_s'] / 1e9:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
