"""The image tasks' training loop: minibatches gathered from uint8 data on the device, augmented
there, one or several optimizers and schedules, a checkpoint after every epoch and when a signal
stops the run (resumed exactly, mid-epoch if need be), torchrun data parallelism, and the one-cycle
schedule the recipes use.

The loop is ours rather than train.fit because the image recipes need things fit does not do:
labels that augmentation changes (CutMix), several optimizers (Muon + SGD), per-group schedules,
and no host sync per step (a GPU run of CIFAR-10 is ~200 steps in ~2 s, so a sync per step shows).
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...toolkit import checkpoint, distributed
from ...errors import ExomlError
from ...toolkit.runs import Run
from ...toolkit.train import TrainingError, autocast
from .common import predict_logits, to_float


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

    Under torchrun (exoml.toolkit.distributed) `batch_size` is the global batch: every rank takes its
    slice of each batch of one shared shuffled order, and DDP averages the gradients."""
    from ...toolkit.train import METRICS
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
