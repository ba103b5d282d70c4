"""The EntanglementCallback claims and locks its folder like every command (folders.claim)."""

from __future__ import annotations

import json

import pytest
from reliability_helpers import snapshot

from artent.integrations.transformers import EntanglementCallback
from tiny_families import tiny_llama


def _peft_model():
    import peft

    model = tiny_llama(
        0,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        vocab_size=64,
        max_position_embeddings=32,
    )
    return peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj"]))


def _begin(cb, out_dir, model):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(output_dir=str(out_dir), report_to="none", use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control, model=model)
    return args, state, control


@pytest.mark.parametrize(
    "files, message",
    [
        ({"run.json": json.dumps({"command": "train"}), "losses.parquet": "x"}, "artent train"),
        ({"run.json": json.dumps({"command": "internal"}), "internal.parquet": "x"}, "internal"),
        ({"study.json": "{}", "report.html": "<html>"}, "artent demo"),
        ({"internal_summary.parquet": "not ours"}, "internal_summary.parquet"),
    ],
)
def test_the_callback_never_writes_into_a_folder_it_does_not_own(tmp_path, files, message):
    folder = tmp_path / "other"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    before = snapshot(folder)
    cb = EntanglementCallback(every=1, modules="q_proj", out_dir=folder)
    with pytest.raises(ValueError, match="^EntanglementCallback: out_dir ") as info:
        _begin(cb, tmp_path / "trainer", _peft_model())
    assert message in str(info.value) and str(folder) in str(info.value)
    assert "\n" not in str(info.value)
    assert snapshot(folder) == before
    assert not (folder / ".artent.lock").exists()


def test_the_callback_locks_its_folder_until_the_training_ends(tmp_path):
    model = _peft_model()
    folder = tmp_path / "trainer" / "artent"
    first = EntanglementCallback(every=1, modules="q_proj")
    args, state, control = _begin(first, tmp_path / "trainer", model)
    lock = folder / ".artent.lock"
    assert lock.read_text().strip().isdigit()
    second = EntanglementCallback(every=1, modules="q_proj")
    with pytest.raises(ValueError, match="another artent process .* is writing this folder"):
        _begin(second, tmp_path / "trainer", model)
    first.on_train_end(args, state, control, model=model)
    assert not lock.exists()
    # its own folder again: accepted (a resumed or repeated training)
    args, state, control = _begin(second, tmp_path / "trainer", model)
    second.on_train_end(args, state, control, model=model)
    assert json.loads((folder / "run.json").read_text())["command"] == "callback"
