"""What a task is: the one definition every command reads.

A task module ends with

    TASK = Task(
        name="mnist", exercise="MNIST digit classification", dataset="mnist",
        model="CNN: two conv stages, ...",
        headline=Headline("accuracy", "test accuracy"),
        reference=Reference("99.25% test accuracy (Keras mnist_cnn example)", 0.9925, "keras.io examples"),
        config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
        tuning=Tuning("val_accuracy", trial_settings={"val_size": 5000}), distributed=True)

and the registry (`exoml.tasks`) maps the task's name to its module. `exoml list`, `exoml run`,
`predict`, `generate`, `tune`, `compare`, `report` and `serve` read these fields and nothing else of the
module, so a new task is one module with one `TASK` (or a `register(TASK)` call from outside the
package, as the test suite's toy task does).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Headline:
    """The number a run is summarised by: a key of the run's metrics.json."""
    key: str                     # e.g. "accuracy", "A_f1", "fid"
    label: str                   # what a reader calls it: "test accuracy", "FID (judge's features)"
    higher_is_better: bool = True


@dataclass(frozen=True)
class Reference:
    """The published figure the exercise is usually compared with."""
    text: str                    # the claim, with its setting: "94.0% test accuracy in 3.3 s on one A100"
    value: float | None          # that figure in the headline's units (None: no single comparable number)
    source: str                  # where it comes from


@dataclass(frozen=True)
class Profile:
    """A named set of settings (a recipe): values for some Config fields, applied over the defaults.

    `about` is one line shown by `--help` (what the profile is for, e.g. "the accurate recipe");
    `measured` optionally says what it reached, where and how fast (shown by `--help` too)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    about: str = ""
    measured: str = ""


@dataclass(frozen=True)
class Tuning:
    """How `exoml tune` scores a trial: a column of the run's history.csv (one row per epoch),
    measured on the validation split, and optionally the search space (setting -> distribution,
    as in `exoml tune --space`); without one, tune derives a space from the task's settings."""
    metric: str                  # e.g. "val_accuracy", "val_loss"
    direction: str = "maximize"  # maximize | minimize
    space: Mapping[str, Mapping] | None = None
    trial_settings: Mapping[str, Any] = field(default_factory=dict)  # every trial's defaults (a profile, a config
    # file and flags win): e.g. a validation split for a task whose default trains on the whole training split


@dataclass(frozen=True)
class Export:
    """What `exoml export` needs of one trained run (a task's `export(run_dir, info)` hook builds it):
    the network and how to call it, what a user of the exported file must know, and the inputs it
    is verified on. exoml.export turns it into ONNX and checks ONNX Runtime against PyTorch.

    module: the trained torch module (float32, CPU, eval mode) exactly as exported;
    inputs: example input tensors (a small batch) for tracing; input_names / output_names name them;
    dynamic_axes: {name: {axis: label}} for every input and output axis that may vary (batch, ...);
    metadata: what the file's metadata_props say on top of the run (classes, preprocessing, ...),
    each value a string or anything JSON can write;
    evaluation: a function returning the run's evaluation inputs (e.g. the official test split) as
    batches, each a tuple of numpy arrays (one per input); `evaluated` says what they are;
    decide: the prediction per item from the first output (e.g. argmax), compared between PyTorch
    and ONNX Runtime; None: an item agrees when all its outputs are within the tolerance;
    sidecars: {file name: JSON-able} written next to the model (e.g. the vocabulary)."""
    module: Any
    inputs: tuple
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]]
    metadata: Mapping[str, Any]
    evaluation: Callable[[], Any]
    evaluated: str
    decide: Callable | None = None
    sidecars: Mapping[str, Any] = field(default_factory=dict)


QUICK = "quick"  # the profile every task has: `--quick` is short for `--profile quick`
CPU = "cpu"      # the best honest result in a laptop's budget: the default where no CUDA GPU is found
FULL = "full"    # the task's full recipe: the default profile (on a GPU) unless the task names another


@dataclass(frozen=True)
class Task:
    """One exercise, end to end. Required: what it is (name, exercise, dataset, model), how it is
    judged (headline, reference), its settings (config, profiles) and what it does (run, predict).
    Optional hooks: generate (new samples from a run), tuning (what `exoml tune` optimises; None:
    the task cannot be tuned, and `tune_note` says why), distributed (trains data-parallel under torchrun),
    steady_shapes (its training steps allocate big tensors of a few shapes, repeated from step to
    step, so a CPU run keeps glibc's freed memory for the next step: toolkit.train.reuse_freed_memory),
    export (`exoml export`: export(run_dir, info) -> Export for a run folder and its config.json).

    run(cfg, run) -> (metrics, report_md): data -> model -> train -> evaluate -> figures, in the
    run folder `run` (toolkit.runs.Run); metrics must hold `headline.key`.
    predict(args) -> exit code: `exoml predict NAME ...` on new input; add_predict_args(parser)
    declares its arguments (`--run` and `--out` are added by the CLI). Both None for a task
    whose model takes no input (the GAN: `generate` is its way to use a trained run).
    """
    name: str
    exercise: str
    dataset: str
    model: str
    headline: Headline
    reference: Reference
    config: type
    run: Callable
    predict: Callable | None
    add_predict_args: Callable | None
    profiles: Mapping[str, Profile]  # name -> Profile; QUICK is required; FULL (GPU) and CPU are the usual defaults
    default_profile: str = FULL
    generate: Callable | None = None
    add_generate_args: Callable | None = None
    tuning: Tuning | None = None
    tune_note: str = ""
    distributed: bool = False
    steady_shapes: bool = False
    export: Callable | None = None
    page: Any = None  # its page in `exoml serve`: an exoml.serve.page.Page (form, load a run, answer)

    def __post_init__(self):
        if self.default_profile not in self.profiles:
            raise ValueError(f"task {self.name}: default profile {self.default_profile!r} is not one of its profiles")
        if QUICK not in self.profiles:
            raise ValueError(f"task {self.name}: every task declares a {QUICK!r} profile (a seconds-long smoke run)")
        if (self.predict is None) != (self.add_predict_args is None):
            raise ValueError(f"task {self.name}: predict and add_predict_args come together")
        if (self.generate is None) != (self.add_generate_args is None):
            raise ValueError(f"task {self.name}: generate and add_generate_args come together")
        if self.tuning is not None and self.tuning.direction not in ("maximize", "minimize"):
            raise ValueError(f"task {self.name}: tuning direction must be maximize or minimize")
        unknown = set(self.tuning.trial_settings if self.tuning else ()) - {f.name for f in fields(self.config)}
        if unknown:
            raise ValueError(f"task {self.name}: tuning trial_settings name unknown settings: {', '.join(sorted(unknown))}")

    def profile_settings(self, default: str | None = None) -> dict[str, dict]:
        """{profile name: its settings}, the default profile first (what the config builder takes).
        `default` overrides `default_profile` (runner.default_profile chooses it: the one place a
        choice by device would go)."""
        default = default or self.default_profile
        if default not in self.profiles:
            raise ValueError(f"task {self.name} has no profile {default!r}")
        names = [default, *(p for p in self.profiles if p != default)]
        return {p: dict(self.profiles[p].settings) for p in names}

    def settings(self, profile: str | None = None, **given):
        """A resolved Config, as `exoml run` builds it: defaults < profile (default: the task's) < given."""
        from ..toolkit.config import build_config
        if profile is not None:
            given["profile"] = profile
        return build_config(self.config, given, self.profile_settings())
