"""Finding a trained run and loading its weights safely (safetensors only, checked against the model)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ExomlError
from .runs import is_complete, latest_run


def open_run(task: str, run: Path | None = None, out: str | Path = "runs") -> tuple[Path, dict]:
    """(run folder, its config.json) for `task`: the given folder, else the latest complete run."""
    if run is None:
        run = latest_run(task, out)
        if run is None:
            raise ExomlError(f"no complete run of {task} under {Path(out) / task}: train one with `exoml run {task}`")
    run = Path(run)
    try:
        info = json.loads((run / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ExomlError(f"{run} is not an exoml run folder (no readable config.json)") from None
    if info.get("task") != task:
        raise ExomlError(f"{run} is a run of {info.get('task')!r}, not of {task!r}")
    if not is_complete(run):
        raise ExomlError(f"{run} did not complete (see its status.json); use a complete run")
    return run, info


def check_intact(state: dict, meta: dict, path: Path) -> None:
    """Refuse weights whose bytes changed since they were written (the content hash saved with them)
    or that hold NaN/inf: either would make the model answer confidently and wrongly."""
    import torch
    from .integrity import tensors_sha256
    recorded = meta.get("content_sha256")
    if recorded is not None and tensors_sha256(state) != recorded:
        raise ExomlError(f"{path} is damaged: its content does not match the hash recorded when it was "
                         "written; train the run again")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ExomlError(f"{path} is damaged: non-finite values in {', '.join(sorted(bad)[:3])}")


def load_state(model, path: Path, task: str | None = None) -> dict:
    """Load a safetensors file into `model`, refusing files that are not ours or do not fit.
    Returns the file's metadata (strings)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open
    path = Path(path)
    if not path.is_file():
        raise ExomlError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ExomlError(f"{path.name} is not a valid safetensors weights file ({str(e)[:80]})") from None
    if task is not None and meta.get("task") not in (None, task):
        raise ExomlError(f"{path.name} holds weights of task {meta.get('task')!r}, not {task!r}")
    check_intact(state, meta, path)
    own = model.state_dict()
    missing, extra = set(own) - set(state), set(state) - set(own)
    bad = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or extra or bad:
        detail = (f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(extra)[:3]}" if extra
                  else f"shape mismatch at {bad[:3]}")
        raise ExomlError(f"{path.name} does not fit this model ({detail}); was it trained with other settings?")
    model.load_state_dict(state)
    return meta
