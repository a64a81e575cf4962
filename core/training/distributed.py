"""Data-parallel training under PyTorch's own launcher: `torchrun --nproc_per_node N -m core.cli train ...`.

torchrun starts N copies of the ordinary command and gives each WORLD_SIZE, RANK, LOCAL_RANK and a rendezvous in its
environment. `from_env()` turns that into a `Group` (None for a plain single-process run, which then pays nothing).
Every rank holds the small, device-resident dataset and walks the same global batches in the same order (the batch
order is a function of the seed and the epoch); each rank trains on its contiguous shard of every batch and
DistributedDataParallel averages the gradients, so the global batch stays `train.batch_size` whatever N is. Rank 0
alone writes the run folder and shows progress; the other ranks only compute.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from core.errors import UserError

# Debugging aid (and the cross-rank test): when set to a folder, every rank writes its final weights there as
# rank-NN.safetensors, so one can check that all ranks ended with the same model.
DUMP_ENV = "VAE_EXPLORER_DEBUG_RANK_WEIGHTS"
T = TypeVar("T")


def world_size() -> int:
    """How many processes torchrun started for this run (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """False only on the ranks > 0 of a distributed run: they must not print or write the run folder."""
    return world_size() <= 1 or int(os.environ.get("RANK", "0")) == 0


def from_env() -> Group | None:
    return Group(int(os.environ["RANK"]), world_size(), int(os.environ.get("LOCAL_RANK", "0"))) \
        if world_size() > 1 else None


def shard(x: Tensor, y: Tensor, rank: int, world: int) -> tuple[Tensor, Tensor, int]:
    """Rank `rank`'s contiguous part of a global batch (sizes differ by at most one) and how many images it has.

    A rank whose part is empty (a last batch smaller than the world) gets one image to run forward and backward on,
    with a loss weight of 0 (see Group.weighted), because DDP's gradient all-reduce needs every rank.
    """
    n = len(y)
    start, stop = rank * n // world, (rank + 1) * n // world
    if stop == start:
        return x[:1], y[:1], 0
    return x[start:stop], y[start:stop], stop - start


class _LossForward(nn.Module):
    """DDP syncs gradients only for what runs through its forward(); the models' training entry point is loss()."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor, step: int = 0) -> dict[str, Tensor]:
        return self.model.loss(x, y, step=step)


class Group:
    """The process group of a torchrun launch, seen from one rank. Every method that communicates is a collective:
    all ranks call it at the same point of the run, in the same order."""

    def __init__(self, rank: int, world: int, local_rank: int) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.device = torch.device("cpu")
        self._n_shard = self._n_batch = 1
        self._ddp: nn.Module | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    def pick_device(self, wanted: torch.device) -> torch.device:
        """One GPU per process (cuda:LOCAL_RANK) when CUDA is wanted; otherwise the CPU."""
        if wanted.type == "cuda":
            return torch.device("cuda", self.local_rank)
        if wanted.type != "cpu":
            raise UserError(f"distributed training runs on CUDA (nccl) or the CPU (gloo), not {wanted}; "
                            "use --device cuda or --device cpu")
        return wanted

    def start(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(self.backend)   # env:// rendezvous prepared by torchrun

    def close(self, model: nn.Module | None, *, together: bool) -> None:
        """Leave the group. `together`: all ranks reached the same end of the run; they wait for each other there, so
        that no rank tears down its connections while another still uses them (gloo aborts then). A rank that crashed
        or was aborted must not wait: its exit is what tells torchrun to end the others."""
        if not dist.is_initialized():
            return
        # Free DDP's reducer (and the tensors its communication work holds) while the group is alive: gloo aborts
        # the process (SIGABRT) when such work objects outlive the group into interpreter shutdown.
        self._ddp = None
        gc.collect()
        if together:
            dist.barrier()
        folder = os.environ.get(DUMP_ENV)
        if folder and model is not None:
            from safetensors.torch import save_file

            Path(folder).mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                      str(Path(folder) / f"rank-{self.rank:02d}.safetensors"))
        dist.destroy_process_group()

    def describe(self, device_text: str) -> str:
        return f"{device_text} x {self.world} processes (DDP, {self.backend})"

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. a dataset download into the shared cache), then the others."""
        if not self.is_main:
            dist.barrier()
        yield
        if self.is_main:
            dist.barrier()

    def wrap(self, model: nn.Module) -> Callable[..., dict[str, Tensor]]:
        """model.loss as a DDP forward. Broadcasts rank 0's weights, so all ranks start from the same model."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        self._ddp = DistributedDataParallel(_LossForward(model), device_ids=ids)
        return self._ddp

    def shard(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """This rank's part of a global batch; its size is remembered for `weighted` and `reduce_step`."""
        xs, ys, self._n_shard = shard(x, y, self.rank, self.world)
        self._n_batch = len(y)
        return xs, ys

    def weighted(self, loss: Tensor) -> Tensor:
        """The shard's mean loss weighted by n_shard * world / n_batch. DDP averages the ranks' gradients, so the
        result is the gradient of the mean over the whole global batch, as one process computes it (for losses that
        are per-image means), also when the batch does not divide evenly."""
        return loss * (self._n_shard * self.world / self._n_batch)

    def reduce_step(self, out: dict[str, Tensor], stop: bool) -> tuple[dict[str, Tensor], bool]:
        """One small all_reduce per step: the metrics as means over the global batch (so every rank takes the same
        skip decision for a non-finite loss, and the numbers shown are those of the whole batch) and whether any
        rank was asked to stop (so all ranks stop after the same step)."""
        keys = list(out)
        vals = torch.stack([out[k].detach().float() for k in keys]) * self._n_shard
        packed = torch.cat([vals, torch.tensor([float(stop)], device=vals.device)])
        dist.all_reduce(packed)
        return dict(zip(keys, packed[:-1] / self._n_batch, strict=True)), bool(packed[-1] > 0)

    def from_main(self, compute: Callable[[], T]) -> T:
        """compute() on rank 0, its result sent to all ranks (small picklable results: metrics, a numpy array)."""
        box = [compute() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    # ------------------------------------------------------------------------------- per-rank RNG for exact resume
    def seed_rng(self, seed: int) -> None:
        """A training RNG stream per rank: the ranks' noise (reparameterisation, diffusion timesteps) must differ."""
        torch.manual_seed(seed * 1_000_003 + 7_919 * (self.rank + 1))

    def rng_states(self) -> dict[str, Tensor]:
        """Every rank's RNG states as rankNN.torch / rankNN.cuda, gathered on all ranks (for rank 0's checkpoint)."""
        mine = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            mine["cuda"] = torch.cuda.get_rng_state(self.device)
        out = {}
        for name, state in mine.items():
            parts = [torch.empty_like(state, device=self.device) for _ in range(self.world)]
            dist.all_gather(parts, state.to(self.device))
            out.update({f"rank{r:02d}.{name}": p.cpu() for r, p in enumerate(parts)})
        return out

    def restore_rng(self, train_state: dict[str, Any], seed: int) -> None:
        """This rank's RNG states from a checkpoint of a run with as many ranks; otherwise a fresh stream."""
        cpu, cuda = train_state.get(f"rank{self.rank:02d}.torch"), train_state.get(f"rank{self.rank:02d}.cuda")
        if cpu is None:
            self.seed_rng(seed + int(train_state.get("step", 0)))
            return
        torch.set_rng_state(cpu)
        if cuda is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(cuda, self.device)
