"""Image classification: mnist, fashion-mnist, cifar10, cifar100, and what only they share:
data on the device as one uint8 tensor, validation and test-time augmentation (common), batched
tensor augmentation (augment), the Muon optimizer (muon), the image figures, the evaluation
write-up and predict (report), and reading a new image (images). They train with toolkit/loop.py."""
