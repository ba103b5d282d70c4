"""Rendering conversations, tokenising them with assistant-only labels, padding/packing, batching.

A conversation (``[{role, content}, ...]``, as :mod:`artent.data.formats` returns) becomes
``(input_ids, labels)`` where ``labels`` is ``-100`` everywhere except on the tokens of each
assistant turn's body: its content and the end-of-turn token that closes it. Labels follow the
``transformers`` convention: unshifted, position ``i`` holds the token at ``i`` and the model shifts
them when it computes the loss.

Tokenizers without a ``chat_template`` use artent's template (:mod:`artent.data.template`);
header and body pieces are tokenised separately so that the label mask is exact, not guessed from
character offsets. Tokenizers with a ``chat_template`` are rendered with ``apply_chat_template`` one
message at a time: the text added by message ``i`` is ``render(messages[:i+1])`` minus
``render(messages[:i])``, and for an assistant message the generation prompt
(``add_generation_prompt=True``) is its header.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from artent.data import template
from artent.data.formats import DataError

IGNORE_INDEX = -100
"""Label value that ``torch.nn.functional.cross_entropy`` (and ``transformers``) skips."""

Segment = tuple[str, bool]  # (text, trained on?)


def _template_segments(messages: Sequence[dict[str, str]]) -> list[Segment]:
    segments: list[Segment] = []
    for m in messages:
        try:
            header, body = template.render_turn(m["role"], m["content"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"bad message {m!r}: {exc}") from None
        segments.append((header, False))
        if m["role"] == "assistant":
            # train on `{content}<|end|>`, not on what the template puts after the end token
            cut = body.rfind(template.END) + len(template.END)
            segments += [(body[:cut], True), (body[cut:], False)]
        else:
            segments.append((body, False))
    return segments


def _chat_template_segments(messages: Sequence[dict[str, str]], tokenizer: Any) -> list[Segment]:
    def render(msgs: Sequence[dict[str, str]], generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            list(msgs), tokenize=False, add_generation_prompt=generation_prompt
        )

    segments: list[Segment] = []
    previous = ""  # render(messages[:i])
    for i, m in enumerate(messages):
        full = render(messages[: i + 1], False)
        if m.get("role") == "assistant":
            if i == 0:
                # templates refuse empty conversations: find where the lone reply's content starts
                start = full.find(m["content"]) if m["content"] else -1
                if start < 0:
                    raise DataError(
                        "chat_template: cannot locate a leading assistant turn in its rendering"
                    )
                head = full[:start]
            else:
                head = render(messages[:i], True)
            if not (head.startswith(previous) and full.startswith(head)):
                raise DataError(
                    f"chat_template is not prefix-stable at message {i}: rendering {i + 1} "
                    f"messages does not extend rendering {i}, so assistant spans are unknown"
                )
            body = full[len(head) :]
            # the body is content + end-of-turn token; whitespace after it is not trained on
            trained = body.rstrip() or body
            segments += [
                (head[len(previous) :], False),
                (trained, True),
                (body[len(trained) :], False),
            ]
        else:
            if not full.startswith(previous):
                raise DataError(
                    f"chat_template is not prefix-stable at message {i}: rendering "
                    f"{i + 1} messages does not extend rendering {i}"
                )
            segments.append((full[len(previous) :], False))
        previous = full
    return segments


def _check_template_tokens(tokenizer: Any) -> None:
    for tok in (template.END, *template.ROLE_TOKENS.values()):
        if len(tokenizer.encode(tok, add_special_tokens=False)) != 1:
            raise DataError(
                "tokenizer has no chat_template and does not know artent's template token "
                f"{tok!r}: "
                "add template.SPECIAL_TOKENS as special tokens (and resize the model's embeddings) "
                "or set tokenizer.chat_template"
            )


def render_segments(messages: Sequence[dict[str, str]], tokenizer: Any) -> list[Segment]:
    """Split a conversation's rendering into ``(text, trained)`` pieces.

    Args:
        messages: ``[{role, content}, ...]``.
        tokenizer: a ``transformers`` tokenizer; its ``chat_template`` is used when it has one,
            artent's template otherwise (the BOS token is not part of the segments).

    Returns:
        Pieces whose concatenation is the whole rendering; ``trained`` is true exactly for each
        assistant turn's content plus end-of-turn token.
    """
    if getattr(tokenizer, "chat_template", None):
        return _chat_template_segments(messages, tokenizer)
    _check_template_tokens(tokenizer)
    return _template_segments(messages)


def encode_conversation(
    messages: Sequence[dict[str, str]], tokenizer: Any, *, max_len: int | None = None
) -> tuple[list[int], list[int]]:
    """Tokenise one conversation with labels on assistant bodies only.

    Args:
        messages: ``[{role, content}, ...]`` with roles ``system``/``user``/``assistant``.
        tokenizer: a ``transformers`` tokenizer (see :func:`render_segments`). Without a
            ``chat_template``, its BOS id (if it has a BOS token) is prepended; with one, the
            template's own text (BOS included, where it writes one) is used as is.
        max_len: keep at most this many tokens (``None``: no truncation).

    Returns:
        ``(input_ids, labels)``, equal-length lists of ints; ``labels[i]`` is ``input_ids[i]`` on
        assistant content and end-of-turn tokens and ``-100`` elsewhere.
    """
    if max_len is not None and max_len < 1:
        raise DataError(f"max_len={max_len} must be a positive number of tokens")
    if not messages:
        raise DataError("encode_conversation: the conversation has no messages")
    segments = [(text, trained) for text, trained in render_segments(messages, tokenizer) if text]
    pieces = tokenizer([t for t, _ in segments], add_special_tokens=False)["input_ids"]
    input_ids: list[int] = []
    labels: list[int] = []
    if not getattr(tokenizer, "chat_template", None) and tokenizer.bos_token_id is not None:
        input_ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE_INDEX)
    for (_, trained), ids in zip(segments, pieces, strict=True):
        input_ids += ids
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    if max_len is not None:
        input_ids, labels = input_ids[:max_len], labels[:max_len]
    return input_ids, labels


@dataclass
class TokenizedDataset:
    """Fixed-length token blocks ready for a causal LM.

    Attributes:
        input_ids: ``(n, seq_len)`` token ids (``torch.long``).
        labels: ``(n, seq_len)`` targets, ``-100`` where no loss is taken (unshifted, as
            ``transformers`` expects).
        attention_mask: ``(n, seq_len)``, 1 on real tokens and 0 on padding.
        packing: whether the blocks pack several conversations (see :func:`build_dataset`).
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    packing: bool = False

    def __post_init__(self) -> None:
        shape = self.input_ids.shape
        for name in ("input_ids", "labels", "attention_mask"):
            t = getattr(self, name)
            if t.dim() != 2 or t.shape != shape or t.dtype != torch.long:
                raise ValueError(f"TokenizedDataset.{name}: expected a {tuple(shape)} long tensor")

    @property
    def seq_len(self) -> int:
        """Tokens per block."""
        return int(self.input_ids.shape[1])

    @property
    def num_label_tokens(self) -> int:
        """Number of positions that carry a label (not ``-100``)."""
        return int((self.labels != IGNORE_INDEX).sum())

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[index],
            "labels": self.labels[index],
            "attention_mask": self.attention_mask[index],
        }


def _pad_rows(
    examples: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int
) -> TokenizedDataset:
    n = len(examples)
    input_ids = torch.full((n, seq_len), pad_id, dtype=torch.long)
    labels = torch.full((n, seq_len), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n, seq_len), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        k = min(len(ids), seq_len)
        input_ids[row, :k] = torch.tensor(ids[:k], dtype=torch.long)
        labels[row, :k] = torch.tensor(labs[:k], dtype=torch.long)
        attention_mask[row, :k] = 1
    return TokenizedDataset(input_ids, labels, attention_mask, packing=False)


def _pack_rows(
    examples: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int
) -> TokenizedDataset:
    stream = torch.tensor([t for ids, _ in examples for t in ids], dtype=torch.long)
    stream_labels = torch.tensor([t for _, labs in examples for t in labs], dtype=torch.long)
    total = stream.numel()
    # Consecutive blocks share one token: the last token of block k is the first of block k+1,
    # so the token after a boundary is still predicted from context, and every stream position
    # but the first is a target exactly once (the shared token's label is kept in block k only).
    stride = seq_len - 1
    n_blocks = max(1, -(-(total - 1) // stride))
    input_ids = torch.full((n_blocks, seq_len), pad_id, dtype=torch.long)
    labels = torch.full((n_blocks, seq_len), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n_blocks, seq_len), dtype=torch.long)
    for b in range(n_blocks):
        start = b * stride
        k = min(seq_len, total - start)
        input_ids[b, :k] = stream[start : start + k]
        labels[b, :k] = stream_labels[start : start + k]
        attention_mask[b, :k] = 1
        if b > 0:
            labels[b, 0] = IGNORE_INDEX
    return TokenizedDataset(input_ids, labels, attention_mask, packing=True)


def build_dataset(
    conversations: Sequence[Sequence[dict[str, str]]],
    tokenizer: Any,
    *,
    seq_len: int,
    packing: bool = False,
    pad_id: int | None = None,
) -> TokenizedDataset:
    """Tokenise conversations into fixed-length blocks.

    Args:
        conversations: conversations ``[{role, content}, ...]`` (e.g. ``Conversations.train``).
        tokenizer: a ``transformers`` tokenizer (see :func:`encode_conversation`).
        seq_len: tokens per block; must exceed every conversation's prompt (the tokens before its
            first assistant body), in both modes.
        packing: ``False``: one row per conversation, truncated to ``seq_len`` and right-padded
            (labels ``-100`` on padding). ``True``: conversations are concatenated (each starts with
            its own BOS) and cut into ``seq_len`` blocks that overlap by one token, so that no
            labelled token is lost at a boundary; the last block is right-padded. Packed
            conversations attend to the ones before them in the same block.
        pad_id: id written on padding; default ``tokenizer.pad_token_id``.

    Returns:
        The blocks as ``torch.long`` tensors.

    Raises:
        DataError: no conversations, a conversation with nothing to train on, ``seq_len`` not
            longer than some prompt, or no pad id.
    """
    if seq_len < 2:
        raise DataError(f"seq_len={seq_len} must be at least 2 tokens")
    if pad_id is None:
        pad_id = getattr(tokenizer, "pad_token_id", None)
        if pad_id is None:
            raise DataError("pad_id: the tokenizer has no pad token; pass pad_id explicitly")
    examples: list[tuple[list[int], list[int]]] = []
    for k, messages in enumerate(conversations):
        ids, labels = encode_conversation(messages, tokenizer)
        prompt_len = next((i for i, lab in enumerate(labels) if lab != IGNORE_INDEX), None)
        if prompt_len is None:
            raise DataError(f"conversation {k} has no assistant turn to train on")
        if seq_len <= prompt_len:
            raise DataError(
                f"seq_len={seq_len} is too short: conversation {k} has a {prompt_len}-token prompt "
                f"before its first assistant reply, so it would train on nothing; "
                f"use seq_len > {prompt_len}"
            )
        examples.append((ids, labels))
    if not examples:
        raise DataError("build_dataset: no conversations given")
    return (_pack_rows if packing else _pad_rows)(examples, seq_len, pad_id)


def iterate_batches(
    dataset: TokenizedDataset,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield batches of ``dataset`` in an order fixed by ``(seed, epoch)``.

    Args:
        dataset: the blocks.
        batch_size: rows per batch.
        seed: run seed; with ``epoch`` it fixes the order (a new order each epoch).
        epoch: epoch number, 0-based.
        shuffle: ``False`` keeps the dataset order.
        drop_last: drop a final batch smaller than ``batch_size``.

    Yields:
        ``{"input_ids", "labels", "attention_mask"}``, each ``(batch, seq_len)`` ``torch.long``.
    """
    if batch_size < 1:
        raise DataError(f"batch_size={batch_size} must be positive")
    n = len(dataset)
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    order_t = torch.from_numpy(order.astype(np.int64))
    for start in range(0, n, batch_size):
        idx = order_t[start : start + batch_size]
        if drop_last and idx.numel() < batch_size:
            return
        yield {
            "input_ids": dataset.input_ids[idx],
            "labels": dataset.labels[idx],
            "attention_mask": dataset.attention_mask[idx],
        }
