"""Training checkpoints: model, optimizers, schedulers, RNG and progress in one safetensors file.

Tensors (weights, optimizer buffers, RNG states) are safetensors entries; everything else
(step, epoch, history, optimizer hyper-parameters, scheduler counters) is JSON in the file's
metadata. No pickle anywhere, and the file is replaced atomically, so an interruption leaves
the previous epoch's checkpoint intact.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

import torch

from ..errors import ExomlError
from .runs import atomic_write_bytes


def _split_state(prefix: str, obj, tensors: dict) -> object:
    """Replace tensors inside a nested state dict by references into `tensors`."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {str(k): _split_state(f"{prefix}.{k}", v, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_state(f"{prefix}.{i}", v, tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint {type(obj).__name__} at {prefix}")


def _join_state(obj, tensors: dict, int_keys: bool = False):
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {(int(k) if int_keys and k.lstrip("-").isdigit() else k): _join_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_state(v, tensors) for v in obj]
    return obj


def save(path: Path, model, optimizers: list, schedulers: list, progress: dict,
         extra: dict[str, torch.Tensor] | None = None) -> None:
    """`progress` is JSON (step, epoch, history, ...); `extra` tensors (an epoch's data order)."""
    from safetensors.torch import save
    tensors: dict[str, torch.Tensor] = {}
    sd = {k.removeprefix("_orig_mod."): v for k, v in model.state_dict().items()}
    for k, v in sd.items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    opts = [_split_state(f"opt{i}", o.state_dict(), tensors) for i, o in enumerate(optimizers)]
    scheds = [{k: v for k, v in s.state_dict().items() if k != "lr_lambdas"} for s in schedulers]
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    tensors["rng.cpu"] = torch.get_rng_state()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # numpy's global stream (CutMix draws)
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    py_state = random.getstate()
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda{i}"] = st
    meta = {"format": "exoml-checkpoint-1", "progress": json.dumps(progress), "optimizers": json.dumps(opts),
            "schedulers": json.dumps(scheds), "rng": json.dumps({"numpy": [kind, pos, has_gauss, gauss],
                                                                 "python": [py_state[0], list(py_state[1]), py_state[2]]})}
    # serialised in memory, written by Python: a full disk is an OSError like any other write
    atomic_write_bytes(Path(path), save(tensors, metadata=meta))


def load(path: Path, model, optimizers: list, schedulers: list) -> dict:
    """Restore everything `save` wrote; returns the progress dict (step, epoch, history, ...) with
    the extra tensors under "extra"."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ExomlError(f"{Path(path).name}: not a readable checkpoint ({str(e)[:80]})") from None
    if meta.get("format") != "exoml-checkpoint-1":
        raise ExomlError(f"{Path(path).name} is not an exoml checkpoint")
    model_sd = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    target = model._orig_mod if hasattr(model, "_orig_mod") else model
    try:
        target.load_state_dict(model_sd)
        for o, st in zip(optimizers, json.loads(meta["optimizers"])):
            st = _join_state(st, tensors)
            st["state"] = {int(k): v for k, v in st["state"].items()}
            o.load_state_dict(st)
    except (RuntimeError, KeyError, ValueError) as e:
        raise ExomlError(f"checkpoint does not fit this model/optimizer ({str(e)[:100]})") from None
    for s, st in zip(schedulers, json.loads(meta["schedulers"])):
        s.__dict__.update(st)
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng" in meta and "rng.numpy" in tensors:
        rng = json.loads(meta["rng"])
        kind, pos, has_gauss, gauss = rng["numpy"]
        np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, state, gauss_next = rng["python"]
        random.setstate((version, tuple(state), gauss_next))
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng.cuda"))]
        if states:
            torch.cuda.set_rng_state_all(states)
    progress = json.loads(meta["progress"])
    progress["extra"] = {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
    return progress
