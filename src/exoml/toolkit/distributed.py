"""Data-parallel training over several processes, launched by PyTorch's own `torchrun`.

    torchrun --nproc_per_node 8 -m exoml run cifar100                      # one machine, 8 GPUs
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d \\
             --rdzv_endpoint HOST0:29500 --rdzv_id cifar100 -m exoml run cifar100   # on each of 2 machines
    torchrun --standalone --nproc_per_node 2 -m exoml run mnist --device cpu       # CPU, gloo

How it works, and why so little changes in the tasks:
- torchrun starts one process per device and sets RANK / WORLD_SIZE / LOCAL_RANK; `init` joins
  the process group (NCCL on CUDA, gloo on the CPU). A plain `exoml run` never touches any of this.
- Every rank loads the data and builds the same model from the same seed (DDP also broadcasts
  rank 0's weights when it wraps the model).
- `--batch-size` stays the *global* batch: rank 0 draws the epoch's shuffled order and sends it
  to all; rank r trains on slice r of every global batch. So N processes see the same images per
  step as one process does, and the same hyper-parameters apply.
- DistributedDataParallel averages gradients across ranks during backward. For a loss summed
  over the batch (the airbench recipes), the local loss is multiplied by the world size first, so
  the averaged gradient is the gradient of the sum over the global batch, as in one process.
- BatchNorm statistics are per rank (torch's SyncBatchNorm is CUDA-only; on CUDA `fit` converts).
- Only rank 0 writes the run folder (config, history, checkpoints, figures, weights, report);
  the other ranks get a read-only `Run` of the same folder, so a resume reads the same checkpoint.
"""
from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist

from ..errors import ExomlError


def launched() -> bool:
    """True in a process started by torchrun with more than one process in all."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto") -> None:
    """Join the process group torchrun set up (env:// rendezvous); a no-op in a plain process."""
    if not launched() or dist.is_initialized():
        return
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if cuda:
        torch.cuda.set_device(local_rank())
    try:
        dist.init_process_group("nccl" if cuda else "gloo")
    except (RuntimeError, ValueError) as e:
        raise ExomlError(f"could not join the torchrun process group: {str(e).splitlines()[0]}") from None
    atexit.register(_leave)


def _leave() -> None:
    """Leave the group together: a rank that tears its connections down while another is still
    working (rank 0 writing the run's files) can make gloo's threads abort the other process
    ("terminate called without an active exception"), so all ranks meet at a barrier first."""
    if not dist.is_initialized():
        return
    try:
        dist.barrier()
    except RuntimeError:  # a peer is already gone (it failed): nothing left to wait for
        pass
    dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def share(obj):
    """Rank 0's value of a small picklable object (a path, a dict) on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_(t: torch.Tensor) -> torch.Tensor:
    """Overwrite t with rank 0's t, in place (same shape and dtype on every rank)."""
    if world_size() > 1:
        dist.broadcast(t, src=0)
    return t


def all_reduce_(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place reduction of t over the ranks: 'sum', 'mean' or 'min'."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.SUM)
        if op == "mean":
            t /= world_size()
    return t


def local_batch(batch_size: int) -> int:
    """This rank's share of a global batch; the batch must split evenly."""
    w = world_size()
    if batch_size % w:
        raise ExomlError(f"--batch-size {batch_size} does not split evenly over {w} processes")
    return batch_size // w


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module to train with: DDP over the ranks (SyncBatchNorm on CUDA), or the model itself.
    The wrapper shares the model's parameters, so evaluating and saving use `model` directly."""
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP
    device = next(model.parameters()).device
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
