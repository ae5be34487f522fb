"""budgetnet.training.train: recipes, fit, evaluate, divergence, checkpoints and resume, devices."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import budgetnet
from budgetnet.training.data import from_tensors, load_data
from budgetnet.errors import CheckpointError, DeviceError, FileWriteError, ShapeError, TrainingError
from budgetnet.pytorch.device import resolve_device
from budgetnet.training.recipes import RECIPES, Recipe, get_recipe
from budgetnet.training.train import FitResult, evaluate, fit
from full_disk import disk_full_after, fill, full_tmpfs, leftovers

SPEC = "(3,4) 2/2 (3,8) spp(2,1) fc(16) fc(16)"


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", image_size=8, limit=120)


@pytest.fixture(scope="module")
def arch(digits):
    return budgetnet.parse(SPEC, input_shape=digits.input_shape, num_classes=digits.num_classes)


# -- recipes ---------------------------------------------------------------------------------------
def test_paper_recipe_is_section_5():
    recipe = get_recipe("paper")
    assert (recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.batch_size) == (
        "sgd", 0.01, 0.9, 0.0005, 128,
    )  # fmt: skip
    assert recipe.epochs == 75
    assert recipe.milestone_epochs() == (10.0, 70.0)  # 0.01 for 10 epochs, 0.001 for 60, then 0.0001
    assert [recipe.lr_factor(epoch) for epoch in (0, 9.99, 10, 69.99)] == [1.0, 1.0, 0.1, 0.1]
    assert recipe.lr_factor(70) == pytest.approx(0.01)
    assert recipe.label_smoothing == 0.0


def test_paper_recipe_scales_to_other_epochs():
    assert get_recipe("paper", epochs=15).milestone_epochs() == (2.0, 14.0)
    assert get_recipe("paper", epochs=150).milestone_epochs() == (20.0, 140.0)


def test_quick_recipe_is_cosine_with_label_smoothing():
    recipe = get_recipe("quick", epochs=4)
    assert recipe.schedule == "cosine" and recipe.label_smoothing == 0.1
    assert recipe.warmup_epochs == pytest.approx(0.2)
    assert recipe.lr_factor(0.2) == pytest.approx(1.0)
    assert recipe.lr_factor(2.1) == pytest.approx(0.5)  # half-way through the cosine after the warm-up
    assert recipe.lr_factor(4.0) == pytest.approx(0.0, abs=1e-12)
    assert RECIPES == ("quick", "paper")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: get_recipe("fast"), r"recipe='fast' is invalid; expected one of \('quick', 'paper'\)"),
        (lambda: get_recipe("quick", batch_size=0), r"recipe batch_size=0 is invalid; expected an integer >= 1"),
        (lambda: get_recipe("quick", batch_size=-4), r"recipe batch_size=-4 is invalid"),
        (lambda: get_recipe("quick", epochs=0), r"recipe epochs=0 is invalid; expected an integer >= 1"),
        (lambda: get_recipe("paper", lr=0.0), r"recipe lr=0.0 is invalid; expected a number > 0"),
        (lambda: get_recipe("paper", optimizer="rmsprop"), r"recipe optimizer='rmsprop' is invalid"),
        (lambda: get_recipe("paper", speed=3), r"recipe field 'speed' is unknown"),
        (lambda: Recipe("mine", 3, milestones=(1.5,)), r"recipe milestones=1.5 is invalid; expected fractions"),
        (lambda: get_recipe("quick", lr=-0.1), r"recipe lr=-0.1 is invalid; expected a number > 0"),
        (lambda: get_recipe("quick", epochs=-2), r"recipe epochs=-2 is invalid; expected an integer >= 1"),
        (lambda: get_recipe("quick", epochs=4, warmup_epochs=4),
         r"recipe warmup_epochs=4 is invalid; expected a number >= 0 and shorter than the run's 4 epochs"),
        (lambda: get_recipe("paper", epochs=2, warmup_epochs=5.5),
         r"recipe warmup_epochs=5.5 is invalid; expected a number >= 0 and shorter than the run's 2 epochs"),
        (lambda: get_recipe("quick", clip_norm=-1.0), r"recipe clip_norm=-1.0 is invalid; expected a number >= 0"),
    ],
)
def test_bad_recipes(make, message):
    with pytest.raises(TrainingError, match=message):
        make()


def test_quick_recipe_defaults_for_plain_nets():
    recipe = get_recipe("quick")
    assert (recipe.batch_size, recipe.lr, recipe.clip_norm, recipe.epochs) == (32, 5e-3, 1.0, 10)
    assert recipe.warmup_epochs == 0.5  # min(0.5, 5 % of 10 epochs)
    assert get_recipe("paper").clip_norm == 0.0  # the paper's recipe does not clip


def test_clipping_bounds_the_gradient_norm(digits):
    """With clip_norm, one plain SGD step moves the weights by at most lr * clip_norm."""
    model = budgetnet.build(budgetnet.parse("(3,4) gap", input_shape=digits.input_shape, num_classes=10))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    recipe = Recipe("one", 1, batch_size=len(digits.train), optimizer="sgd", lr=1.0, momentum=0.0,
                    weight_decay=0.0, schedule="constant", clip_norm=0.01)  # fmt: skip
    fit(model, digits, recipe, progress=False, device="cpu")
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < torch.linalg.vector_norm(after - before) <= 0.01 * (1 + 1e-5)  # one step of lr 1 * norm 0.01


def test_batch_larger_than_the_training_split_is_an_error(arch, digits):
    with pytest.raises(TrainingError, match=r"batch_size=121 is larger than the training split \(120 images\), so "
                                            r"every epoch would be one step on the whole split; expected at most 120"):  # fmt: skip
        fit(arch, digits, "quick", batch_size=121, progress=False)


def test_spp_finer_than_its_map_is_a_shape_error(digits):
    # 8 px -> (3,8) 8 -> 2/2 4: the paper's 6x6 level does not fit, and the 224 px parse keeps that head.
    arch = budgetnet.parse("(3,8) 2/2")
    with pytest.raises(ShapeError, match=r"spp1: spp level 6 is finer than the 4x4 map it pools \(input 1x8x8\); "
                                         r"expected levels of at most 4, e.g. spp\(3,2,1\), or a larger input"):  # fmt: skip
        fit(arch, digits, "quick", epochs=1, progress=False)
    with pytest.raises(ShapeError, match=r"spp level 2 is finer than the 1x1 map it pools"):  # no fc after it either
        budgetnet.parse("(3,8) 2/2 2/2 2/2 spp(2,1)", input_shape=digits.input_shape)
    small = budgetnet.parse("(3,8) 2/2", input_shape=digits.input_shape)  # the default small head fits
    assert fit(small, digits, "quick", epochs=1, progress=False).epochs_run == 1
    one_pixel = budgetnet.parse("(3,8) 2/2 2/2 2/2 spp(1)", input_shape=digits.input_shape)
    assert one_pixel.feature_shape[1:] == (1, 1)
    assert fit(one_pixel, digits, "quick", epochs=1, progress=False).epochs_run == 1


def test_batch_size_not_positive_is_an_error(arch, digits):
    with pytest.raises(TrainingError, match=r"recipe batch_size=0 is invalid; expected an integer >= 1"):
        fit(arch, digits, "quick", batch_size=0, progress=False)


# -- devices ------------------------------------------------------------------------------------------
def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match=r"device='gpu' is not understood; expected 'auto', 'cpu', 'cuda'"):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_on_a_cpu_machine_is_a_device_error(arch, digits):
    with pytest.raises(DeviceError, match=r"device='cuda' is not there: this torch .* sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match=r"device='cuda:1' is not there"):
        fit(arch, digits, device="cuda:1", progress=False)


# -- fit -------------------------------------------------------------------------------------------------
def test_fit_reports_every_epoch_to_the_callback(arch, digits):
    seen = []
    result = fit(arch, digits, "quick", epochs=2, batch_size=32, progress=False,
                 callback=lambda epoch, metrics: seen.append((epoch, metrics)))  # fmt: skip
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert set(seen[0][1]) == {"epoch", "train_loss", "val_accuracy", "val_loss", "lr", "seconds", "images_per_second"}
    assert result.history == [metrics for _, metrics in seen]
    assert result.epochs_run == 2 and not result.diverged and not result.stopped_early
    assert result.val_accuracy == seen[-1][1]["val_accuracy"]
    assert result.best_val_accuracy == max(metrics["val_accuracy"] for _, metrics in seen)
    assert result.images_per_second > 0 and result.device == "cpu"
    assert result.model.arch == arch
    json.dumps(result.to_dict())


def test_callback_true_stops_and_exceptions_propagate(arch, digits):
    result = fit(arch, digits, "quick", epochs=5, progress=False, callback=lambda epoch, metrics: epoch == 2)
    assert result.stopped_early and result.epochs_run == 2

    class Pruned(Exception):
        pass

    def prune(epoch, metrics):
        raise Pruned

    with pytest.raises(Pruned):
        fit(arch, digits, "quick", epochs=3, progress=False, callback=prune)


def easy_task():
    """160 noisy 8x8 images of two classes: class 1 has a bright top half."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(160) % 2
    images = torch.rand(160, 1, 8, 8, generator=generator) * 0.2
    images[labels == 1, :, :4] += 0.8
    return from_tensors(images, labels, augment={"crop": False})


def test_fit_learns_an_easy_task():
    data = easy_task()
    model = budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=2)
    result = fit(model, data, "quick", epochs=4, batch_size=16, progress=False)
    assert result.val_accuracy >= 0.9
    assert evaluate(result.model, data, device="cpu")["accuracy"] >= 0.9


def test_a_net_without_a_classifier_learns():
    # SqueezeNet's end, 1000 maps pooled into the logits (notation nofc), resized to 2 classes
    arch = budgetnet.parse("(3,8) (1,1000)@none gap nofc", input_shape=(1, 8, 8))
    result = fit(arch, easy_task(), "quick", epochs=4, batch_size=16, progress=False)
    assert str(result.model.arch) == "(3,8) + (1,2)@none gap nofc"
    assert result.val_accuracy >= 0.9


def test_step_schedule_reaches_the_optimizer(digits, arch):
    recipe = Recipe("steps", 2, batch_size=40, optimizer="sgd", lr=0.1, milestones=(0.5,), gamma=0.1)
    result = fit(arch, digits, recipe, progress=False)
    assert [round(entry["lr"], 6) for entry in result.history] == [0.01, 0.01]  # stepped after epoch 1


def test_divergence_stops_with_a_clear_result(arch, digits):
    result = fit(arch, digits, get_recipe("paper", epochs=3, lr=1e8, batch_size=40), progress=False)
    assert result.diverged and result.val_accuracy == 0.0 and result.epochs_run < 3
    assert "training diverged: the loss became" in result.message and "lower learning rate" in result.message


def test_fit_a_torch_module_and_reject_mismatched_ones(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    result = fit(model, digits, "quick", epochs=1, progress=False)
    assert result.model is model and result.epochs_run == 1
    with pytest.raises(TrainingError, match=r"model output shape \(2, 3\) is invalid; expected \(batch, 10\)"):
        fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), digits, progress=False)
    with pytest.raises(TrainingError, match=r"model does not accept the data's 1x8x8 images"):
        fit(nn.Sequential(nn.Flatten(), nn.Linear(50, 10)), digits, progress=False)
    with pytest.raises(TrainingError, match=r"model_or_arch=str is invalid; expected a budgetnet.Arch"):
        fit("(3,8)", digits, progress=False)
    with pytest.raises(TrainingError, match=r"data=list is invalid; expected a budgetnet.training.data.Dataset"):
        fit(model, [], progress=False)


def test_an_arch_is_adapted_to_the_data(digits):
    arch = budgetnet.parse("(3,4) gap")  # 3x224x224, 1000 classes
    result = fit(arch, digits, epochs=1, progress=False)
    assert result.model.arch.input_shape == (1, 8, 8) and result.model.arch.num_classes == 10


def test_fit_leaves_the_global_random_state_alone(arch, digits):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(arch, digits, epochs=1, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_same_seed_same_model_other_seed_other_model(arch, digits):
    first, again, other = (fit(arch, digits, "quick", epochs=1, seed=seed, progress=False) for seed in (4, 4, 5))
    assert first.history[0]["train_loss"] == again.history[0]["train_loss"]
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))
    assert first.history[0]["train_loss"] != other.history[0]["train_loss"]


# -- checkpoints -------------------------------------------------------------------------------------
def strip_seconds(history):
    return [{key: value for key, value in entry.items() if key not in ("seconds", "images_per_second")}
            for entry in history]  # fmt: skip


def test_interrupted_and_resumed_run_equals_the_uninterrupted_run(tmp_path, digits, arch):
    data = from_tensors(torch.rand(96, 3, 8, 8), torch.arange(96) % 3, augment={"flip": True})  # crop, flip, colour
    arch = arch.with_input(data.input_shape, data.num_classes)
    options = dict(epochs=3, batch_size=16, seed=7, progress=False)
    whole = fit(arch, data, "paper", **options)

    class Interrupted(Exception):
        pass

    def interrupt(epoch, metrics):
        if epoch == 2:
            raise Interrupted

    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(arch, data, "paper", checkpoint=path, callback=interrupt, **options)
    assert torch.load(path, weights_only=True)["epoch"] == 2
    resumed = fit(arch, data, "paper", checkpoint=path, **options)
    assert resumed.resumed_from == 2 and resumed.epochs_run == 3
    assert resumed.val_accuracy == whole.val_accuracy
    assert strip_seconds(resumed.history) == strip_seconds(whole.history)
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_finished_checkpoint_returns_without_training(tmp_path, arch, digits):
    path = tmp_path / "done.pt"
    first = fit(arch, digits, "quick", epochs=1, checkpoint=path, progress=False)
    again = fit(arch, digits, "quick", epochs=1, checkpoint=path, progress=False)
    assert again.resumed_from == 1 and again.history == first.history
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))


def test_checkpoint_from_another_architecture(tmp_path, arch, digits):
    path = tmp_path / "other.pt"
    fit(arch, digits, "quick", epochs=1, checkpoint=path, progress=False)
    other = budgetnet.parse("(3,4) 2/2 (2,8)x2 spp(2,1) fc(16) fc(16)", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(CheckpointError, match=r"belongs to another architecture: it holds '\(3,4\) 2/2 \(3,8\)"):
        fit(other, digits, "quick", epochs=1, checkpoint=path, progress=False)


def test_checkpoint_from_another_recipe_or_seed(tmp_path, arch, digits):
    path = tmp_path / "recipe.pt"
    fit(arch, digits, "quick", epochs=1, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match=r"was written with recipe=.* expected the same recipe to resume"):
        fit(arch, digits, "quick", epochs=2, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match=r"was written with seed=0, this run has seed=1"):
        fit(arch, digits, "quick", epochs=1, seed=1, checkpoint=path, progress=False)


def test_checkpoint_that_is_not_one(tmp_path, arch, digits):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage.pt' cannot be read .*expected a file written by budgetnet"):
        fit(arch, digits, epochs=1, checkpoint=path, progress=False)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"is not a budgetnet checkpoint"):
        fit(arch, digits, epochs=1, checkpoint=path, progress=False)


# -- evaluate -----------------------------------------------------------------------------------------
def test_evaluate_matches_a_hand_computation(digits):
    torch.manual_seed(0)
    model = budgetnet.build(budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10))
    scores = evaluate(model, digits, split="val", device="cpu", batch_size=50)
    with torch.no_grad():
        logits = model.eval()(digits.val.images)
    assert scores["accuracy"] == pytest.approx(float((logits.argmax(1) == digits.val.labels).float().mean()))
    assert scores["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, digits.val.labels)), rel=1e-4)
    assert scores["images"] == len(digits.val) and scores["views"] == 1 and scores["split"] == "val"


def test_ten_view_evaluation_averages_the_views():
    data = from_tensors(torch.rand(30, 3, 8, 8), torch.arange(30) % 3, augment={"flip": True})
    torch.manual_seed(0)
    model = budgetnet.build(budgetnet.parse("(3,4) gap", input_shape=(3, 8, 8), num_classes=3))
    scores = evaluate(model, data, views=10, device="cpu")
    with torch.no_grad():
        probabilities = sum(torch.softmax(model.eval()(view), 1) for view in data.views(data.test.images, 10)) / 10
    assert scores["views"] == 10
    assert scores["accuracy"] == pytest.approx(float((probabilities.argmax(1) == data.test.labels).float().mean()))
    assert scores["loss"] == pytest.approx(float(-probabilities.log()[range(len(data.test)), data.test.labels].mean()))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"views": 5}, r"views=5 is invalid; expected 1 \(centre\) or 10"),
        ({"split": "dev"}, r"split='dev' is invalid; expected 'test', 'val' or 'train'"),
        ({"batch_size": 0}, r"batch_size=0 is invalid; expected an integer >= 1"),
    ],
)
def test_evaluate_bad_options(digits, options, message):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(TrainingError, match=message):
        evaluate(model, digits, **options)


def test_evaluate_accepts_a_fit_result(arch, digits):
    result = fit(arch, digits, epochs=1, progress=False)
    assert isinstance(result, FitResult)
    assert evaluate(result, digits, split="val")["accuracy"] == pytest.approx(result.val_accuracy)
    assert math.isfinite(evaluate(result, digits)["loss"])


# -- checkpoints on a full disk (issue 20): an error naming the path, the previous checkpoint intact -
def interrupt_after_first_epoch(epoch, metrics):
    if epoch == 1:
        raise KeyboardInterrupt


def test_a_checkpoint_onto_a_full_disk_keeps_the_previous_one(tmp_path, arch, digits):
    with full_tmpfs(tmp_path) as disk:
        path = disk / "run.pt"
        with pytest.raises(KeyboardInterrupt):
            fit(arch, digits, "quick", epochs=2, checkpoint=path, callback=interrupt_after_first_epoch, progress=False)
        before = path.read_bytes()
        fill(disk)
        with pytest.raises(FileWriteError) as caught:
            fit(arch, digits, "quick", epochs=2, checkpoint=path, progress=False)  # resumes, then saves epoch 2
        assert str(caught.value) == (
            f"checkpoint {str(path)!r} cannot be written: the disk is full ([Errno 28] No space left on device); "
            "expected free space there, or another path; the previous file is unchanged"
        )
        assert path.read_bytes() == before and torch.load(path, weights_only=True)["epoch"] == 1
        assert leftovers(disk, "run.pt", "filler") == []


def test_a_checkpoint_when_the_disk_fills_mid_write(tmp_path, arch, digits, monkeypatch):
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(arch, digits, "quick", epochs=2, checkpoint=path, callback=interrupt_after_first_epoch, progress=False)
    before = path.read_bytes()
    disk_full_after(monkeypatch, 1000)
    with pytest.raises(FileWriteError, match=r"checkpoint '.*run.pt' cannot be written: the disk is full"):
        fit(arch, digits, "quick", epochs=2, checkpoint=path, progress=False)
    assert path.read_bytes() == before and leftovers(tmp_path, "run.pt") == []
    monkeypatch.undo()
    assert fit(arch, digits, "quick", epochs=2, checkpoint=path, progress=False).resumed_from == 1  # still resumable


def test_a_checkpoint_whose_directory_cannot_be_made(tmp_path, arch, digits):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CheckpointError, match=r"a_file/run.pt' cannot be written: its directory cannot be made"):
        fit(arch, digits, "quick", epochs=1, checkpoint=tmp_path / "a_file" / "run.pt", progress=False)
