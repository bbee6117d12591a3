"""Content hashes of saved arrays and tensors: what was written is what is read back.

A hash covers every entry's name, dtype, shape and bytes, in name order, so a flipped byte, a
changed label or a renamed entry all change it. Data caches and weights files record it when
they are written and check it when they are verified or loaded.
"""
from __future__ import annotations

import hashlib

import numpy as np


def _digest(entries) -> str:
    h = hashlib.sha256()
    for name, dtype, shape, data in entries:
        h.update(f"{name}\0{dtype}\0{tuple(shape)}\0".encode())
        h.update(data)
    return h.hexdigest()


def array_sha256(name: str, arr: np.ndarray) -> str:
    """The hash of one named numpy array."""
    arr = np.ascontiguousarray(arr)
    return _digest([(name, str(arr.dtype), arr.shape, arr.reshape(-1).view(np.uint8))])


def tensors_sha256(tensors: dict) -> str:
    """The hash of a {name: torch.Tensor} dict (e.g. a state dict about to be saved)."""
    import torch
    entries = []
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        entries.append((name, str(t.dtype), tuple(t.shape), t.reshape(-1).view(torch.uint8).numpy()))
    return _digest(entries)
