"""EntanglementCallback inside transformers' Trainer (and TRL's SFTTrainer): a tiny random LLaMA.

Independent answers: the callback's last profiles equal those ``artent internal`` reads from the
adapter saved after training (LoRA) or from the (initial, final) checkpoints (FFT).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

import tiny_families
from artent import api
from artent.cli import main as cli_main
from artent.integrations.transformers import EntanglementCallback
from artent.report import load_study

STEPS, EVERY = 6, 2
QV = ("q_proj", "v_proj")


def tiny_llama(seed: int = 0):
    return tiny_families.tiny_llama(seed, eval=False, max_position_embeddings=64)


class TokenData(torch.utils.data.Dataset):
    """Random token sequences, each its own label (enough to move the weights)."""

    def __init__(self, n: int = 32, length: int = 24, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 128, (n, length), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def training_args(out, lr: float, **overrides):
    from transformers import TrainingArguments

    opts = dict(
        output_dir=str(out),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=lr,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    opts.update(overrides)
    return TrainingArguments(**opts)


def train(model, out, lr, callbacks, resume_from_checkpoint=None, **overrides):
    from transformers import Trainer

    trainer = Trainer(
        model=model,
        args=training_args(out, lr, **overrides),
        train_dataset=TokenData(),
        callbacks=callbacks if isinstance(callbacks, list) else [callbacks],
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def stop_at(step: int):
    """A callback ending the training after ``step`` (as an interrupted run would)."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                control.should_training_stop = True

    return StopAt()


def artent_keys(trainer) -> dict[int, dict]:
    return {
        e["step"]: {k: v for k, v in e.items() if k.startswith("artent/")}
        for e in trainer.state.log_history
        if any(k.startswith("artent/") for k in e)
    }


def same_profiles(callback_table: pd.DataFrame, cli_table: pd.DataFrame) -> None:
    keys = ["layer", "module", "bond"]
    a = callback_table.sort_values(keys).reset_index(drop=True)
    b = cli_table.sort_values(keys).reset_index(drop=True)
    assert a[keys].equals(b[keys])
    np.testing.assert_allclose(a.entropy, b.entropy, rtol=0, atol=1e-8)
    np.testing.assert_allclose(a.rmt, b.rmt, rtol=0, atol=1e-12)


def test_lora_in_trainer(tmp_path):
    import peft

    model = peft.get_peft_model(
        tiny_llama(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(QV))
    )
    trainer = train(model, tmp_path / "out", 1e-2, EntanglementCallback(every=EVERY))

    logged = artent_keys(trainer)
    assert sorted(logged) == [2, 4, 6]
    for step, metrics in logged.items():
        for m in QV:
            for key in ("cut_entropy", "valley_depth", "page_ratio", "within_ln_r"):
                assert np.isfinite(metrics[f"artent/{m}/{key}"]), (step, m, key)
            assert metrics[f"artent/{m}/within_ln_r"] == 1.0
            assert 0 < metrics[f"artent/{m}/cut_entropy"] <= np.log(4) + 1e-9

    folder = tmp_path / "out" / "artent"
    summary = pd.read_parquet(folder / "internal_summary.parquet")
    profiles = pd.read_parquet(folder / "internal.parquet")
    assert sorted(summary.step.unique()) == [2, 4, 6]
    assert sorted(profiles.step.unique()) == [2, 4, 6]
    assert len(summary) == 3 * 2 * len(QV)  # steps x layers x modules
    assert (summary.status == "ok").all() and (summary.kind == "lora").all()
    # Every LoRA update sits under ln r at the cut.
    assert summary.within_bound.astype(bool).all()
    assert (summary.center_entropy <= np.log(summary.nominal_rank) + 1e-9).all()

    # Independent answer: the adapter saved after training, read by `artent internal`.
    model.save_pretrained(tmp_path / "adapter")
    cli = api.internal(adapter=tmp_path / "adapter")
    assert list(summary.columns) == list(cli.summary.columns)
    assert list(profiles.columns) == list(cli.profiles.columns)
    same_profiles(profiles[profiles.step == 6], cli.profiles)
    # The spectral companions: the same ranks; the callback has the base weights, the saved
    # adapter alone does not (its pair columns are unknown).
    last = summary[summary.step == 6]
    np.testing.assert_allclose(last.stable_rank, cli.summary.stable_rank, rtol=1e-6)
    assert last.relative_norm.gt(0).all() and last.intruders.notna().all()
    assert cli.summary.relative_norm.isna().all()

    # `artent report` reads the Trainer's output folder: the run, its tables and its losses.
    study = load_study(tmp_path / "out")
    assert study.runs[["name", "method", "rank", "lr"]].values.tolist() == [
        ["out", "lora", 4, 1e-2]
    ]
    assert sorted(study.internal_summary.step.unique()) == [2, 4, 6]
    assert sorted(study.losses.step) == [1, 2, 3, 4, 5, 6]
    assert (study.losses.split == "train").all() and (study.losses.label == "out").all()
    assert cli_main(["report", str(tmp_path / "out")]) == 0
    page = (folder / "report.html").read_text()
    assert "<figure id='fig-internal'>" in page and "<figure id='fig-losses'>" in page


def test_full_fine_tuning_in_trainer(tmp_path):
    model = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    cb = EntanglementCallback(every=EVERY, out_dir=tmp_path / "tables")
    trainer = train(model, tmp_path / "out", 1e-3, cb)
    model.save_pretrained(tmp_path / "tuned")

    logged = artent_keys(trainer)
    assert sorted(logged) == [2, 4, 6]
    assert all("artent/q_proj/cut_entropy" in m for m in logged.values())
    # No nominal rank for a dense update: no within-ln-r fraction is logged for it.
    assert not any(k.endswith("within_ln_r") for m in logged.values() for k in m)

    assert not (tmp_path / "out" / "artent").exists()  # out_dir overrides
    summary = pd.read_parquet(tmp_path / "tables" / "internal_summary.parquet")
    profiles = pd.read_parquet(tmp_path / "tables" / "internal.parquet")
    assert sorted(summary.step.unique()) == [2, 4, 6]
    assert (summary.kind == "dense").all() and summary.nominal_rank.isna().all()

    # Independent answer: tuned - base from the checkpoints, read by `artent internal`.
    cli = api.internal(base=tmp_path / "base", tuned=tmp_path / "tuned")
    same_profiles(profiles[profiles.step == 6], cli.profiles)
    last = summary[summary.step == 6].sort_values(["layer", "module"]).reset_index(drop=True)
    ref = cli.summary.sort_values(["layer", "module"]).reset_index(drop=True)
    np.testing.assert_allclose(last.center_entropy, ref.center_entropy, rtol=0, atol=1e-8)
    # The companions against the snapshot equal those of the checkpoint pair.
    for col in ("stable_rank", "relative_norm", "intruders"):
        np.testing.assert_allclose(last[col], ref[col], rtol=1e-6, err_msg=col)


def test_full_fine_tuning_resumes_against_the_step_0_weights(tmp_path):
    """A resumed FFT run measures against the weights it started from, not the resumed ones."""
    model = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    out = tmp_path / "out"
    cb = [EntanglementCallback(every=EVERY), stop_at(4)]
    train(model, out, 1e-3, cb, save_strategy="steps", save_steps=4)
    first = pd.read_parquet(out / "artent" / "internal_summary.parquet")
    assert first.groupby("step").size().to_dict() == {2: 4, 4: 4}
    assert (out / "artent" / "snapshot.safetensors").is_file()
    resumed = tiny_llama(seed=1)  # other weights: the checkpoint must overwrite them
    train(resumed, out, 1e-3, [EntanglementCallback(every=EVERY)], save_strategy="no",
          resume_from_checkpoint=str(out / "checkpoint-4"))  # fmt: skip
    resumed.save_pretrained(tmp_path / "tuned")
    profiles = pd.read_parquet(out / "artent" / "internal.parquet")
    summary = pd.read_parquet(out / "artent" / "internal_summary.parquet")
    assert summary.groupby("step").size().to_dict() == {2: 4, 4: 4, 6: 4}
    cli = api.internal(base=tmp_path / "base", tuned=tmp_path / "tuned")
    same_profiles(profiles[profiles.step == 6], cli.profiles)


def test_trl_sft_trainer(tmp_path):
    trl = pytest.importorskip(
        "trl", reason="TRL is not installed (pip install 'artent[trl]'); SFTTrainer not tested"
    )
    import peft
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(124)}
    vocab.update({"<pad>": 124, "<eos>": 125, "<bos>": 126, "<unk>": 127})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 124, 20)) for _ in range(32)]
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        max_length=32,
    )
    trainer = trl.SFTTrainer(
        model=tiny_llama(),
        args=args,
        train_dataset=Dataset.from_dict({"text": texts}),
        processing_class=tokenizer,
        peft_config=peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(QV)),
        callbacks=[EntanglementCallback(every=EVERY)],
    )
    trainer.train()
    assert sorted(artent_keys(trainer)) == [2, 4]
    summary = pd.read_parquet(tmp_path / "out" / "artent" / "internal_summary.parquet")
    assert sorted(summary.step.unique()) == [2, 4]
    assert (summary.kind == "lora").all() and summary.within_bound.astype(bool).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(every=0), "every must be a positive number of optimiser steps, got 0"),
        (dict(every=-3), "every must be a positive number"),
        (dict(every=2.5), "every must be a positive number"),
        (dict(every=True), "every must be a positive number"),
        (dict(modules=()), "modules: name at least one module"),
        (dict(device="gpu-please"), "device 'gpu-please' is not a torch device"),
        (dict(order="zigzag"), "order must be one of"),
        (dict(k=0), "valley half-width k must be >= 1"),
    ],
)
def test_bad_options_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match="^EntanglementCallback: ") as info:
        EntanglementCallback(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "modules, layers, message",
    [
        (("q_proj", "qkv_proj"), None, "no module named 'qkv_proj' in the model"),
        (("q_proj",), [0, 7], "no layer 7 in the model"),
        (("o_proj",), None, "'o_proj' is frozen and carries no adapter"),
    ],
)
def test_bad_targets_fail_before_the_first_step(tmp_path, modules, layers, message):
    import peft
    from transformers import Trainer

    model = peft.get_peft_model(
        tiny_llama(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(QV))
    )
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path / "out", 1e-2),
        train_dataset=TokenData(),
        callbacks=[EntanglementCallback(every=1, modules=modules, layers=layers)],
    )
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="^EntanglementCallback: ") as info:
        trainer.train()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert trainer.state.global_step == 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no step was taken
    assert not (tmp_path / "out" / "artent" / "internal_summary.parquet").exists()


def test_only_the_main_process_measures(tmp_path):
    """Under distributed training the other processes check the targets but write nothing."""
    import peft
    from transformers import TrainerControl, TrainerState

    model = peft.get_peft_model(
        tiny_llama(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(QV))
    )
    args = training_args(tmp_path / "out", 1e-2)
    cb = EntanglementCallback(every=1)
    state, control = TrainerState(), TrainerControl()
    state.is_world_process_zero = False
    cb.on_train_begin(args, state, control, model=model)
    assert len(cb.targets) == 4  # checked on every process
    for step in (1, 2):
        state.global_step = step
        cb.on_step_end(args, state, control, model=model)
    cb.on_train_end(args, state, control, model=model)
    assert state.log_history == [] and not (tmp_path / "out" / "artent").exists()
    with pytest.raises(ValueError, match="no module named 'nope'"):
        EntanglementCallback(modules="nope").on_train_begin(args, state, control, model=model)


def test_driven_by_another_loop_logs_to_the_state(tmp_path, caplog):
    """Without a Trainer above it, the scalars go to state.log_history, and it says so once."""
    import peft
    from transformers import TrainerControl, TrainerState

    model = peft.get_peft_model(
        tiny_llama(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(QV))
    )
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    args = training_args(tmp_path / "out", 1e-2)
    cb = EntanglementCallback(every=2, modules="q_proj")
    state, control = TrainerState(), TrainerControl()
    with caplog.at_level("WARNING"):
        cb.on_train_begin(args, state, control, model=model)
    assert "no Trainer found" in caplog.text
    for step in (1, 2, 3):
        state.global_step = step
        cb.on_step_end(args, state, control, model=model)
    cb.on_train_end(args, state, control, model=model)  # step 3 is off the grid: measured too
    assert [e["step"] for e in state.log_history] == [2, 3]
    assert set(state.log_history[0]) == {
        "artent/q_proj/cut_entropy",
        "artent/q_proj/valley_depth",
        "artent/q_proj/page_ratio",
        "artent/q_proj/within_ln_r",
        "artent/seconds",
        "step",
    }
    summary = pd.read_parquet(tmp_path / "out" / "artent" / "internal_summary.parquet")
    assert summary.groupby("step").size().to_dict() == {2: 2, 3: 2}
    assert set(summary.module) == {"q_proj"}
