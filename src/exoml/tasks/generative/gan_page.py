"""The gan page in `exoml serve`: a grid of new digits from the run's EMA generator (one chosen
digit when the run is conditional) and the verdict of the judge the run was measured with on each.
Drawing is gan.draw (what `exoml generate gan` uses); the judge is gan_judge.recorded_judge."""
from __future__ import annotations

import json

import numpy as np

from ...serve.page import Bars, Field, Note, Page, Picture, Table, Verdict, png_of_array, upscale

MAX_N = 100  # digits in one grid


def gan_page() -> Page:
    from . import fid, gan
    from .gan_judge import recorded_judge
    from .gan_report import tile

    def load(run_dir, info):
        g, cfg = gan.load_generator(run_dir, info)
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        judge, source = recorded_judge(run_dir, info, metrics if isinstance(metrics, dict) else {})
        return g, cfg, judge, source

    def fields(state):
        cfg = state[1]
        out = [Field("n", "How many digits", "number", default=20, min=1, max=MAX_N, integer=True),
               Field("seed", "Seed of the noise", "number", default=0, min=0, max=2**31 - 1, integer=True)]
        if cfg.get("conditional"):
            out.insert(0, Field("digit", "Digit", "select", default="all",
                                choices=[("all", "0-9, one column each"), *((str(d), str(d)) for d in range(10))]))
        return out

    def answer(state, inputs):
        g, cfg, judge, source = state
        n, seed = int(inputs["n"]), int(inputs["seed"])
        digit = None if inputs.get("digit", "all") == "all" else int(inputs["digit"])
        images = gan.draw(g, cfg, n, digit, seed)
        cols = gan.grid_columns(cfg, n, digit)
        out = [Picture(f"{n} generated digit{'s' * (n != 1)}" + (f" (asked: {digit})" if digit is not None else ""),
                       png_of_array(upscale(tile(images, cols), 3)), pixelated=True,
                       caption="read left to right, top to bottom" + (
                           "; column = the digit asked for" if cfg.get("conditional") and digit is None else ""))]
        if judge is None:
            return out + [Note(f"No judge's verdicts: {source}.")]
        probs = fid.judge_outputs(judge, images)[1]
        said, conf = probs.argmax(1), probs.max(1)
        asked = (np.full(n, digit) if digit is not None else np.arange(n) % 10) if cfg.get("conditional") else None
        confident = float((conf >= 0.9).mean())
        head = f"the judge is confident (>= 0.9) about {confident:.0%} of them"
        if asked is not None:
            head += f"; it reads the asked digit in {float((said == asked).mean()):.0%}"
        share = np.bincount(said, minlength=10) / n
        rows = [{"#": i + 1, **({"asked": int(asked[i])} if asked is not None else {}), "judge reads": int(said[i]),
                 "confidence": float(conf[i])} for i in range(n)]
        return [Verdict(head), *out,
                Bars("which digit the judge reads", [(str(d), float(share[d])) for d in range(10)]),
                Table("the judge's verdict on each digit", rows),
                Note(f"Judge: {source}.")]

    return Page(about="Draw new handwritten digits from the run's generator and let the run's judge (an MNIST "
                      "classifier) say which digit it reads in each, and how sure it is.",
                load=load, fields=fields, answer=answer, submit="Generate")
