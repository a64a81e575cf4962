"""core.restoration.domain on the bundled digits VAE: the reference range of reconstruction errors holds held-out
digits and no random noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.config import DataConfig
from core.restoration.domain import domain_note, reconstruction_errors, reference_range


@pytest.fixture(scope="module")
def digits():
    from core.data.datasets import load_dataset

    return load_dataset(DataConfig(name="digits", image_size=16))


def test_the_reference_range_holds_most_held_out_digits_and_no_noise(bundled_vae, digits):
    vae = bundled_vae.model
    reference = reference_range(vae, digits, n_images=300)
    assert reference.n == 300
    test_errors = reconstruction_errors(vae, digits.test.images)
    far = np.mean([reference.is_far(float(e)) for e in test_errors])
    assert far < 0.02                       # held-out digits are in the domain
    noise = torch.from_numpy(np.random.default_rng(1).random((20, 1, 16, 16)).astype(np.float32))
    assert all(reference.is_far(float(e)) for e in reconstruction_errors(vae, noise))
    assert domain_note(float(test_errors[0]), reference) == ""
    assert "unlike the training data" in domain_note(reference.high * 10, reference)
    assert "unlike the training data" in domain_note(reference.low / 10, reference)    # too simple (a blank image)
