"""End-to-end speed of `artent internal` on a LLaMA-3.1-8B-shaped LoRA adapter.

The adapter (32 layers; q_proj 4096 x 4096 and v_proj 1024 x 4096 at rank 16, peft's file
layout) is written to a temporary folder, then the CLI reads it, profiles all 64 updates on the
factored path, and writes the tables and the plot. The issue's target: under 30 s on 2 cores.
Baseline printed beside it: the same 64 updates profiled densely (B @ A formed), one of them timed
and scaled by 64.

    python benchmarks/internal_speed.py [--rank 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from artent import entanglement_profile
from artent.cli import main as cli_main


def write_adapter(folder: Path, rank: int) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for i in range(32):
        for mod, (m, n) in {"q_proj": (4096, 4096), "v_proj": (1024, 4096)}.items():
            key = f"base_model.model.model.layers.{i}.self_attn.{mod}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(rank, n, generator=g) / n**0.5
            tensors[f"{key}.lora_B.weight"] = torch.randn(m, rank, generator=g) / rank**0.5
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": rank,
                "lora_alpha": 2 * rank,
                "target_modules": ["q_proj", "v_proj"],
                "use_rslora": False,
                "use_dora": False,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rank", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "adapter"
        write_adapter(adapter, args.rank)
        t0 = time.perf_counter()
        code = cli_main(["internal", "--adapter", str(adapter), "--out", str(Path(tmp) / "out")])
        t_cli = time.perf_counter() - t0
        assert code == 0
        from safetensors import safe_open

        with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
            key = "base_model.model.model.layers.0.self_attn.q_proj"
            dense = f.get_tensor(f"{key}.lora_B.weight") @ f.get_tensor(f"{key}.lora_A.weight")
        t0 = time.perf_counter()
        entanglement_profile(dense)
        t_dense = (time.perf_counter() - t0) * 64
    print(
        f"artent internal, 8B-shaped rank-{args.rank} adapter (64 updates), end to end: "
        f"{t_cli:.1f} s (target < 30 s)"
    )
    print(
        f"dense profiles of the same 64 updates (one timed, x64): ~{t_dense:.0f} s; "
        f"ratio dense / artent = {t_dense / t_cli:.1f}"
    )


if __name__ == "__main__":
    main()
