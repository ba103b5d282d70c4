"""A small pretrained tiny LLaMA and synthetic data, made once per test session (no hub)."""

from __future__ import annotations

import pytest

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


# ----- tiny random models of every architecture family the attention analyses support --------

FAMILY_WORDS = [f"w{i}" for i in range(100)]
#: family -> (config class, model class, config options); two layers, four heads, width 32.
FAMILIES: dict[str, tuple[str, str, dict]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=2)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(num_key_value_heads=2)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(num_key_value_heads=2, head_dim=8)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(num_key_value_heads=2)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(num_key_value_heads=4)),
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        dict(num_key_value_heads=2, head_dim=8, sliding_window=16),
    ),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        dict(
            num_key_value_heads=2,
            head_dim=8,
            sliding_window=16,
            layer_types=["sliding_attention", "full_attention"],
        ),
    ),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=32, n_layer=2, n_head=4)),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict()),
    "opt": ("OPTConfig", "OPTForCausalLM", dict(ffn_dim=64, word_embed_proj_dim=32)),
    "bert": ("BertConfig", "BertModel", dict()),
}
ENCODER_FAMILIES = ("bert",)


def make_family_model(family: str, seed: int = 0, **overrides):
    """A tiny random model of ``family`` (sharp attention: initializer_range 0.2), in eval mode."""
    import torch
    import transformers

    config_cls, model_cls, options = FAMILIES[family]
    sizes = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        n_positions=256,
        vocab_size=512,
        initializer_range=0.2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    config = getattr(transformers, config_cls)(**{**sizes, **options, **overrides})
    torch.manual_seed(seed)
    return getattr(transformers, model_cls)(config).eval()


def make_family_tokenizer(family: str):
    """A tokenizer over ``FAMILY_WORDS`` with the family's kind of special tokens.

    Word-level (one id per word: ``FAMILY_WORDS[i]`` is id ``i + 4``), except for Qwen2, whose
    folder transformers always reloads as a byte-level BPE ``Qwen2Tokenizer``: there a byte-level
    BPE trained on the words.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if family in ENCODER_FAMILIES:
        special = dict(pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]")
    else:
        special = dict(pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if family == "qwen2":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=500,
            special_tokens=list(special.values()),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        backend.train_from_iterator([" ".join(FAMILY_WORDS)] * 4, trainer)
    else:
        vocab = {tok: i for i, tok in enumerate(special.values())}
        vocab.update({w: i + len(vocab) for i, w in enumerate(FAMILY_WORDS)})
        backend = Tokenizer(models.WordLevel(vocab, unk_token=special["unk_token"]))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


@pytest.fixture(scope="session")
def family_folder(tmp_path_factory):
    """``family_folder(family)``: a saved tiny random model of ``family`` with its tokenizer."""
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

    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("corpus") / "paragraphs.txt"
    paragraphs = [" ".join(rng.choice(FAMILY_WORDS, size=170)) for _ in range(4)]
    path.write_text("\n\n".join(paragraphs) + "\n")
    return path
