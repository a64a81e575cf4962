"""Shared test set-up: a private user home for the whole session (no real caches touched), offscreen Qt."""

import os
import tempfile

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tiny test models run fastest on one thread, and the GUI tests train on a worker beside the GUI thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# One isolated home per test session: caches (datasets, classifier, numba, projections) are shared by the tests of a
# run but never by the user's real application.
os.environ["VAE_EXPLORER_HOME"] = tempfile.mkdtemp(prefix="vae-explorer-test-home-")


@pytest.fixture(scope="session")
def bundled_vae():
    """The VAE shipped in resources/ (a real trained model on real digits), loaded once per test session."""
    from core.checkpoint import load_model
    from core.paths import bundled_model

    path = bundled_model("vae")
    if path is None:
        pytest.fail("resources/digits-vae.safetensors is missing: rebuild it with `make default-model`")
    return load_model(path)
