"""The learning-rate schedule, the one home of its rule: linear warm-up, then constant or cosine.

Fine-tuning (:mod:`artent.training.loop`) and the tiny model's pretraining
(:mod:`artent.models.tiny`) both follow it. It imports nothing, so that both may use it.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def learning_rate(
    step: int,
    *,
    lr: float,
    steps: int,
    warmup_steps: int,
    schedule: str,
    min_lr_ratio: float = 0.0,
) -> float:
    """The learning rate at optimizer step ``step`` (0-based).

    Args:
        step: the step.
        lr: the peak learning rate (``1.0`` gives the factor on a base rate, for ``LambdaLR``).
        steps: the run's length in steps.
        warmup_steps: the linear warm-up's length: ``lr * (step + 1) / warmup_steps`` there.
        schedule: ``"constant"`` (``lr`` after the warm-up) or ``"cosine"`` (half a cosine from
            ``lr`` at the warm-up's end down to ``min_lr_ratio * lr`` at ``steps``).
        min_lr_ratio: where the cosine ends, as a fraction of ``lr``.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(steps - warmup_steps, 1)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
