"""Distributed training: the process group, each process's shard of the data, DDP, barriers.

Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE > 1``) the process group is started if
needed (``nccl`` on CUDA, ``gloo`` otherwise), the loss module is wrapped in
``DistributedDataParallel`` and each process reads its own shard of the training data.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import torch
import torch.distributed as dist
from torch import nn

from ._errors import TrainerError

__all__ = ["World", "setup", "shard", "wrap", "barrier"]


@attrs.frozen
class World:
    """This process's place: its ``rank`` among ``size`` processes, and whether DDP is on."""

    rank: int = 0
    size: int = 1
    ddp: bool = False

    @property
    def main(self) -> bool:
        """Whether this process shows progress and writes checkpoints (rank 0)."""
        return self.rank == 0


def _rank_and_size() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _maybe_init_process_group(device: torch.device) -> None:
    """Under torchrun / accelerate launch (WORLD_SIZE > 1), start the process group if needed."""
    if not dist.is_available() or dist.is_initialized():
        return
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL's collectives run on the current device
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def setup(distributed: bool | None, device: torch.device) -> World:
    """The world of a run: ``distributed`` None means DDP when more than one process runs,
    True requires it, False turns it off."""
    if distributed is not False:
        _maybe_init_process_group(device)
    rank, size = _rank_and_size()
    if distributed and size == 1:
        raise TrainerError(
            "distributed=True but no torch.distributed process group of more than one process "
            "is running; launch with torchrun --nproc_per_node N (or accelerate launch)."
        )
    return World(rank=rank, size=size, ddp=size > 1 and distributed is not False)


def shard(loader: Any, world: World, seed: int) -> Any:
    """This process's part of ``loader``: a DataLoader gets a DistributedSampler (same batch
    size per process, so the global batch is ``world.size`` times larger); another iterable of
    batches gives every ``world.size``-th batch."""
    from torch.utils.data import DataLoader, RandomSampler
    from torch.utils.data.distributed import DistributedSampler

    if isinstance(loader, DataLoader):
        if isinstance(loader.sampler, DistributedSampler):
            return loader
        if loader.batch_size is None:
            raise TrainerError(
                "the train_dataloader uses a custom batch_sampler, which cannot be split across "
                "processes automatically; give it a DistributedSampler yourself, or pass "
                "shard_data=False if every process already reads its own data."
            )
        sampler: DistributedSampler[Any] = DistributedSampler(
            loader.dataset,
            num_replicas=world.size,
            rank=world.rank,
            shuffle=isinstance(loader.sampler, RandomSampler),
            seed=seed,
            drop_last=loader.drop_last,
        )
        return DataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            sampler=sampler,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            drop_last=loader.drop_last,
        )
    return _EveryNth(loader, world.rank, world.size)


class _EveryNth:
    """Every ``world``-th batch of a sized iterable, starting at ``rank``."""

    def __init__(self, batches: Iterable[Any], rank: int, world: int) -> None:
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self) -> Iterator[Any]:
        for i, b in enumerate(self.batches):
            if i % self.world == self.rank:
                yield b

    def __len__(self) -> int:
        n = len(self.batches)  # type: ignore[arg-type]  # a TypeError here is the caller's "no len()" error
        return n // self.world + (1 if self.rank < n % self.world else 0)


def wrap(module: nn.Module, device: torch.device, find_unused_parameters: bool) -> nn.Module:
    """``module`` in ``DistributedDataParallel``, on ``device``."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    # the frozen model's buffers are synchronised once, at construction; sending them again
    # before each step is waste (torch >= 2.13 names this forward_sync_buffers)
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return DistributedDataParallel(
            module, device_ids=device_ids, find_unused_parameters=find_unused_parameters,
            forward_sync_buffers=False,
        )
    return DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=find_unused_parameters, broadcast_buffers=False
    )


def barrier() -> None:
    """Wait for every process (nothing to wait for in a single process)."""
    if _rank_and_size()[1] > 1:
        dist.barrier()
