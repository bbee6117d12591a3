"""What the four image tasks (mnist, fashion-mnist, cifar10, cifar100) share for data, training and
inference, so each task file only says what is its own: the split, the data on the device, one
lean training loop (checkpoints, resume, torchrun), test-time augmentation. Augmentation ops are in
_augment.py, the Muon optimizer in _muon.py, figures, report and `exoml predict` in _vision_report.py.

Data stays on the device as one uint8 tensor (N, C, H, W); a batch is gathered by index, turned
into floats in [0, 1] and augmented there, so nothing is copied per step. Every model starts with
a `Normalize` layer holding the training split's channel mean/std as buffers: the statistics are
saved with the weights, and a model takes plain [0, 1] images (what `predict` and the GAN task feed it).

The loop is ours rather than train.fit because the image recipes need things fit does not do:
labels that augmentation changes (CutMix), several optimizers (Muon + SGD), per-group schedules,
and no host sync per step (a GPU run of CIFAR-10 is ~200 steps in ~2 s, so a sync per step shows).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import checkpoint, distributed
from ..config import Common
from ..errors import ExomlError
from ..runs import Run
from ..train import TrainingError


# ---------------------------------------------------------------- settings ------------

@dataclass
class ImageCommon(Common):
    """Settings every image task has, on top of Common."""
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16 autocast on CUDA and on CPUs with native bf16, else fp32) | bf16 | fp32",
        "choices": ["auto", "bf16", "fp32"]})


def apply_profile(cfg, profiles: dict, run: Run | None = None):
    """Fill the settings left at None from the chosen profile (flags given by the user win), and
    record the resolved values in the run's config.json so the run can be rebuilt and repeated."""
    if cfg.profile not in profiles:
        raise ExomlError(f"unknown profile {cfg.profile!r}: choose from {', '.join(profiles)}")
    filled = {k: v for k, v in profiles[cfg.profile].items() if getattr(cfg, k) is None}
    cfg = dataclasses.replace(cfg, **filled)
    if run is not None:
        info = json.loads(run.file("config.json").read_text())
        info["config"] = dataclasses.asdict(cfg)
        run.save_json("config.json", info)
    return cfg


def config_from_run(config_cls, info: dict):
    """The Config a run was trained with (its config.json), for rebuilding the model."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: v for k, v in info.get("config", {}).items() if k in names})


class Timer:
    """Seconds spent in a block: CUDA events on a GPU (kernels run asynchronously), else the wall clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.seconds = 0.0

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds += self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds += time.perf_counter() - self.t0


# ---------------------------------------------------------------- data ----------------

def nchw(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 tensor (N, C, H, W)."""
    x = np.ascontiguousarray(x)
    t = torch.from_numpy(x if x.flags.writeable else x.copy())
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


def split(data, cfg) -> dict[str, np.ndarray]:
    """Train/validation split carved from the official train split (stratified), the optional
    subsets of smoke runs, and the official test split."""
    from sklearn.model_selection import train_test_split
    rng = np.random.default_rng(cfg.seed)
    x, y = data.x_train, data.y_train
    if cfg.train_subset and cfg.train_subset < len(y):
        keep = np.sort(rng.choice(len(y), cfg.train_subset, replace=False))
        x, y = x[keep], y[keep]
    out = {"x_test": data.x_test, "y_test": data.y_test}
    n_test = 256 if cfg.dry_run else cfg.test_subset  # a subset is reported as such (n_test)
    if n_test and n_test < len(out["y_test"]):  # a fixed random sample: some copies are sorted by class
        keep = np.sort(np.random.default_rng(0).choice(len(out["y_test"]), n_test, replace=False))
        out = {k: v[keep] for k, v in out.items()}
    val = min(cfg.val_size, len(y) // 5)
    if val > 0:
        counts = np.bincount(y)
        strat = y if counts[counts > 0].min() >= 2 and val >= len(counts) else None
        tr, va = train_test_split(np.arange(len(y)), test_size=val, stratify=strat, random_state=cfg.seed)
        out.update(x_train=x[np.sort(tr)], y_train=y[np.sort(tr)], x_val=x[np.sort(va)], y_val=y[np.sort(va)])
    else:
        out.update(x_train=x, y_train=y)
    return out


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] units, in chunks (float64)."""
    c = x.shape[1]
    s, s2, n = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for chunk in x.split(8192):
        v = chunk.to(torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        s += v.sum(1).cpu()
        s2 += (v * v).sum(1).cpu()
        n += v.shape[1]
    mean = s / max(n, 1)
    std = (s2 / max(n, 1) - mean ** 2).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def load_data(name: str, cfg, run: Run, device: torch.device):
    """Load the dataset, split it, put the images on the device as uint8 tensors, compute the
    training statistics and draw the explore figures. Returns a Bunch: numpy parts (x_train, ...),
    tensors (tx_train, ty_train, tx_val, ty_val, tx_test), classes, mean, std, md (report text)."""
    from sklearn.utils import Bunch
    from .. import data as datasets
    from ._vision_report import explore
    ds = datasets.load(name)
    parts = split(ds, cfg)
    d = Bunch(**parts, classes=list(ds.classes), dataset=ds)
    for k, v in parts.items():
        d["t" + k] = (nchw(v) if k.startswith("x_") else torch.from_numpy(np.asarray(v))).to(device)
    d.val = (d.tx_val, d.ty_val) if "tx_val" in d else None
    d.mean, d.std = channel_stats(d.tx_train)
    n_val = len(parts.get("y_val", []))
    subset = (f" (a subset: {len(parts['y_test']):,} of {len(ds.y_test):,})" if len(parts["y_test"]) < len(ds.y_test)
              else "")
    d.md = (f"{len(parts['y_train']):,} training images and {n_val:,} validation images carved from the official "
            f"training split ({len(ds.y_train):,} images; stratified, seed {cfg.seed}); evaluation on the official "
            f"test split{subset}. Images {'x'.join(map(str, ds.x_train.shape[1:]))} uint8, {len(d.classes)} classes. "
            f"All images sit on the {device.type} as one uint8 tensor; batches are gathered and augmented there.\n\n"
            + (explore(run, parts["x_train"], parts["y_train"], d.classes, d.mean, d.std) if run.writes else ""))
    return d


class Normalize(nn.Module):
    """(x - mean) / std per channel; the training split's statistics live in buffers (saved with the weights)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    def set_stats(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view_as(self.mean))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).view_as(self.std))

    def forward(self, x):
        return (x - self.mean) / self.std


# ---------------------------------------------------------------- training ------------

@cache
def cpu_has_bf16() -> bool:
    """Does this CPU multiply bf16 natively (AVX512-BF16 or AMX, through oneDNN)? There bf16 autocast
    trains the image nets about 2x faster (MNIST CNN: 166 vs 383 ms per step of 128, fashion MLP:
    0.23 vs 0.51 s per step of 512, on a 2-core AMD EPYC); on other CPUs it is slower than fp32."""
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 mixed precision where it pays (precision auto: CUDA, or a CPU with native bf16), else fp32."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ExomlError(f"unknown precision {precision!r}: choose auto, bf16 or fp32")
    bf16 = precision == "bf16" or (precision == "auto" and (
        device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())))
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def memory_format(device: torch.device):
    """channels_last on CUDA and on the CPU (oneDNN convolutions are faster with it there too)."""
    return torch.channels_last if device.type in ("cuda", "cpu") else torch.contiguous_format


def to_float(xb: torch.Tensor) -> torch.Tensor:
    return xb.float().div_(255).contiguous(memory_format=memory_format(xb.device))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, optimizers: list, schedulers: list, *,
        epochs: float, batch_size: int, augment=None, val: tuple | None = None, metrics=("accuracy",),
        on_epoch=None, max_steps: int | None = None, desc: str = "train", run: Run | None = None,
        precision: str = "auto") -> list[dict]:
    """Minibatch training on data that already sits on the device (uint8 x, int64 y).

    `augment(xb, yb, idx, epoch) -> (xb, targets)` runs on each float batch. Epochs may be
    fractional (the run stops after round(epochs * steps per epoch) steps). `metrics` are names
    from train.METRICS, computed on the validation split after each epoch. The last partial
    batch of an epoch is dropped (BatchNorm dislikes tiny batches). The loss is summed on the
    device and read once per epoch (no host sync per step); the first step whose loss was not
    finite is tracked there too, so a NaN stops the run at the end of its epoch naming that step,
    and the checkpoint of the last good epoch is kept.

    Under torchrun (exoml.distributed) `batch_size` is the global batch: every rank takes its
    slice of each batch of one shared shuffled order, and DDP averages the gradients."""
    from ..train import METRICS
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ExomlError(f"unknown metric(s) {unknown}: choose from {', '.join(METRICS)}")
    n = len(x)
    bs = min(batch_size, n)
    local, r = distributed.local_batch(bs), distributed.rank()
    sum_reduced = getattr(loss_fn, "reduction", "mean") == "sum"
    scale = distributed.world_size() if sum_reduced else 1  # DDP averages: a summed loss needs the sum back
    net = distributed.wrap(model)  # DDP over the ranks, or the model itself
    per_epoch = n // bs
    total = max(1, round(epochs * per_epoch))
    total = min(total, max_steps) if max_steps else total
    history, step, epoch, partial = [], 0, 0, None
    bar = tqdm(total=total, desc=desc, leave=False, disable=None if distributed.is_main() else True)
    # With a run folder: a checkpoint after every epoch and when a signal stops the run between two
    # steps; a resumed run (--resume) starts from it, mid-epoch if need be (same order, same RNG).
    ckpt = run.file("checkpoint.safetensors") if run is not None else None
    writes = run is not None and run.writes
    if ckpt is not None and run.resumed and ckpt.exists():
        progress = checkpoint.load(ckpt, model, optimizers, schedulers)
        step, epoch, history, partial = progress["step"], progress["epoch"], progress["history"], progress.get("partial")
        run.history = [dict(r) for r in history[:-1]]
        if history:
            run.log_epoch(history[-1])  # history.csv agrees with the checkpoint again
        bar.update(step)
    with checkpoint.deferred_interrupts() as stop_asked:
        while step < total:
            model.train()
            t0 = time.perf_counter()
            first_bad = torch.full((), total + 1, device=x.device)  # the first step with a non-finite loss
            if partial:  # an epoch interrupted part-way: its order and running loss come back
                epoch, start, seen = partial["epoch"], partial["done"], partial["seen"]
                order = progress["extra"]["order"].to(x.device)
                loss_sum = torch.tensor(partial["loss_sum"], device=x.device)
                partial = None
            else:
                epoch, start, seen = epoch + 1, 0, 0
                order = distributed.broadcast_(torch.randperm(n, device=x.device))  # rank 0's order everywhere
                loss_sum = torch.zeros((), device=x.device)
            for i in range(start, min(per_epoch, start + total - step)):
                idx = order[i * bs:(i + 1) * bs][r * local:(r + 1) * local]  # this rank's slice of the batch
                xb, yb = to_float(x[idx]), y[idx]
                if augment is not None:
                    xb, yb = augment(xb, yb, idx, epoch)
                with autocast(x.device, precision):
                    out = net(xb)
                loss = loss_fn(out.float(), yb)
                first_bad = torch.where(torch.isfinite(loss.detach()), first_bad, first_bad.clamp_max(step + 1))
                (loss * scale if scale != 1 else loss).backward()
                for opt in optimizers:
                    opt.step()
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                for sched in schedulers:
                    sched.step()
                loss_sum += loss.detach() / (len(idx) if sum_reduced else 1)
                seen += 1
                step += 1
                bar.update()
                if _stop(stop_asked, x.device):  # Ctrl-C / SIGTERM: save where we are, then stop
                    if writes and bool(torch.isfinite(loss_sum)):
                        checkpoint.save(ckpt, model, optimizers, schedulers, {
                            "step": step, "epoch": epoch - 1, "history": history, "partial": {
                                "epoch": epoch, "done": i + 1, "seen": seen, "loss_sum": loss_sum.item()}},
                            extra={"order": order})
                    raise KeyboardInterrupt
            train_loss = distributed.all_reduce_(loss_sum, "mean").item() / max(seen, 1)
            bad = int(distributed.all_reduce_(first_bad, "min").item())
            if bad <= total or not math.isfinite(train_loss):
                kept = f"; the checkpoint of epoch {epoch - 1} is kept" if writes and epoch > 1 else ""
                raise TrainingError(f"non-finite training loss at step {min(bad, step)} (epoch {epoch}){kept}; "
                                    "lower the learning rate?")
            row = {"epoch": epoch, "step": step, "train_loss": train_loss, "lr": optimizers[-1].param_groups[-1]["lr"],
                   "time_s": round(time.perf_counter() - t0, 3)}
            if val is not None and len(val[1]) and distributed.is_main():  # rank 0 keeps the history
                logits = predict_logits(model, val[0], precision=precision)
                row["val_loss"] = F.cross_entropy(logits, val[1].cpu()).item()
                row.update({f"val_{m}": METRICS[m](logits, val[1].cpu()) for m in metrics})
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("train_loss", "val_accuracy")})
            history.append(row)
            if writes:
                checkpoint.save(ckpt, model, optimizers, schedulers, {"step": step, "epoch": epoch, "history": history})
            if on_epoch:
                on_epoch(row)
            if _stop(stop_asked, x.device):
                raise KeyboardInterrupt
    bar.close()
    return history


def _stop(stop_asked, device: torch.device) -> bool:
    """Was a stop asked (on any rank: all ranks must stop after the same step)?"""
    if distributed.world_size() == 1:
        return stop_asked()
    return distributed.all_reduce_(torch.tensor(float(stop_asked()), device=device)).item() > 0


def one_cycle(total_steps: int, warmup: float = 0.2, start: float = 0.1):
    """LR factor per step: linear from `start` up to 1 over the warm-up fraction, then linearly to 0."""
    warm = max(1, int(total_steps * warmup))
    return lambda s: (start + (1 - start) * s / warm if s < warm
                      else max(0.0, (total_steps - s) / max(1, total_steps - warm)))


def total_steps(n_train: int, batch_size: int, epochs: float, max_steps: int | None = None) -> int:
    """The step count fit() will run (for schedules)."""
    steps = max(1, round(epochs * (n_train // min(batch_size, n_train))))
    return min(steps, max_steps) if max_steps else steps


# ---------------------------------------------------------------- inference -----------

def tta_views(x: torch.Tensor, tta: str, pad_mode: str = "reflect") -> list[list[torch.Tensor]]:
    """Groups of views whose logits are averaged: [[x, flip(x)], [one-pixel shifts...]].
    tta: none | flip | translate | flip_translate."""
    base = [x, x.flip(-1)] if "flip" in tta else [x]
    groups = [base]
    if "translate" in tta:
        h, w = x.shape[-2:]
        xp = F.pad(x, (1,) * 4, mode=pad_mode)
        shifted = [xp[..., 0:h, 0:w], xp[..., 2:h + 2, 2:w + 2]]  # up-left and down-right by one pixel
        groups.append([v for s in shifted for v in ([s, s.flip(-1)] if "flip" in tta else [s])])
    return groups


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, tta: str = "none", batch_size: int = 1000,
                   pad_mode: str = "reflect", precision: str = "auto") -> torch.Tensor:
    """float32 logits (on the CPU) for uint8 images x (N, C, H, W) on the model's device; with
    test-time augmentation the mean over each group of views, then over the groups."""
    model.eval()
    out = []
    for chunk in x.split(batch_size):
        xb = to_float(chunk)
        means = []
        for group in tta_views(xb, tta, pad_mode):
            with autocast(xb.device, precision):
                means.append(torch.stack([model(v).float() for v in group]).mean(0))
        out.append(torch.stack(means).mean(0).cpu())
    return torch.cat(out) if out else torch.empty(0)
