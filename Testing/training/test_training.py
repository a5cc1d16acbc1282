"""``spinemetseg train`` and the shipped default model: learning, resume, torchrun, folder checks, quality."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from SpineMetSegLib.errors import CancelledError, ImageError
from SpineMetSegLib.training import TrainConfig, train
from SpineMetSegLib.training.data import FolderDataset

TINY = {"network_channels": (4, 8), "network_strides": (2,)}
SHAPE = (6, 48, 48)  # ITK (i, j, k): 6 sagittal slices of 48 x 48
SPACING = (3.0, 1.0, 1.0)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _image(array_ijk: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_ijk.transpose(2, 1, 0)))
    image.SetSpacing(SPACING)
    return image


def _case_arrays(seed: int):
    """A small spine-like scene: two vertebral bodies (2), a canal (3), a lesion (1) in one body."""
    rng = np.random.default_rng(seed)
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[:, 8:40, 30:36] = 3
    label[:, 8:20, 10:26] = 2
    label[:, 26:40, 10:26] = 2
    centre = rng.integers(12, 16), rng.integers(14, 22)
    label[1:5, centre[0] - 3: centre[0] + 3, centre[1] - 3: centre[1] + 3] = 1
    body = np.zeros(SHAPE, dtype=bool)
    body[:, 2:46, 4:44] = True
    tissue = {0: 300.0, 1: 120.0, 2: 500.0, 3: 200.0}
    t1 = np.where(body, tissue[0], 0.0)
    for value, intensity in tissue.items():
        if value:
            t1[label == value] = intensity
    stir = np.where(body, 150.0, 0.0)
    stir[label == 3] = 600.0
    stir[label == 1] = 700.0
    noise = rng.normal(0, 10, SHAPE)
    return {"t1": np.clip(t1 + noise * body, 0, None), "stir": np.clip(stir + noise * body, 0, None)}, label


def write_folder(root: Path, cases: int = 2, channels=("T1", "STIR")) -> Path:
    """An MSD / nnU-Net layout folder with ``cases`` small cases."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for index in range(cases):
        images, label = _case_arrays(index)
        for channel, name in enumerate(channels):
            sitk.WriteImage(_image(images[name.lower()].astype(np.float32)),
                            str(root / "imagesTr" / f"case{index:03d}_{channel:04d}.nii.gz"))
        sitk.WriteImage(_image(label), str(root / "labelsTr" / f"case{index:03d}.nii.gz"))
    description = {
        "channel_names": {str(i): name for i, name in enumerate(channels)},
        "labels": {"background": 0, "metastasis": 1, "vertebral body": 2, "spinal canal": 3},
        "numTraining": cases,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(description))
    return root


def tiny_config(output: Path, folder: Path, **changes) -> TrainConfig:
    settings = dict(output=str(output), steps=6, batch_size=4, patch_size=(32, 32), learning_rate=5e-3,
                    warmup_steps=1, synthetic=False, folder=str(folder), validation_cases=0, log_every=1,
                    checkpoint_every=3, device="cpu", **TINY)
    settings.update(changes)
    return TrainConfig(**settings)


def losses(output: Path):
    with open(output / "train_log.csv", newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle) if row["loss"]]


@pytest.mark.slow
def test_training_steps_reduce_the_loss(tmp_path):
    folder = write_folder(tmp_path / "data", cases=1)
    output = tmp_path / "run"
    result = train(tiny_config(output, folder, steps=40, learning_rate=1e-2))
    curve = losses(output)
    assert len(curve) == 40
    assert np.mean(curve[-5:]) < 0.7 * np.mean(curve[:5])
    assert result.model_file.is_file() and (output / "learning_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_resume_after_cancel_continues_like_an_uninterrupted_run(tmp_path):
    folder = write_folder(tmp_path / "data")
    straight = train(tiny_config(tmp_path / "straight", folder))

    def cancel_at_step_4(stage, percent, message):
        if message.startswith("step 4/"):
            raise CancelledError("stop")

    interrupted = tmp_path / "interrupted"
    with pytest.raises(CancelledError):
        train(tiny_config(interrupted, folder), progress=cancel_at_step_4)
    assert torch.load(interrupted / "checkpoint.pt", weights_only=True)["step"] == 4
    resumed = train(tiny_config(interrupted, folder), resume=True)
    assert resumed.steps == 6
    assert losses(interrupted) == pytest.approx(losses(tmp_path / "straight"))
    from SpineMetSegLib.models.weights import load_state_dict

    a, b = load_state_dict(straight.model_file), load_state_dict(resumed.model_file)
    assert all(torch.allclose(a[key], b[key]) for key in a)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    folder = write_folder(tmp_path / "data", cases=1)
    from SpineMetSegLib.errors import ModelError

    with pytest.raises(ModelError, match="checkpoint"):
        train(tiny_config(tmp_path / "run", folder), resume=True)


@pytest.mark.slow
def test_two_gloo_processes_train_a_model_that_imports(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "data")
    output = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "SpineMetSegLib.cli", "train", "--output", str(output), "--data", str(folder), "--no-synthetic",
        "--steps", "2", "--batch-size", "2", "--patch-size", "32", "32", "--channels", "4", "8", "--strides", "2",
        "--device", "cpu", "--log-every", "1", "--no-progress-bar", "--name", "ddp-test",
    ]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    from SpineMetSegLib.models.catalog import card_from_file
    from SpineMetSegLib.models.loader import load_model

    card = card_from_file(output / "ddp-test-1.0.0.json")
    assert card.file.size == (output / "ddp-test-1.0.0.safetensors").stat().st_size
    assert card.metrics.get("training")["steps"] == 2
    home = tmp_path / "home"
    imported = subprocess.run(
        [sys.executable, "-m", "SpineMetSegLib.cli", "models", "import", str(output / "ddp-test-1.0.0.safetensors"),
         "--card", str(output / "ddp-test-1.0.0.json")],
        capture_output=True, text=True, timeout=60, env=dict(environment, SPINEMETSEG_HOME=str(home)),
    )
    assert imported.returncode == 0, imported.stderr
    monkeypatch.setenv("SPINEMETSEG_HOME", str(home))
    model = load_model("ddp-test").network
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4, 32, 32)


def test_folder_without_dataset_json_is_refused(tmp_path):
    folder = write_folder(tmp_path / "data", cases=1)
    (folder / "dataset.json").unlink()
    with pytest.raises(ImageError, match="dataset.json"):
        FolderDataset(folder, _default_card())


def test_label_without_image_is_refused(tmp_path):
    folder = write_folder(tmp_path / "data", cases=2)
    for image in (folder / "imagesTr").glob("case001_*"):
        image.unlink()
    with pytest.raises(ImageError, match="case001.nii.gz has no image"):
        FolderDataset(folder, _default_card())


def test_channel_count_mismatch_is_refused(tmp_path):
    folder = write_folder(tmp_path / "data", cases=1)
    (folder / "imagesTr" / "case000_0001.nii.gz").unlink()
    with pytest.raises(ImageError, match="1 image channel"):
        FolderDataset(folder, _default_card())


def test_folder_case_is_preprocessed_like_inference(tmp_path):
    folder = write_folder(tmp_path / "data", cases=1)
    name, image, label, spacing = FolderDataset(folder, _default_card()).load(0)
    assert image.shape[0] == 3 and np.all(image[1] == 0)  # t1, t2 (missing: zeros), stir
    assert image.shape[1:] == label.shape and spacing[1:] == (1.0, 1.0)
    assert set(np.unique(label)) == {0, 1, 2, 3}
    # The lesion is dark on T1 after normalisation, like the source.
    assert image[0][label == 1].mean() < image[0][label == 2].mean()


def _default_card():
    from SpineMetSegLib.models.catalog import load_catalog

    return load_catalog().get()


# A validation seed (never used in training) whose sagittal rendering has four lesions of 10 to 34 mm.
LESION_CASE_SEED = 9_000_004


@pytest.mark.slow
def test_shipped_model_segments_a_synthetic_case(tmp_path):
    from SpineMetSegLib.analysis.metrics import compute_metrics
    from SpineMetSegLib.data import phantom
    from SpineMetSegLib.inference import segment_images
    from SpineMetSegLib.models.catalog import load_catalog

    card = load_catalog().get()
    case = phantom.generate_case(LESION_CASE_SEED, acquisition="sagittal2d")
    target = phantom.model_target(case)
    assert case.info["lesions"], "the chosen seed must have lesions"
    result = segment_images(case.images, card, device="cpu")
    metrics = compute_metrics(target, result.labels, labels=[1, 2], missing_ok=True)
    # 2.0.0 traded phantom accuracy for real anatomy: Dice 0.61 on this case, its 34 mm lesion found and the three
    # smaller ones missed (1.2.0, phantom-only, reached >= 0.7); its phantom validation is in the card and README.
    assert metrics["1"]["dice"] >= 0.5
    assert metrics["1"]["lesions"]["detected"] >= 1
    assert metrics["2"]["dice"] >= 0.85


def test_channel_dropout_keeps_at_least_one_sequence_and_covers_every_subset():
    from SpineMetSegLib.training.data import drop_channels

    rng = np.random.default_rng(0)
    image = np.ones((3, 4, 4), dtype=np.float32)
    kept = {tuple(bool(c.any()) for c in drop_channels(image, rng, 0.4)) for _ in range(300)}
    assert kept == {tuple(bool((s >> c) & 1) for c in range(3)) for s in range(1, 8)}


@pytest.mark.slow
def test_synthetic_stream_delivers_the_scheduled_training_cases():
    from SpineMetSegLib.training.data import TRAINING_SEED_LIMIT, SyntheticStream, synthetic_case, training_case_seed

    card = _default_card()
    with SyntheticStream(card, seed=3, start_index=5, workers=1, horizon=1) as stream:
        streamed = stream.get(5)
    phantom_seed, contrast = training_case_seed(3, 5)
    assert phantom_seed < TRAINING_SEED_LIMIT
    direct = synthetic_case(phantom_seed, contrast, card)
    assert streamed.name == direct.name
    assert np.array_equal(streamed.labels, direct.labels) and np.array_equal(streamed.images, direct.images)
    assert streamed.images.shape[1] == len(card.inputs) and streamed.foreground_slices.size > 0


@pytest.mark.slow
def test_training_validation_scores_a_case_as_segment_does():
    """The checkpoint is chosen on segment's own numbers: same predictor, argmax and post-processing."""
    from SpineMetSegLib.analysis import metrics
    from SpineMetSegLib.data import phantom
    from SpineMetSegLib.inference import segment_images
    from SpineMetSegLib.models import loader
    from SpineMetSegLib.training.data import synthetic_case
    from SpineMetSegLib.training.loop import evaluate

    model = loader.load_model()
    seed = 9_000_000  # a held-out phantom case on a 1 mm grid: its model grid is its own grid, cropped
    case = phantom.generate_case(seed, contrast="standard")
    validation = evaluate(model.network, [synthetic_case(seed, "standard", model.card, keep_all=True)], model.card,
                          torch.device("cpu"))
    segmented = segment_images(case.images, model.card, model.network, device="cpu", warn=lambda message: None)
    scores = metrics.compute_metrics(phantom.model_target(case), segmented.labels, labels=[1, 2], missing_ok=True)
    assert validation["metastasis_dice"] == pytest.approx(scores["1"]["dice"], abs=0.005)
    assert validation["vertebral_body_dice"] == pytest.approx(scores["2"]["dice"], abs=0.005)
    assert validation["metastasis_lesion_sensitivity"] == pytest.approx(scores["1"]["lesions"]["sensitivity"])
    assert validation["metastasis_false_positive_per_case"] == scores["1"]["lesions"]["false_positive"]


@pytest.mark.slow
def test_train_command_reports_progress_lines_or_a_bar_from_the_same_events(tmp_path, capsys):
    from progress_checks import check_bar_shows_the_protocol, check_protocol

    from SpineMetSegLib.cli import main

    folder = write_folder(tmp_path / "data", cases=1)
    runs = {}
    for choice in ("lines", "bar"):
        code = main(["train", "--output", str(tmp_path / choice), "--data", str(folder), "--no-synthetic",
                     "--steps", "4", "--batch-size", "2", "--patch-size", "32", "32", "--channels", "4", "8",
                     "--strides", "2", "--device", "cpu", "--log-every", "1", "--progress", choice])
        assert code == 0
        runs[choice] = capsys.readouterr()

    events = check_protocol(runs["lines"].out)
    assert [(stage, percent) for stage, percent, _ in events] == [
        ("train", 25), ("train", 50), ("train", 75), ("train", 100), ("done", 100)]
    assert events[0][2].startswith("step 1/4 loss ") and events[0][2].endswith(" patches/s")
    assert check_bar_shows_the_protocol(runs["bar"].err, events) and "SPINEMETSEG-PROGRESS" not in runs["bar"].out
