"""Training-step time of the image tasks' networks under each precision and memory format, on this
machine: one row per (network, precision, memory format), all measured in the same process, so
the rows compare with each other (absolute times on a shared machine are noise).

What `--precision auto` picks is printed at the top: bf16 autocast on CUDA and on a CPU with
native bf16 (oneDNN: AVX512-BF16 or AMX), fp32 elsewhere.

    python benchmarks/bench_precision.py                       # every network, 2 threads
    python benchmarks/bench_precision.py --nets mnist-full --steps 20 --threads 1
    python benchmarks/bench_precision.py --allocators --nets cifar10 --batch 2000 --steps 5
    python benchmarks/bench_precision.py --ceiling --threads 2

`--allocators` times the precision `auto` picks, channels_last, under glibc's default malloc and
then inside exoml's setting (toolkit.train.reuse_freed_memory, which `exoml run` applies to the
CPU runs of tasks with steady shapes: cifar10, cifar100, imdb), in that order in one process: glibc
gives each allocation over 32 MB a fresh mmap that the kernel page-faults in on first touch.

`--ceiling` prints the arithmetic rate (TFLOP/s) of two big kernels in that precision, a 4096x4096
matmul and a 3x3 convolution of 256 channels on 16x16 maps: about the most a network's step can
reach on this machine, to set beside a recipe's FLOP per second.
"""
from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
import torch.nn as nn


def nets():
    from exoml.tasks.vision import cifar10, fashion_mnist, mnist
    return {  # name: (builder, batch, image shape)
        "mnist-cpu": (lambda: mnist.build_model(mnist.TASK.settings("cpu")), 128, (1, 28, 28)),
        "mnist-full": (lambda: mnist.build_model(mnist.TASK.settings("full")), 128, (1, 28, 28)),
        "fashion-mnist-cpu": (lambda: fashion_mnist.build_model(fashion_mnist.TASK.settings("cpu")), 512,
                               (1, 28, 28)),
        "fashion-mnist-full": (lambda: fashion_mnist.build_model(fashion_mnist.TASK.settings("full")), 512,
                               (1, 28, 28)),
        "cifar10": (lambda: cifar10.build_model(cifar10.TASK.settings("cpu")), 256, (3, 32, 32)),
    }


def bench_step(build, batch: int, shape, precision: str, channels_last: bool, steps: int, device,
               stats: dict | None = None) -> float:
    """Seconds per training step (forward, loss, backward, AdamW step), median of `steps` after 3 warm-ups.
    `stats` (if given) receives the timed steps' page faults per step and the kernel's share of CPU time."""
    import resource
    from exoml.toolkit.train import autocast
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build().to(device, memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, *shape, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for i in range(steps + 3):
        if i == 3:
            usage = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        with autocast(device, precision):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    if stats is not None:
        end = resource.getrusage(resource.RUSAGE_SELF)
        cpu = end.ru_utime + end.ru_stime - usage.ru_utime - usage.ru_stime
        stats.update(faults=(end.ru_minflt - usage.ru_minflt) / steps, kernel=(end.ru_stime - usage.ru_stime) / max(cpu, 1e-9))
    return sorted(times)[len(times) // 2]


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    table = nets()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", nargs="+", choices=list(table), default=list(table))
    p.add_argument("--steps", type=positive, default=10, help="timed steps per row (after 3 warm-up steps)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the library default)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--batch", type=int, default=0, help="images per step (0: each network's own batch)")
    p.add_argument("--allocators", action="store_true",
                   help="compare glibc's default malloc with exoml's reuse_freed_memory (same process, in that order)")
    p.add_argument("--ceiling", action="store_true",
                   help="the TFLOP/s of a big matmul and a big 3x3 conv in the precision auto picks")
    args = p.parse_args(argv)
    from exoml.toolkit.train import device_name, pick_device, uses_bf16
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    auto = "bf16" if uses_bf16(device, "auto") else "fp32"
    print(f"device {device_name(device)}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"--precision auto means {auto} here\n")
    if args.allocators:
        return compare_allocators(table, args, auto, device)
    if args.ceiling:
        return ceiling(args.steps, auto, device)
    print("| network | batch | precision | memory format | ms per step | speed-up vs fp32 contiguous |")
    print("|---|---|---|---|---|---|")
    for name in args.nets:
        build, batch, shape = table[name]
        batch = args.batch or batch
        base = None
        for precision, cl in (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)):
            s = bench_step(build, batch, shape, precision, cl, args.steps, device)
            base = base or s
            print(f"| {name} | {batch} | {precision} | {'channels_last' if cl else 'contiguous'} | {s * 1000:.1f} | "
                  f"{base / s:.2f}x |", flush=True)
    return 0


def compare_allocators(table, args, precision: str, device) -> int:
    """Every network under glibc's default malloc first, then inside reuse_freed_memory."""
    from exoml.toolkit import train
    if train.glibc_malloc() is None:
        raise SystemExit("--allocators compares glibc malloc settings: this process does not use glibc's malloc")
    rows = []
    for setting in ("glibc default", "reuse freed memory"):
        with train.reuse_freed_memory() if setting != "glibc default" else nullcontext(True) as applied:
            if not applied:
                print("reuse_freed_memory did not apply here (see its docstring)")
                break
            for name in args.nets:
                build, batch, shape = table[name]
                batch = args.batch or batch
                stats = {}
                s = bench_step(build, batch, shape, precision, True, args.steps, device, stats)
                rows.append((name, batch, setting, s, stats["faults"], stats["kernel"]))
    print("| network | batch | allocator | ms per step | page faults per step | kernel share of CPU time |"
          " speed-up |")
    print("|---|---|---|---|---|---|---|")
    base = {r[0]: r[3] for r in rows if r[2] == "glibc default"}
    for name, batch, setting, s, faults, system in rows:
        print(f"| {name} | {batch} | {setting} | {s * 1000:.0f} | {faults:,.0f} | {system:.0%} | "
              f"{base[name] / s:.2f}x |")
    return 0


def ceiling(steps: int, precision: str, device, size: int = 4096, batch: int = 500) -> int:
    """TFLOP/s of a size^3 matmul and of a forward 3x3 conv (batch x 256 -> 256 channels, 16x16), with
    inputs and weights already in `precision`, median of `steps` after one warm-up: the rate big,
    well-shaped kernels reach here."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    conv = nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, dtype, memory_format=torch.channels_last)
    maps = torch.randn(batch, 256, 16, 16, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    kernels = {f"matmul {size}x{size}x{size}": (lambda: a @ b, 2 * size ** 3),
               f"conv 3x3, 256 -> 256 channels, {batch} x 16x16": (lambda: conv(maps), 2 * batch * 256 * 256 * 9 * 16 * 16)}
    print("| kernel | precision | TFLOP/s |\n|---|---|---|")
    with torch.no_grad():
        for name, (run, flop) in kernels.items():
            times = []
            for i in range(steps + 1):
                t0 = time.perf_counter()
                run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i:
                    times.append(time.perf_counter() - t0)
            print(f"| {name} | {precision} | {flop / sorted(times)[len(times) // 2] / 1e12:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
