"""One process or many: PyTorch DistributedDataParallel under ``torchrun`` (NCCL on GPU, Gloo on CPU)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from brainsynth.devices import resolve_device


@dataclass(frozen=True)
class Distributed:
    """Where this process stands among the training processes."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Under ``torchrun`` each process takes GPU ``LOCAL_RANK`` when CUDA is used; otherwise all run on
    the CPU with the Gloo backend.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    target = resolve_device(device)
    if world_size <= 1:
        return Distributed(device=target)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if target.type == "cuda":
        target = torch.device("cuda", local_rank)
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    return Distributed(rank=rank, world_size=world_size, device=target)


def any_rank(flag: bool, context: Distributed) -> bool:
    """True when ``flag`` is set on any process (all processes agree on the answer)."""
    if not context.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def weights_checksum(module: torch.nn.Module) -> str:
    """SHA-256 of all parameters and buffers, to compare weights across processes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def gather_strings(text: str, context: Distributed) -> list[str]:
    """Collect one string from every process (in rank order)."""
    if not context.enabled:
        return [text]
    gathered: list[str | None] = [None] * context.world_size
    dist.all_gather_object(gathered, text)
    return [str(g) for g in gathered]


def barrier(context: Distributed) -> None:
    """Wait for every process."""
    if context.enabled:
        dist.barrier()


def shutdown(context: Distributed) -> None:
    """Leave the process group."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
