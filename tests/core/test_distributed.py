"""Distributed training under PyTorch's own launcher (torchrun = python -m torch.distributed.run), 2 CPU ranks, gloo."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

from core.training.checkpoint import load_model
from core.training.events import RunEnded, RunStarted
from core.training.run_folder import follow_run

REPO = Path(__file__).resolve().parents[2]


def torchrun(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                                "MASTER_PORT")}
    clean.update(OMP_NUM_THREADS="1", VAE_EXPLORER_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), **env)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(cmd, cwd=REPO, env=clean, capture_output=True, text=True, timeout=240)


def test_torchrun_cli_train_writes_one_run_folder_and_ranks_agree(tmp_path):
    dump = tmp_path / "rank-weights"
    # batch 13 over 2 ranks: uneven shards (6 + 7) at every step
    proc = torchrun(["-m", "core.cli", "train", "--preset", "digits", "--epochs", "1", "--device", "cpu",
                     "--batch-size", "13", "--set", "data.per_class=12", "--set", "model.latent_dim=4",
                     "--set", "model.width=8", "--set", "train.log_every=2"], tmp_path,
                    VAE_EXPLORER_DEBUG_RANK_WEIGHTS=str(dump))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("completed:") == 1        # rank 0 alone reports
    runs = list((tmp_path / "home" / "data" / "runs").iterdir())   # core.paths.runs_dir()
    assert len(runs) == 1
    run = runs[0]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["type"] == "start" and "2 processes (DDP, gloo)" in records[0]["device"]
    assert sum(r["type"] == "step" for r in records) >= 2
    events = list(follow_run(run, poll_s=0.01))      # what the GUI's "open run folder" reads
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunEnded)
    total = events[0].total_steps
    assert total == events[0].steps_per_epoch >= 2 and events[-1].status == "completed" and events[-1].step == total
    loaded = load_model(run / "checkpoints" / "last.safetensors", use_ema=False)   # the trained weights, not EMA
    assert loaded.step == total
    ranks = [load_file(str(dump / f"rank-{r:02d}.safetensors")) for r in (0, 1)]
    saved = loaded.model.state_dict()
    assert set(ranks[0]) == set(saved)
    for k, v in saved.items():   # the gradients were averaged: both ranks hold the very weights rank 0 saved
        assert torch.equal(ranks[0][k], ranks[1][k]) and torch.equal(ranks[0][k], v), k


GRAD_CHECK = textwrap.dedent("""
    from pathlib import Path

    import torch
    from torch import nn
    from core.training.distributed import from_env

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))

        def loss(self, x, y, step=0):
            return {"loss": ((self.net(x).squeeze(1) - y.float()) ** 2).mean()}

    group = from_env()
    group.start(torch.device("cpu"))
    torch.manual_seed(1)
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    for n in (7, 1):   # 3 + 4 images; 0 + 1 (an empty shard)
        model = Tiny()
        ddp = group.wrap(model)
        xs, ys = group.shard(x[:n], y[:n])
        group.weighted(ddp(xs, ys)["loss"]).backward()
        ref = Tiny()
        ref.loss(x[:n], y[:n])["loss"].backward()
        diff = max((p.grad - q.grad).abs().max().item() for p, q in zip(model.parameters(), ref.parameters()))
        size = max(q.grad.abs().max().item() for q in ref.parameters())
        Path(__file__).with_name(f"rank{group.rank}-n{n}.txt").write_text(f"{diff} {size}")  # not stdout: interleaved
    del ddp
    group.close(None, together=True)
""")


def test_ddp_gradient_equals_single_process_gradient_of_the_global_batch(tmp_path):
    """Each rank's shard loss is weighted so that DDP's average is the gradient one process computes for the whole
    batch (uneven shards and an empty shard included), up to float rounding."""
    script = tmp_path / "grad_check.py"
    script.write_text(GRAD_CHECK)
    proc = torchrun([str(script)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        for n in (1, 7):
            diff, size = map(float, (tmp_path / f"rank{rank}-n{n}.txt").read_text().split())
            assert size > 0.01 and diff <= 1e-6 * size, (rank, n, diff, size)
