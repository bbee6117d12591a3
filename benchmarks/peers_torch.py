"""The plain-PyTorch reference recipes of benchmarks/bench_peers.py (no torchvision, no Keras).

Same contract as peers_keras.py: each function runs its published recipe on the raw arrays of
exoml's dataset cache and returns {"value", "seconds", "epoch_s", "settings", ...}.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from peers_keras import _images, _n


class PytorchMnistNet(nn.Module):
    """pytorch/examples mnist/main.py's Net, layer for layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.fc1(torch.flatten(self.dropout1(x), 1))
        return F.log_softmax(self.fc2(self.dropout2(F.relu(x))), dim=1)


def pytorch_mnist(seed: int, small: bool) -> dict:
    """pytorch/examples "Basic MNIST Example" with its defaults:
    https://github.com/pytorch/examples/blob/main/mnist/main.py
    torchvision's ToTensor + Normalize((0.1307,), (0.3081,)) restated on the uint8 arrays; the Net above;
    Adadelta lr 1.0, StepLR(step_size=1, gamma=0.7) per epoch, NLL loss on log-softmax; batch 64,
    14 epochs (the script's documented default); test batch 1000. Its DataLoader shuffles only on an
    accelerator (shuffle=True sits in the CUDA/accelerator kwargs), so on a CPU the batches come in
    file order, as here. The script also tests after every epoch; here only after the last (the
    other passes change no weight and would only add to the reference's time)."""
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = _images("mnist", small, seed)
    norm = lambda x: ((torch.from_numpy(x).float() / 255 - 0.1307) / 0.3081).unsqueeze(1)  # noqa: E731
    x_tr, x_te = norm(x_tr).to(device), norm(x_te).to(device)
    y_tr, y_te = torch.from_numpy(y_tr).to(device), torch.from_numpy(y_te).to(device)
    model = PytorchMnistNet().to(device)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    epochs, epoch_s = 1 if small else 14, []
    for _ in range(epochs):
        te = time.perf_counter()
        model.train()
        order = torch.randperm(len(y_tr), device=device) if device.type == "cuda" else torch.arange(len(y_tr))
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss = F.nll_loss(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
        sched.step()
        epoch_s.append(round(time.perf_counter() - te, 3))
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x_te[i:i + 1000]).argmax(1) == y_te[i:i + 1000]).sum())
                      for i in range(0, len(y_te), 1000))
    return {"value": correct / len(y_te), "seconds": time.perf_counter() - t0, "epoch_s": epoch_s,
            "settings": f"{_n(epochs)}, batch 64, Adadelta 1.0, StepLR 0.7"}


# ---------------------------------------------------------------- DCGAN -------------------

def _keras_init(module: nn.Module) -> None:
    """Keras' defaults, which the tutorial's layers use: Glorot-uniform kernels, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _bn(kind, n):  # Keras BatchNormalization defaults: momentum 0.99 (torch: 0.01), epsilon 1e-3
    return kind(n, eps=1e-3, momentum=0.01)


class TutorialGenerator(nn.Module):
    """make_generator_model(): Dense(7*7*256, no bias) BN LeakyReLU -> (7, 7, 256) -> Conv2DTranspose(128, 5,
    stride 1) BN LeakyReLU -> Conv2DTranspose(64, 5, stride 2) BN LeakyReLU -> Conv2DTranspose(1, 5, stride 2,
    tanh); 'same' padding (PyTorch places the odd padding pixel at the other edge from TensorFlow: the
    same sizes, shifted by one pixel), no biases; LeakyReLU's Keras default slope 0.3."""

    def __init__(self, z_dim: int = 100):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(z_dim, 7 * 7 * 256, bias=False), _bn(nn.BatchNorm1d, 7 * 7 * 256),
                                nn.LeakyReLU(0.3))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 5, 1, padding=2, bias=False), _bn(nn.BatchNorm2d, 128), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(128, 64, 5, 2, padding=2, output_padding=1, bias=False), _bn(nn.BatchNorm2d, 64),
            nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(64, 1, 5, 2, padding=2, output_padding=1, bias=False), nn.Tanh())
        _keras_init(self)

    def forward(self, z):
        return self.net(self.fc(z).view(-1, 7, 7, 256).permute(0, 3, 1, 2))  # Keras' Reshape is channels-last


class TutorialDiscriminator(nn.Module):
    """make_discriminator_model(): Conv2D(64, 5, stride 2) LeakyReLU Dropout(0.3) -> Conv2D(128, 5, stride 2)
    LeakyReLU Dropout(0.3) -> Flatten -> Dense(1) logit."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 64, 5, 2, padding=2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
                                 nn.Conv2d(64, 128, 5, 2, padding=2), nn.LeakyReLU(0.3), nn.Dropout(0.3))
        self.fc = nn.Linear(7 * 7 * 128, 1)
        _keras_init(self)

    def forward(self, x):
        return self.fc(self.net(x).permute(0, 2, 3, 1).flatten(1))  # Keras' Flatten is channels-last


def tf_dcgan(seed: int, small: bool, budget_s: float, judge_run: str, n_eval: int) -> dict:
    """TensorFlow's "Deep Convolutional Generative Adversarial Network" tutorial, restated in PyTorch:
    https://www.tensorflow.org/tutorials/generative/dcgan (tensorflow/docs, site/en/tutorials/generative/dcgan.ipynb)
    training digits scaled to [-1, 1], reshuffled every epoch, batch 256 (the last one partial); noise
    of 100 numbers; both networks Adam(1e-4) (Keras' epsilon 1e-7); binary cross-entropy from logits:
    D on real -> 1 and generated -> 0, G on generated -> 1; both gradients from the same forward pass,
    applied together (train_step); 50 epochs. Stopped when `budget_s` seconds of training have passed
    (the equal-time comparison of bench_peers), else after its 50 epochs. Then n_eval digits from
    G in inference mode are scored by exoml's judge (the same mnist run the exoml GAN was scored by):
    the share it classifies with confidence >= 0.9, its class shares, FID on its features."""
    from exoml import data
    from exoml.tasks.generative import fid
    from exoml.tasks.vision.mnist import load_classifier
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mnist = data.load("mnist")
    t0 = time.perf_counter()
    x = torch.from_numpy(mnist.x_train).float().sub(127.5).div(127.5).unsqueeze(1).to(device)
    G, D = TutorialGenerator().to(device), TutorialDiscriminator().to(device)
    opt_g = torch.optim.Adam(G.parameters(), 1e-4, eps=1e-7)
    opt_d = torch.optim.Adam(D.parameters(), 1e-4, eps=1e-7)
    bce = nn.BCEWithLogitsLoss()
    epochs, epoch_s, steps, stopped = 1 if small else 50, [], 0, False
    for _ in range(epochs):
        te = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(order), 256):
            images = x[order[i:i + 256]]
            generated = G(torch.randn(len(images), 100, device=device))
            real_out, fake_out = D(images), D(generated)
            gen_loss = bce(fake_out, torch.ones_like(fake_out))
            disc_loss = bce(real_out, torch.ones_like(real_out)) + bce(fake_out, torch.zeros_like(fake_out))
            g_grads = torch.autograd.grad(gen_loss, list(G.parameters()), retain_graph=True)
            d_grads = torch.autograd.grad(disc_loss, list(D.parameters()))
            for p, g in zip(G.parameters(), g_grads):
                p.grad = g
            for p, g in zip(D.parameters(), d_grads):
                p.grad = g
            opt_g.step()
            opt_d.step()
            steps += 1
            if time.perf_counter() - t0 >= budget_s:
                stopped = True
                break
        epoch_s.append(round(time.perf_counter() - te, 3))
        if stopped:
            break
    train_s = time.perf_counter() - t0
    G.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        fakes = torch.cat([G(torch.randn(min(1000, n_eval - i), 100, generator=gen).to(device)).cpu()
                           for i in range(0, n_eval, 1000)])
    fakes = fakes.squeeze(1).mul(127.5).add(127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    judge = load_classifier(judge_run, device=str(device))
    n_ref = min(n_eval, len(mnist.y_test))
    f_gen, p_gen = fid.judge_outputs(judge, fakes)
    f_test, _ = fid.judge_outputs(judge, mnist.x_test[:n_ref])
    share = np.bincount(p_gen.argmax(1), minlength=10) / len(p_gen)
    return {"value": float((p_gen.max(1) >= 0.9).mean()), "seconds": train_s, "epoch_s": epoch_s,
            "fid": fid.fid(f_gen, f_test), "class_share_min": float(share.min()),
            "class_share_max": float(share.max()), "steps": steps, "epochs_run": len(epoch_s),
            "stopped_by_budget": stopped,
            "settings": f"{len(epoch_s)} of {epochs} epochs ({steps} steps) in the {budget_s:.0f} s budget, "
                        "batch 256, Adam 1e-4"}


def airbench94(seed: int, small: bool) -> dict:
    """airbench94 (Keller Jordan, https://github.com/KellerJordan/cifar10-airbench), the PyPI `airbench`
    package's train94 with test-time augmentation, through benchmarks/bench_images.py's baseline
    (GPU only; `pip install airbench torchvision`)."""
    import tempfile
    from pathlib import Path

    import bench_images
    with tempfile.TemporaryDirectory() as tmp:
        r = bench_images.airbench_baseline([seed], Path(tmp))
    if r is None:
        raise RuntimeError("airbench could not run (see above)")
    return {"value": r["accuracy_mean"], "seconds": r["seconds_mean"], "epoch_s": [],
            "settings": "airbench.train94, TTA level 2, CUDA-event timing"}


RECIPES = {"pytorch_mnist": pytorch_mnist, "tf_dcgan": tf_dcgan, "airbench94": airbench94}
