"""The ten exercises. Each task is one module with:

    Config          a dataclass (subclass of config.Common): its settings, turned into CLI flags
    QUICK           dict of overrides for --quick (seconds on a CPU)
    run(cfg, run)   data -> model -> train -> evaluate -> plots; returns (metrics, report_md)
    add_predict_args(parser), predict(args)   `exoml predict TASK ...` on one new input

This table is what `exoml list` prints; modules are imported only when used (torch is slow to load).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from ..errors import ExomlError


@dataclass(frozen=True)
class TaskInfo:
    name: str
    exercise: str
    dataset: str
    model: str
    metric: str


TASKS: dict[str, TaskInfo] = {t.name: t for t in (
    TaskInfo("cifar10", "CIFAR-10 image classification", "cifar10", "CNN (ResNet-style)", "test accuracy"),
    TaskInfo("boston", "Boston Housing price regression", "boston", "linear regression (OLS, ridge)", "test R²"),
    TaskInfo("imdb", "IMDB review sentiment", "imdb", "RNN (embedding + BiLSTM)", "test accuracy"),
    TaskInfo("iris", "Iris clustering, visualised", "iris", "K-means", "ARI, accuracy after matching"),
    TaskInfo("kddcup", "KDD Cup 99 network anomaly detection", "kddcup", "autoencoder, Isolation Forest", "precision, recall, F1"),
    TaskInfo("gan", "MNIST digit generation", "mnist", "DCGAN", "FID, classifier confidence"),
    TaskInfo("electricity", "Household electricity forecasting", "electricity", "RNN (LSTM) forecaster", "test MSE"),
    TaskInfo("mnist", "MNIST digit classification", "mnist", "CNN", "test accuracy"),
    TaskInfo("fashion-mnist", "Fashion-MNIST classification", "fashion-mnist", "fully connected deep network", "test accuracy"),
    TaskInfo("cifar100", "CIFAR-100 image classification", "cifar100", "deep CNN (ResNet-style)", "test accuracy"),
)}


FAMILIES = {"vision": ("mnist", "fashion-mnist", "cifar10", "cifar100"), "text": ("imdb",),
            "timeseries": ("electricity",), "tabular": ("boston", "iris", "kddcup"), "generative": ("gan",)}


def module_name(task: str) -> str:
    family = next(f for f, tasks in FAMILIES.items() if task in tasks)
    return f"exoml.tasks.{family}.{task.replace('-', '_')}"


def available(task: str) -> bool:
    return importlib.util.find_spec(module_name(task)) is not None


def load_task(task: str):
    if task not in TASKS:
        raise ExomlError(f"unknown task {task!r}: choose from {', '.join(TASKS)}")
    if not available(task):
        raise ExomlError(f"task {task!r} is not implemented yet")
    return importlib.import_module(module_name(task))
