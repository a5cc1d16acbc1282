"""The predictor: the window plan (one whole-image window or the card's patches), blending of overlapping windows,
flip averaging (test-time augmentation)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from inference_fixtures import ThresholdNet, make_card, seeded_network

from SpineMetSegLib import inference


def test_an_image_not_much_larger_than_the_patch_is_one_window_padded_to_the_network_stride():
    card = make_card(patch_size=[32, 32])  # strides (2,): windows are multiples of 2
    plan = inference.WindowPlan.of(card, (5, 45, 47))
    assert plan.roi == (46, 48) and plan.whole_images and plan.beyond_patch and plan.windows_per_image() == 1
    assert inference.WINDOW_MAX_SCALE * 32 == 48
    larger = inference.WindowPlan.of(card, (5, 49, 47))  # 50 > 48: windows of the card's patch
    assert larger.roi == (32, 32) and not larger.whole_images and larger.windows_per_image() == 4


@pytest.mark.parametrize("tta", [False, True])
def test_one_whole_image_window_gives_what_overlapping_windows_give_for_a_pointwise_network(tta):
    card = make_card(patch_size=[32, 32])
    array = np.random.default_rng(5).standard_normal((3, 3, 45, 47)).astype(np.float32)
    whole = inference.WindowPlan.of(card, array.shape[1:])
    windows = dataclasses.replace(whole, roi=(32, 32))
    assert whole.whole_images and windows.windows_per_image() == 4
    network, cpu = ThresholdNet(threshold=0.5), torch.device("cpu")
    expected = inference.predict_volume(network, array, windows, cpu, 2, tta=tta, mixed_precision=False)
    found = inference.predict_volume(network, array, whole, cpu, 2, tta=tta, mixed_precision=False)
    assert found.shape == expected.shape == (4,) + array.shape[1:]
    np.testing.assert_allclose(found, expected, atol=1e-5)
    assert found[1].max() > 0.9 and found[1].min() < 0.1  # the lesion channel varies: a shift would show


def test_tta_averages_flips_so_a_mirrored_input_gives_the_mirrored_probabilities():
    card = make_card()
    network = seeded_network(card)
    array = np.random.default_rng(3).standard_normal((3, 4, 32, 32)).astype(np.float32)
    plan = inference.WindowPlan.of(card, array.shape[1:])
    assert plan.windows_per_image() == 1
    cpu = torch.device("cpu")
    forward = inference.predict_volume(network, array, plan, cpu, 2, tta=True, mixed_precision=False)
    flipped = array[:, :, ::-1].copy()
    mirrored = inference.predict_volume(network, flipped, plan, cpu, 2, tta=True, mixed_precision=False)
    np.testing.assert_allclose(mirrored[:, :, ::-1], forward, atol=1e-5)
    plain = inference.predict_volume(network, array, plan, cpu, 2, mixed_precision=False)
    assert not np.allclose(plain, forward, atol=1e-3)
