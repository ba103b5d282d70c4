"""The offline tiny LLaMA: its architecture, its tokenizer, and its pretraining on generated text.

Nothing here touches a network: the corpus comes from :mod:`artent.data.generators`, the byte-level
BPE tokenizer is trained on it, and the model is pretrained from scratch on CPU in a few minutes.
The result is cached under ``$ARTENT_CACHE`` (default ``~/.cache/artent``) in a folder whose name
carries a hash of the pretraining configuration, so changing any option retrains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from artent.data import template
from artent.data.generators import GENERATOR_VERSION, pretraining_corpus

if TYPE_CHECKING:
    import torch
    import transformers

# Byte-level BPE never needs an unknown token; one exists so that code asking for unk_token_id
# (as some transformers utilities do) gets a real id instead of None.
UNK = "<|unk|>"
TOKENIZER_SPECIAL_TOKENS = [*template.SPECIAL_TOKENS, UNK]
TINY_MODEL_NAME = "tiny-llama-v1"
PRETRAIN_RECORD = "artent_pretrain.json"
MAX_POSITIONS = 512


def tiny_llama_config(
    vocab_size: int,
    *,
    hidden_size: int = 128,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 512,
    max_position_embeddings: int = MAX_POSITIONS,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 2,
) -> transformers.LlamaConfig:
    """A LLaMA configuration with power-of-two widths and grouped-query attention.

    The defaults give ``q_proj`` and ``o_proj`` of shape 128x128 (2^14 entries, 14 qubits) and
    ``k_proj``/``v_proj`` of shape 64x128 (4 query heads of dimension 32 sharing 2 key/value heads),
    as in the real LLaMA-3 models, only smaller. The default special-token ids are those that
    :func:`train_tokenizer` assigns (``template.SPECIAL_TOKENS`` first, in order).

    Args:
        vocab_size: number of token embeddings (rows of ``embed_tokens`` and ``lm_head``).
        hidden_size: model width; must divide evenly into ``num_attention_heads`` heads.
        num_hidden_layers: decoder layers.
        num_attention_heads: query heads; a multiple of ``num_key_value_heads``.
        num_key_value_heads: key/value heads (grouped-query attention).
        intermediate_size: MLP width.
        max_position_embeddings: longest sequence, in tokens.
        pad_token_id, bos_token_id, eos_token_id: special-token ids.
    """
    from transformers import LlamaConfig

    for name, value in (
        ("vocab_size", vocab_size),
        ("hidden_size", hidden_size),
        ("num_hidden_layers", num_hidden_layers),
        ("num_attention_heads", num_attention_heads),
        ("num_key_value_heads", num_key_value_heads),
        ("intermediate_size", intermediate_size),
        ("max_position_embeddings", max_position_embeddings),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"tiny LLaMA option {name} must be a positive integer, got {value!r}")
    if hidden_size % num_attention_heads:
        raise ValueError(
            f"hidden_size={hidden_size} is not divisible by "
            f"num_attention_heads={num_attention_heads}"
        )
    if num_attention_heads % num_key_value_heads:
        raise ValueError(
            f"num_attention_heads={num_attention_heads} is not a multiple of "
            f"num_key_value_heads={num_key_value_heads}"
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=hidden_size // num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        dtype="float32",
    )


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


@dataclass(frozen=True)
class TinyPretrainConfig:
    """Options of :func:`pretrain_tiny`; every field enters the cache key.

    Attributes:
        steps: optimiser steps.
        seq_len: tokens per packed training block.
        batch_size: blocks per step.
        lr: peak AdamW learning rate.
        warmup_steps: linear warm-up length, in steps.
        schedule: ``"cosine"`` (decay to ``min_lr_ratio * lr``) or ``"constant"`` after warm-up.
        min_lr_ratio: final learning rate of the cosine schedule, as a fraction of ``lr``.
        weight_decay: AdamW decoupled weight decay.
        grad_clip: gradient-norm clipping threshold.
        seed: seeds the corpus, the initialisation and the batch order.
        n_documents: corpus size, in generated documents (training and held-out together).
        heldout_fraction: fraction of documents kept out of training for the held-out loss.
        vocab_size: tokenizer vocabulary size.
        hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
            intermediate_size: the architecture, see :func:`tiny_llama_config`.
    """

    steps: int = 400
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 30
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    n_documents: int = 20_000
    heldout_fraction: float = 0.05
    vocab_size: int = 1024
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 512

    def __post_init__(self) -> None:
        for name in ("steps", "seq_len", "batch_size", "n_documents"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"pretrain option {name} must be a positive integer, got {value!r}"
                )
        if not 2 <= self.seq_len <= MAX_POSITIONS:
            raise ValueError(f"pretrain option seq_len must be in [2, {MAX_POSITIONS}]")
        if not self.lr > 0:
            raise ValueError(f"pretrain option lr must be positive, got {self.lr!r}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError("pretrain option warmup_steps must be in [0, steps]")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(
                f"pretrain option schedule must be 'cosine' or 'constant', got {self.schedule!r}"
            )
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("pretrain option min_lr_ratio must be in [0, 1]")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError("pretrain option heldout_fraction must be in (0, 1)")
        # Validates the architecture options with the same messages as tiny_llama_config.
        tiny_llama_config(self.vocab_size, **self.model_options())

    def model_options(self) -> dict[str, int]:
        """The architecture fields, as keyword arguments of :func:`tiny_llama_config`."""
        names = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
        return {n: getattr(self, n) for n in (*names, "intermediate_size")}

    def cache_key(self) -> str:
        """A short hash of every option and of the generators' version."""
        payload = json.dumps(
            {"config": dataclasses.asdict(self), "generators": GENERATOR_VERSION}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _make_config(options: dict) -> TinyPretrainConfig:
    fields = {f.name for f in dataclasses.fields(TinyPretrainConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"unknown tiny pretrain option(s): {', '.join(unknown)}")
    return TinyPretrainConfig(**options)


def _pack(tokenizer, docs: list[str], seq_len: int) -> torch.Tensor:
    """Concatenate documents (each BOS ... EOS) and cut them into ``[n_blocks, seq_len]`` ids."""
    import torch

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    stream: list[int] = []
    for doc, enc in zip(docs, tokenizer.backend_tokenizer.encode_batch(docs), strict=True):
        stream += ([] if doc.startswith(template.BOS) else [bos]) + enc.ids + [eos]
    n_blocks = len(stream) // seq_len
    if n_blocks == 0:
        raise ValueError(f"corpus too small: {len(stream)} tokens make no block of {seq_len}")
    return torch.tensor(stream[: n_blocks * seq_len]).view(n_blocks, seq_len)


def _mean_loss(model, blocks: torch.Tensor, batch_size: int) -> float:
    """Mean next-token cross-entropy (nats per predicted token) over all blocks."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(blocks), batch_size):
            ids = blocks[i : i + batch_size]
            logits = model(input_ids=ids).logits[:, :-1]
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
            ).item()
            count += ids[:, 1:].numel()
    model.train(was_training)
    return total / count


def _unigram_loss(train: torch.Tensor, heldout: torch.Tensor, vocab_size: int) -> float:
    """Held-out cross-entropy (nats) of add-one-smoothed training unigram frequencies."""
    import torch

    counts = torch.bincount(train[:, 1:].reshape(-1), minlength=vocab_size).double() + 1.0
    log_p = torch.log(counts / counts.sum())
    return -log_p[heldout[:, 1:].reshape(-1)].mean().item()


def _lr_factor(cfg: TinyPretrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain_tiny(
    out_dir: str | os.PathLike, *, progress: bool = True, overwrite: bool = False, **options
) -> Path:
    """Generate a corpus, train the tokenizer, pretrain the tiny LLaMA and save it to ``out_dir``.

    Training is float32 on CPU, AdamW on packed blocks, deterministic for a fixed ``seed``. The
    folder is assembled under a temporary name beside ``out_dir`` and renamed into place at the
    end, so an interrupted run leaves nothing half-written. It holds the model
    (``model.safetensors``, ``config.json``, ``generation_config.json``), the tokenizer, and
    ``artent_pretrain.json``: the options, seed, library versions, corpus size, and the losses
    (nats per token) before and after training next to a unigram baseline and ``ln(vocab)``.

    Args:
        out_dir: destination folder; must not exist unless ``overwrite``.
        progress: show a progress bar with the running training loss.
        overwrite: replace an existing ``out_dir``.
        **options: fields of :class:`TinyPretrainConfig` (``steps``, ``seq_len``, ``batch_size``,
            ``lr``, ``seed``, ``num_hidden_layers``, ...).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    cfg = _make_config(options)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"pretrain output folder {str(out_dir)!r} already exists")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        _pretrain_into(tmp, cfg, progress)
        if out_dir.exists() and overwrite:
            trash = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out_dir, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, out_dir)  # fails if another process finished first: theirs is kept
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _pretrain_into(folder: Path, cfg: TinyPretrainConfig, progress: bool) -> dict:
    import tokenizers
    import torch
    import transformers
    from tqdm.auto import tqdm
    from transformers import LlamaForCausalLM

    import artent

    started = time.perf_counter()
    docs = pretraining_corpus(cfg.n_documents, seed=cfg.seed)
    n_heldout = max(1, round(cfg.heldout_fraction * len(docs)))
    train_docs, heldout_docs = docs[:-n_heldout], docs[-n_heldout:]
    tokenizer = train_tokenizer(train_docs, cfg.vocab_size)
    train_blocks = _pack(tokenizer, train_docs, cfg.seq_len)
    heldout_blocks = _pack(tokenizer, heldout_docs, cfg.seq_len)

    torch.manual_seed(cfg.seed)
    config = tiny_llama_config(
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **cfg.model_options(),
    )
    model = LlamaForCausalLM(config).float()
    # Generation stops at the end of an assistant turn as well as at EOS.
    end_id = tokenizer.convert_tokens_to_ids(template.END)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    eval_batch = 4 * cfg.batch_size
    initial_heldout = _mean_loss(model, heldout_blocks, eval_batch)

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # norms are not decayed
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(cfg, s))
    order_rng = torch.Generator().manual_seed(cfg.seed)
    order, cursor = torch.randperm(len(train_blocks), generator=order_rng), 0
    curve, running = [], None
    model.train()
    bar = tqdm(range(cfg.steps), desc="pretraining tiny LLaMA", disable=not progress)
    for step in bar:
        if cursor + cfg.batch_size > len(order):
            order, cursor = torch.randperm(len(train_blocks), generator=order_rng), 0
        batch = train_blocks[order[cursor : cursor + cfg.batch_size]]
        cursor += cfg.batch_size
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}", refresh=False)
        if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
            curve.append([step + 1, round(running, 4)])
    bar.close()
    model.eval()

    train_eval = train_blocks[: len(heldout_blocks)]
    record = {
        "name": TINY_MODEL_NAME,
        "config": dataclasses.asdict(cfg),
        "seed": cfg.seed,
        "cache_key": cfg.cache_key(),
        "generator_version": GENERATOR_VERSION,
        "versions": {
            "artent": artent.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "python": platform.python_version(),
        },
        "corpus": {
            "documents": len(docs),
            "train_documents": len(train_docs),
            "heldout_documents": len(heldout_docs),
            "train_tokens": train_blocks.numel(),
            "heldout_tokens": heldout_blocks.numel(),
        },
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "losses": {
            "unit": "nats per predicted token",
            "ln_vocab": math.log(len(tokenizer)),
            "unigram_heldout": _unigram_loss(train_blocks, heldout_blocks, len(tokenizer)),
            "initial_heldout": initial_heldout,
            "final_train": _mean_loss(model, train_eval, eval_batch),
            "final_heldout": _mean_loss(model, heldout_blocks, eval_batch),
        },
        "train_loss_ema_curve": curve,  # [step, running mean (EMA 0.95)]
    }
    folder.mkdir(parents=True)
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:  # transformers shows its own "Writing model shards" bar
        hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(folder)
    record["wall_time_s"] = round(time.perf_counter() - started, 2)
    (folder / PRETRAIN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    from artent.models.cache import cache_root

    return cache_root(cache_dir)


def tiny_model_path(cache_dir: str | os.PathLike | None = None, **pretrain_options) -> Path:
    """Where the tiny model pretrained with these options is (or would be) cached.

    Args:
        cache_dir: cache root; default ``$ARTENT_CACHE``, else ``~/.cache/artent``.
        **pretrain_options: fields of :class:`TinyPretrainConfig` (defaults otherwise).

    Returns:
        ``<cache root>/tiny-llama-v1-<hash of the options>``.
    """
    cfg = _make_config(pretrain_options)
    return _cache_root(cache_dir) / f"{TINY_MODEL_NAME}-{cfg.cache_key()}"


def ensure_tiny_model(
    cache_dir: str | os.PathLike | None = None, *, progress: bool = True, **pretrain_options
) -> Path:
    """Return the cached tiny model's folder, pretraining it first only when it is missing.

    Args:
        cache_dir: cache root; see :func:`tiny_model_path`.
        progress: show a progress bar if pretraining runs.
        **pretrain_options: fields of :class:`TinyPretrainConfig`.
    """
    path = tiny_model_path(cache_dir, **pretrain_options)
    if (path / PRETRAIN_RECORD).is_file():
        return path
    try:
        return pretrain_tiny(path, progress=progress, **pretrain_options)
    except OSError:
        # Another process may have finished the same model while this one trained.
        if (path / PRETRAIN_RECORD).is_file():
            return path
        raise


def load_tiny(
    path: str | os.PathLike,
) -> tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]:
    """Load a saved tiny model (float32, eval mode) and its tokenizer from a local folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"no saved model in {str(path)!r} (config.json is missing)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    return model.eval(), tokenizer
