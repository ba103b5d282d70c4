"""Shapes and synthetic checkpoints shared by benchmarks/whole_model.py and benchmarks/gpu_suite.py.

* SmolLM2-135M (``HuggingFaceTB/SmolLM2-135M``'s config.json): 30 layers, hidden 576 (2^6 3^2),
  9 heads of 64, 3 key/value heads, MLP 1536 (2^9 3), vocabulary 49152, tied embeddings: 210
  projection matrices.
* LLaMA-3.1-8B's projections: q/o 4096 x 4096, k/v 1024 x 4096, gate/up 14336 x 4096
  (14336 = 2^11 7), down 4096 x 14336.

Weight values do not change how long a profile takes (its work is fixed by the shapes), so a
random pair stands in where a real one is absent; every figure printed says which it used.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SMOLLM2_CONFIG = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    rope_theta=100000.0,
    tie_word_embeddings=True,
    bos_token_id=0,
    eos_token_id=0,
)


def _llama_shapes(h: int, kv: int, inter: int, layers: int) -> dict[str, tuple[int, int]]:
    """``{key: (out, in)}`` of a LLaMA model's seven projections in ``layers`` layers."""
    per_layer = {
        "self_attn.q_proj": (h, h),
        "self_attn.k_proj": (kv, h),
        "self_attn.v_proj": (kv, h),
        "self_attn.o_proj": (h, h),
        "mlp.gate_proj": (inter, h),
        "mlp.up_proj": (inter, h),
        "mlp.down_proj": (h, inter),
    }
    return {
        f"model.layers.{i}.{name}.weight": shape
        for i in range(layers)
        for name, shape in per_layer.items()
    }


def smollm2_shapes(layers: int = 30) -> dict[str, tuple[int, int]]:
    """``{key: (out, in)}`` of every projection of SmolLM2-135M's first ``layers`` layers."""
    return _llama_shapes(576, 3 * 64, 1536, layers)


def llama8b_shapes(layers: int = 2, shrink: int = 1) -> dict[str, tuple[int, int]]:
    """``{key: (out, in)}`` of LLaMA-3.1-8B's projections in ``layers`` layers (sides / shrink)."""
    return _llama_shapes(4096 // shrink, 1024 // shrink, 14336 // shrink, layers)


def write_pair(
    folder: Path,
    shapes: dict[str, tuple[int, int]],
    *,
    dtype: torch.dtype = torch.bfloat16,
    shard_bytes: int = 1 << 29,
    step: float = 1e-2,
    seed: int = 0,
) -> tuple[Path, Path]:
    """A random base and a tuned copy (base + ``step`` * noise), sharded, with index files.

    Written one tensor at a time, so writing needs no more memory than reading does.
    """
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    base_dir, tuned_dir = folder / "base", folder / "tuned"
    for d in (base_dir, tuned_dir):
        d.mkdir(parents=True, exist_ok=True)
    shards: list[list[str]] = [[]]
    size = 0
    for key, (m, n) in shapes.items():
        nbytes = m * n * torch.finfo(dtype).bits // 8
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    weight_map: dict[str, str] = {}
    for i, keys in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        base, tuned = {}, {}
        for key in keys:
            w = torch.randn(shapes[key], generator=g) / shapes[key][1] ** 0.5
            base[key] = w.to(dtype)
            tuned[key] = (
                w + step * torch.randn(shapes[key], generator=g) / shapes[key][1] ** 0.5
            ).to(dtype)
            del w
            weight_map[key] = name
        save_file(base, str(base_dir / name))
        save_file(tuned, str(tuned_dir / name))
        del base, tuned
    for d in (base_dir, tuned_dir):
        (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return base_dir, tuned_dir


def pair_bytes(shapes: dict[str, tuple[int, int]], dtype: torch.dtype) -> int:
    """Bytes of the largest pair of stored tensors (one from each checkpoint)."""
    m, n = max(shapes.values(), key=lambda s: s[0] * s[1])
    return 2 * m * n * torch.finfo(dtype).bits // 8
