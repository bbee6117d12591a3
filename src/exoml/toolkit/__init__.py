"""What every task uses, and nothing task-specific: settings and flags (config), run folders and
atomic writes (runs), training checkpoints (checkpoint), torchrun data parallelism (distributed),
device, precision, losses, optimizers and the training helpers (train), metrics, shared figures
(plots), report text (report) and loading a run's weights (weights).

This package never imports exoml.tasks: tasks build on the toolkit, not the other way round.
"""
