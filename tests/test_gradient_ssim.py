"""4-G-R-SSIM (four-component gradient-based SSIM) on real cohort images and volumes built to test it."""

import itertools

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from brainsynth.evaluation.gradient_ssim import (
    four_component_gradient_ssim,
    mean_pairwise_gradient_ssim,
    region_masks,
    sobel_magnitude,
)
from brainsynth.evaluation.metrics import ms_ssim


@pytest.fixture(scope="module")
def cohort_images(cohort_dir):
    return [nib.load(path).get_fdata().astype(np.float32) for path in sorted(cohort_dir.glob("sub-*/anat/*.nii.gz"))]


def test_sobel_magnitude_is_the_slope_of_a_ramp():
    x = np.arange(12, dtype=np.float32)
    ramp = (0.3 * x[:, None, None] + 0.4 * x[None, None, :]) * np.ones((12, 10, 12), np.float32)
    magnitude = sobel_magnitude(torch.from_numpy(ramp)[None, None])[0, 0].numpy()
    assert magnitude[2:-2, 2:-2, 2:-2] == pytest.approx(0.5, abs=1e-5)  # sqrt(0.3^2 + 0.4^2)


def test_identical_volumes_score_one_and_noise_lowers_the_score(cohort_images):
    image = cohort_images[0]
    rng = np.random.default_rng(0)
    scores = [four_component_gradient_ssim(image, image + rng.normal(0, sd, image.shape)) for sd in (0.01, 0.03, 0.1)]
    assert four_component_gradient_ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_blur_costs_more_than_under_ms_ssim(cohort_images):
    """The gradient-based measure sees lost edges that MS-SSIM's luminance and contrast hardly register."""
    image = cohort_images[0]
    blurred = ndimage.gaussian_filter(image, 1.0)
    assert 1.0 - four_component_gradient_ssim(image, blurred) > 3 * (1.0 - ms_ssim(image, blurred))


def test_regions_follow_the_edges_of_both_volumes():
    reference = np.zeros((16, 16, 16), np.float32)
    reference[8:] = 1.0  # one step along the first axis
    test = np.zeros_like(reference)  # the step erased
    g = sobel_magnitude(torch.from_numpy(reference)[None, None])
    masks = region_masks(g, sobel_magnitude(torch.from_numpy(test)[None, None]))
    step = g[0, 0].numpy() > 0.12 * float(g.max())
    assert np.array_equal(masks["changed_edges"][0, 0].numpy(), step)
    assert not masks["preserved_edges"].any()
    assert np.array_equal(masks["smooth"][0, 0].numpy(), ~step)
    same = region_masks(g, g)
    assert np.array_equal(same["preserved_edges"][0, 0].numpy(), step)
    assert not same["changed_edges"].any()


def test_real_pairs_score_below_ms_ssim_like_the_paper(cohort_images):
    """Pairs of different people: about 0.4-0.5 by 4-G-R-SSIM against about 0.65-0.8 by MS-SSIM."""
    gradient = mean_pairwise_gradient_ssim(cohort_images)
    assert 0.0 < gradient < np.mean([ms_ssim(a, b) for a, b in itertools.pairwise(cohort_images)])
    same_person = mean_pairwise_gradient_ssim([cohort_images[0], cohort_images[0] + 0.01])
    assert same_person > gradient


def test_refuses_volumes_it_cannot_compare(cohort_images):
    with pytest.raises(ValueError, match="same shape"):
        four_component_gradient_ssim(cohort_images[0], cohort_images[0][:-1])
    with pytest.raises(ValueError, match="at least 7 voxels"):
        four_component_gradient_ssim(np.zeros((5, 9, 9)), np.zeros((5, 9, 9)))
