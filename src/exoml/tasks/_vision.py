"""What the four image tasks (mnist, fashion-mnist, cifar10, cifar100) share, so each task file
only says what is its own: the data split, augmentation as batched tensor ops, one lean training
loop, test-time augmentation, the explore / evaluation figures, and `exoml predict` on one image.

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
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import plots
from ..errors import ExomlError
from ..evaluation import classification_metrics
from ..report import img, md_table
from .. import checkpoint
from .. import distributed
from ..runs import Run
from ..train import TrainingError, autocast


# ---------------------------------------------------------------- settings ------------

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


def conclude(run: Run, cfg, task: str, title: str, intro: str, model: nn.Module, d, history: list[dict],
             logits: torch.Tensor, train_timer: "Timer", eval_timer: "Timer", cpu_s: float,
             sections: list[tuple[str, str]], extra_metrics: dict | None = None) -> tuple[dict, str]:
    """Metrics, predictions, figures, weights and report.md text for a finished training run
    (nothing on a torchrun rank other than 0: rank 0 writes the run folder)."""
    if not run.writes:
        return {}, ""
    from ..report import render
    from ..train import device_name
    device = next(model.parameters()).device
    metrics, table, figures = evaluate(run, logits, d.x_test, d.y_test, d.classes, history,
                                       n_show=4 if cfg.quick or cfg.dry_run else 16)
    metrics.update(extra_metrics or {})
    if history and "val_accuracy" in history[-1]:
        metrics["val_accuracy"] = history[-1]["val_accuracy"]
    metrics.update(epochs_run=history[-1]["epoch"] if history else 0, train_time_s=round(train_timer.seconds, 3),
                   eval_time_s=round(eval_timer.seconds, 3),
                   time_to_result_s=round(train_timer.seconds + eval_timer.seconds, 3),
                   train_cpu_s=round(cpu_s, 1), device=device_name(device), processes=distributed.world_size(),
                   seed=cfg.seed,
                   parameters=sum(p.numel() for p in model.parameters()))
    save_model(run, model, task, d.classes)
    timing = (f"Training took {train_timer.seconds:.1f} s and the test evaluation {eval_timer.seconds:.1f} s on "
              f"{metrics['device']} ({'CUDA events' if device.type == 'cuda' else 'wall clock'}; the process used "
              f"{cpu_s:.0f} CPU-seconds while training).\n\n{img('curves.png')}")
    report = render(title, intro, cfg, metrics, [("Data", d.md), ("Model", describe(model)), *sections,
                                                 ("Training", timing), ("Evaluation", f"{table}\n\n{figures}"),
                                                 ("Use it", f"`exoml predict {task} IMAGE --run {run.path}`")])
    return metrics, report


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


# ---------------------------------------------------------------- augmentation --------
# Batched tensor ops on whatever device the batch is on; x is float (N, C, H, W) in [0, 1].

def flip(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror left-right the images where mask is True (default: a coin flip each)."""
    if mask is None:
        mask = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def translate(x: torch.Tensor, pad: int, mode: str = "reflect") -> torch.Tensor:
    """Random crop of the padded image = a random shift of up to `pad` pixels each way, per image."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (pad,) * 4, mode=mode)
    dy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return xp.gather(2, rows).gather(3, cols)


def affine(x: torch.Tensor, degrees: float, scale: float, shift: float) -> torch.Tensor:
    """Random rotation (+-degrees), zoom (1 +- scale) and shift (+- fraction of the side) per image,
    one grid_sample for the batch; outside pixels are 0 (the black MNIST background)."""
    n = len(x)
    a = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(degrees)
    s = 1 + (torch.rand(n, device=x.device) * 2 - 1) * scale
    t = (torch.rand(n, 2, device=x.device) * 2 - 1) * shift * 2  # grid units: the side is 2 long
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, size: int, fill: torch.Tensor) -> torch.Tensor:
    """Blank one size x size square per image (centre anywhere, so squares may be clipped) with `fill`."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    ys, xs = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
    half = size // 2
    mask = ((ys - cy).abs() <= half) & ((xs - cx).abs() <= half)
    return torch.where(mask.unsqueeze(1), fill.to(x.dtype), x)


def cutmix(x: torch.Tensor, y: torch.Tensor, num_classes: int, prob: float):
    """With probability `prob` per batch, paste a random box of a shuffled partner image into each
    image; targets become class probabilities weighted by the pasted area (Yun et al. 2019)."""
    target = F.one_hot(y, num_classes).float()
    if prob <= 0 or np.random.random() >= prob:  # numpy draws: no GPU sync per step
        return x, target
    n, _, h, w = x.shape
    lam = np.random.random()  # Beta(1, 1)
    bh, bw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = np.random.randint(h), np.random.randint(w)
    y0, y1, x0, x1 = max(cy - bh // 2, 0), min(cy + bh // 2, h), max(cx - bw // 2, 0), min(cx + bw // 2, w)
    perm = torch.randperm(n, device=x.device)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    kept = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, kept * target + (1 - kept) * target[perm]


# ---------------------------------------------------------------- optimizer -----------

def _orthogonalize(g: torch.Tensor, steps: int = 3) -> torch.Tensor:
    """Approximate U V^T of g = U S V^T by a quintic Newton-Schulz iteration (coefficients from the
    Muon write-up: they push small singular values up fast; the result has singular values ~0.5-1.5)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16()
    x = x / (x.norm() + 1e-7)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum, then an orthogonalised update, for conv filters (Jordan et al. 2024, "Muon").
    Each filter bank is kept at a fixed norm (sqrt of its output channels), so `lr` is a step
    relative to the weight's size and the loss scale does not matter."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.6, nesterov: bool = True):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p.grad))
                buf.mul_(group["momentum"]).add_(p.grad)
                g = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
                p.add_(_orthogonalize(g.reshape(len(g), -1)).view_as(p), alpha=-group["lr"])


# ---------------------------------------------------------------- training ------------

def memory_format(device: torch.device):
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def to_float(xb: torch.Tensor) -> torch.Tensor:
    return xb.float().div_(255).contiguous(memory_format=memory_format(xb.device))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, optimizers: list, schedulers: list, *,
        epochs: float, batch_size: int, augment=None, val: tuple | None = None, metrics=("accuracy",),
        on_epoch=None, max_steps: int | None = None, desc: str = "train", run: Run | None = None) -> list[dict]:
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
    scale = distributed.world_size() if getattr(loss_fn, "reduction", "mean") == "sum" else 1
    net = distributed.wrap(model)  # DDP over the ranks, or the model itself
    per_epoch = n // bs
    total = max(1, round(epochs * per_epoch))
    total = min(total, max_steps) if max_steps else total
    sum_reduced = getattr(loss_fn, "reduction", "mean") == "sum"
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
                with autocast(x.device):
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
                logits = predict_logits(model, val[0])
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
                   pad_mode: str = "reflect") -> torch.Tensor:
    """float32 logits (on the CPU) for uint8 images x (N, C, H, W) on the model's device; with
    test-time augmentation the mean over each group of views, then over the groups."""
    model.eval()
    out = []
    for chunk in x.split(batch_size):
        xb = to_float(chunk)
        means = []
        for group in tta_views(xb, tta, pad_mode):
            with autocast(xb.device):
                means.append(torch.stack([model(v).float() for v in group]).mean(0))
        out.append(torch.stack(means).mean(0).cpu())
    return torch.cat(out) if out else torch.empty(0)


# ---------------------------------------------------------------- explore -------------

def explore(run: Run, x: np.ndarray, y: np.ndarray, classes: list[str], mean, std, per_class: int = 8) -> str:
    """samples.png, class_balance.png, pixel_stats.png; returns the report's paragraph."""
    run.save_figure(samples_figure(x, y, classes, per_class), "samples.png")
    run.save_figure(plots.class_histogram(y, classes, title="class balance (training split)"), "class_balance.png")
    run.save_figure(pixel_figure(x, mean, std), "pixel_stats.png")
    stats = ", ".join(f"{n} {m:.4f} / {s:.4f}" for n, m, s in zip(channel_names(len(mean)), mean, std))
    return (f"Pixel mean / std per channel (training split, [0, 1] units): {stats}. "
            f"These statistics normalise every input; nothing is computed from the test split.\n\n"
            f"{img('samples.png')}\n\n{img('class_balance.png')}\n\n{img('pixel_stats.png')}")


def samples_figure(x: np.ndarray, y: np.ndarray, classes: list[str], per_class: int = 8):
    """Random training images: a row per class (up to 20 classes), else one image per class in a
    10-wide mosaic with the class names underneath. One image, not one axes per sample (fast)."""
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(0)
    n_cls, (h, w) = len(classes), x.shape[1:3]
    cols = per_class if n_cls <= 20 else 1
    tiles = []
    for c in range(n_cls):
        idx = np.flatnonzero(y == c)
        chosen = rng.choice(idx, min(cols, len(idx)), replace=False) if len(idx) else []
        tiles += [x[i] for i in chosen] + [np.zeros_like(x[0])] * (cols - len(chosen))
    ncols = cols if n_cls <= 20 else 10
    nrows = int(np.ceil(len(tiles) / ncols))
    tiles += [np.zeros_like(x[0])] * (nrows * ncols - len(tiles))
    pad, label = 2, (0 if n_cls <= 20 else max(8, h // 3))  # a white strip under each tile for its name
    padded = [np.pad(t, ((pad, pad + label), (pad, pad)) + ((0, 0),) * (t.ndim - 2), constant_values=255)
              for t in tiles]
    rows = [np.concatenate(padded[r * ncols:(r + 1) * ncols], 1) for r in range(nrows)]
    mosaic = np.concatenate(rows, 0)
    th, tw = h + 2 * pad + label, w + 2 * pad
    fig, ax = plt.subplots(figsize=(1.1 * ncols + 1.2, 1.1 * nrows * th / tw))
    ax.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    if n_cls <= 20:
        ax.set_yticks([(r + 0.5) * th for r in range(n_cls)], classes, fontsize=8)
    else:
        ax.set_yticks([])
        for c in range(n_cls):
            ax.text((c % ncols + 0.5) * tw, (c // ncols) * th + h + pad + 1, classes[c][:13], ha="center",
                    va="top", fontsize=6)
    ax.set_title("random training images per class")
    fig.tight_layout()
    return fig


def channel_names(c: int) -> list[str]:
    return ["grey"] if c == 1 else ["R", "G", "B"][:c]


def pixel_figure(x: np.ndarray, mean, std):
    import matplotlib.pyplot as plt
    sample = x[np.random.default_rng(0).choice(len(x), min(500, len(x)), replace=False)]
    sample = sample[..., None] if sample.ndim == 3 else sample
    names = channel_names(sample.shape[-1])
    colors = ["gray"] if len(names) == 1 else ["tab:red", "tab:green", "tab:blue"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for c, (name, col) in enumerate(zip(names, colors)):
        a.hist(sample[..., c].ravel(), bins=64, range=(0, 255), histtype="step", color=col, label=name, density=True)
    a.set_yscale("log")
    a.set_xlabel("pixel value")
    a.set_title(f"pixel values ({len(sample):,} training images)")
    a.legend(fontsize=8)
    b.bar(names, mean, yerr=std, color=colors, capsize=6, alpha=0.8)
    b.set_ylim(0, 1)
    b.set_title("mean ± std per channel ([0, 1] units)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- evaluate ------------

def evaluate(run: Run, logits: torch.Tensor, x_test: np.ndarray, y_test: np.ndarray, classes: list[str],
             history: list[dict], n_show: int = 16) -> tuple[dict, str, str]:
    """Test metrics, predictions.npz and the figures; returns (metrics, per-class table, figures markdown)."""
    probs = torch.softmax(logits, 1).numpy()
    y_pred = probs.argmax(1)
    head, per_class, cm = classification_metrics(y_test, y_pred, classes)
    top5 = np.argsort(-probs, 1)[:, :5]
    head["top5_accuracy"] = float((top5 == np.asarray(y_test)[:, None]).any(1).mean()) if len(y_test) else 0.0
    head["test_loss"] = float(F.cross_entropy(logits, torch.as_tensor(y_test)).item()) if len(y_test) else 0.0
    run.save_arrays("predictions.npz", y_true=y_test, y_pred=y_pred, probs=probs.astype(np.float32))
    run.save_json("per_class.json", per_class)
    run.save_figure(plots.confusion_matrix(cm, classes, title="confusion matrix (test, row-normalised)"),
                    "confusion_matrix.png")
    keys = [["train_loss", "val_loss"], ["val_accuracy"]] if history and "val_loss" in history[0] else None
    run.save_figure(plots.history_curves(history, keys, title="training curves"), "curves.png")
    rng = np.random.default_rng(0)
    shown = rng.choice(len(y_test), min(n_show, len(y_test)), replace=False)
    run.save_figure(plots.predictions_grid(x_test[shown], probs[shown], y_test[shown], classes, n=n_show,
                                           title="random test images: prediction, probabilities "
                                                 "(blue: true class, red: wrong prediction)"), "test_predictions.png")
    wrong = np.flatnonzero(y_pred != y_test)
    worst = wrong[np.argsort(-probs[wrong, y_pred[wrong]])][:n_show]  # the most confident mistakes
    if len(worst):
        run.save_figure(plots.predictions_grid(x_test[worst], probs[worst], y_test[worst], classes, n=n_show,
                                               title="worst errors: the most confident wrong predictions"),
                        "worst_errors.png")
    rows = per_class if len(classes) <= 20 else (sorted(per_class, key=lambda r: r["f1"])[:10]
                                                 + sorted(per_class, key=lambda r: -r["f1"])[:10])
    table = md_table(rows)
    if len(classes) > 20:
        table = "The 10 hardest and 10 easiest classes by F1 (all classes: per_class.json).\n\n" + table
    figures = "\n\n".join([img("confusion_matrix.png"), img("test_predictions.png")]
                          + ([img("worst_errors.png")] if len(worst) else []))
    return head, table, figures


def save_model(run: Run, model: nn.Module, task: str, classes: list[str], **meta) -> None:
    from ..train import state_dict_for_save
    run.save_weights(state_dict_for_save(model), meta={"task": task, "classes": json.dumps(classes), **meta})


def describe(model: nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n:,} parameters.\n\n```\n{model}\n```"


# ---------------------------------------------------------------- predict -------------

def add_predict_args(parser) -> None:
    parser.add_argument("image", type=Path, help="a PNG, JPEG, WebP, ... image of any size and mode")


def prepare_image(path: Path, size: int, grey: bool, mode: str) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) at size x size. mode 'digit': MNIST-style (a dark-on-light scan is
    inverted, the digit cropped and centred in a 20x20 box); 'item': grey, inverted when the border is
    light (Fashion-MNIST items are light on black), stretched to the square; 'photo': plain resize."""
    from ..images import load_image
    if mode == "digit":
        return load_image(path, (size, size), grey=True, invert_light_background=True)
    arr = load_image(path, (size, size), grey=grey)
    if mode == "item":
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        arr = 255 - arr if border.mean() > 127 else arr
    return arr


def predict_image(args, task: str, mod, size: int, grey: bool, mode: str) -> int:
    """`exoml predict TASK IMAGE`: top-5 classes of one image with the latest (or given) run's weights;
    saves <run>/predictions/<image stem>.png (the image and its probability bars)."""
    from ..weights import load_state, open_run
    run_dir, info = open_run(task, args.run, args.out)
    cfg = config_from_run(mod.Config, info)
    model = mod.build_model(cfg)
    meta = load_state(model, run_dir / "model.safetensors", task)
    classes = json.loads(meta.get("classes", "[]")) or [str(i) for i in range(model_classes(model))]
    image = prepare_image(args.image, size, grey, mode)
    x = nchw(image[None])
    probs = torch.softmax(predict_logits(model, x, tta="none"), 1)[0].numpy()
    order = np.argsort(-probs)[:5]
    print(f"{args.image.name}: {classes[order[0]]} ({probs[order[0]]:.1%})  [run {run_dir}]")
    for rank, c in enumerate(order, 1):
        print(f"  {rank}. {classes[c]:<16} {probs[c]:.4f}")
    fig = plots.probability_bars(image, probs, classes, top=5, title=f"{args.image.name}: {classes[order[0]]} "
                                                                     f"({probs[order[0]]:.1%})")
    path = Run(run_dir).save_figure(fig, f"predictions/{Path(args.image).stem}.png")
    print(f"plot: {path}")
    return 0


def model_classes(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return last.out_features
