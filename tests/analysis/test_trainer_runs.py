"""Inputs a researcher brings: Trainer/TRL output folders as runs, adapters of the same name.

Real transformers ``Trainer`` + peft LoRA runs of a tiny random LLaMA (``save_steps=2``, six steps:
``checkpoint-2/4/6``) and a TRL ``SFTTrainer`` run. Independent answers: each checkpoint's update
read alone (``--adapter``), the adapter's own rank, the (first, last) full-weight pair.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import artent
import tiny_families
from artent.analysis.labels import assign_labels, path_labels
from artent.analysis.runs import checkpoint_step
from artent.cli import main as cli_main

QV = ["q_proj", "v_proj"]


def tiny_llama(seed: int = 0):
    return tiny_families.tiny_llama(seed, eval=False, max_position_embeddings=64)


class TokenData(torch.utils.data.Dataset):
    def __init__(self, n: int = 24, length: int = 16):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 128, (n, length), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def trainer_args(out, **overrides):
    from transformers import TrainingArguments

    opts = dict(
        output_dir=str(out),
        max_steps=6,
        save_steps=2,
        save_strategy="steps",
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    opts.update(overrides)
    return TrainingArguments(**opts)


def word_tokenizer():
    """A word-level tokenizer of ``w0 ... w123`` and four specials (the model's 128 tokens)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(124)}
    vocab.update({"<pad>": 124, "<eos>": 125, "<bos>": 126, "<unk>": 127})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
        unk_token="<unk>",
    )  # fmt: skip


def words(n: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{i}" for i in rng.integers(0, 124, length)) for _ in range(n)]


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trainer-base") / "base"
    tiny_llama().save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


def lora_run(base_folder, out, rank: int):
    import peft
    from transformers import LlamaForCausalLM, Trainer

    model = LlamaForCausalLM.from_pretrained(base_folder)
    model = peft.get_peft_model(
        model, peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=QV)
    )
    Trainer(model=model, args=trainer_args(out), train_dataset=TokenData()).train()
    return out


@pytest.fixture(scope="module")
def lora_runs(base_folder, tmp_path_factory):
    """Two Trainer LoRA runs, r=2 and r=8, each with checkpoint-2, checkpoint-4, checkpoint-6."""
    root = tmp_path_factory.mktemp("trainer-runs")
    return {r: lora_run(base_folder, root / f"out-r{r}", r) for r in (2, 8)}


def test_two_checkpoint_6_adapters_are_two_rows_each_with_its_rank(lora_runs, tmp_path, capsys):
    a, b = (lora_runs[r] / "checkpoint-6" for r in (2, 8))
    assert cli_main(["internal", "--adapter", str(a), "--adapter", str(b), "--out",
                     str(tmp_path / "two")]) == 0  # fmt: skip
    summary = pd.read_parquet(tmp_path / "two" / "internal_summary.parquet")
    labels = list(dict.fromkeys(summary.label))
    assert labels == ["out-r2/checkpoint-6", "out-r8/checkpoint-6"]
    for label, rank, path in zip(labels, (2, 8), (a, b), strict=True):
        rows = summary[summary.label == label]
        assert len(rows) == 4 and (rows.nominal_rank == rank).all()  # 2 layers x q, v
        np.testing.assert_allclose(rows.ln_rank, math.log(rank), rtol=0, atol=0)
        assert (rows.source == str(path)).all() and (rows.step == 6).all()
    profiles = pd.read_parquet(tmp_path / "two" / "internal.parquet")
    assert sorted(profiles.label.unique()) == labels
    out = capsys.readouterr().out
    assert "out-r2/checkpoint-6" in out and "out-r8/checkpoint-6" in out

    # the API names them the same way, and by hand with {label: path}
    res = artent.internal(adapter=[a, b])
    assert list(dict.fromkeys(res.summary.label)) == labels
    res = artent.internal(adapter={"rank2": a, "rank8": b})
    ranks = res.summary.groupby("label").nominal_rank.first().to_dict()
    assert ranks == {"rank2": 2, "rank8": 8}


def test_one_label_for_two_inputs_is_one_line_and_exit_2(lora_runs, tmp_path, capsys):
    a, b = (lora_runs[r] / "checkpoint-6" for r in (2, 8))
    code = cli_main(["internal", "--adapter", str(a), "--adapter", str(a), "--out",
                     str(tmp_path / "same")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "two inputs have the label 'checkpoint-6'" in err
    assert not (tmp_path / "same").exists()
    code = cli_main(["internal", "--adapter", str(a), "--adapter", str(b), "--label", "x",
                     "--label", "x", "--out", str(tmp_path / "x")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "two inputs have the label 'x'" in err and len(err.splitlines()) == 1
    code = cli_main(["internal", "--adapter", str(a), "--adapter", str(b), "--label", "only",
                     "--out", str(tmp_path / "y")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--label: 1 label(s) for 2 input(s)" in err
    assert cli_main(["internal", "--adapter", str(a), "--adapter", str(b), "--label", "r2",
                     "--label", "r8", "--out", str(tmp_path / "z")]) == 0  # fmt: skip
    summary = pd.read_parquet(tmp_path / "z" / "internal_summary.parquet")
    assert summary.groupby("label").nominal_rank.first().to_dict() == {"r2": 2, "r8": 8}


def test_trainer_output_dir_is_a_run_with_steps_2_4_6(lora_runs, base_folder, tmp_path):
    out = lora_runs[2]
    assert cli_main(["internal", "--run", str(out), "--out", str(tmp_path / "run")]) == 0
    summary = pd.read_parquet(tmp_path / "run" / "internal_summary.parquet")
    assert sorted(summary.step.unique()) == [2, 4, 6]
    assert len(summary.query("step == step.max()")) == 4
    record = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert {s["base"] for s in record["sources"]} == {str(base_folder)}  # from adapter_config
    # each step's rows are those of its checkpoint read alone
    for step in (2, 4, 6):
        alone = artent.internal(adapter=out / f"checkpoint-{step}").profiles
        assert (alone.step == step).all()
        ours = pd.read_parquet(tmp_path / "run" / "internal.parquet").query(f"step == {step}")
        np.testing.assert_allclose(ours.entropy.to_numpy(), alone.entropy.to_numpy(), atol=0)


def test_trl_sft_trainer_output_dir_is_a_run(base_folder, tmp_path):
    trl = pytest.importorskip("trl", reason="TRL is not installed (pip install 'artent[trl]')")
    import peft
    from datasets import Dataset
    from transformers import LlamaForCausalLM

    texts = words(24, 16)
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "sft"), max_steps=6, save_steps=2, save_strategy="steps",
        per_device_train_batch_size=4, learning_rate=1e-2, report_to="none", use_cpu=True,
        disable_tqdm=True, max_length=24,
    )  # fmt: skip
    trl.SFTTrainer(
        model=LlamaForCausalLM.from_pretrained(base_folder),
        args=args,
        train_dataset=Dataset.from_dict({"text": texts}),
        processing_class=word_tokenizer(),
        peft_config=peft.LoraConfig(r=4, lora_alpha=8, target_modules=QV),
    ).train()
    summary = artent.internal(run=tmp_path / "sft").summary
    assert sorted(summary.step.unique()) == [2, 4, 6]
    assert (summary.label == "sft").all() and (summary.nominal_rank == 4).all()


def test_external_on_a_trainer_output_dir(lora_runs, base_folder):
    texts = [" ".join(words(1, 40, seed=3))]
    opts = dict(seq_len=8, n_texts=1, encodings="amplitude", orders="sequential", device="cpu")
    res = artent.external(texts, run=lora_runs[2], **opts)
    assert sorted(res.external_summary.step.unique()) == [2, 4, 6]
    assert (res.external_summary.label == "out-r2").all()
    sources = set(res.external_summary.source)
    assert sources == {str(lora_runs[2] / f"checkpoint-{s}") for s in (2, 4, 6)}
    # the last checkpoint's rows are those of its adapter on its base, given by hand
    alone = artent.external(
        texts, model=str(base_folder), adapter=lora_runs[2] / "checkpoint-6", **opts
    ).external
    last = res.external[res.external.step == 6]
    np.testing.assert_allclose(last.entropy.to_numpy(), alone.entropy.to_numpy(), atol=1e-12)


def test_full_weight_trainer_run_against_base_or_first_checkpoint(base_folder, tmp_path):
    from transformers import LlamaForCausalLM, Trainer

    out = tmp_path / "fft"
    model = LlamaForCausalLM.from_pretrained(base_folder)
    Trainer(
        model=model, args=trainer_args(out, learning_rate=1e-3), train_dataset=TokenData()
    ).train()
    opts = dict(layers="0")
    against_base = artent.internal(run=out, base=base_folder, **opts).summary
    assert sorted(against_base.step.unique()) == [2, 4, 6]
    assert against_base.ln_rank.isna().all()  # a dense update has no nominal rank
    pair = artent.internal(base=base_folder, tuned=out / "checkpoint-6", **opts).summary
    last = against_base[against_base.step == 6].reset_index(drop=True)
    np.testing.assert_allclose(last.center_entropy, pair.center_entropy, rtol=0, atol=0)
    # without --base: against checkpoint-2, which is then the reference, not a row
    against_first = artent.internal(run=out, **opts).summary
    assert sorted(against_first.step.unique()) == [4, 6]
    pair = artent.internal(base=out / "checkpoint-2", tuned=out / "checkpoint-6", **opts).summary
    last = against_first[against_first.step == 6].reset_index(drop=True)
    np.testing.assert_allclose(last.center_entropy, pair.center_entropy, rtol=0, atol=0)


def test_checkpoint_step_reads_trainer_state_then_the_name(tmp_path):
    folder = tmp_path / "checkpoint-6"
    folder.mkdir()
    assert checkpoint_step(folder) == 6
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 7}))
    assert checkpoint_step(folder) == 7
    (folder / "trainer_state.json").write_text("not json")
    assert checkpoint_step(folder) == 6
    assert checkpoint_step(tmp_path / "step-000010") == 10
    assert checkpoint_step(tmp_path / "final") is None


def test_a_trainer_run_of_mixed_checkpoints_is_refused(lora_runs, base_folder, tmp_path):
    run = tmp_path / "mixed"
    shutil.copytree(lora_runs[2] / "checkpoint-2", run / "checkpoint-2")
    shutil.copytree(base_folder, run / "checkpoint-4")
    with pytest.raises(ValueError, match="some checkpoint-N folders hold an adapter"):
        artent.internal(run=run)
    with pytest.raises(ValueError, match="nor a Trainer output_dir"):
        artent.internal(run=tmp_path)


def test_shortest_distinguishing_suffixes():
    r8 = "runs/tulu-lora-r8/checkpoints/step-000006"
    r2 = "runs/tulu-lora-r2/checkpoints/step-000006"
    assert path_labels([r8, r2]) == ["tulu-lora-r8/step-000006", "tulu-lora-r2/step-000006"]
    assert path_labels(["a/lora", "b/fft"]) == ["lora", "fft"]
    assert path_labels(["x/a/lora", "y/a/lora", "z"]) == ["x/lora", "y/lora", "z"]
    assert assign_labels(["a/lora", "b/lora"], [None, "mine"]) == ["lora", "mine"]
    with pytest.raises(ValueError, match="two inputs have the label 'lora'"):
        assign_labels(["a/lora", "a/lora"])
    with pytest.raises(ValueError, match="a label must be a non-empty string"):
        assign_labels(["a/lora"], [" "])


def test_nohair_labels_models_of_the_same_name_apart(lora_runs, base_folder):
    from artent.analysis.nohair import resolve_specs

    a, b = (str(lora_runs[r] / "checkpoint-6") for r in (2, 8))
    specs = resolve_specs([a, b], str(base_folder))
    assert [s.label for s in specs] == ["base", "out-r2/checkpoint-6", "out-r8/checkpoint-6"]
    specs = resolve_specs([str(lora_runs[2]), b], str(base_folder), ["r2", None])  # run: last
    assert [(s.label, s.path) for s in specs[1:]] == [
        ("r2", str(lora_runs[2] / "checkpoint-6")),
        ("checkpoint-6", b),
    ]
    with pytest.raises(ValueError, match="two inputs have the label"):
        resolve_specs([a, a], str(base_folder))


def test_label_counts_of_external_and_nohair_are_one_line(lora_runs, base_folder, tmp_path, capsys):
    texts = tmp_path / "t.txt"
    texts.write_text(words(1, 40)[0])
    a, b = (str(lora_runs[r]) for r in (2, 8))
    for args in (
        ["external", "--run", a, "--run", b, "--label", "one"],
        ["nohair", a, b, "--base", str(base_folder), "--label", "one"],
    ):
        code = cli_main([*args, "--texts", str(texts), "--out", str(tmp_path / args[0])])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "--label: 1 label(s) for 2 input(s)" in err
        assert not (tmp_path / args[0]).exists()
