"""The no-hair outputs compared layer by layer across models: the same figures as the stacked
tensors give, and memory that does not grow with the depth."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from artent.analysis.nohair import js_divergence_rows
from artent.analysis.nohair_outputs import compare_outputs
from artent.models.attention import attention_outputs
from tiny_families import tiny_llama


def llama(layers: int, seed: int, hidden: int = 32):
    return tiny_llama(
        seed,
        eval=True,
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=64,
        max_position_embeddings=256,
        initializer_range=0.2,
    )


def stacked_distances(a, b) -> tuple[float, float]:
    """The reference: per layer over the stacked [layers, ...] tensors, then the mean."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    rel = (torch.linalg.vector_norm(a - b, dim=1) / torch.linalg.vector_norm(b, dim=1)).mean()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).mean()
    return float(rel), float(cos)


def test_layer_by_layer_equals_the_stacked_tensors():
    ids = torch.randint(0, 128, (5, 16), generator=torch.Generator().manual_seed(0))
    models = {name: llama(3, seed) for name, seed in (("a", 0), ("b", 1), ("c", 2))}
    pairs = [("a", "b"), ("c", "a"), ("b", "c")]
    got, note = compare_outputs({k: (m, ids) for k, m in models.items()}, pairs, batch_size=2)
    assert note is None
    outs = {k: attention_outputs(m, ids, return_attention=True) for k, m in models.items()}
    for x, ref in pairs:
        ox, orf = outs[x], outs[ref]
        want = dict(attention_js=js_divergence_rows(ox["attention"], orf["attention"]))
        for kind in ("context", "hidden"):
            want[f"{kind}_rel_dist"], want[f"{kind}_cos"] = stacked_distances(ox[kind], orf[kind])
        for key, value in want.items():
            assert got[x, ref][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (x, ref, key)
    assert not [t for t in threading.enumerate() if t.name.startswith("nohair-")]


def test_a_failing_model_stops_every_thread_and_names_its_error():
    ids = torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(1))
    good, bad = llama(2, 0), llama(2, 1)

    def explode(*_):
        raise RuntimeError("layer 1 broke")

    bad.model.layers[1].mlp.register_forward_hook(explode)
    with pytest.raises(RuntimeError, match="layer 1 broke"):
        compare_outputs({"good": (good, ids), "bad": (bad, ids)}, [("bad", "good")])
    assert not [t for t in threading.enumerate() if t.name.startswith("nohair-")]
    with pytest.raises(ValueError, match="differ in depth"):
        compare_outputs({"a": (llama(2, 0), ids), "b": (llama(3, 0), ids)}, [("a", "b")])


PEAK = """
import sys, torch
sys.path[:0] = [{tests!r}, {root!r}]  # this file, and tiny_families
from test_nohair_outputs import llama
from artent.analysis.nohair_outputs import compare_outputs
layers = int(sys.argv[1])
ids = torch.randint(0, 128, (8, 256), generator=torch.Generator().manual_seed(2))
models = {{k: (llama(layers, s, hidden=16), ids) for k, s in (("a", 0), ("b", 1))}}
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
before = hwm()
compare_outputs(models, [("a", "b")], batch_size=8)
print(hwm() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_stays_flat_as_layers_are_added():
    """One layer's maps of a batch are 8 windows x 4 heads x 256^2 float32 = 8 MB a model; a
    comparison that held every layer's maps grows by 2 x 8 MB per layer added (measured: +607 MB
    from 6 to 30 layers). glibc's allocator is given a fixed mmap threshold so that freed large
    blocks go back to the system and the peak measures what is held, not fragmentation."""
    import os

    here = Path(__file__).parent
    code = PEAK.format(tests=str(here), root=str(here.parent))
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "1048576"}
    growth = {}
    for layers in (4, 16):
        run = subprocess.run(
            [sys.executable, "-c", code, str(layers)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        growth[layers] = int(run.stdout.split()[-1])
    one_layer = 2 * 8 * 4 * 256 * 256 * 4
    # twelve more layers would add 12 x one_layer (200 MB) if every layer's maps were held
    assert growth[16] - growth[4] < one_layer, growth
