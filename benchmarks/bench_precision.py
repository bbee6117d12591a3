"""Training-step time of the image tasks' networks under each precision and memory format, on this
machine: one row per (network, precision, memory format), all measured in the same process, so
the rows compare with each other (absolute times on a shared machine are noise).

What `--precision auto` picks is printed at the top: bf16 autocast on CUDA and on a CPU with
native bf16 (oneDNN: AVX512-BF16 or AMX), fp32 elsewhere.

    python benchmarks/bench_precision.py                       # every network, 2 threads
    python benchmarks/bench_precision.py --nets mnist-full --steps 20 --threads 1
"""
from __future__ import annotations

import argparse
import time

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


def bench_step(build, batch: int, shape, precision: str, channels_last: bool, steps: int, device) -> float:
    """Seconds per training step (forward, loss, backward, AdamW step), median of `steps` after 3 warm-ups."""
    from exoml.toolkit.train import autocast
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build().to(device, memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, *shape, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for i in range(steps + 3):
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
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    table = nets()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", nargs="+", choices=list(table), default=list(table))
    p.add_argument("--steps", type=int, default=10, help="timed steps per row (after 3 warm-up steps)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the library default)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    args = p.parse_args(argv)
    from exoml.toolkit.train import device_name, pick_device, uses_bf16
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    auto = "bf16" if uses_bf16(device, "auto") else "fp32"
    print(f"device {device_name(device)}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"--precision auto means {auto} here\n")
    print("| network | batch | precision | memory format | ms per step | speed-up vs fp32 contiguous |")
    print("|---|---|---|---|---|---|")
    for name in args.nets:
        build, batch, shape = table[name]
        base = None
        for precision, cl in (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)):
            s = bench_step(build, batch, shape, precision, cl, args.steps, device)
            base = base or s
            print(f"| {name} | {batch} | {precision} | {'channels_last' if cl else 'contiguous'} | {s * 1000:.1f} | "
                  f"{base / s:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
