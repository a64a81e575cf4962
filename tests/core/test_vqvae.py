"""The VQ-VAE and its code prior, on the real (bundled) digits: training lowers the reconstruction error, dead-code
restarts keep more of the codebook in use, the code prior beats a uniform one on held-out codes, checkpoints hold
both stages and load back to identical outputs, both stages resume exactly, and bad inputs are one line."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from resume_check import stop_and_resume

from core.config import Config, DataConfig, TrainConfig, VQVAEConfig, preset
from core.data.datasets import load_dataset
from core.errors import UserError
from core.evaluation.codes import codebook_use
from core.images import as_float
from core.models.protocol import DiscreteCodeModel, SecondStageModel, is_vqvae
from core.training.checkpoint import load_model
from core.training.events import EpochSummary
from core.training.trainer import Trainer

DATA = DataConfig("digits", image_size=16)
VQ = VQVAEConfig(codebook_size=64, code_dim=8, width=8, prior_width=32, prior_layers=1, prior_heads=2,
                 prior_dropout=0.0)


def tiny(model: VQVAEConfig = VQ, **train) -> Config:
    settings = dict(epochs=3, batch_size=64, lr=2e-3, threads=1, preview_every=0, log_every=5)
    return Config(DATA, model, TrainConfig(**{**settings, **train}))


def prior_config(first_stage, **train) -> Config:
    return tiny(dataclasses.replace(VQ, stage="prior", first_stage=str(first_stage)), **{"epochs": 4, **train})


def epochs_of(events) -> list[EpochSummary]:
    return [ev for ev in events if isinstance(ev, EpochSummary)]


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(DATA)


@pytest.fixture(scope="module")
def stages(dataset, tmp_path_factory):
    """(first-stage run, prior run, the first stage's epoch summaries, the prior's), trained once for the module."""
    root = tmp_path_factory.mktemp("vq")
    first = list(Trainer(tiny(), run_dir=root / "vq", dataset=dataset).run())
    assert first[-1].status == "completed"
    ck = root / "vq" / "checkpoints" / "best.safetensors"
    second = list(Trainer(prior_config(ck), run_dir=root / "prior", dataset=dataset).run())
    assert second[-1].status == "completed"
    return root / "vq", root / "prior", epochs_of(first), epochs_of(second)


def test_training_lowers_the_reconstruction_error_and_uses_the_codebook(stages, dataset):
    _, _, first, _ = stages
    assert first[-1].val["recon"] < first[0].val["recon"] - 10      # nats per image
    assert first[-1].val["mse"] < 0.6 * first[0].val["mse"], [e.val["mse"] for e in first]
    loaded = load_model(stages[0] / "checkpoints" / "best.safetensors")
    model = loaded.model
    assert is_vqvae(model) and isinstance(model, DiscreteCodeModel) and not model.has_prior
    codes = model.encode_codes(as_float(dataset.val.images))
    assert codes.shape == (len(dataset.val), 4, 4) and codes.dtype == torch.long
    use = codebook_use(codes, model.codebook_size)
    assert use["codebook_perplexity"] > 0.35 * model.codebook_size and use["codebook_usage"] > 0.6, use
    x = as_float(dataset.val.images[:64])
    assert float((model.reconstruct(x) - x).pow(2).mean()) < 0.02


def test_dead_code_restarts_keep_more_codes_in_use(dataset):
    """Same seed, same data: without restarts most of a codebook seeded from one batch dies; with them it lives."""
    use = {}
    for restarts in (True, False):
        trainer = Trainer(tiny(dataclasses.replace(VQ, codebook_size=128, restarts=restarts), epochs=2),
                          dataset=dataset)
        assert list(trainer.run())[-1].status == "completed"
        model = trainer.model.eval()
        use[restarts] = codebook_use(model.encode_codes(as_float(dataset.val.images)), 128)
        assert (int(model.quantizer.restarted) > 0) == restarts
    # measured: 96 vs 69 codes used, perplexity 58 vs 30
    assert use[True]["codebook_used"] > use[False]["codebook_used"] + 12, use
    assert use[True]["codebook_perplexity"] > 1.4 * use[False]["codebook_perplexity"], use


def test_the_code_prior_beats_a_uniform_prior_on_held_out_codes(stages, dataset):
    _, prior_run, _, second = stages
    uniform = math.log2(VQ.codebook_size)
    assert second[-1].val["bits_per_code"] < second[0].val["bits_per_code"]
    loaded = load_model(prior_run / "checkpoints" / "best.safetensors")
    model = loaded.model
    assert model.has_prior
    test = dataset.test
    codes = model.encode_codes(as_float(test.images))
    with torch.no_grad():
        bits = model.prior_nll(codes, test.labels).mean() / (16 * math.log(2))
    assert float(bits) < 0.8 * uniform
    # the class matters: the right labels explain the codes better than labels shifted by one
    with torch.no_grad():
        wrong = model.prior_nll(codes, (test.labels + 1) % 10).mean() / (16 * math.log(2))
    assert float(wrong) > float(bits) + 0.1


def test_the_prior_run_keeps_the_first_stage_frozen_and_its_checkpoint_holds_both(stages):
    vq_run, prior_run, _, _ = stages
    first = load_model(vq_run / "checkpoints" / "best.safetensors", use_ema=False).model.state_dict()
    both = load_model(prior_run / "checkpoints" / "last.safetensors", use_ema=False).model.state_dict()
    assert not any(k.startswith("prior.") for k in first)
    assert any(k.startswith("prior.") for k in both)
    assert all(torch.equal(first[k], both[k]) for k in first)   # the codebook and autoencoder never moved


def test_save_load_round_trip_gives_identical_outputs(stages, dataset, tmp_path):
    from core.training.checkpoint import save_checkpoint

    loaded = load_model(stages[1] / "checkpoints" / "best.safetensors")
    path = save_checkpoint(tmp_path / "again.safetensors", model=loaded.model, config=loaded.config,
                           meta=loaded.meta)
    again = load_model(path)
    x = as_float(dataset.test.images[:16])
    labels = torch.arange(10)
    assert torch.equal(loaded.model.reconstruct(x), again.model.reconstruct(x))
    a = loaded.model.sample(labels, generator=torch.Generator().manual_seed(3))
    b = again.model.sample(labels, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (10, 1, 16, 16)


@pytest.mark.parametrize("stage", ["codes", "prior"])
def test_exact_resume_of_both_stages(stage, stages, dataset, tmp_path):
    first_stage = stages[0] / "checkpoints" / "best.safetensors"
    cfg = tiny(epochs=2, ema_decay=0.9) if stage == "codes" else prior_config(first_stage, epochs=2, ema_decay=0.9)
    _, _, straight, resumed = stop_and_resume(cfg, dataset, tmp_path, stop_at=25)
    assert straight == resumed
    if stage == "prior":   # the resumed run is still the Trainer's second-stage mode, from its own checkpoint
        notes = run_notes(tmp_path / "b")
        assert [n for n in notes if n.startswith("second stage")][-1].endswith("its own checkpoint holds both stages)")


def run_notes(run_dir) -> list[str]:
    """The info lines of a run's log (metrics.jsonl)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["message"] for r in records if r["type"] == "log" and r["level"] == "info"]


def test_the_prior_run_is_the_trainers_second_stage_mode(stages, dataset):
    vq_run, prior_run, _, _ = stages
    first_stage = vq_run / "checkpoints" / "best.safetensors"
    assert not any(n.startswith("second stage") for n in run_notes(vq_run))   # an ordinary run
    note, = [n for n in run_notes(prior_run) if n.startswith("second stage")]
    assert f"on top of the frozen first stage {first_stage}" in note and note.endswith("loaded)")
    trainer = Trainer(prior_config(first_stage, max_steps=1), dataset=dataset)
    assert list(trainer.run())[-1].status == "completed"
    assert trainer.second_stage.first_stage == first_stage and trainer.second_stage.model is trainer.model
    frozen = [p for p in trainer.model.parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)   # no gradient, so no part in the norm or the optimiser


def test_a_second_stage_refuses_a_first_stage_that_does_not_fit(stages, tmp_path):
    vq_ck = stages[0] / "checkpoints" / "best.safetensors"
    other_arch = tiny(dataclasses.replace(VQ, codebook_size=32, stage="prior", first_stage=str(vq_ck)))
    other_data = Config(dataclasses.replace(DATA, image_size=8),
                        dataclasses.replace(VQ, stage="prior", first_stage=str(vq_ck)), other_arch.train)
    for cfg, words in ((other_arch, "codebook_size 64 (this run: 32)"), (other_data, "other data")):
        events = list(Trainer(cfg).run())
        assert events[-1].status == "failed" and words in events[-1].reason
    with pytest.raises(UserError, match="first_stage"):
        VQVAEConfig(stage="prior")


def test_a_vq_checkpoint_is_a_second_stage_model_only_in_its_prior_run(stages):
    first = load_model(stages[0] / "checkpoints" / "best.safetensors").model
    second = load_model(stages[1] / "checkpoints" / "best.safetensors").model
    assert isinstance(second, SecondStageModel) and second.first_stage and first.first_stage is None
    with pytest.raises(UserError, match="--prior-of"):
        first.prior_nll(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, dtype=torch.long))


def test_the_presets_build():
    for name in ("digits-vq", "mnist-vq"):
        cfg = preset(name)
        assert cfg.model.kind == "vqvae" and Config.from_json(cfg.to_json()) == cfg


def test_the_vq_vae_restores_noisy_and_masked_digits(stages, dataset):
    from core.restoration.corruptions import corrupt
    from core.restoration.learned import restore_codes

    model = load_model(stages[0] / "checkpoints" / "best.safetensors").model
    x = as_float(dataset.test.images[:64])
    gen = torch.Generator().manual_seed(0)
    noisy, _ = corrupt(x, "gaussian", 0.3, generator=gen)
    restored = restore_codes(model, noisy)
    assert float((restored - x).pow(2).mean()) < 0.5 * float((noisy - x).pow(2).mean())
    holed, mask = corrupt(x, "mask-box", 0.3, generator=gen)
    filled = restore_codes(model, holed, mask)
    known = mask.expand_as(x) < 0.5
    assert torch.equal(filled[known], holed[known])          # the known pixels are untouched
    hole = ~known
    assert float((filled - x)[hole].pow(2).mean()) < float((holed - x)[hole].pow(2).mean())
