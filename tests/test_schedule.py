"""The one learning-rate schedule (artent.schedule), as fine-tuning and the tiny model's
pretraining use it."""

import math

import pytest

from artent.schedule import learning_rate


def test_warm_up_then_constant():
    rates = [
        learning_rate(s, lr=0.1, steps=10, warmup_steps=4, schedule="constant") for s in range(6)
    ]
    assert rates == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_cosine_ends_at_the_floor():
    args = dict(lr=2.0, steps=12, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate(2, **args) == 2.0
    assert learning_rate(7, **args) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert learning_rate(12, **args) == pytest.approx(0.2)
    assert learning_rate(7, **{**args, "min_lr_ratio": 0.0}) == pytest.approx(
        2.0 * 0.5 * (1 + math.cos(math.pi / 2))
    )


def test_a_factor_on_a_base_rate():
    assert learning_rate(0, lr=1.0, steps=5, warmup_steps=3, schedule="cosine") == 1 / 3
