"""The gan task end to end on tiny MNIST-format files, the FID helper, and `exoml generate`'s error paths."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from exoml import data
from exoml.tasks.generative import fid
from exoml.cli import main

from fixtures.mnist import write_mnist

TINY = ["--quick", "--n-train", "128", "--batch-size", "32", "--epochs", "2", "--width", "8", "--grid-n", "8",
        "--n-eval", "100", "--judge-n-train", "128", "--judge-epochs", "1"]


def _gan_run(tmp_path, *flags, judge_run: bool = False):
    data.import_("mnist", [write_mnist(tmp_path / "idx", n_train=200, n_test=100)[0].parent], subset=True)
    out = tmp_path / "runs"
    if judge_run:  # a trained mnist run under --out is the judge
        assert main(["run", "mnist", "--quick", "--out", str(out)]) == 0
    assert main(["run", "gan", *TINY, *flags, "--out", str(out)]) == 0
    (path,) = (out / "gan").iterdir()
    return out, path


def test_gan_interrupted_after_an_epoch_resumes_to_the_same_result(tmp_path):
    """The adversarial step runs in the shared loop: a run stopped by SIGINT after its first epoch
    resumes (G, D, their EMA, both optimizers, the step statistics and sample frames) and ends
    with the metrics of the uninterrupted run."""
    import signal
    from exoml.toolkit.runs import Run
    out, ref = _gan_run(tmp_path, "--judge", "train")
    real_log = Run.log_epoch

    def log_then_stop(self, row):
        real_log(self, row)
        if row["epoch"] == 1:
            signal.raise_signal(signal.SIGINT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Run, "log_epoch", log_then_stop)
        assert main(["run", "gan", *TINY, "--judge", "train", "--out", str(tmp_path / "cut")]) == 130
    (path,) = (tmp_path / "cut" / "gan").iterdir()
    assert main(["run", "gan", "--resume", str(path)]) == 0
    m_ref, m_res = (json.loads((p / "metrics.json").read_text()) for p in (ref, path))
    for k in ("fid", "fid_floor_train_vs_test", "confident_share", "class_share", "train_steps"):
        assert m_res[k] == m_ref[k], k
    with Image.open(path / "progression.gif") as gif:
        assert gif.n_frames == 2


def test_fid_of_a_set_with_itself_is_zero_and_of_different_sets_large():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 16))
    assert fid.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    b = rng.normal(size=(2000, 16))  # another sample of the same distribution: small
    assert fid.fid(a, b) < 0.5
    c = rng.normal(loc=3.0, scale=2.0, size=(2000, 16))  # shifted mean, wider: large
    assert fid.fid(a, c) > 100
    # closed form for diagonal Gaussians: |mu_a - mu_b|^2 + sum (sd_a - sd_b)^2
    mu, sd = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    d = fid.frechet_distance(np.zeros(2), np.eye(2), mu, np.diag(sd ** 2))
    assert d == pytest.approx((mu ** 2).sum() + ((1 - sd) ** 2).sum(), rel=1e-9)
    # agrees with the textbook formula through scipy's sqrtm on a full covariance
    from scipy.linalg import sqrtm
    s1, s2 = np.cov(a[:, :4], rowvar=False), np.cov(c[:, :4], rowvar=False)
    ref = np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real) + ((a[:, :4].mean(0) - c[:, :4].mean(0)) ** 2).sum()
    assert fid.fid(a[:, :4], c[:, :4]) == pytest.approx(ref, rel=1e-6)


def test_inception_score_is_the_number_of_classes_used_confidently_and_evenly():
    eye = np.eye(10)
    assert fid.inception_score(np.repeat(eye, 5, axis=0)) == pytest.approx(10.0)  # confident, all ten classes
    assert fid.inception_score(np.repeat(eye[:4], 5, axis=0)) == pytest.approx(4.0)  # confident, four classes
    assert fid.inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)  # never sure
    assert fid.inception_score(np.repeat(eye[:1], 50, axis=0)) == pytest.approx(1.0)  # mode collapse
    # agrees with the definition written out with scipy's KL divergence
    from scipy.stats import entropy
    p = np.random.default_rng(0).dirichlet(np.full(10, 0.3), size=200)
    ref = np.exp(np.mean([entropy(row, p.mean(0)) for row in p]))
    assert fid.inception_score(p) == pytest.approx(ref, rel=1e-9)
    assert fid.inception_score(p, splits=4) == pytest.approx(
        np.mean([fid.inception_score(part) for part in np.array_split(p, 4)]))


def test_gan_trains_measures_and_generates(tmp_path, capsys):
    """The plain unconditional DCGAN (--conditional false): free samples only."""
    out, path = _gan_run(tmp_path, "--conditional", "false")
    assert json.loads((path / "status.json").read_text())["status"] == "complete"
    m = json.loads((path / "metrics.json").read_text())
    assert m["fid"] >= 0 and m["fid_floor_train_vs_test"] >= 0 and 0 <= m["confident_share"] <= 1
    assert sum(m["class_share"]) == pytest.approx(1.0, abs=1e-3) and m["n_generated"] == 100
    assert m["train_steps"] == 2 * (128 // 32) and "trained here" in m["judge"]
    history = (path / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,step,train_d_loss,train_g_loss") and len(history) == 3
    for name in ("model.safetensors", "judge.safetensors", "predictions.npz", "report.md", "progression.png",
                 "grid_10x10.png", "losses.png", "real_vs_generated.png", "judge.png", "data.png"):
        assert (path / name).stat().st_size > 0, name
    with Image.open(path / "progression.gif") as gif:
        assert gif.n_frames == 2  # one frame per epoch
    with np.load(path / "predictions.npz") as p:
        assert p["generated"].shape == (100, 28, 28) and p["generated"].dtype == np.uint8
        assert np.allclose(p["judge_probs"].sum(1), 1, atol=1e-4)
    with np.load(path / "judge_outputs.npz") as j:  # the judge's view: the scores recompute from it
        assert j["generated_probs"].shape == (100, 10) and j["test_features"].shape[0] == m["n_reference"]
        assert fid.inception_score(j["generated_probs"]) == pytest.approx(m["inception_score"], rel=1e-5)
        assert fid.fid(j["generated_features"], j["test_features"]) == pytest.approx(m["fid"], rel=1e-3)
        assert float((j["test_probs"].argmax(1) == j["test_labels"]).mean()) == pytest.approx(m["judge_test_accuracy"])
    assert 1 <= m["inception_score"] <= 10 and 1 <= m["inception_score_real_test"] <= 10

    capsys.readouterr()
    assert main(["generate", "gan", "--n", "20", "--out", str(out)]) == 0
    grid = path / "generated" / "free-n20-seed0.png"
    assert str(grid) in capsys.readouterr().out
    with Image.open(grid) as im:
        assert im.size == (3 * (5 * 30 + 2), 3 * (4 * 30 + 2))  # 5 columns x 4 rows of 28 px + 2 px lines, x3
    # an unconditional run cannot draw a chosen digit
    assert main(["generate", "gan", "--digit", "7", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("exoml: error:") and "--conditional" in err and len(err.splitlines()) == 1


def test_conditional_gan_draws_the_asked_digit(tmp_path, capsys):
    out, path = _gan_run(tmp_path, "--loss", "hinge", "--lr-decay", "0.5", "--judge-min-accuracy", "0",
                         judge_run=True)  # (a judge trained on 200 tiny digits: any accuracy is accepted here)
    m = json.loads((path / "metrics.json").read_text())
    assert json.loads((path / "config.json").read_text())["config"]["conditional"] is True  # the default
    assert "the judge reads the asked digit in" in (path / "report.md").read_text()
    assert "falling linearly to 0 over the last 50% of the steps" in (path / "report.md").read_text()
    assert m["judge"].startswith(f"mnist run {next((out / 'mnist').iterdir())} (") and not (path / "judge.safetensors").exists()
    assert 0 <= m["conditional_accuracy"] <= 1
    with np.load(path / "predictions.npz") as p:
        assert np.bincount(p["requested"], minlength=10).tolist() == [10] * 10
    assert main(["generate", "gan", "--digit", "7", "--n", "64", "--run", str(path)]) == 0
    assert (path / "generated" / "digit7-n64-seed0.png").is_file()
    capsys.readouterr()
    assert main(["generate", "gan", "--n", "20", "--run", str(path)]) == 0  # no --digit: 0-9 in turn, a column each
    assert "digits 0-9 in turn" in capsys.readouterr().out
    with Image.open(path / "generated" / "all-n20-seed0.png") as im:
        assert im.size == (3 * (10 * 30 + 2), 3 * (2 * 30 + 2))
    assert main(["generate", "gan", "--digit", "12", "--run", str(path)]) == 2
    assert "--digit must be between 0 and 9" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--n", "4"], "no complete run of gan"),
    (["--run", "{tmp}/nowhere"], "not an exoml run folder"),
    (["--n", "0"], "--n must be between 1 and 1000"),
])
def test_generate_errors_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["generate", "gan", *argv, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("exoml: error:") and message in err and len(err.splitlines()) == 1


def test_generate_needs_a_generative_task(capsys):
    assert main(["generate", "mnist"]) == 2
    assert "does not generate" in capsys.readouterr().err


@pytest.mark.parametrize("depth", [0, 1])
@pytest.mark.parametrize("conditional", [False, True])
def test_networks_shapes_at_every_depth(depth, conditional):
    import torch
    from exoml.tasks.generative.gan_model import Discriminator, Generator
    g, d = Generator(8, 4, conditional, depth), Discriminator(4, conditional, True, depth)
    y = torch.arange(5) % 10 if conditional else None
    x = g(torch.randn(5, 8), y)
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1
    assert d(x, y).shape == (5,)
    deeper = sum(isinstance(m, torch.nn.Conv2d) for m in Generator(8, 4, conditional, depth + 1).modules())
    assert deeper > sum(isinstance(m, torch.nn.Conv2d) for m in g.modules())


def test_lr_decay_holds_then_falls_linearly_to_zero():
    import torch
    from exoml.toolkit.schedules import linear_decay
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([w], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(100, 0.5))
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(), sched.step()
    assert lrs[:51] == [1e-3] * 51                       # constant for the first half
    assert all(a > b for a, b in zip(lrs[50:], lrs[51:]))  # then strictly falling
    assert lrs[75] == pytest.approx(5e-4) and lrs[99] == pytest.approx(2e-5)
    assert opt.param_groups[0]["lr"] == 0.0                # 0 after the last step
    assert all(linear_decay(100, 0.0)(s) == 1.0 for s in range(101))  # 0: off


def test_a_weak_mnist_run_is_not_a_judge(tmp_path, capsys):
    """A --dry-run mnist run (chance accuracy) is refused as an explicit judge, and skipped by
    --judge auto, which trains a judge instead: FID and confidence need a judge of known quality."""
    data.import_("mnist", [write_mnist(tmp_path / "idx", n_train=200, n_test=100)[0].parent], subset=True)
    out = tmp_path / "runs"
    assert main(["run", "mnist", "--quick", "--dry-run", "--out", str(out)]) == 0
    (weak,) = (out / "mnist").iterdir()
    assert main(["run", "gan", *TINY, "--judge", str(weak), "--out", str(out)]) == 2
    assert "below the judge's 97%" in capsys.readouterr().err
    assert main(["run", "gan", *TINY, "--out", str(out)]) == 0
    assert "training a judge here instead" in capsys.readouterr().out
    gan_run = next(p for p in (out / "gan").iterdir() if (p / "metrics.json").exists())
    assert "trained here" in json.loads((gan_run / "metrics.json").read_text())["judge"]


def test_ema_of_g_follows_the_warm_up_decay_formula():
    """ema_multi_avg (foreach ops over all tensors) must give, after every update, exactly
    a <- d a + (1 - d) w with d = min((1 + n) / (10 + n), decay) for the n-th average, the cap included."""
    import torch
    import torch.nn as nn
    from torch.optim.swa_utils import AveragedModel
    from exoml.tasks.generative.gan_model import ema_multi_avg
    net = nn.Linear(3, 2)
    ema = AveragedModel(net, multi_avg_fn=ema_multi_avg(0.5))  # capped from n = 8
    ema.update_parameters(net)  # the first update copies
    expect = [p.detach().clone() for p in net.parameters()]
    for n in range(1, 40):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        ema.update_parameters(net)
        d = min((1 + n) / (10 + n), 0.5)
        expect = [d * e + (1 - d) * p.detach() for e, p in zip(expect, net.parameters())]
    for e, a in zip(expect, ema.module.parameters()):
        torch.testing.assert_close(a, e)
