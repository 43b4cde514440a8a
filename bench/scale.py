"""How a crossbar training step scales with the array: forward, backward, mixed-precision update.

    python bench/scale.py [--sizes 256,512,1024,2048,4096] [--batch 64] [--steps 5] [--warmup 1]
                          [--threads 2] [--device cpu|cuda] [--model pcm-nandakumar2018]
                          [--no-ten-million] [--out bench/results/scale.json]

For every size n, one n×n weight matrix on differential pairs (``2·n²`` devices) of
``--model`` (an :class:`pcmsim.analog.AnalogLinear` with the default periphery, read noise and
drift) takes training steps of the hardware in the loop, exactly as in a network:

1. forward: ``crossbar.mvm`` of a batch of ``--batch`` binary input vectors (10 % ones, as
   spikes) at the clock's time;
2. backward: the digital products ``grad_x = grad_y·W_est`` and ``grad_W = grad_yᵀ·x``;
3. update: ``HardwareInTheLoop.step`` with SGD and the ``mixed-precision`` scheme (χ, SET
   pulses through the device model, refresh of saturated pairs every step, re-read of the
   weight estimate); the clock advances as in training.

The devices start from a few random SET pulses each (not program-and-verify: that would time the
initial programming). Each size runs in its own subprocess, so its peak memory is its own:
``VmHWM`` of ``/proc/self/status`` after the run minus ``VmRSS`` before the crossbar was made
(CPU), or ``torch.cuda.max_memory_allocated`` (CUDA), per device. Also reported: the bytes of
device state per device (``DeviceState``) and the bytes of every tensor the layer, the scheme
and the crossbar's read cache hold after a step, per device.

Printed and saved: median time per step (and per phase), device-pulses per second (SET pulses
the scheme applied per second), devices stepped per second, memory per device, and the fitted
exponent of time per step against the device count (log-log least squares: 1 is linear). With
``--ten-million`` (the default) a 2237×2237 pair array (10,008,338 devices, the first square
pair array of at least 10⁷ devices) is stepped too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEN_MILLION_SIDE = 2237  # 2·2237² = 10,008,338 ≥ 10⁷ devices (2236 gives 9,999,392)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=None,
                    help="comma-separated n of the n×n pair arrays (default 256,...,4096; on cuda up to 16384)")
    ap.add_argument("--batch", type=int, default=64, help="input vectors per step (default 64)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per size (median; default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default cpu)")
    ap.add_argument("--model", default="pcm-nandakumar2018", help="registered device model")
    ap.add_argument("--lr", type=float, default=0.02, help="SGD learning rate (default 0.02)")
    ap.add_argument("--weight-scale", type=float, default=0.05, help="weight units per µS (default 0.05)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ten-million", action=argparse.BooleanOptionalAction, default=True,
                    help=f"also step a {TEN_MILLION_SIDE}×{TEN_MILLION_SIDE} pair array (≥ 10⁷ devices)")
    ap.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "keep"],
                    help="OMP_WAIT_POLICY for the runs (default passive: idle threads sleep)")
    ap.add_argument("--out", default="bench/results/scale.json", help="JSON output file")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # one size, JSON on stdout
    args = ap.parse_args(argv)
    if args.sizes is None:
        cuda = args.device.startswith("cuda")
        args.sizes = "256,512,1024,2048,4096,8192,16384" if cuda else "256,512,1024,2048,4096"
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes {args.sizes!r}: expected comma-separated integers")
    if not args.size_list or min(args.size_list) < 1 or args.batch < 1 or args.steps < 1 or args.threads < 1:
        ap.error("--sizes, --batch, --steps and --threads must be ≥ 1")
    return args


def held_bytes(layer: Any, hil: Any) -> dict[str, int]:
    """Bytes of the tensors held between steps: device state, read cache, digital copies."""
    xb = layer.crossbar
    seen: set[int] = set()

    def nbytes(tensors: list[Any]) -> int:
        total = 0
        for t in tensors:
            if t is None or t.data_ptr() in seen:
                continue
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
        return total

    state = nbytes([getattr(xb.state, f) for f in xb.state.FIELDS])
    cache = xb.reader.cache
    cache_b = nbytes([cache.g_drift_us, cache.g_eff_us, cache.g_tiles, cache.var_tiles] if cache else [])
    digital = nbytes([layer.weight.data, layer.weight.grad] + list(getattr(hil.scheme, "chi", [])))
    opt = nbytes([v for st in hil.optimizer.state.values() for v in st.values() if hasattr(v, "data_ptr")
                  and getattr(v, "dim", lambda: 0)() > 0])
    return {"device_state": state, "read_cache": cache_b, "digital_copies": digital, "optimizer": opt}


def run_one(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Build one n×n layer, take warm-up and timed steps; the result as plain data."""
    sys.path.insert(0, str(ROOT))
    import torch
    from _benchutil import median, proc_status_bytes, reset_peak_rss
    from torch import nn

    from hardware_in_loop.clock import Clock
    from hardware_in_loop.updater import HardwareInTheLoop
    from pcmsim.analog import AnalogLinear
    from pcmsim.crossbar import CrossbarConfig

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    gen = torch.Generator(device=dev).manual_seed(args.seed)
    x = (torch.rand(args.batch, n, generator=gen, device=dev) < 0.1).float().requires_grad_(True)
    grad_y = torch.randn(args.batch, n, generator=gen, device=dev) / math.sqrt(args.batch)
    # warm-up on a tiny layer first: kernels, thread pools and allocator arenas count to the process,
    # not to the devices of the array measured below
    tiny = AnalogLinear(8, 8, bias=False, device_model=args.model, seed=args.seed, device=dev, program=False)
    tiny_hil = HardwareInTheLoop(nn.Sequential(tiny), torch.optim.SGD(tiny.parameters(), lr=args.lr),
                                 "mixed-precision", clock=Clock())
    tiny(x[:, :8]).sum().backward()
    tiny_hil.step()
    del tiny, tiny_hil
    x.grad = None
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
        base_alloc = torch.cuda.memory_allocated(dev)
    rss0 = proc_status_bytes("VmRSS")
    peak_reset = reset_peak_rss()

    t_build = time.perf_counter()
    clock = Clock()
    config = CrossbarConfig(weight_scale=args.weight_scale)
    layer = AnalogLinear(n, n, bias=False, device_model=args.model, config=config, seed=args.seed, device=dev,
                         t_s=clock.now_s, program=False)
    xb = layer.crossbar
    counts = torch.randint(0, 4, (2, n, n), generator=gen, device=dev, dtype=torch.int32)
    xb.apply_pulses(counts[0], counts[1], clock.now_s)  # a spread of conductances to start from
    del counts
    layer.sync_weight()
    model = nn.Sequential(layer)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    hil = HardwareInTheLoop(model, opt, "mixed-precision", clock=clock, generator=gen)
    sync()
    build_s = time.perf_counter() - t_build
    if cuda:  # the peak of the steps, not of building the layer (the state is held throughout)
        torch.cuda.reset_peak_memory_stats(dev)
    else:
        peak_reset = reset_peak_rss() and peak_reset

    phases: dict[str, list[float]] = {"forward": [], "backward": [], "update": [], "step": []}
    pulses: list[int] = []
    for i in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        hil.set_time(clock.now_s)
        y = model(x)
        sync()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        x.grad = None
        y.backward(grad_y)
        clock.forward_pass(1)
        sync()
        t2 = time.perf_counter()
        stats = hil.step()
        clock.batch_done()
        sync()
        t3 = time.perf_counter()
        if i >= args.warmup:
            for k, v in (("forward", t1 - t0), ("backward", t2 - t1), ("update", t3 - t2), ("step", t3 - t0)):
                phases[k].append(v)
            pulses.append(stats.pulses_set)
    del y
    n_dev = xb.n_devices
    held = held_bytes(layer, hil)
    out: dict[str, Any] = {
        "n": n, "devices": n_dev, "batch": args.batch, "device": str(dev), "threads": torch.get_num_threads(),
        "build_s": build_s,
        **{f"{k}_s": median(v) for k, v in phases.items()},
        "step_s_all": phases["step"],
        "pulses_per_step": median([float(p) for p in pulses]),
        "device_pulses_per_s": sum(pulses) / sum(phases["step"]),
        "devices_per_s": n_dev / median(phases["step"]),
        "state_bytes_per_device": xb.state.bytes_per_device,
        "held_bytes_per_device": {k: v / n_dev for k, v in held.items()},
        "held_bytes_per_device_total": sum(held.values()) / n_dev,
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev) - base_alloc
        out["peak_bytes_per_device"] = peak / n_dev
        out["peak_bytes"] = peak
        out["peak_method"] = "torch.cuda.max_memory_allocated"
    else:
        hwm = proc_status_bytes("VmHWM")
        if hwm is not None and rss0 is not None:
            out["peak_bytes"] = hwm - rss0
            out["peak_bytes_per_device"] = (hwm - rss0) / n_dev
            out["peak_method"] = "VmHWM - VmRSS before" + ("" if peak_reset else " (peak not resettable)")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_one(args, args.child)))
        return 0
    if args.omp_wait_policy != "keep":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    sys.path.insert(0, str(ROOT))
    import torch
    from _benchutil import loglog_slope, machine_info, write_json

    torch.set_num_threads(args.threads)
    meta = machine_info(torch)
    print(f"{meta['cpu_model']}, {meta['cpu_count']} cores, {(meta['mem_total_bytes'] or 0) / 2**30:.1f} GiB, "
          f"torch {meta['torch']}, {args.threads} threads, device {args.device}, model {args.model}, "
          f"batch {args.batch}")
    sizes = list(args.size_list)
    if args.ten_million and TEN_MILLION_SIDE not in sizes:
        sizes.append(TEN_MILLION_SIDE)
    sizes.sort()
    header = (f"{'n×n pairs':>11s} {'devices':>11s} {'s/step':>8s} {'fwd':>7s} {'bwd':>7s} {'update':>7s} "
              f"{'pulses/s':>9s} {'devices/s':>9s} {'peak B/dev':>10s} {'held B/dev':>10s} {'state B/dev':>11s}")
    print(header)
    print("-" * len(header))
    rows: list[dict[str, Any]] = []
    failed: dict[int, str] = {}
    for n in sizes:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), "--batch", str(args.batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
               "--device", args.device, "--model", args.model, "--lr", str(args.lr),
               "--weight-scale", str(args.weight_scale), "--seed", str(args.seed)]
        # a fixed mmap threshold: glibc then returns every freed large block to the system, so that the
        # resident set follows the live tensors and its peak is the step's (not the heap's history)
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072")}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        if proc.returncode != 0:
            failed[n] = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            print(f"{n:>5d}×{n:<5d} failed: {failed[n]}", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["ten_million"] = n == TEN_MILLION_SIDE
        rows.append(r)
        print(f"{n:>5d}×{n:<5d} {r['devices']:11,d} {r['step_s']:8.4f} {r['forward_s']:7.4f} {r['backward_s']:7.4f} "
              f"{r['update_s']:7.4f} {r['device_pulses_per_s']:9.2e} {r['devices_per_s']:9.2e} "
              f"{r.get('peak_bytes_per_device', float('nan')):10.1f} {r['held_bytes_per_device_total']:10.1f} "
              f"{r['state_bytes_per_device']:11d}", flush=True)
    fit_rows = [r for r in rows if r["n"] in args.size_list]
    dev_counts = [float(r["devices"]) for r in fit_rows]
    slope_all = loglog_slope(dev_counts, [r["step_s"] for r in fit_rows])
    big = [r for r in fit_rows if r["n"] >= 1024]
    slope_big = loglog_slope([float(r["devices"]) for r in big], [r["step_s"] for r in big])
    phase_slopes = {k: loglog_slope(dev_counts, [r[f"{k}_s"] for r in fit_rows]) for k in ("forward", "backward",
                                                                                            "update")}
    meta["loadavg_end"] = list(os.getloadavg())
    print(f"time per step ∝ devices^{slope_all:.3f} over {len(fit_rows)} sizes"
          + (f"; ∝ devices^{slope_big:.3f} for n ≥ 1024" if len(big) >= 2 else "")
          + "  (phases: " + ", ".join(f"{k} {v:.2f}" for k, v in phase_slopes.items()) + ")")
    ten = next((r for r in rows if r["ten_million"]), None)
    if ten is not None:
        print(f"10⁷ devices: {ten['n']}×{ten['n']} pairs = {ten['devices']:,} devices step in {ten['step_s']:.3f} s, "
              f"peak {ten.get('peak_bytes', float('nan')) / 2**30:.2f} GiB "
              f"({ten.get('peak_bytes_per_device', float('nan')):.1f} B/device) of "
              f"{(meta['mem_total_bytes'] or 0) / 2**30:.1f} GiB")
    config = {k: getattr(args, k) for k in ("batch", "steps", "warmup", "threads", "device", "model", "lr",
                                             "weight_scale", "seed", "omp_wait_policy")}
    config["sizes"] = args.size_list
    config["command"] = "python bench/scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_json(Path(args.out), {"meta": meta, "config": config, "results": rows, "failed": failed,
                                "slope_all": slope_all, "slope_n_ge_1024": slope_big, "phase_slopes": phase_slopes})
    print(f"wrote {args.out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
