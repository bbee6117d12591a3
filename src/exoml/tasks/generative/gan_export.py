"""`exoml export gan`: the run's EMA generator (noise, and the digit when conditional -> a 28x28 image),
verified on a fixed batch of noise vectors (seed 0)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..contract import Export
from .gan_model import Generator

N_LATENTS = 1000  # the fixed batch of noise vectors the export is verified on


def export_run(task: str, run_dir: Path, info: dict, batch_size: int = 250) -> Export:
    from ...toolkit.weights import load_state
    c = info["config"]
    conditional = bool(c["conditional"])
    g = Generator(c["z_dim"], c["width"], conditional, c.get("depth", 0))
    load_state(g, run_dir / "model.safetensors", task=task)
    g = g.float().eval()
    z = torch.randn(N_LATENTS, c["z_dim"], generator=torch.Generator().manual_seed(0)).numpy()
    digits = (torch.arange(N_LATENTS) % 10).numpy()

    def batches():
        for i in range(0, N_LATENTS, batch_size):
            yield (z[i:i + batch_size], digits[i:i + batch_size]) if conditional else (z[i:i + batch_size],)

    names = ("z", "digit") if conditional else ("z",)
    example = (torch.randn(2, c["z_dim"]), torch.tensor([3, 7])) if conditional else (torch.randn(2, c["z_dim"]),)
    preprocessing = {"input": f"z: float32 (N, {c['z_dim']}), standard normal noise" +
                              ("; digit: int64 (N,), the digit to draw (0-9)" if conditional else ""),
                     "output": "image: float32 (N, 1, 28, 28) in [-1, 1] (tanh); as a picture: "
                               "round((image + 1) * 127.5) clipped to 0-255, a white digit on black (MNIST style)"}
    return Export(
        module=g, inputs=example, input_names=names, output_names=("image",),
        dynamic_axes={**{n: {0: "batch"} for n in names}, "image": {0: "batch"}},
        metadata={"classes": [str(d) for d in range(10)] if conditional else [], "conditional": conditional,
                  "z_dim": c["z_dim"], "preprocessing": preprocessing},
        evaluation=batches, evaluated=f"a fixed batch of {N_LATENTS:,} noise vectors (seed 0"
                                      + (", digits 0-9 in turn)" if conditional else ")"))
