"""Tiny random models of every architecture family the attention analyses support (no hub).

Imported by tests (``from tiny_families import ...``: pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

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
#: what each family's tokenizer adds around a text, as the released tokenizers of these families
#: do: BOS before it (LLaMA, Mistral, Gemma, Phi-3 and OPT's tokenizers), nothing (GPT-2, Qwen,
#: NeoX), or [CLS] ... [SEP] (BERT). The window-start tests read windows against these.
FAMILY_FRAMES = {
    **dict.fromkeys(("llama", "mistral", "gemma2", "gemma3", "phi3", "opt"), "bos"),
    **dict.fromkeys(("qwen2", "qwen3", "gpt2", "gpt_neox"), "none"),
    "bert": "cls-sep",
}


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
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
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
    frame = FAMILY_FRAMES[family]
    if frame != "none":
        first, last = ("[CLS]", "[SEP]") if frame == "cls-sep" else ("<s>", None)
        ids = {t: backend.token_to_id(t) for t in (first, last) if t}
        backend.post_processor = processors.TemplateProcessing(
            single=f"{first} $A" + (f" {last}" if last else ""),
            special_tokens=list(ids.items()),
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


#: the tiny LLaMA most tests train or read: two layers, four heads (two key-value), width 64
TINY_LLAMA = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=128,
)


def tiny_llama(seed: int | None = 0, *, eval: bool = False, **options):
    """A tiny random ``LlamaForCausalLM``: :data:`TINY_LLAMA` with ``options`` on top.

    Args:
        seed: torch's seed, set before the weights are drawn (``None``: not set).
        eval: in eval mode (else as transformers builds it, in training mode).
        **options: ``LlamaConfig`` fields that differ (``max_position_embeddings=64``...).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**{**TINY_LLAMA, **options})
    if seed is not None:
        torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return model.eval() if eval else model
