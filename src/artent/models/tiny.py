"""The offline tiny LLaMA: its pretraining on generated text, its cache, and loading it back.

Nothing here touches a network: the corpus comes from :mod:`artent.data.generators`, the byte-level
BPE tokenizer (:mod:`artent.models.tiny_tokenizer`) is trained on it, and the model (architecture
and options in :mod:`artent.models.tiny_config`) is pretrained from scratch on CPU in a few
minutes. The result is cached under ``$ARTENT_CACHE`` (default ``~/.cache/artent``) in a folder
whose name carries a hash of the pretraining configuration, so changing any option retrains.
Every public name of those two modules is importable from here too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from artent.data import template
from artent.data.generators import GENERATOR_VERSION, pretraining_corpus
from artent.folders.atomic import umask_permissions
from artent.folders.layout import cache_root
from artent.models.tiny_config import (
    MAX_POSITIONS,
    TINY_MODEL_NAME,
    TinyPretrainConfig,
    tiny_llama_config,
)
from artent.models.tiny_tokenizer import TOKENIZER_SPECIAL_TOKENS, UNK, train_tokenizer
from artent.progress import progress as progress_bar
from artent.schedule import learning_rate

if TYPE_CHECKING:
    import torch
    import transformers

__all__ = [
    "MAX_POSITIONS",
    "PRETRAIN_RECORD",
    "TINY_MODEL_NAME",
    "TOKENIZER_SPECIAL_TOKENS",
    "UNK",
    "TinyPretrainConfig",
    "ensure_tiny_model",
    "load_tiny",
    "pretrain_tiny",
    "tiny_llama_config",
    "tiny_model_path",
    "train_tokenizer",
]

PRETRAIN_RECORD = "artent_pretrain.json"


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
    """The factor on ``cfg.lr`` at ``step``: the one schedule (:mod:`artent.schedule`)."""
    return learning_rate(
        step,
        lr=1.0,
        steps=cfg.steps,
        warmup_steps=cfg.warmup_steps,
        schedule=cfg.schedule,
        min_lr_ratio=cfg.min_lr_ratio,
    )


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
    started = time.perf_counter()
    docs = pretraining_corpus(cfg.n_documents, seed=cfg.seed)
    n_heldout = max(1, round(cfg.heldout_fraction * len(docs)))
    train_docs, heldout_docs = docs[:-n_heldout], docs[-n_heldout:]
    tokenizer = train_tokenizer(train_docs, cfg.vocab_size)
    train_blocks = _pack(tokenizer, train_docs, cfg.seq_len)
    heldout_blocks = _pack(tokenizer, heldout_docs, cfg.seq_len)
    model = _new_model(cfg, tokenizer)
    eval_batch = 4 * cfg.batch_size
    initial_heldout = _mean_loss(model, heldout_blocks, eval_batch)
    curve = _pretrain_loop(model, train_blocks, cfg, progress)
    train_eval = train_blocks[: len(heldout_blocks)]
    record = {
        **_provenance(cfg),
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
    _save(folder, model, tokenizer, progress)
    record["wall_time_s"] = round(time.perf_counter() - started, 2)
    (folder / PRETRAIN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _new_model(cfg: TinyPretrainConfig, tokenizer):
    """The untrained tiny LLaMA (float32, seeded), stopping generation at an assistant turn's
    end as well as at EOS."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = tiny_llama_config(
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **cfg.model_options(),
    )
    model = LlamaForCausalLM(config).float()
    end_id = tokenizer.convert_tokens_to_ids(template.END)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _pretrain_loop(model, train_blocks, cfg: TinyPretrainConfig, progress: bool) -> list:
    """AdamW on shuffled packed blocks, on the shared schedule (:func:`_lr_factor`); returns the
    running training loss every 10 steps, ``[step, EMA 0.95]``. Leaves the model in eval mode."""
    import torch

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
    bar = progress_bar(range(cfg.steps), desc="pretraining tiny LLaMA", disable=not progress)
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
    return curve


def _provenance(cfg: TinyPretrainConfig) -> dict:
    """What the cached model was made from: its options, seed, cache key and library versions."""
    import tokenizers
    import torch
    import transformers

    import artent  # for __version__; lazy: the package's __init__ imports the whole API

    return {
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
    }


def _save(folder: Path, model, tokenizer, progress: bool) -> None:
    """The model and tokenizer into ``folder`` (made here), readable by others."""
    from transformers.utils import logging as hf_logging

    folder.mkdir(parents=True)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:  # transformers shows its own "Writing model shards" bar
        hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(folder)
    umask_permissions(folder)  # save_pretrained writes the weights 0600


def tiny_model_path(cache_dir: str | os.PathLike | None = None, **pretrain_options) -> Path:
    """Where the tiny model pretrained with these options is (or would be) cached.

    Args:
        cache_dir: cache root; default ``$ARTENT_CACHE``, else ``~/.cache/artent``.
        **pretrain_options: fields of :class:`TinyPretrainConfig` (defaults otherwise).

    Returns:
        ``<cache root>/tiny-llama-v1-<hash of the options>``.
    """
    cfg = _make_config(pretrain_options)
    return cache_root(cache_dir) / f"{TINY_MODEL_NAME}-{cfg.cache_key()}"


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
