"""Training helpers shared by the torch tasks: device, seeding, precision, glibc malloc, batches, loss /
optimizer / metrics by name ("compile"), predict and evaluate. The training loop itself is
toolkit/loop.py, the learning-rate schedules toolkit/schedules.py.

    loss_fn, opt, metrics = compile(model, loss="cross_entropy", optimizer="adam", lr=1e-3,
                                    metrics=["accuracy"])
    history = loop.fit(model, x_train, y_train, loss_fn, [opt], epochs=5, batch_size=128, ...)
    scores = evaluate(model, (x_test, y_test), loss_fn, metrics)
"""
from __future__ import annotations

import os
import platform
import random
import re
from contextlib import contextmanager, nullcontext
from functools import cache
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .distributed import local_rank
from ..errors import ExomlError


class TrainingError(ExomlError, RuntimeError):
    """Training cannot go on (non-finite loss, ...)."""


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes CUDA, then Apple's MPS, then the CPU; an explicit name must exist."""
    if name == "auto":
        if torch.cuda.is_available():  # under torchrun: this process's own GPU
            return torch.device("cuda", local_rank())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but no CUDA device is available")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise TrainingError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    if name == "cuda":
        return torch.device("cuda", local_rank())
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed python, numpy and torch; return a torch Generator for data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    g = torch.Generator()
    g.manual_seed(seed)
    return g


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
# what glibc's dynamic default reaches in a process of big tensors (its mmap threshold stops at
# 32 MB, the trim threshold at twice that): pinned there when reuse_freed_memory ends
_GLIBC_BIG_TENSORS = ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 64 * 2**20))
_USER_MALLOC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_USER_MALLOC_TUNABLES = ("glibc.malloc.mmap_max", "glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold",
                         "glibc.malloc.top_pad")
_reusing_freed_memory = False  # inside reuse_freed_memory


def glibc_malloc():
    """glibc's libc (for mallopt and malloc_trim) when the process allocates with glibc's malloc;
    None off glibc or when another malloc (tcmalloc, jemalloc, ...) was loaded with LD_PRELOAD."""
    import ctypes
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc, process = ctypes.CDLL("libc.so.6"), ctypes.CDLL(None)
        address = lambda f: ctypes.cast(f, ctypes.c_void_p).value  # noqa: E731
        if address(process.malloc) != address(libc.malloc):
            return None
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Inside: glibc's malloc serves big blocks from the heap and keeps freed memory for the next
    allocation. Under glibc's default every allocation over 32 MB gets its own fresh mmap, which the
    kernel zero-fills page by page on first touch, so each CPU training step of a big image net
    faults its activations in again (`python benchmarks/bench_precision.py --allocators` shows the
    page faults, the kernel's share of the CPU time and the step time under both settings). Yields
    whether the setting is in force.

    For training whose big tensors take a few shapes, repeated from step to step
    (Task.steady_shapes): the process keeps its peak heap, and blocks of ever-changing sizes fragment
    it without bound (imdb's BiLSTM, with batches cut at any of 800 lengths, grew it past 24 GB
    within two epochs). On leaving, the free heap goes back to the system (malloc_trim) and a block
    over 32 MB that no freed chunk of the heap can hold gets its own mmap again (the mmap and trim
    thresholds stay pinned at what glibc's dynamic default reaches with big tensors).

    The setting is process-wide, but it pays only in the main thread's arena, where the training
    loop allocates (another thread's arena mmaps blocks over its 64 MB heaps regardless), so from
    another thread it does nothing and yields False. It also does nothing off glibc, under another
    malloc loaded with LD_PRELOAD, or when the user chose glibc's big-block behaviour
    (MALLOC_MMAP_MAX_, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, or their
    glibc.malloc tunables in GLIBC_TUNABLES): `MALLOC_MMAP_MAX_=65536`, glibc's own default, keeps
    glibc's behaviour."""
    global _reusing_freed_memory
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    libc = None
    if not (_reusing_freed_memory or any(k in os.environ for k in _USER_MALLOC_VARIABLES)
            or any(t in os.environ.get("GLIBC_TUNABLES", "") for t in _USER_MALLOC_TUNABLES)):
        libc = glibc_malloc()
    if libc is None:  # not ours to set (or already set by an enclosing call)
        yield _reusing_freed_memory
        return
    try:
        # big blocks from the heap, not mmap; trim the heap's free top only past 2 GB (the largest int)
        _reusing_freed_memory = all(libc.mallopt(k, v) == 1
                                    for k, v in ((_M_TRIM_THRESHOLD, 2**31 - 1), (_M_MMAP_MAX, 0)))
        yield _reusing_freed_memory
    finally:
        for k, v in _GLIBC_BIG_TENSORS:
            libc.mallopt(k, v)
        libc.malloc_trim(0)
        _reusing_freed_memory = False


@cache
def cpu_has_bf16() -> bool:
    """Does this CPU multiply bf16 natively (AVX512-BF16 or AMX, through oneDNN)? There bf16 autocast
    trains the image nets 1.6-2.7x faster (benchmarks/bench_precision.py); elsewhere it is slower.
    oneDNN's own answer (mkldnn._is_mkldnn_bf16_supported) is yes on any AVX-512 CPU, where bf16 is
    emulated, so on x86 the CPU's own flags decide; elsewhere (ARM) oneDNN's answer stands."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
        if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return True
    except (AttributeError, RuntimeError):
        return False


def cpu_model() -> str:
    """The CPU's name as the kernel reports it ("AMD EPYC"), else the platform's."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def hardware() -> str:
    """This machine as result records and measured times name it: the GPU where CUDA is available, else
    "<CPU> (<vector kernels>[, bf16]), <N> cores, no GPU". The kernels PyTorch's CPU code uses (AVX512,
    AVX2, ...) and native bf16 say more of its speed than the name: one name ("AMD EPYC") covers hosts
    whose image training differs several-fold (BENCHMARKS.md, "Times by kind of CPU")."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    kernels = torch.backends.cpu.get_cpu_capability() + (", bf16" if cpu_has_bf16() else "")
    return f"{cpu_model()} ({kernels}), {os.cpu_count()} cores, no GPU"


def is_cpu(hardware: str) -> bool:
    """Does a `hardware()` text (a record's, threads appended or not) name a CPU without a GPU?"""
    return "no GPU" in hardware


def machine_kind(hardware: str) -> str | None:
    """What of a `hardware()` text decides training speed: the GPU's name, or a CPU's vector kernels and
    cores ("AVX2, 2 cores"); None for a CPU text without its kernels (records older than them)."""
    if not is_cpu(hardware):
        return hardware
    found = re.search(r"\(([^()]*)\), (\d+) cores, no GPU$", hardware)
    return f"{found[1]}, {found[2]} cores" if found else None


def uses_bf16(device: torch.device, precision: str = "cuda") -> bool:
    """Does autocast run in bf16? precision: bf16 (always), fp32 (never), auto (on CUDA and on a CPU
    with native bf16: the image tasks' --precision), cuda (on CUDA only: the other tasks)."""
    if precision not in ("auto", "bf16", "fp32", "cuda"):
        raise ExomlError(f"unknown precision {precision!r}: choose auto, bf16 or fp32")
    return precision == "bf16" or (precision in ("auto", "cuda") and device.type == "cuda") or (
        precision == "auto" and device.type == "cpu" and cpu_has_bf16())


def autocast(device: torch.device, precision: str = "cuda"):
    """bf16 mixed precision where uses_bf16 says so, else full precision."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if uses_bf16(device, precision) else nullcontext()


def batches(n: int, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
            drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Index batches over n rows; the data itself stays put as one tensor (on the device)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for i in range(0, stop, batch_size):
        yield order[i:i + batch_size]


# --- "compile": loss, optimizer and metrics chosen by name -------------------------------

LOSSES: dict[str, Callable[..., nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,        # logits (N, C), integer targets
    "binary_cross_entropy": nn.BCEWithLogitsLoss,  # logits (N,), float targets in {0, 1}
    "mse": nn.MSELoss,
    "mae": nn.L1Loss,
    "huber": nn.HuberLoss,
}


def make_loss(name: str, **kwargs) -> nn.Module:
    key = name.lower().replace("-", "_")
    key = {"bce": "binary_cross_entropy", "ce": "cross_entropy", "l1": "mae"}.get(key, key)
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: choose from {', '.join(LOSSES)}")
    return LOSSES[key](**kwargs)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                   nesterov: bool = True, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    key = name.lower()
    if key == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                               weight_decay=weight_decay)
    if key == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=0.0, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose from adam, adamw, sgd, rmsprop")


def _predicted_labels(outputs: torch.Tensor) -> torch.Tensor:
    if outputs.ndim == 1 or outputs.shape[-1] == 1:  # binary logits
        return (outputs.reshape(-1) > 0).long()
    return outputs.argmax(-1)


def _binary_counts(outputs, targets):
    pred, true = _predicted_labels(outputs), targets.long().reshape(-1)
    tp = ((pred == 1) & (true == 1)).sum().item()
    return tp, (pred == 1).sum().item(), (true == 1).sum().item()


def _precision(o, t):
    tp, pp, _ = _binary_counts(o, t)
    return tp / pp if pp else 0.0


def _recall(o, t):
    tp, _, ap = _binary_counts(o, t)
    return tp / ap if ap else 0.0


def _f1(o, t):
    p, r = _precision(o, t), _recall(o, t)
    return 2 * p * r / (p + r) if p + r else 0.0


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "accuracy": lambda o, t: (_predicted_labels(o) == t.long().reshape(-1)).float().mean().item(),
    "precision": _precision,   # binary tasks: positive class 1
    "recall": _recall,
    "f1": _f1,
    "mse": lambda o, t: F.mse_loss(o.float(), t.float()).item(),
    "mae": lambda o, t: F.l1_loss(o.float(), t.float()).item(),
}


def compile(model: nn.Module, loss: str, optimizer: str, lr: float, metrics: list[str] = (),
            weight_decay: float = 0.0, **opt_kwargs):
    """Keras-style compile: return (loss module, optimizer, {metric name: fn})."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: choose from {', '.join(METRICS)}")
    return (make_loss(loss), make_optimizer(optimizer, model.parameters(), lr, weight_decay, **opt_kwargs),
            {m: METRICS[m] for m in metrics})


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: torch.device | None = None,
            transform: Callable | None = None) -> torch.Tensor:
    """Model outputs for every row of x (moved batch by batch to the model's device), on the CPU, float32."""
    model.eval()
    device = device or next(model.parameters()).device
    outs = []
    for idx in batches(len(x), batch_size):
        xb = x[idx].to(device, non_blocking=True)
        if transform is not None:
            xb = transform(xb)
        with autocast(device):
            outs.append(model(xb).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model, data, loss_fn, metrics: dict, batch_size: int = 1024, transform=None) -> dict:
    x, y = data
    out = predict(model, x, batch_size, transform=transform)
    y = y.cpu()
    res = {"loss": loss_fn(out, y.float() if out.ndim == 1 else y).item()}
    res.update({k: fn(out, y) for k, fn in metrics.items()})
    return res


def state_dict_for_save(model: nn.Module) -> dict:
    """Weights without torch.compile / DDP prefixes, ready for safetensors."""
    sd = model.state_dict()
    return {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in sd.items()}
