"""Running the training loop on one process or on several launched by ``accelerate launch``.

The loop talks to a *process group* object with the same methods in both cases:

- :class:`SingleProcess` (no launcher): every method is the identity or does nothing, and
  ``accelerate`` is never imported, so a plain run behaves exactly as it did before.
- :class:`AcceleratedProcesses` (``WORLD_SIZE > 1``, set by ``accelerate launch`` and
  ``torchrun``): each step's global batch is split into contiguous shares, one per process; the
  model is wrapped by ``accelerator.prepare`` (DDP, or FSDP where the accelerate config says so), so
  gradients are averaged across processes; the loss each process back-propagates is rescaled so
  that the averaged gradient is that of the token mean over the *whole* batch, as a single process
  computes it; only the main process writes files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


def world_size_from_env() -> int:
    """Number of processes the launcher started (``WORLD_SIZE``; 1 when launched plainly)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"environment variable WORLD_SIZE must be an integer, not {value!r}"
        ) from None


def detect_processes(device: str = "cpu") -> SingleProcess | AcceleratedProcesses:
    """The process group this run was launched into (accelerate is imported only for > 1).

    Args:
        device: the torch device a single process trains on (accelerate places its own).
    """
    if world_size_from_env() > 1:
        return AcceleratedProcesses()
    return SingleProcess(device)


def _xpu_available(torch) -> bool:
    return hasattr(torch, "xpu") and torch.xpu.is_available()


def _share(n: int, rank: int, world: int) -> slice:
    """Contiguous share of ``n`` items for ``rank`` (sizes differ by at most one)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def supervised_tokens(labels) -> int:
    """Tokens that carry a loss: labels after the one-token shift that are not ``-100``."""
    return int((labels[:, 1:] != -100).sum())


class SingleProcess:
    """One process: the loop runs exactly as written, nothing is split or reduced."""

    num_processes = 1
    rank = 0
    is_main = True

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def share(self, n: int) -> slice:
        """This process's share of ``n`` rows: all of them."""
        return slice(0, n)

    def prepare(self, model, optimizer):
        return model, optimizer  # the loop placed the model on `device` before the optimizer

    def unwrap(self, model):
        return model

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.device == "cpu":
            return batch
        return {k: v.to(self.device) for k, v in batch.items()}

    def global_mean_loss(self, loss, labels):
        """The loss to back-propagate and the one to log: the batch's own token mean."""
        return loss, loss

    def backward(self, loss) -> None:
        loss.backward()

    def clip_grad_norm_(self, params, max_norm: float) -> None:
        import torch

        torch.nn.utils.clip_grad_norm_(params, max_norm)

    def sum_across(self, *values: float) -> tuple[float, ...]:
        return values

    def barrier(self) -> None:
        pass

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        yield


SINGLE_PROCESS = SingleProcess()


class AcceleratedProcesses:
    """Several processes started by ``accelerate launch`` (or ``torchrun``), one ``Accelerator``.

    ``rank`` and ``num_processes`` come from the launcher's environment; the backend is gloo on CPU
    and NCCL on GPUs, as accelerate chooses. The data and the model must be readable by every
    process (a shared file system); only the main process (rank 0) writes.
    """

    def __init__(self) -> None:
        import torch
        from accelerate import Accelerator

        # Without a GPU accelerate only forms a (gloo) process group when told to run on CPU.
        on_cpu = not (torch.cuda.is_available() or _xpu_available(torch))
        self.accelerator = Accelerator(cpu=on_cpu)
        if self.accelerator.num_processes != world_size_from_env():
            raise ValueError(
                f"WORLD_SIZE={world_size_from_env()} but accelerate formed a group of "
                f"{self.accelerator.num_processes} (distributed type "
                f"{self.accelerator.distributed_type}); launch with `accelerate launch "
                "--multi_gpu --num_processes N` or `torchrun --nproc_per_node N`"
            )
        self.num_processes = self.accelerator.num_processes
        self.device = str(self.accelerator.device)
        self.rank = self.accelerator.process_index
        self.is_main = self.accelerator.is_main_process

    def share(self, n: int) -> slice:
        """This process's contiguous share of ``n`` rows (rank ``r`` takes the ``r``-th share)."""
        return _share(n, self.rank, self.num_processes)

    def prepare(self, model, optimizer):
        """Wrap for DDP (or FSDP, per the accelerate config) and move to this process's device."""
        return self.accelerator.prepare(model, optimizer)

    def unwrap(self, model):
        return self.accelerator.unwrap_model(model)

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        device = self.accelerator.device
        return {k: v.to(device) for k, v in batch.items()}

    def global_mean_loss(self, loss, labels):
        """Rescale this share's token-mean ``loss`` to its part of the whole batch's token mean.

        Args:
            loss: mean token loss over this process's rows (what the model returns).
            labels: this process's label rows (``-100`` marks tokens without loss).

        Returns:
            ``(to_backward, to_log)``: ``loss * tokens_here * num_processes / tokens_all``, whose
            gradient, once DDP averages it over processes, is the gradient of the token mean over
            the whole batch; and that whole-batch token mean itself (detached, all-reduced).
        """
        import torch

        tokens_here = supervised_tokens(labels)
        count = torch.tensor(float(tokens_here), device=loss.device)
        summed = torch.stack([loss.detach().float() * tokens_here, count])
        summed = self.accelerator.reduce(summed, reduction="sum")
        loss_sum, tokens_all = summed[0], summed[1].clamp(min=1)
        # A share with no supervised token has a NaN mean; it contributes nothing.
        local = loss * tokens_here if tokens_here else loss.nan_to_num(0.0) * 0.0
        return local * (self.num_processes / tokens_all), loss_sum / tokens_all

    def backward(self, loss) -> None:
        self.accelerator.backward(loss)

    def clip_grad_norm_(self, params, max_norm: float) -> None:
        self.accelerator.clip_grad_norm_(params, max_norm)

    def sum_across(self, *values: float) -> tuple[float, ...]:
        """Each value summed over all processes (float64 on this process's device)."""
        import torch

        t = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return tuple(float(v) for v in self.accelerator.reduce(t, reduction="sum"))

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """The main process runs the block first (filling caches), then the others."""
        with self.accelerator.main_process_first():
            yield
