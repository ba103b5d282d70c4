"""A small pretrained tiny LLaMA and synthetic data, made once per test session (no hub)."""

from __future__ import annotations

import os

import pytest

# Nothing in the tests may reach a model hub: a hub-shaped name that is not a local path is looked
# up in the local cache only (artent.inputs.local_or_hub, transformers, huggingface_hub).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL_TINY = dict(
    steps=60,
    n_documents=1200,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=512,
    batch_size=8,
    seq_len=128,
)


@pytest.fixture(scope="session")
def artent_cache(tmp_path_factory):
    """Point artent's cache at a fresh folder for the whole session."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("artent-cache")
    mp.setenv("ARTENT_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def small_tiny(artent_cache, tmp_path_factory):
    """Path of a small tiny LLaMA pretrained by artent (about ten seconds on 2 cores)."""
    from artent.models.tiny import pretrain_tiny

    return pretrain_tiny(tmp_path_factory.mktemp("tiny") / "model", progress=False, **SMALL_TINY)


@pytest.fixture(scope="session")
def tiny_runs(small_tiny, tmp_path_factory):
    """Real LoRA (r=4), MPS (r=4, chi=2) and FFT runs of the small tiny model; steps 0, 10, 20."""
    from artent.training.config import TrainConfig
    from artent.training.loop import train

    root = tmp_path_factory.mktemp("runs")
    common = dict(
        model=str(small_tiny),
        data="synthetic-tulu",
        steps=20,
        batch_size=8,
        seq_len=256,
        save_steps=[0, 10, 20],
        eval_every=0,
        n_synthetic=300,
        progress=False,
    )
    return {
        "lora": train(
            TrainConfig(method="lora", rank=4, lr=5e-3, out=str(root / "lora"), **common)
        ),
        "mps": train(
            TrainConfig(method="mps", rank=4, chi=2, lr=5e-3, out=str(root / "mps"), **common)
        ),
        "fft": train(TrainConfig(method="fft", lr=1e-3, out=str(root / "fft"), **common)),
    }


# ----- tiny random models of every architecture family (tests/tiny_families.py) ---------------


@pytest.fixture(scope="session")
def family_folder(tmp_path_factory):
    """``family_folder(family)``: a saved tiny random model of ``family`` with its tokenizer."""
    from tiny_families import make_family_model, make_family_tokenizer

    made: dict = {}

    def build(family: str):
        if family not in made:
            folder = tmp_path_factory.mktemp(f"family-{family}")
            make_family_model(family).save_pretrained(folder)
            make_family_tokenizer(family).save_pretrained(folder)
            made[family] = folder
        return made[family]

    return build


@pytest.fixture(scope="session")
def paragraphs_corpus(tmp_path_factory):
    """A .txt corpus of four long paragraphs (170 words each, blank lines between)."""
    import numpy as np

    from tiny_families import FAMILY_WORDS

    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("corpus") / "paragraphs.txt"
    paragraphs = [" ".join(rng.choice(FAMILY_WORDS, size=170)) for _ in range(4)]
    path.write_text("\n\n".join(paragraphs) + "\n")
    return path
