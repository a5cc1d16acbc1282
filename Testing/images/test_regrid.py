"""Regridding the network's probabilities onto the input grid: labels are the argmax of trilinear interpolation,
compared with SimpleITK's linear resampling channel by channel on sagittal, axial and oblique grids."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from inference_fixtures import AXIAL, SAGITTAL, mri_like, oblique

from SpineMetSegLib.images import imageio, regrid
from SpineMetSegLib.inference import preprocessing

GRIDS = {
    "sagittal": dict(spacing=(0.9, 0.8, 3.0), direction=SAGITTAL, origin=(12.5, -40.0, 80.0)),
    "axial": dict(spacing=(0.7, 0.7, 3.5), direction=AXIAL, origin=(100.0, 90.0, -20.0)),
    "oblique": dict(spacing=(0.9, 1.1, 2.5), direction=oblique(), origin=(-3.0, 7.0, 11.0)),
}


def _smooth_probabilities(shape, seed=0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    logits = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) * 8 for _ in range(4)])
    exp = np.exp(logits - logits.max(axis=0))
    return (exp / exp.sum(axis=0)).astype(np.float32)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_regrid_labels_equal_the_argmax_of_sitk_linear_resampling(grid):
    reference = mri_like(**GRIDS[grid])
    oriented, _, _ = preprocessing.oriented_grid(reference, "LPS")
    model_grid = preprocessing.target_grid(oriented, (None, 1.0, 1.3))
    probabilities = _smooth_probabilities(model_grid.size)
    expected = []
    for channel in probabilities:
        image = sitk.GetImageFromArray(np.ascontiguousarray(channel.transpose(2, 1, 0)))
        model_grid.apply_to(image)
        resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        expected.append(sitk.GetArrayFromImage(resampled))
    expected = np.stack(expected)
    expected[0] = 1.0 - expected[1:].sum(axis=0)
    maps = regrid.axis_maps(model_grid, imageio.Geometry.of(reference))
    labels = regrid.argmax_labels(probabilities, maps)
    assert np.mean(labels == np.argmax(expected, axis=0)) > 0.9999
    np.testing.assert_allclose(regrid.interpolate(probabilities[1], maps), expected[1], atol=1e-5)
    points = np.nonzero(labels == 1)
    np.testing.assert_allclose(regrid.interpolate_points(probabilities[1], maps, points), expected[1][points],
                               atol=1e-5)
