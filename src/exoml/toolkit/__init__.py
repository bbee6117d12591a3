"""What every task uses, and nothing task-specific: settings and flags (config), run folders and
atomic writes (runs), training checkpoints (checkpoint), torchrun data parallelism (distributed),
device, precision, losses, optimizers and the training helpers (train), the training loop (loop)
and its schedules (schedules), Ctrl-C as a request answered at a safe point (signals), content
hashes of saved arrays and weights (integrity), metrics, shared figures (plots), report text
(report) and loading a run's weights (weights).

This package never imports exoml.tasks: tasks build on the toolkit, not the other way round.
"""
