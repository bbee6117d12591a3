"""`exoml export` for the four image classifiers: the trained network as the run built it, verified on
the test images the run was scored on (the official test split, or the run's fixed subset of it)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import ExomlError
from ..contract import Export
from .common import config_from_run, nchw, split

# What `exoml predict` does to an image before the model sees it (report.prepare_image), by mode.
PREPARE = {"digit": "grey; a dark digit on light paper is inverted; the digit is cropped and centred by its centre "
                    "of mass in a 20x20 box inside 28x28 (as the MNIST digits are)",
           "item": "grey; inverted when the border is light (Fashion-MNIST items are light on black); resized "
                   "to 28x28",
           "photo": "RGB; resized to 32x32"}


def image_classifier(mod, task: str, run_dir: Path, info: dict, mode: str, batch_size: int = 500) -> Export:
    """The Export of an image task module `mod` (its Config and build_model) for one run."""
    import torch
    from ... import data
    from ...toolkit.weights import load_state
    cfg = config_from_run(mod.Config, info)
    model = mod.build_model(cfg)
    meta = load_state(model, run_dir / "model.safetensors", task)
    model = model.float().eval()
    ds = data.load(mod.TASK.dataset)
    classes = json.loads(meta.get("classes", "null") or "null") or list(ds.classes)
    x_test = split(ds, cfg)["x_test"]  # the test images the run scored (all, or its fixed subset)
    try:
        scored = json.loads((run_dir / "metrics.json").read_text()).get("n_test")
    except (OSError, ValueError):
        scored = None
    if scored is not None and scored != len(x_test):
        raise ExomlError(f"the imported {mod.TASK.dataset} data is not the one {run_dir} was scored on "
                         f"({len(x_test):,} test images now, {scored:,} then): import that data again to export it")
    c, h, w = nchw(x_test[:1]).shape[1:]
    norm = model.members[0].norm if hasattr(model, "members") else model.norm  # an ensemble's share the statistics
    mean = norm.mean.flatten().tolist()
    std = norm.std.flatten().tolist()

    def batches():
        for i in range(0, len(x_test), batch_size):
            yield (nchw(x_test[i:i + batch_size]).float().div_(255).numpy(),)

    preprocessing = {
        "input": f"float32 (N, {c}, {h}, {w}): N images, channels first, values in [0, 1] (uint8 pixel / 255)",
        "image_size": [h, w], "channels": c, "channel_order": "RGB" if c == 3 else "grey",
        "normalisation": "inside the model: (x - mean) / std per channel, the training split's statistics",
        "mean": mean, "std": std, "prepare_an_image": PREPARE[mode],
        "output": f"logits (N, {len(classes)}); softmax gives the class probabilities, in the order of `classes`"}
    tta = getattr(cfg, "tta", "none")
    if tta != "none":
        preprocessing["test_time_augmentation"] = (f"the run's test accuracy averaged the logits over `{tta}` views "
                                                   "(exoml.tasks.vision.common.tta_views); the exported model is "
                                                   "one view")
    n = len(x_test)
    where = "the official test split" if n == len(ds.y_test) else "the run's fixed subset of the official test split"
    return Export(
        module=model, inputs=(torch.rand(2, c, h, w),), input_names=("image",), output_names=("logits",),
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        metadata={"classes": classes, "preprocessing": preprocessing},
        evaluation=batches, evaluated=f"{where} ({n:,} images)", decide=lambda logits: np.argmax(logits, 1))
