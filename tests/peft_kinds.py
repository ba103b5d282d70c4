"""The peft adapter kinds the readers of updates are checked on, shared by the saved-adapter tests
(tests/models/test_deltas.py) and the live ones (test_live.py): both compare against peft's merge.
"""

from __future__ import annotations

import numpy as np

from artent.entanglement.profile import LowRank

QV = ("q_proj", "v_proj")


def dense(delta) -> np.ndarray:
    """A :class:`~artent.models.deltas.Delta`'s update as a float64 array."""
    if isinstance(delta.update, LowRank):
        return delta.update.to_dense()
    return delta.update.double().numpy()


def adapter_config(kind: str):
    """A fresh peft config of ``kind`` on the query and value projections (small ranks)."""
    import peft

    import artent.adapters.mps as mps

    qv = list(QV)
    return {
        "lora": lambda: peft.LoraConfig(r=4, lora_alpha=8, target_modules=qv),
        "lora_patterns": lambda: peft.LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules=qv,
            rank_pattern={"v_proj": 2},
            alpha_pattern={"layers.1.self_attn.q_proj": 3},
        ),
        "rslora": lambda: peft.LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=qv),
        "dora": lambda: peft.LoraConfig(r=4, lora_alpha=8, use_dora=True, target_modules=qv),
        "loha": lambda: peft.LoHaConfig(r=4, alpha=8, target_modules=qv),
        "lokr": lambda: peft.LoKrConfig(r=4, alpha=8, target_modules=qv),
        "lokr_decomposed": lambda: peft.LoKrConfig(
            r=2, alpha=3, decompose_both=True, decompose_factor=4, target_modules=qv
        ),
        "vera": lambda: peft.VeraConfig(r=4, target_modules=qv, save_projection=True),
        "adalora": lambda: peft.AdaLoraConfig(
            init_r=6, target_r=4, total_step=10, target_modules=qv
        ),
        "mps": lambda: mps.MPSConfig(r=4, chi=2, alpha=6.0),
    }[kind]()
