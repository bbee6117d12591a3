"""The training loop of every gradient-trained model: one function, `fit`, that a task calls with
its model, data, optimizers and schedules.

    history = loop.fit(model, x_train, y_train, loss_fn, [opt], [sched], epochs=10, batch_size=64,
                       validate=loop.validation(x_val, y_val, loss_fn, ["accuracy"]), monitor="val_accuracy",
                       patience=3, log=run.log_epoch, run=run)

What it does, step by step: minibatches of one shuffled order per epoch (indices into x and y,
which may already sit on the device), `transform` then `augment` on each batch, then the batch
step: by default forward under autocast, loss, backward, optional gradient clipping, every
optimizer, zero_grad; a task with another kind of step (the GAN's two players) passes `step`.
Every scheduler steps once per optimizer step. The step's statistics (the loss and the training
metrics) are summed on the device and read once per epoch, so there is no host sync per step
(a GPU run of CIFAR-10 is ~200 steps in ~2 s: a sync per step would show); a non-finite value is
tracked there too, and stops the run at the end of its epoch naming the first bad step, keeping
the checkpoint of the last good epoch.

After each epoch: `validate(model) -> {metric: value}` (logged as val_*), one history row
(epoch, step, train_* means, val_*, lr, time_s) handed to `log`, best-epoch keeping on `monitor`
and early stopping after `patience` epochs without improvement (the best weights are restored
at the end), then `on_epoch(row)`, then a checkpoint (with a run folder).

Checkpoints (toolkit.checkpoint): after every epoch, and between two steps when SIGINT/SIGTERM
asks to stop; a resumed run (`Run.resumed`) continues from it exactly (mid-epoch if need be: the
same data order, RNG streams, schedule and history, which is replayed through `log`). A fit that
had finished is not trained again: its final state comes back. Tasks with several fits in one run
name each fit's checkpoint file.

Under torchrun (toolkit.distributed) `batch_size` is the global batch: every rank takes its slice
of each batch of one shared order, and DDP averages the gradients.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from . import checkpoint as checkpoints, distributed
from .runs import Run
from .schedules import steps as count_steps
from .signals import deferred_interrupts
from .train import METRICS, TrainingError, autocast, evaluate
from ..errors import ExomlError

Step = Callable[[torch.Tensor, torch.Tensor], dict]


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, optimizers: list, schedulers: list = (), *,
        epochs: float, batch_size: int, step: Step | None = None, transform=None, augment=None,
        metrics=("accuracy",), validate: Callable[[nn.Module], dict] | None = None, monitor: str | None = None,
        mode: str = "min", patience: int | None = None, grad_clip: float | None = None, precision: str = "cuda",
        generator: torch.Generator | None = None, drop_last: bool = True, max_steps: int | None = None,
        log: Callable[[dict], None] | None = None, on_epoch: Callable[[dict], None] | None = None,
        state: dict[str, torch.Tensor] | None = None, run: Run | None = None,
        checkpoint: str = "checkpoint.safetensors", desc: str = "train",
        epoch_order: Callable[[torch.Generator | None], torch.Tensor] | None = None) -> list[dict]:
    """Train `model` on (x, y) and return the history (one dict per epoch).

    x, y: whole splits as tensors (rows first); a batch is x[idx], y[idx], moved to the model's device.
    loss_fn: for the default step (a summed loss, reduction="sum", is reported per row).
    step(xb, yb) -> {name: batch-mean tensor}: replaces the default step (it must do the backward
    passes and optimizer steps itself); the loop still steps the schedulers, sums the statistics
    (logged as train_<name>) and guards against non-finite ones.
    transform(xb): on every training batch after the move (uint8 -> float, origins -> windows).
    augment(xb, yb, idx, epoch) -> (xb, targets): training batches only; may change the targets.
    metrics: names from train.METRICS measured on the training batches during the epoch (accuracy,
    mse and mae; the others need whole-split counts and are left to `validate`).
    epochs: passes (fractional allowed: round(epochs x batches per epoch) steps); max_steps caps them.
    generator: the data order's RNG (a CPU torch.Generator); None: torch's global RNG on x's device
    (broadcast from rank 0 under torchrun). drop_last: drop each epoch's last partial batch.
    epoch_order(generator) -> a permutation of range(len(x)): each epoch's row order, batch after
    batch (e.g. `length_buckets`); None: a uniform random permutation.
    precision: toolkit.train.uses_bf16's argument (auto | bf16 | fp32 | cuda).
    log(row): each history row (e.g. run.log_epoch); on resume the checkpoint's rows are replayed
    through it first. on_epoch(row): after each epoch trained here (not replayed), before the
    checkpoint. state: the task's own tensors (updated by on_epoch, e.g. the GAN's sample frames),
    saved with every checkpoint and put back into the dict on resume.
    run, checkpoint: the run folder and this fit's checkpoint file in it (None: no checkpoints).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ExomlError(f"unknown metric(s) {unknown}: choose from {', '.join(METRICS)}")
    patience = patience or None  # 0 means what --patience 0 says: no early stopping
    if patience is not None and monitor is None:
        raise ExomlError("early stopping (patience) needs a monitored validation metric")
    device = next(model.parameters()).device
    n = len(x)
    bs = min(batch_size, n)
    world, r = distributed.world_size(), distributed.rank()
    local = distributed.local_batch(bs)
    per_epoch = n // bs if drop_last else math.ceil(n / bs)
    if epoch_order is None:  # uniform; without a generator, drawn by torch's RNG on x's device
        def epoch_order(g):
            return torch.randperm(n, generator=g) if g is not None else torch.randperm(n, device=x.device)
    total = count_steps(n, batch_size, epochs, drop_last, max_steps)
    if step is None:
        step = supervised_step(model, loss_fn, optimizers, metrics, precision, grad_clip)
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)

    writes = run is not None and run.writes
    ckpt = run.file(checkpoint) if run is not None else None
    history: list[dict] = []
    done, epoch, partial, best, best_state, stale, finished = 0, 0, None, None, None, 0, False
    if ckpt is not None and run.resumed and ckpt.exists():
        progress = checkpoints.load(ckpt, model, optimizers, schedulers)
        done, epoch, history = progress["step"], progress["epoch"], progress["history"]
        partial = progress.get("partial")
        best, stale, finished = progress.get("best"), progress.get("stale", 0), progress.get("finished", False)
        extra = progress["extra"]
        if generator is not None and "generator" in extra:
            generator.set_state(extra["generator"])
        if state is not None:
            state.update({k.removeprefix("state."): v for k, v in extra.items() if k.startswith("state.")})
        if any(k.startswith("best.") for k in extra):
            best_state = {k.removeprefix("best."): v.to(device) for k, v in extra.items() if k.startswith("best.")}
        for row in history:  # history.csv agrees with the checkpoint again
            if log:
                log(dict(row))

    def save(progress: dict, order: torch.Tensor | None = None) -> None:
        extra = {f"best.{k}": v for k, v in (best_state or {}).items()}
        extra.update({f"state.{k}": v for k, v in (state or {}).items()})
        if generator is not None:
            extra["generator"] = generator.get_state()
        if order is not None:
            extra["order"] = order
        checkpoints.save(ckpt, model, optimizers, schedulers, {"step": done, "epoch": epoch, "history": history,
                                                               "best": best, "stale": stale, **progress}, extra)

    bar = tqdm(total=total, initial=done, desc=desc, leave=False,
               disable=True if finished or not distributed.is_main() else None)
    with deferred_interrupts() as stop_asked:
        while done < total and not finished:
            model.train()
            t0 = time.perf_counter()
            first_bad = torch.full((), total + 1, device=device)  # the first step with a non-finite statistic
            if partial:  # an epoch interrupted part-way: its order and running sums come back
                epoch, start, rows = partial["epoch"], partial["done"], partial["rows"]
                order = progress["extra"]["order"].to("cpu" if generator is not None else x.device)
                sums = {k: torch.tensor(v, device=device) for k, v in partial["sums"].items()}
                partial = None
            else:
                epoch, start, rows, sums = epoch + 1, 0, 0, {}
                if generator is not None:
                    order = epoch_order(generator)
                else:  # rank 0's order everywhere
                    order = distributed.broadcast_(epoch_order(None).to(x.device))
            for i in range(start, min(per_epoch, start + total - done)):
                idx = order[i * bs:(i + 1) * bs]
                if world > 1:
                    idx = idx[r * local:(r + 1) * local]  # this rank's slice of the batch
                xb, yb = x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
                if transform is not None:
                    xb = transform(xb)
                if augment is not None:
                    xb, yb = augment(xb, yb, idx, epoch)
                stats = step(xb, yb)
                for sched in schedulers:
                    sched.step()
                values = torch.stack([v.detach().float().reshape(()) for v in stats.values()])
                first_bad = torch.where(values.isfinite().all(), first_bad, first_bad.clamp_max(done + 1))
                for k, v in zip(stats, values * len(idx)):
                    sums[k] = sums[k] + v if k in sums else v
                rows += len(idx)
                done += 1
                bar.update()
                if _stop(stop_asked, device):  # Ctrl-C / SIGTERM: save where we are, then stop
                    if writes and bool(values.isfinite().all()):
                        sums_now = {k: v.item() for k, v in sums.items()}
                        save({"epoch": epoch - 1, "partial": {"epoch": epoch, "done": i + 1, "rows": rows,
                                                              "sums": sums_now}}, order)
                    raise KeyboardInterrupt
            names = list(sums)
            reduced = distributed.all_reduce_(torch.stack([sums[k] for k in names] + [
                torch.tensor(float(rows), device=device)]), "sum").tolist()
            bad = int(distributed.all_reduce_(first_bad, "min").item())
            means = {k: v / max(reduced[-1], 1) for k, v in zip(names, reduced)}
            if bad <= total or not all(math.isfinite(v) for v in means.values()):
                kept = f"; the checkpoint of epoch {epoch - 1} is kept" if writes and epoch > 1 else ""
                raise TrainingError(f"non-finite training loss at step {min(bad, done)} (epoch {epoch}){kept}; "
                                    "lower the learning rate?")
            row = {"epoch": epoch, "step": done, **{f"train_{k}": v for k, v in means.items()}}
            seconds = round(time.perf_counter() - t0, 3)  # the epoch's training time, validation excluded
            if validate is not None and (distributed.is_main() or patience is not None):
                row.update({f"val_{k}": v for k, v in validate(model).items()})
            row.update(lr=optimizers[-1].param_groups[-1]["lr"], time_s=seconds)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("train_loss", "val_loss", monitor)})
            history.append(row)
            if monitor is not None and monitor in row:
                if best is None or better(row[monitor], best):
                    best, stale = row[monitor], 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
            finished = done >= total or (patience is not None and stale >= patience)
            if log:
                log(dict(row))
            if on_epoch:
                on_epoch(row)
            if writes:
                save({"finished": finished})
            if _stop(stop_asked, device):
                raise KeyboardInterrupt
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def length_buckets(lengths, batch_size: int, span: int = 50) -> Callable[[torch.Generator | None], torch.Tensor]:
    """An epoch order for `fit(epoch_order=...)` in which the rows of a batch have similar lengths.

    Each epoch: a random permutation, cut into windows of `span` batches; each window sorted by
    length and cut into batches; the full batches shuffled (the last partial one stays last). A
    model that trims each batch to its longest row (the IMDB RNN) then computes on little padding,
    while every batch is still a random draw of rows (only its neighbours in length differ).
    """
    lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
    n, window = len(lengths), batch_size * span

    def order(generator: torch.Generator | None) -> torch.Tensor:
        perm = torch.randperm(n, generator=generator)
        key = (torch.arange(n) // window) * (int(lengths.max()) + 1) + lengths[perm]  # window first, then length
        perm = perm[torch.sort(key, stable=True).indices]
        full = n // batch_size
        blocks = perm[:full * batch_size].view(full, batch_size)[torch.randperm(full, generator=generator)]
        return torch.cat([blocks.reshape(-1), perm[full * batch_size:]])
    return order


def supervised_step(model: nn.Module, loss_fn, optimizers: list, metrics=(), precision: str = "cuda",
                    grad_clip: float | None = None) -> Step:
    """The default batch step: forward under autocast (DDP-wrapped under torchrun), loss in float32
    (float targets for a 1-D output: binary logits, regression), backward, gradient clipping, every
    optimizer, zero_grad. Returns the batch's loss (per row for a summed loss) and `metrics`,
    as device tensors."""
    net = distributed.wrap(model)  # DDP over the ranks, or the model itself
    sum_reduced = getattr(loss_fn, "reduction", "mean") == "sum"
    scale = distributed.world_size() if sum_reduced else 1  # DDP averages: a summed loss needs the sum back
    device = next(model.parameters()).device

    def step(xb, yb):
        with autocast(device, precision):
            out = net(xb)
        out = out.float()
        loss = loss_fn(out, yb.float() if out.ndim == 1 else yb)
        (loss * scale if scale != 1 else loss).backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        for opt in optimizers:
            opt.step()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        stats = {"loss": loss.detach() / len(xb) if sum_reduced else loss.detach()}
        with torch.no_grad():
            stats.update({m: batch_metric(m, out.detach(), yb) for m in metrics if m in BATCH_METRICS})
        return stats
    return step


def batch_metric(name: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A training metric of one batch as a device tensor (no host sync). Accuracy takes the class
    of largest probability when augmentation made the targets probabilities (CutMix)."""
    if name == "accuracy":
        pred = (out.reshape(-1) > 0).long() if out.ndim == 1 or out.shape[-1] == 1 else out.argmax(-1)
        true = target.argmax(-1) if target.is_floating_point() and target.ndim == 2 else target.long().reshape(-1)
        return (pred == true).float().mean()
    if name == "mse":
        return (out - target.float()).pow(2).mean()
    return (out - target.float()).abs().mean()  # mae


BATCH_METRICS = ("accuracy", "mse", "mae")


def validation(x: torch.Tensor, y: torch.Tensor, loss_fn, metrics=(), transform=None,
               batch_size: int = 1024) -> Callable[[nn.Module], dict]:
    """validate(model) -> {loss, metrics...} on a held-out split (toolkit.train.evaluate)."""
    chosen = {m: METRICS[m] for m in metrics}
    return lambda model: evaluate(model, (x, y), loss_fn, chosen, batch_size, transform=transform)


def _stop(stop_asked, device: torch.device) -> bool:
    """Was a stop asked (on any rank: all ranks must stop after the same step)?"""
    if distributed.world_size() == 1:
        return stop_asked()
    return distributed.all_reduce_(torch.tensor(float(stop_asked()), device=device)).item() > 0
