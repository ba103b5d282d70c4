"""artent's default chat template: the contract between the data pipeline and the tiny model.

A tokenizer that carries its own ``chat_template`` (a LLaMA-3 instruct tokenizer, say) is rendered
with it; the tiny offline model and any tokenizer without one use this plain template:

    <|bos|><|system|>\\n{content}<|end|>\\n<|user|>\\n{content}<|end|>\\n<|assistant|>\\n{content}<|end|>\\n

Loss is taken on an assistant turn's ``{content}<|end|>`` only.
"""

from __future__ import annotations

BOS = "<|bos|>"
EOS = "<|eos|>"
PAD = "<|pad|>"
END = "<|end|>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = [PAD, BOS, EOS, END, *ROLE_TOKENS.values()]

ROLES = tuple(ROLE_TOKENS)


def render_turn(role: str, content: str) -> tuple[str, str]:
    """Render one turn of the default template.

    Args:
        role: ``"system"``, ``"user"`` or ``"assistant"``.
        content: the turn's text.

    Returns:
        ``(header, body)``: the header (role token and newline, never trained on) and the body
        (content, end token and newline; trained on for assistant turns).
    """
    if role not in ROLE_TOKENS:
        raise ValueError(f"unknown chat role {role!r}; expected one of {', '.join(ROLES)}")
    return f"{ROLE_TOKENS[role]}\n", f"{content}{END}\n"


def render_messages(messages: list[dict[str, str]]) -> str:
    """Render a whole conversation (``[{role, content}, ...]``) as one string, BOS first."""
    parts = [BOS]
    for m in messages:
        header, body = render_turn(m["role"], m["content"])
        parts += [header, body]
    return "".join(parts)
