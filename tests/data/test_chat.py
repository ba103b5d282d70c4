from __future__ import annotations

import pytest
import torch

from artent.data import template
from artent.data.chat import (
    IGNORE_INDEX,
    TokenizedDataset,
    build_dataset,
    encode_conversation,
    iterate_batches,
)
from artent.data.formats import DataError

CONVERSATIONS = [
    [
        {"role": "system", "content": "You add numbers."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."},
    ],
    [
        {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": "hello world"},
        {"role": "user", "content": "Again, with spaces."},
        {"role": "assistant", "content": "  hello  world \n\n"},
        {"role": "user", "content": "Nothing now."},
        {"role": "assistant", "content": ""},
    ],
    [
        {"role": "user", "content": "Unicode: héllo ✓ 猫"},
        {"role": "assistant", "content": "Réponse: ✓✓ 猫 then 42"},
    ],
    [
        {"role": "user", "content": "A long question " + "about the cat and the dog " * 2},
        {"role": "assistant", "content": "A long answer " + "step by step " * 12},
    ],
]

# LLaMA-3-like in shape but different from artent's template: text headers, the EOS token closes a
# turn, a blank line follows it, and a default system turn is injected when none is given.
JINJA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] != 'system' %}### system:\nBe brief.{{ eos_token }}\n\n{% endif %}"
    "{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}{{ eos_token }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}### assistant:\n{% endif %}"
)


def decode(tok, ids) -> str:
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def labelled_runs(ids: list[int], labels: list[int]) -> list[list[int]]:
    """Maximal runs of consecutive labelled positions, as token ids."""
    runs, current = [], []
    for t, lab in zip(ids, labels, strict=True):
        if lab != IGNORE_INDEX:
            assert lab == t
            current.append(t)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


@pytest.mark.parametrize("conv", CONVERSATIONS)
def test_default_template_mask_is_exact(tokenizer, conv):
    ids, labels = encode_conversation(conv, tokenizer)
    assert len(ids) == len(labels)
    assert ids[0] == tokenizer.bos_token_id
    # the whole input is artent's rendering, BOS included
    assert decode(tokenizer, ids) == template.render_messages(conv)
    expected = [m["content"] + template.END for m in conv if m["role"] == "assistant"]
    assert [decode(tokenizer, run) for run in labelled_runs(ids, labels)] == expected


@pytest.mark.parametrize("conv", CONVERSATIONS)
def test_chat_template_mask_is_exact(make_tokenizer, conv):
    tok = make_tokenizer(chat_template=JINJA_TEMPLATE)
    ids, labels = encode_conversation(conv, tok)
    assert decode(tok, ids) == tok.apply_chat_template(conv, tokenize=False)
    expected = [m["content"] + tok.eos_token for m in conv if m["role"] == "assistant"]
    assert [decode(tok, run) for run in labelled_runs(ids, labels)] == expected


def test_chat_template_leading_assistant_turn(make_tokenizer):
    tok = make_tokenizer(chat_template=JINJA_TEMPLATE)
    conv = [{"role": "assistant", "content": "I speak first."}, *CONVERSATIONS[0][1:]]
    ids, labels = encode_conversation(conv, tok)
    assert [decode(tok, r) for r in labelled_runs(ids, labels)] == [
        "I speak first." + tok.eos_token,
        "2 + 3 = 5." + tok.eos_token,
    ]


def test_chat_template_not_prefix_stable(make_tokenizer):
    # the message count written up front changes every prefix
    tok = make_tokenizer(chat_template="{{ messages|length }}" + JINJA_TEMPLATE)
    with pytest.raises(DataError, match="prefix-stable"):
        encode_conversation(CONVERSATIONS[0], tok)


def test_tokenizer_without_template_tokens(make_tokenizer):
    tok = make_tokenizer(template_tokens=False)
    with pytest.raises(DataError, match="chat_template"):
        encode_conversation(CONVERSATIONS[0], tok)


def test_max_len_truncates(tokenizer):
    ids, labels = encode_conversation(CONVERSATIONS[1], tokenizer)
    ids7, labels7 = encode_conversation(CONVERSATIONS[1], tokenizer, max_len=7)
    assert ids7 == ids[:7] and labels7 == labels[:7]


def prompt_length(tok, conv) -> int:
    """Tokens before the first assistant body (BOS included), tokenising the prefix in one go."""
    first = next(i for i, m in enumerate(conv) if m["role"] == "assistant")
    prefix = template.render_messages(conv[:first]) + template.ROLE_TOKENS["assistant"] + "\n"
    return len(tok.encode(prefix, add_special_tokens=False))


def test_padding(tokenizer):
    seq_len = 40
    ds = build_dataset(CONVERSATIONS, tokenizer, seq_len=seq_len, pad_id=tokenizer.pad_token_id)
    assert isinstance(ds, TokenizedDataset) and not ds.packing
    for t in (ds.input_ids, ds.labels, ds.attention_mask):
        assert t.shape == (len(CONVERSATIONS), seq_len) and t.dtype == torch.long
    for row, conv in enumerate(CONVERSATIONS):
        ids, labels = encode_conversation(conv, tokenizer)
        k = min(len(ids), seq_len)
        assert ds.input_ids[row, :k].tolist() == ids[:k]
        assert ds.labels[row, :k].tolist() == labels[:k]
        assert ds.attention_mask[row].tolist() == [1] * k + [0] * (seq_len - k)
        assert (ds.input_ids[row, k:] == tokenizer.pad_token_id).all()
        assert (ds.labels[row, k:] == IGNORE_INDEX).all()
    assert ds[1]["input_ids"].tolist() == ds.input_ids[1].tolist()
    # the long conversation is truncated, the short ones are not
    assert len(encode_conversation(CONVERSATIONS[3], tokenizer)[0]) > seq_len
    assert ds.attention_mask[0].sum() < seq_len


@pytest.mark.parametrize("seq_len", [38, 50, 97, 1000])
def test_packing_loses_no_labelled_token(tokenizer, seq_len):
    encoded = [encode_conversation(c, tokenizer) for c in CONVERSATIONS]
    stream = [t for ids, _ in encoded for t in ids]
    stream_labels = [t for _, labs in encoded for t in labs]
    assert seq_len > max(prompt_length(tokenizer, c) for c in CONVERSATIONS)
    ds = build_dataset(CONVERSATIONS, tokenizer, seq_len=seq_len, packing=True)
    assert ds.packing and ds.input_ids.shape[1] == seq_len
    n_blocks = ds.input_ids.shape[0]
    assert n_blocks == -(-(len(stream) - 1) // (seq_len - 1))
    # blocks overlap by one token; stitching them back gives the stream and its labels exactly
    lengths = ds.attention_mask.sum(1).tolist()
    assert all(n == seq_len for n in lengths[:-1])
    ids_back = ds.input_ids[0, : lengths[0]].tolist()
    labels_back = ds.labels[0, : lengths[0]].tolist()
    for b in range(1, n_blocks):
        assert ds.input_ids[b, 0] == ds.input_ids[b - 1, -1]
        assert ds.labels[b, 0] == IGNORE_INDEX
        ids_back += ds.input_ids[b, 1 : lengths[b]].tolist()
        labels_back += ds.labels[b, 1 : lengths[b]].tolist()
    assert ids_back == stream and labels_back == stream_labels
    # every labelled token is a next-token target (position >= 1 of its block) exactly once
    n_labelled = sum(lab != IGNORE_INDEX for lab in stream_labels)
    assert ds.num_label_tokens == n_labelled
    assert int((ds.labels[:, 1:] != IGNORE_INDEX).sum()) == n_labelled
    assert (ds.input_ids[-1, lengths[-1] :] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("packing", [False, True])
def test_seq_len_shorter_than_prompt(tokenizer, packing):
    conv = CONVERSATIONS[3]
    n_prompt = prompt_length(tokenizer, conv)
    with pytest.raises(DataError, match=f"seq_len={n_prompt}") as err:
        build_dataset([CONVERSATIONS[0], conv], tokenizer, seq_len=n_prompt, packing=packing)
    assert "conversation 1" in str(err.value)
    ds = build_dataset([conv], tokenizer, seq_len=n_prompt + 1, packing=packing)
    assert ds.num_label_tokens >= 1


def test_build_dataset_errors(tokenizer, make_tokenizer):
    with pytest.raises(DataError, match="no assistant"):
        build_dataset([[{"role": "user", "content": "hi"}]], tokenizer, seq_len=16)
    with pytest.raises(DataError, match="no conversations"):
        build_dataset([], tokenizer, seq_len=16)
    no_pad = make_tokenizer()
    no_pad.pad_token = None
    with pytest.raises(DataError, match="pad_id"):
        build_dataset(CONVERSATIONS[:1], no_pad, seq_len=64)
    ds = build_dataset(CONVERSATIONS[:1], no_pad, seq_len=64, pad_id=0)
    assert (ds.input_ids[0, ds.attention_mask[0] == 0] == 0).all()


def test_iterate_batches_deterministic(tokenizer):
    ds = build_dataset(CONVERSATIONS * 5, tokenizer, seq_len=48)
    n = len(ds)

    def rows(**kw):
        return [b["input_ids"] for b in iterate_batches(ds, 3, **kw)]

    a, b, c = rows(seed=1, epoch=0), rows(seed=1, epoch=0), rows(seed=1, epoch=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert [x.shape[0] for x in a] == [3] * (n // 3) + ([n % 3] if n % 3 else [])
    # each epoch is a permutation of the rows; epochs differ in order
    key = lambda t: tuple(t.tolist())  # noqa: E731
    all_rows = sorted(key(r) for r in ds.input_ids)
    assert sorted(key(r) for x in a for r in x) == all_rows
    assert sorted(key(r) for x in c for r in x) == all_rows
    assert [key(r) for x in a for r in x] != [key(r) for x in c for r in x]
    in_order = rows(shuffle=False)
    assert torch.equal(torch.cat(in_order), ds.input_ids)
    dropped = list(iterate_batches(ds, 3, seed=1, drop_last=True))
    assert len(dropped) == n // 3
    batch = dropped[0]
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    assert all(v.shape == (3, 48) and v.dtype == torch.long for v in batch.values())
