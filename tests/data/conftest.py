"""A small byte-level BPE tokenizer built in memory (no hub), with artent's template tokens."""

from __future__ import annotations

import itertools

import pytest

from artent.data import template

_WORDS = (
    "the a an model learns adds two numbers sum of and is what hello world please answer "
    "question reply assistant user system think step by first then finally result equals "
    "entanglement matrix rank low tensor network train loss data token chat template cat dog"
).split()


def training_sentences(n: int = 400) -> list[str]:
    """``n`` deterministic sentences mixing words, digits and punctuation."""
    out = []
    for i, combo in enumerate(itertools.islice(itertools.permutations(_WORDS, 5), 0, n * 97, 97)):
        out.append(f"{' '.join(combo).capitalize()} {i} + {i % 7} = {i + i % 7}?\n")
    return out


def build_tokenizer(
    vocab_size: int = 600, chat_template: str | None = None, template_tokens: bool = True
):
    """A ``PreTrainedTokenizerFast`` over a byte-level BPE trained here.

    Args:
        vocab_size: BPE vocabulary size, special tokens included.
        chat_template: a Jinja chat template to set, or ``None`` for none.
        template_tokens: register template.SPECIAL_TOKENS (else only a pad token, and no BOS).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=template.SPECIAL_TOKENS if template_tokens else [template.PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(training_sentences(), trainer=trainer)
    if template_tokens:
        tok = PreTrainedTokenizerFast(
            tokenizer_object=bpe,
            bos_token=template.BOS,
            eos_token=template.EOS,
            pad_token=template.PAD,
            extra_special_tokens=[template.END, *template.ROLE_TOKENS.values()],
        )
    else:
        tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token=template.PAD)
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


@pytest.fixture(scope="session")
def tokenizer():
    """The test tokenizer, without a chat_template (artent's template applies)."""
    return build_tokenizer()


@pytest.fixture
def make_tokenizer():
    """Factory: ``make_tokenizer(chat_template=...)`` builds a fresh tokenizer."""
    return build_tokenizer
