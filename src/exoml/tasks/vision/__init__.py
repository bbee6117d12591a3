"""Image classification: mnist, fashion-mnist, cifar10, cifar100, and what only they share:
data on the device as one uint8 tensor (common), batched tensor augmentation (augment), the
training loop with checkpoints and torchrun (loop), the Muon optimizer (muon), the image figures,
the evaluation write-up and predict (report), and reading a new image (images)."""
