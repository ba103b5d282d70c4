"""The tiny LLaMA's tokenizer: byte-level BPE trained on the generated corpus."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from artent.data import template
from artent.models.tiny_config import MAX_POSITIONS

if TYPE_CHECKING:
    import transformers

# Byte-level BPE never needs an unknown token; one exists so that code asking for unk_token_id
# (as some transformers utilities do) gets a real id instead of None.
UNK = "<|unk|>"
TOKENIZER_SPECIAL_TOKENS = [*template.SPECIAL_TOKENS, UNK]


def train_tokenizer(
    texts: list[str], vocab_size: int = 1024, *, model_max_length: int = MAX_POSITIONS
) -> transformers.PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer whose special tokens are the chat template's.

    Digits are split one per token (as many small-model tokenizers do) so that arithmetic stays
    learnable. Special tokens come first in the vocabulary, in the order of
    ``template.SPECIAL_TOKENS`` followed by ``<|unk|>``, and are never split. No BOS is added on
    encoding (rendered chats already start with one), and there is no ``chat_template``: artent's
    default template is used for tokenizers without one.

    Args:
        texts: training documents.
        vocab_size: target vocabulary size, special tokens and the 256 byte symbols included
            (a small corpus may yield fewer).
        model_max_length: longest sequence the tokenizer reports, in tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    minimum = len(TOKENIZER_SPECIAL_TOKENS) + 256
    if vocab_size < minimum:
        raise ValueError(f"tokenizer vocab_size must be at least {minimum}, got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=TOKENIZER_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The trainer does not isolate special tokens; cut them out so no merge is spent on "<|".
    special = re.compile("|".join(re.escape(t) for t in TOKENIZER_SPECIAL_TOKENS))
    pieces = (piece for text in texts for piece in special.split(text) if piece)
    backend.train_from_iterator(pieces, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=template.BOS,
        eos_token=template.EOS,
        pad_token=template.PAD,
        unk_token=UNK,
        extra_special_tokens=[template.END, *template.ROLE_TOKENS.values()],
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
