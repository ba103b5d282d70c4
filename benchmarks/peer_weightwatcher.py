"""artent against WeightWatcher on the same work: the base weights, a LoRA adapter, an FFT pair.

Three pieces of work, each timed through artent (``artent.internal``: the exact profile, its
valley metrics and the spectral companions) and through WeightWatcher (``analyze``: each layer's
eigenvalue spectrum, its power-law fit and spectral entropy), on the same matrices:

* ``base``: the base model's linear weights (``--modules``; artent ``what="base"``, WeightWatcher
  ``analyze(model=base)`` on the same layers);
* ``lora``: a rank-``--rank`` LoRA adapter on q_proj and v_proj (random factors, or
  ``--adapter``); artent reads it with the base (so its intruder dimensions are counted),
  WeightWatcher with ``peft=True`` (it takes ``B A`` and ``W + B A`` per layer);
* ``fft``: a (base, tuned) pair (``--tuned``, or the base with a small random perturbation of
  every weight); artent ``tuned - base``, WeightWatcher ``analyze(model=tuned, base_model=base)``
  on the same layers.

Printed per piece: the number of matrices each tool reported, its seconds, and the ratio
WeightWatcher / artent; then, on the FFT pair, the largest gap between artent's ``S_cut`` and
WeightWatcher's normalised spectral entropy times ``ln(rank)`` (the same quantity:
docs/method.md, "Spectral companions").

    python benchmarks/peer_weightwatcher.py                  # SmolLM2-135M, --modules all
    python benchmarks/peer_weightwatcher.py --quick          # a random tiny LLaMA: a smoke run
    python benchmarks/peer_weightwatcher.py --base MODEL --tuned TUNED --adapter ADAPTER

WeightWatcher is optional (``pip install 'artent[bench]'``); without it only artent's side is
timed. Take the figures on a quiet machine: both tools use every core.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path

import torch


def _linear_names(model, modules: list[str]) -> set[str]:
    from artent.models.deltas import ALL_MODULES

    wanted = set(ALL_MODULES if modules == ["all"] else modules)
    return {
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in wanted and ".layers." in n
    }


def prepare(args, work: Path):
    """The base, tuned and adapter folders (made here where not given) and the base model."""
    import peft
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    if args.quick:
        from artent.models.tiny import tiny_llama_config

        torch.manual_seed(0)
        config = tiny_llama_config(512, hidden_size=64, num_hidden_layers=2)
        model = LlamaForCausalLM(config)
        base = work / "base"
        model.save_pretrained(base)
    else:
        from artent.models.cache import resolve_named_model

        base = Path(args.base or resolve_named_model("smollm2", progress=True))
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.eval()
    tuned = args.tuned
    if tuned is None:  # full fine-tuning's update: a small dense change of every weight
        tuned_model = copy.deepcopy(model)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in tuned_model.parameters():
                p.add_(1e-3 * p.abs().mean() * torch.randn(p.shape, generator=g))
        tuned = work / "tuned"
        tuned_model.save_pretrained(tuned)
    adapter = args.adapter
    if adapter is None:
        config = peft.LoraConfig(
            r=args.rank, lora_alpha=2 * args.rank, target_modules=["q_proj", "v_proj"]
        )
        lora = peft.get_peft_model(copy.deepcopy(model), config)
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for n, p in lora.named_parameters():
                if "lora_" in n:
                    p.copy_(0.02 * torch.randn(p.shape, generator=g))
        adapter = work / "adapter"
        lora.save_pretrained(adapter)
    return model, Path(base), Path(tuned), Path(adapter)


def artent_side(base: Path, tuned: Path, adapter: Path, modules: str) -> dict:
    import artent

    artent.internal(adapter=adapter, modules="q_proj,v_proj", layers=[0])  # imports, warm caches
    out = {}
    for name, kwargs in (
        ("base", dict(base=base, tuned=tuned, modules=modules, what="base", intruder_k=0)),
        ("lora", dict(adapter=adapter, base=base, modules="q_proj,v_proj")),
        ("fft", dict(base=base, tuned=tuned, modules=modules)),
    ):
        start = time.perf_counter()
        res = artent.internal(**kwargs)
        out[name] = (time.perf_counter() - start, res.summary)
    return out


def weightwatcher_side(model, tuned: Path, adapter: Path, modules: list[str]) -> dict | None:
    try:
        import weightwatcher as ww
    except ImportError:
        return None
    import peft
    from transformers import AutoModelForCausalLM

    watcher = ww.WeightWatcher()
    names = _linear_names(model, modules)
    layer_ids = [
        int(r.layer_id) for r in watcher.describe(model=model).itertuples() if r.longname in names
    ]
    tuned_model = AutoModelForCausalLM.from_pretrained(tuned, dtype=torch.float32).eval()
    lora = peft.PeftModel.from_pretrained(copy.deepcopy(model), adapter).eval()
    out = {}
    for name, call in (
        ("base", lambda: watcher.analyze(model=model, layers=layer_ids)),
        ("lora", lambda: watcher.analyze(model=lora, peft=True)),
        ("fft", lambda: watcher.analyze(model=tuned_model, base_model=model, layers=layer_ids)),
    ):
        start = time.perf_counter()
        details = call()
        out[name] = (time.perf_counter() - start, details)
    return out


def entropy_gap(summary, details) -> tuple[float, int]:
    """Largest |S_cut - WW entropy x ln(rank)| over the layers both report (nats), and how many."""
    import numpy as np

    ww = details.set_index("longname")
    gaps = []
    for r in summary.itertuples():
        if r.name not in ww.index or not r.rank > 0:
            continue
        entropy = float(ww.loc[r.name, "entropy"])
        gaps.append(abs(r.center_entropy - entropy * math.log(r.rank + 1e-10)))
    return (float(np.max(gaps)) if gaps else math.nan), len(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="base model folder (default: SmolLM2-135M)")
    parser.add_argument("--tuned", help="fine-tuned checkpoint of the base (default: made here)")
    parser.add_argument("--adapter", help="LoRA adapter on the base (default: made here)")
    parser.add_argument("--rank", type=int, default=8, help="rank of the adapter made here")
    parser.add_argument("--modules", default="all", help="modules of the base and FFT work")
    parser.add_argument("--quick", action="store_true", help="a random tiny LLaMA (smoke run)")
    args = parser.parse_args()
    modules = [m.strip() for m in args.modules.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model, base, tuned, adapter = prepare(args, Path(tmp))
        ours = artent_side(base, tuned, adapter, args.modules)
        theirs = weightwatcher_side(model, tuned, adapter, modules)
    print(f"{'work':6} {'artent n':>9} {'artent s':>9} {'WW n':>6} {'WW s':>8} {'WW / artent':>12}")
    for name, (secs, summary) in ours.items():
        if theirs is None:
            print(f"{name:6} {len(summary):9d} {secs:9.2f} {'-':>6} {'-':>8} {'-':>12}")
            continue
        w_secs, details = theirs[name]
        print(
            f"{name:6} {len(summary):9d} {secs:9.2f} {len(details):6d} {w_secs:8.2f} "
            f"{w_secs / secs:12.2f}"
        )
    if theirs is None:
        print("weightwatcher is not installed (pip install 'artent[bench]'): artent's side only")
        return
    gap, n = entropy_gap(ours["fft"][1], theirs["fft"][1])
    print(f"FFT pair: max |S_cut - WW entropy x ln(rank)| = {gap:.2e} nats over {n} updates")
    lora = theirs["lora"][1]
    if "alpha" in lora and len(lora):
        print(
            f"LoRA: WeightWatcher fitted alpha on {len(lora)} layers "
            f"(median {lora.alpha.median():.3g}); artent's mean intruders per module "
            f"{ours['lora'][1].intruders.mean():.3g}"
        )


if __name__ == "__main__":
    main()
