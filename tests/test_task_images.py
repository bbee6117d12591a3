"""The image tasks (mnist, fashion-mnist, cifar10, cifar100) end to end on tiny generated data in
the real file formats, `exoml predict` on generated images, and the shared pieces in _vision."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from exoml import data
from exoml.cli import main
from exoml.tasks.vision import augment, common as vision, report as vision_report
from exoml.tasks.vision.muon import Muon

from fixtures.cifar import binary_records, write_cifar_binary
from fixtures.mnist import write_mnist

TASKS = ["mnist", "fashion-mnist", "cifar10", "cifar100"]
FIGURES = ["samples.png", "class_balance.png", "pixel_stats.png", "curves.png", "confusion_matrix.png",
           "test_predictions.png"]


def learnable_cifar(folder: Path, n_per_class: int, seed: int = 0) -> list[Path]:
    """CIFAR-10 binary batches (data_batch_1.bin, test_batch.bin) whose classes a CNN can tell
    apart in a few steps: each class has its own colour, plus noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    palette = rng.integers(0, 256, size=(10, 3))
    out = []
    for name, n in (("data_batch_1.bin", n_per_class), ("test_batch.bin", max(1, n_per_class // 3))):
        y = np.repeat(np.arange(10), n)
        rng.shuffle(y)
        x = np.clip(palette[y][:, None, None, :] + rng.normal(0, 40, (len(y), 32, 32, 3)), 0, 255).astype(np.uint8)
        (folder / name).write_bytes(binary_records(x, y, hundred=False))
        out.append(folder / name)
    return out


_RUNS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One --quick run per task (shared by the tests of this file): task -> run folder."""
    def get(task: str) -> Path:
        if task not in _RUNS:
            root = tmp_path_factory.mktemp(task)
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("EXOML_DATA", str(root / "data"))
                data._loaded.clear()
                if task in ("mnist", "fashion-mnist"):
                    paths = write_mnist(root / "raw", n_train=700, n_test=120)
                elif task == "cifar10":
                    paths = learnable_cifar(root / "raw", n_per_class=70)
                else:
                    paths = [write_cifar_binary(root / "raw", n_per_class=6, hundred=True, n_test_per_class=2)[0]]
                data.import_(task, paths, subset=True)
                assert main(["run", task, "--quick", "--out", str(root / "runs")]) == 0
                data._loaded.clear()
            (_RUNS[task],) = list((root / "runs" / task).iterdir())
        return _RUNS[task]
    return get


# ---------------------------------------------------------------- end to end ----------

@pytest.mark.parametrize("task", TASKS)
def test_quick_run_end_to_end(trained, task):
    run = trained(task)
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "top5_accuracy", "n_test", "train_time_s", "time_to_result_s", "val_accuracy"):
        assert key in metrics, key
    # the saved predictions reproduce the metric
    pred = np.load(run / "predictions.npz", allow_pickle=False)
    assert metrics["n_test"] == len(pred["y_true"]) and pred["probs"].shape[1] == (100 if task == "cifar100" else 10)
    assert np.isclose((pred["y_true"] == pred["y_pred"]).mean(), metrics["accuracy"])
    assert (pred["probs"].argmax(1) == pred["y_pred"]).all()
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,step,train_loss") and len(history) >= 2
    for fig in FIGURES:
        assert (run / fig).stat().st_size > 1000, fig
    report = (run / "report.md").read_text()
    for section in ("## Results (official test split)", "## Data", "## Model", "## Evaluation", "confusion_matrix.png"):
        assert section in report
    config = json.loads((run / "config.json").read_text())["config"]
    assert None not in config.values()  # profile settings were resolved and recorded
    from safetensors import safe_open
    with safe_open(str(run / "model.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
        assert meta["task"] == task and len(json.loads(meta["classes"])) == pred["probs"].shape[1]
        assert "norm.mean" in fh.keys()  # the training statistics travel with the weights
    if task == "cifar100":
        from exoml.data.cifar import COARSE_OF_FINE
        coarse = (COARSE_OF_FINE[pred["y_pred"]] == COARSE_OF_FINE[pred["y_true"]]).mean()
        assert np.isclose(metrics["coarse_accuracy"], coarse)


@pytest.mark.parametrize("task", TASKS)
def test_validation_accuracy_under_each_test_time_augmentation(trained, task):
    """The final weights are scored on the validation split under every --tta choice of the task
    (where that choice may be made); without augmentation it is the history's last val_accuracy."""
    import dataclasses
    from exoml import tasks
    cfg_cls = tasks.get(task).config
    choices = next(f.metadata["choices"] for f in dataclasses.fields(cfg_cls) if f.name == "tta")
    run = trained(task)
    metrics = json.loads((run / "metrics.json").read_text())
    by_tta = {k.removeprefix("val_accuracy_tta_"): v for k, v in metrics.items() if k.startswith("val_accuracy_tta_")}
    assert sorted(by_tta) == sorted(choices) and all(0 <= v <= 1 for v in by_tta.values())
    assert by_tta["none"] == pytest.approx(metrics["val_accuracy"], abs=1e-6)  # float32 there
    assert "## Test-time augmentation on validation" in (run / "report.md").read_text()


@pytest.mark.parametrize("task", ["mnist", "fashion-mnist", "cifar10"])
def test_quick_run_learns(trained, task):
    """The generated classes are easy (bars / colours): well above chance (10%) even in a quick run."""
    metrics = json.loads((trained(task) / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5, metrics


def test_fashion_model_has_no_convolutions():
    from exoml.tasks.vision import fashion_mnist
    model = fashion_mnist.build_model()
    assert not any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_mnist_model_api_for_other_tasks(trained):
    from exoml.tasks.vision import mnist
    assert mnist.NAME == "mnist"
    model = mnist.build_model().eval()
    x = torch.rand(4, 1, 28, 28)
    assert model(x).shape == (4, 10) and model.features(x).shape == (4, 256)
    assert {"norm.mean", "norm.std"} <= set(model.state_dict())
    run = trained("mnist")
    clf = mnist.load_classifier(run)
    assert not clf.training and float(clf.norm.std) != 1.0  # training statistics were loaded
    logits = clf(x)
    assert logits.shape == (4, 10) and clf.features(x).shape[0] == 4


# ---------------------------------------------------------------- predict -------------

def white_digit_png(path: Path) -> Path:
    """A dark '1' on white paper, 90x120: must be inverted and centred like MNIST."""
    a = np.full((120, 90), 250, np.uint8)
    a[20:100, 40:50] = 10
    Image.fromarray(a).save(path)
    return path


def test_predict_white_background_digit(trained, tmp_path, capsys):
    run = trained("mnist")
    img = white_digit_png(tmp_path / "one.png")
    assert main(["predict", "mnist", str(img), "--run", str(run)]) == 0
    out = capsys.readouterr().out
    lines = [l for l in out.splitlines() if l.strip()[:2] in {f"{i}." for i in range(1, 6)}]
    assert len(lines) == 5
    probs = [float(l.split()[-1]) for l in lines]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert (run / "predictions" / "one.png").stat().st_size > 1000
    prepared = vision_report.prepare_image(img, 28, True, "digit")
    assert prepared[0].max() == 0 and prepared[14].max() > 200  # inverted: black border, bright stroke


@pytest.mark.parametrize("shape, value, message", [
    ((100, 100), 255, "the image is blank"),       # white paper, nothing written
    ((100, 100), 0, "the image is blank"),         # black, nothing written
    ((1, 1), 0, "too small"),
    ((1, 40000), 255, "too small or thin"),
])
def test_predict_refuses_images_without_a_digit(trained, tmp_path, capsys, shape, value, message):
    run = trained("mnist")
    img = tmp_path / "blank.png"
    Image.fromarray(np.full(shape, value, np.uint8)).save(img)
    assert main(["predict", "mnist", str(img), "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no digit found" in err[0] and message in err[0], err


def test_digit_is_centred_by_its_centre_of_mass(tmp_path):
    """As MNIST was made: the bounding box fits 20x20, the centre of mass sits at the frame's centre
    (an 'L' has its mass low and left of its box's centre, so the box is shifted, not centred)."""
    from exoml.tasks.vision.images import load_image
    a = np.full((200, 160), 255, np.uint8)
    a[20:180, 30:50] = 0    # the upright stroke
    a[160:180, 30:140] = 0  # the foot
    Image.fromarray(a).save(tmp_path / "L.png")
    x = load_image(tmp_path / "L.png", (28, 28), grey=True, invert_light_background=True).astype(float)
    ys, xs = np.nonzero(x > 30)
    assert ys.max() - ys.min() + 1 == 20  # the taller side fills the 20-pixel box
    cy = (x.sum(1) * np.arange(28)).sum() / x.sum()
    cx = (x.sum(0) * np.arange(28)).sum() / x.sum()
    assert abs(cy - 13.5) <= 0.75 and abs(cx - 13.5) <= 0.75
    box_centre_x = (xs.min() + xs.max()) / 2
    assert box_centre_x > 14  # the box moved right so that the mass (left-heavy) is centred


@pytest.mark.parametrize("task,fmt", [("cifar10", "JPEG"), ("cifar100", "WEBP"), ("fashion-mnist", "JPEG")])
def test_predict_rgb_photo_any_size(trained, tmp_path, capsys, task, fmt):
    run = trained(task)
    img = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(img, fmt)
    assert main(["predict", task, str(img), "--out", str(run.parent.parent)]) == 0  # latest run
    out = capsys.readouterr().out
    assert "plot:" in out and (run / "predictions" / "photo.png").exists()


def test_predict_rejects_text_file(trained, tmp_path, capsys):
    run = trained("mnist")
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image\n")
    assert main(["predict", "mnist", str(bad), "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("exoml: error:") and "notes.png" in err and "\n" not in err


def test_predict_without_a_run(tmp_path, capsys):
    img = white_digit_png(tmp_path / "one.png")
    assert main(["predict", "cifar10", str(img), "--out", str(tmp_path / "none")]) == 2
    assert "no complete run of cifar10" in capsys.readouterr().err
    assert main(["predict", "mnist", str(img), "--run", str(tmp_path)]) == 2
    assert "not an exoml run folder" in capsys.readouterr().err


# ---------------------------------------------------------------- shared pieces --------

def test_translate_is_a_shift_and_flip_mirrors():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    torch.manual_seed(0)
    out = augment.translate(x, 2, mode="constant")
    for i in range(2):  # each output is the input moved by the same (dy, dx) in every channel
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if torch.equal(out[i], torch.roll(
                    torch.nn.functional.pad(x[i], (2,) * 4), (dy, dx), (1, 2))[:, 2:8, 2:8])]
        assert hits, i
    assert torch.equal(augment.flip(x, torch.tensor([True, False]))[0], x[0].flip(-1))
    assert torch.equal(augment.translate(x, 0), x)


def test_stroke_width_changes_by_the_stated_pixels():
    """A 3-pixel-wide vertical bar becomes 1 (thinner), 5 (thicker) or 5-7 pixels wide (thicker still:
    7 in the middle rows, 5 at the ends of the cross); prob 0 leaves the batch alone."""
    x = torch.zeros(60, 1, 16, 16)
    x[:, :, 4:12, 6:9] = 1.0
    torch.manual_seed(0)
    out = augment.stroke(x, 1.0)
    widths = {int(w) for w in (out[:, 0, 8] > 0.5).sum(1)}
    assert widths == {1, 5, 7}
    assert torch.equal(augment.stroke(x, 0.0), x)
    half = augment.stroke(x, 0.5)
    kept = (half == x).flatten(1).all(1).float().mean()
    assert 0.3 < kept < 0.7


def test_mnist_training_changes_stroke_widths_when_asked(tmp_path, monkeypatch):
    """--stroke reaches the training batches: a one-step run with --stroke 1 passes every batch
    through augment.stroke with probability 1 (the quick and cpu profiles keep it at 0)."""
    data.import_("mnist", [write_mnist(tmp_path / "idx", n_train=200, n_test=100)[0].parent], subset=True)
    seen, original = [], augment.stroke
    monkeypatch.setattr(augment, "stroke", lambda x, prob: seen.append((tuple(x.shape[1:]), prob)) or original(x, prob))
    assert main(["run", "mnist", "--quick", "--stroke", "1", "--dry-run", "--out", str(tmp_path / "runs")]) == 0
    assert seen and all(s == ((1, 28, 28), 1.0) for s in seen)


def test_mnist_ensemble_is_the_mean_of_its_networks_and_its_first_is_the_single_run(tmp_path, monkeypatch, capsys):
    """--ensemble 2 trains two networks in one run: network 0 is exactly the run of the same seed
    alone, network 1 differs, the saved model predicts their mean probability, the metrics and the
    report say how each network did (on the test split only when no validation split is held out), and
    `exoml predict` reads the ensemble's weights."""
    from exoml.tasks.vision import mnist
    from exoml.toolkit.ensemble import Ensemble
    monkeypatch.setenv("EXOML_DATA", str(tmp_path / "data"))
    data._loaded.clear()
    data.import_("mnist", write_mnist(tmp_path / "raw", n_train=700, n_test=120), subset=True)
    out = tmp_path / "runs"
    assert main(["run", "mnist", "--quick", "--out", str(out / "one")]) == 0
    assert main(["run", "mnist", "--quick", "--ensemble", "2", "--out", str(out / "two")]) == 0
    # on the whole training split (--val-size 0, the other profiles' default): the test split only
    assert main(["run", "mnist", "--quick", "--ensemble", "2", "--val-size", "0", "--out", str(out / "whole")]) == 0
    data._loaded.clear()
    (whole,) = list((out / "whole" / "mnist").iterdir())
    section = (whole / "report.md").read_text().split("## Ensemble")[1].split("\n## ")[0]
    assert "on the test split:" in section and "validation" not in section
    assert "network_val_accuracy" not in json.loads((whole / "metrics.json").read_text())
    (one,), (two,) = (list((out / name / "mnist").iterdir()) for name in ("one", "two"))
    single, ens = mnist.load_classifier(one), mnist.load_classifier(two)
    assert isinstance(ens, Ensemble) and len(ens.members) == 2
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(ens.members[0](x), single(x))
        assert not torch.allclose(ens.members[1](x), single(x), atol=1e-3)
        mean = torch.stack([torch.softmax(m(x), 1) for m in ens.members]).mean(0)
        torch.testing.assert_close(torch.softmax(ens(x), 1), mean)
        assert ens.features(x).shape == (6, 2 * single.features(x).shape[1])

    metrics = json.loads((two / "metrics.json").read_text())
    pred = np.load(two / "predictions.npz", allow_pickle=False)
    assert np.isclose((pred["y_true"] == pred["y_pred"]).mean(), metrics["accuracy"])
    one_metrics = json.loads((one / "metrics.json").read_text())
    assert metrics["network_accuracy"][0] == one_metrics["accuracy"]  # network 0, evaluated alone
    assert np.isclose(metrics["network_val_accuracy"][0], one_metrics["val_accuracy"])
    assert np.isclose(metrics["network_accuracy_mean"], np.mean(metrics["network_accuracy"]))
    history = (two / "history.csv").read_text().splitlines()
    assert history[0].startswith("network,epoch") and {r.split(",")[0] for r in history[1:]} == {"0", "1"}
    assert {p.name for p in two.glob("checkpoint*.safetensors")} == {"checkpoint-0.safetensors",
                                                                     "checkpoint-1.safetensors"}
    report = (two / "report.md").read_text()
    assert "## Ensemble" in report and "network 1 (seed 1000)" in report
    img = white_digit_png(tmp_path / "one.png")
    capsys.readouterr()
    assert main(["predict", "mnist", str(img), "--run", str(two)]) == 0
    assert "[run " in capsys.readouterr().out
    assert main(["export", "mnist", "--run", str(two)]) == 0  # ONNX, checked against PyTorch by the command
    assert main(["run", "mnist", "--quick", "--ensemble", "0", "--out", str(out)]) == 2
    # one network per trial, one network as the GAN's judge: both refuse an ensemble with a one-line error
    capsys.readouterr()
    assert main(["tune", "mnist", "--quick", "--ensemble", "2", "--trials", "1", "--out", str(out)]) == 2
    assert "without --ensemble" in capsys.readouterr().err
    from types import SimpleNamespace
    from exoml.errors import ExomlError
    from exoml.tasks.generative.gan_judge import judge_run
    with pytest.raises(ExomlError, match="ensemble of 2 networks"):
        judge_run(SimpleNamespace(judge=str(two), out=str(out), judge_min_accuracy=0.0))


def test_cutmix_targets_are_probabilities():
    np.random.seed(0)
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8)
    xm, t = augment.cutmix(x, y, 100, prob=1.0)
    assert t.shape == (8, 100) and torch.allclose(t.sum(1), torch.ones(8))
    mixed = t.max(1).values < 1  # (an image paired with itself keeps its one label)
    assert not torch.equal(xm, x) and mixed.any() and torch.allclose(t.max(1).values[mixed], t.max(1).values[mixed][0])
    _, t0 = augment.cutmix(x, y, 100, prob=0.0)
    assert torch.equal(t0.argmax(1), y)


def test_tta_views_and_cutout():
    x = torch.rand(2, 3, 8, 8)
    assert [len(g) for g in vision.tta_views(x, "flip_translate")] == [2, 4]
    assert [len(g) for g in vision.tta_views(x, "none")] == [1]
    out = augment.cutout(x, 3, torch.zeros(1, 3, 1, 1))
    assert ((out == 0).all(1).sum((1, 2)) >= 4).all()  # at least a clipped 2x2 corner of the square


def test_profiles_fill_only_unset_settings():
    from exoml.tasks.vision import mnist
    cfg = mnist.TASK.settings("cpu", epochs=3)
    assert cfg.epochs == 3 and cfg.width == mnist.PROFILES["cpu"].settings["width"] and cfg.profile == "cpu"
    with pytest.raises(Exception, match="unknown profile"):
        mnist.TASK.settings("huge")


def test_cifar100_profiles_pick_their_arch_and_both_train(tmp_path, monkeypatch):
    """cifar100's CPU profile is the airbench CNN, its full recipe the ResNet-18; the quick run above
    covers the first, this one trains a small ResNet through the same pipeline."""
    from exoml.tasks.vision import airbench, cifar100
    assert cifar100.TASK.settings("cpu").arch == "airbench" and cifar100.TASK.settings("full").arch == "resnet"
    assert isinstance(cifar100.build_model(cifar100.TASK.settings("cpu")), airbench.Net)
    assert isinstance(cifar100.build_model(cifar100.TASK.settings("full")), cifar100.ResNet)
    monkeypatch.setenv("EXOML_DATA", str(tmp_path / "data"))
    data._loaded.clear()
    paths = [write_cifar_binary(tmp_path / "raw", n_per_class=6, hundred=True, n_test_per_class=2)[0]]
    data.import_("cifar100", paths, subset=True)
    try:
        assert main(["run", "cifar100", "--quick", "--arch", "resnet", "--width", "8", "--blocks", "1", "1", "1", "1",
                     "--lr", "0.05", "--out", str(tmp_path / "runs")]) == 0
    finally:
        data._loaded.clear()
    (run,) = list((tmp_path / "runs" / "cifar100").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 200 and "coarse_accuracy" in metrics
    assert json.loads((run / "config.json").read_text())["config"]["arch"] == "resnet"
    assert "CIFAR-100: ResNet" in (run / "report.md").read_text()


def test_resize_scales_images_and_the_airbench_net_takes_any_size():
    from exoml.tasks.vision import airbench
    x = torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    small = augment.resize(x, 24)
    assert small.shape == (2, 3, 24, 24) and small.is_contiguous(memory_format=torch.channels_last)
    assert augment.resize(x, 0) is x and augment.resize(x, 32) is x
    flat = torch.full((1, 3, 32, 32), 0.25)
    assert torch.allclose(augment.resize(flat, 24), torch.full((1, 3, 24, 24), 0.25))
    net = airbench.Net([8, 8, 8], classes=100).eval()
    with torch.no_grad():  # the global max-pool is airbench's MaxPool2d(3) on the 3x3 map of a 32x32 image
        body = net.layers[:-1](net.whiten(net.norm(x)))
        assert body.shape[-2:] == (3, 3)
        assert torch.equal(net.layers[-1](body), torch.nn.functional.max_pool2d(body, 3))
        assert net(x).shape == net(small).shape == net(augment.resize(x, 28)).shape == (2, 100)


def test_cifar100_progressive_resizing_trains_its_first_epochs_small(tmp_path, monkeypatch, capsys):
    """--low-res 24 --low-res-share 0.5 of 2 epochs: the first epoch's batches are 24x24, every later
    batch, the validation and the test images 32x32. The share follows --epochs."""
    from exoml.tasks.vision import airbench, cifar100
    cpu = cifar100.TASK.settings("cpu")
    assert (cpu.low_res, cpu.epochs, cpu.low_res_epochs) == (24, 30, 14)
    assert cifar100.TASK.settings("cpu", epochs=10).low_res_epochs == 5
    assert cifar100.TASK.settings("cpu", epochs=1).low_res_epochs == 0
    assert cifar100.TASK.settings("cpu", low_res=0).low_res_epochs == 0
    assert cifar100.TASK.settings("full").low_res_epochs == 0
    sizes = []
    forward = airbench.Net.forward
    monkeypatch.setattr(airbench.Net, "forward", lambda self, x: sizes.append(x.shape[-1]) or forward(self, x))
    monkeypatch.setenv("EXOML_DATA", str(tmp_path / "data"))
    data._loaded.clear()
    paths = [write_cifar_binary(tmp_path / "raw", n_per_class=6, hundred=True, n_test_per_class=2)[0]]
    data.import_("cifar100", paths, subset=True)
    try:
        assert main(["run", "cifar100", "--quick", "--widths", "8", "8", "8", "--low-res", "24",
                     "--low-res-share", "0.5", "--out", str(tmp_path / "runs")]) == 0
    finally:
        data._loaded.clear()
    first_big = sizes.index(32)
    assert first_big >= 4 and set(sizes[:first_big]) == {24} and set(sizes[first_big:]) == {32}, sizes
    (run,) = list((tmp_path / "runs" / "cifar100").iterdir())
    assert json.loads((run / "config.json").read_text())["config"]["low_res"] == 24
    assert "the first 1 epochs trained on 24x24 images" in (run / "report.md").read_text()
    capsys.readouterr()
    for flags, message in ((["--low-res", "8"], "must be 0 (off) or 16 to 31"), (["--low-res-share", "1"], "< 1")):
        assert main(["run", "cifar100", "--quick", *flags, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()  # refused before any run folder


def test_muon_keeps_filter_norm_and_descends():
    torch.manual_seed(0)
    true = torch.randn(8, 3, 3, 3)
    true *= 8 ** 0.5 / true.norm()  # a target Muon can reach: filters of norm sqrt(out channels)
    conv = torch.nn.Conv2d(3, 8, 3, bias=False)
    opt = Muon([conv.weight], lr=0.05)
    x = torch.randn(16, 3, 8, 8)
    target = torch.nn.functional.conv2d(x, true)
    losses = []
    for _ in range(30):
        loss = ((conv(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        conv.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[1]  # (step 0 -> 1 is the jump to the fixed norm)
    assert abs(conv.weight.norm().item() - 8 ** 0.5) < 0.1 * 8 ** 0.5


def test_cifar10_whitening_decorrelates_patches():
    from exoml.tasks.vision import cifar10
    torch.manual_seed(0)
    net = cifar10.Net([8, 8, 8])
    x = torch.randn(64, 3, 32, 32)
    x[:, 1] = 0.7 * x[:, 0] + 0.3 * x[:, 1]  # correlated channels (zero mean: the whitening is uncentred)
    net.init_whiten(x)
    out = net.whiten(x)[:, :12] - net.whiten.bias[:12].view(1, -1, 1, 1)
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(12, -1))
    assert torch.allclose(cov.diag(), torch.ones(12), atol=0.1)
    assert (cov - torch.diag(cov.diag())).abs().max() < 0.1


def test_benchmark_script_tables(tmp_path, monkeypatch):
    """benchmarks/bench_images.py: rows, seeds, mean/std, target check and the written tables
    (the task runs themselves are replaced by a stub: they are tested above)."""
    import importlib.util
    import exoml.runner
    script = Path(__file__).parents[1] / "benchmarks" / "bench_images.py"
    spec = importlib.util.spec_from_file_location("bench_images", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    calls = []

    def fake_execute(task, cfg):
        calls.append((task.name, cfg.seed, cfg.profile == "quick", cfg.profile))
        acc = 0.994 if cfg.seed == 0 else 0.992
        return tmp_path / f"{task.name}-{cfg.seed}", {"accuracy": acc, "time_to_result_s": 20.0 + cfg.seed,
                                                "train_time_s": 18.0, "device": "cpu (test)"}
    monkeypatch.setattr(exoml.runner, "execute", fake_execute)
    assert bench.main(["--rows", "mnist-cpu", "--seeds", "2", "--out", str(tmp_path), "--results", str(tmp_path / "rec")]) == 0
    assert calls == [("mnist", 0, False, "cpu"), ("mnist", 1, False, "cpu")]
    rows = json.loads((tmp_path / "bench_images.json").read_text())
    assert len(rows) == 1 and np.isclose(rows[0]["accuracy_mean"], 0.993) and rows[0]["seconds_mean"] == 20.5
    assert rows[0]["met"] is True  # 99.3% in <= 30 s
    record = json.loads((tmp_path / "rec" / "mnist-cpu.json").read_text())  # the result record of the row
    assert record["seeds"] == [0, 1] and record["metrics"]["accuracy"]["values"] == [0.994, 0.992]
    md = (tmp_path / "bench_images.md").read_text()
    assert "| mnist-cpu |" in md and "0.9930 ± 0.0014" in md
    calls.clear()  # --first-seed spreads the seeds of one row over several processes
    assert bench.main(["--rows", "mnist-full", "--seeds", "2", "--first-seed", "2", "--out", str(tmp_path),
                       "--results", str(tmp_path / "rec")]) == 0
    assert calls == [("mnist", 2, False, "full"), ("mnist", 3, False, "full")]
    assert json.loads((tmp_path / "bench_images.json").read_text())[0]["met"] is False  # 99.2% < 99.6%


def test_precision_picks_bf16_only_where_asked_or_native():
    """--precision: fp32 never autocasts, bf16 always does, auto does on a CPU with native bf16
    (and on CUDA); a matmul under the context shows which."""
    cpu = torch.device("cpu")
    a = torch.randn(4, 4)
    with vision.autocast(cpu, "fp32"):
        assert (a @ a).dtype == torch.float32
    with vision.autocast(cpu, "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with vision.autocast(cpu, "auto"):
        assert (a @ a).dtype == (torch.bfloat16 if vision.cpu_has_bf16() else torch.float32)
    with pytest.raises(vision.ExomlError, match="unknown precision"):
        vision.autocast(cpu, "fp8")


@pytest.mark.parametrize("task", TASKS)
def test_precision_flag(task, capsys):
    """Every image task takes --precision (recorded in config.json like any setting); a typo is
    refused by the parser with a one-line error."""
    from exoml.runner import task_config
    _, cfg = task_config(task, ["--precision", "fp32"])
    assert cfg.precision == "fp32"
    with pytest.raises(SystemExit) as e:
        task_config(task, ["--precision", "fp16"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_precision_benchmark_prints_one_row_per_setting(capsys):
    """benchmarks/bench_precision.py on the smallest network, one timed step: four rows (fp32/bf16 x
    contiguous/channels_last), the first the 1.00x reference, and what auto means here."""
    import importlib.util
    script = Path(__file__).parents[1] / "benchmarks" / "bench_precision.py"
    spec = importlib.util.spec_from_file_location("bench_precision", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--nets", "mnist-cpu", "--steps", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| mnist-cpu |")]
    assert len(rows) == 4 and rows[0].endswith("| 1.00x |")
    assert f"auto means {'bf16' if vision.cpu_has_bf16() else 'fp32'} here" in out
    assert bench.ceiling(1, "fp32", torch.device("cpu"), size=512, batch=8) == 0  # small: CI CPUs may lack bf16
    rates = [float(line.split(" | ")[-1].strip(" |")) for line in capsys.readouterr().out.splitlines()
             if line.startswith(("| matmul", "| conv"))]
    assert len(rates) == 2 and all(r > 0 for r in rates)


MMAPPED = """
import ctypes, threading, torch
from exoml.toolkit.train import reuse_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = MallInfo2
def mmapped(mb=128):  # bytes of a new tensor of mb MB that glibc gave an mmap of its own
    before = mallinfo2().hblkhd
    block = torch.empty(mb * 2**18)
    return mallinfo2().hblkhd - before
with reuse_freed_memory() as applied:
    inside = mmapped()
try:
    with reuse_freed_memory():
        raise KeyError
except KeyError:
    pass
in_thread = []
thread = threading.Thread(target=lambda: in_thread.append(reuse_freed_memory().__enter__()))
thread.start(); thread.join()
print(applied, inside, mmapped(256), in_thread[0])  # after: bigger than any chunk freed inside
"""


def test_reuse_freed_memory_serves_big_blocks_from_the_heap():
    """Inside reuse_freed_memory (which `exoml run` applies to CPU runs of tasks with steady shapes), a
    128 MB tensor comes from the heap, whose freed pages serve the next one; after it (also when the
    block raised), and under a user's own malloc setting, a big block gets a fresh mmap of its own,
    as under glibc's default. Another thread gets no setting. The allocator benchmark prints both
    rows."""
    import ctypes
    import os
    import platform
    import subprocess
    import sys
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or \
            not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("glibc >= 2.33 only (mallinfo2)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "LD_PRELOAD") and not k.startswith("MALLOC_")}
    big = 128 * 2**20

    def mmapped(**extra) -> list[str]:
        return subprocess.run([sys.executable, "-c", MMAPPED], env={**env, **extra}, capture_output=True, text=True,
                              check=True, timeout=120).stdout.split()
    applied, inside, after, in_thread = mmapped()
    assert (applied, int(inside), in_thread) == ("True", 0, "False")
    assert int(after) >= 2 * big  # after it (the last scope raised): an mmap again
    applied, inside, after, _ = mmapped(MALLOC_MMAP_MAX_="65536")  # the user's own setting stays
    assert applied == "False" and int(inside) >= big and int(after) >= 2 * big
    script = Path(__file__).parents[1] / "benchmarks" / "bench_precision.py"
    out = subprocess.run([sys.executable, str(script), "--allocators", "--nets", "mnist-cpu", "--steps", "1",
                          "--device", "cpu"], env=env, capture_output=True, text=True, check=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| mnist-cpu |")]
    assert [r.split(" | ")[2] for r in rows] == ["glibc default", "reuse freed memory"]


def test_runner_reuses_freed_memory_for_steady_shapes_on_the_cpu(tmp_path, monkeypatch):
    """`exoml run` keeps freed memory (reuse_freed_memory) only for a task with steady shapes on the
    CPU (the image nets; imdb, whose batches are cut to a few lengths): not for one that does not
    declare them, not on a GPU. Iris stands in for a task of either kind (it never asks for a device
    itself)."""
    import dataclasses
    from contextlib import contextmanager
    from exoml import runner, tasks
    from exoml.toolkit import train
    calls = []

    @contextmanager
    def recorder():
        calls.append(1)
        yield True
    monkeypatch.setattr(train, "reuse_freed_memory", recorder)
    assert all(tasks.get(name).steady_shapes for name in ("cifar10", "cifar100", "imdb"))
    varying, cfg = runner.task_config("iris", ["--quick", "--device", "cpu"])
    steady = dataclasses.replace(varying, steady_shapes=True)
    for task, expected in ((varying, []), (steady, [1])):
        calls.clear()
        runner.execute(task, cfg, tmp_path)
        assert calls == expected, task.steady_shapes
    calls.clear()
    monkeypatch.setattr(train, "pick_device", lambda device: torch.device("cuda"))
    runner.execute(steady, cfg, tmp_path)
    assert calls == []


def test_outside_mnist_digits_benchmark(trained, tmp_path):
    """benchmarks/bench_digits.py on a trained run: printed digits in 9 fonts x 3 stroke widths and
    scikit-learn's 8x8 digits, read as `exoml predict` reads a file; the result is recorded."""
    import importlib.util
    script = Path(__file__).parents[1] / "benchmarks" / "bench_digits.py"
    spec = importlib.util.spec_from_file_location("bench_digits", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--run", str(trained("mnist")), "--results", str(tmp_path)]) == 0
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("mnist-*-outside-digits.json")]
    m = record["metrics"]
    assert m["n_fonts"]["mean"] == 9 * 10 * 3 * 2 and m["n_sklearn_8x8"]["mean"] == 1797
    assert all(0 <= m[k]["mean"] <= 1 for k in m if k.startswith("accuracy"))
    with pytest.raises(SystemExit):  # a variant of the recipe must be named
        bench.main(["--train", "quick", "--results", str(tmp_path), "--", "--stroke", "0"])


def test_resume_keeps_a_runs_settings_where_its_profile_has_gained_one(tmp_path):
    """A run folder written before a setting existed resumes with the Config's default for it (off),
    not the value its profile has since: cifar100 cpu runs without low_res resume at 32x32."""
    import dataclasses
    from exoml.runner import task_config
    from exoml.tasks.vision import cifar100
    settings = dataclasses.asdict(cifar100.TASK.settings("cpu"))
    del settings["low_res"], settings["low_res_share"]
    run = tmp_path / "cifar100" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": "cifar100", "config": settings}))
    (run / "status.json").write_text(json.dumps({"status": "interrupted"}))
    (run / "checkpoint.safetensors").write_bytes(b"")  # only its presence is checked here
    _, cfg = task_config("cifar100", ["--resume", str(run)])
    assert cfg.profile == "cpu" and cfg.epochs == 30 and cfg.low_res == 0 and cfg.low_res_epochs == 0
