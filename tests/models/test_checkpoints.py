"""Checkpoint reading: single files, folders, shards, pickles, corrupt files, module naming."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from artent.models.checkpoints import CheckpointError, open_checkpoint, parse_module_key


@pytest.fixture
def tensors():
    generator = torch.Generator().manual_seed(0)
    return {
        "model.layers.0.self_attn.q_proj.weight": torch.randn(8, 4, generator=generator),
        "model.layers.1.self_attn.q_proj.weight": torch.randn(8, 4, generator=generator),
        "model.norm.weight": torch.randn(4, generator=generator),
    }


def _assert_same(ckpt, state_dict):
    assert ckpt.keys() == sorted(state_dict)
    for key, value in state_dict.items():
        assert ckpt.shape(key) == tuple(value.shape)
        got = ckpt.get(key)
        assert got.dtype == torch.float32 and got.device.type == "cpu"
        torch.testing.assert_close(got, value.float(), rtol=0, atol=0)


def test_single_file_and_folder_forms_read_every_tensor(tmp_path, tensors):
    save_file(tensors, tmp_path / "model.safetensors")
    _assert_same(open_checkpoint(tmp_path / "model.safetensors"), tensors)
    _assert_same(open_checkpoint(tmp_path), tensors)
    assert "model.norm.weight" in open_checkpoint(tmp_path)


def test_sharded_checkpoint_matches_the_model(tuned_model, tuned_sharded_dir):
    shards = sorted(tuned_sharded_dir.glob("*.safetensors"))
    assert (tuned_sharded_dir / "model.safetensors.index.json").is_file() and len(shards) > 2
    ckpt = open_checkpoint(tuned_sharded_dir)
    state_dict = tuned_model.state_dict()
    assert ckpt.keys() == sorted(state_dict)
    assert len({ckpt.file_of(k) for k in ckpt.keys()}) == len(shards)
    for key in ckpt.keys():
        torch.testing.assert_close(ckpt.get(key), state_dict[key], rtol=0, atol=0)
    # The index file itself is accepted too.
    assert open_checkpoint(tuned_sharded_dir / "model.safetensors.index.json").keys() == ckpt.keys()


def test_low_precision_is_upcast_and_float64_kept(tmp_path, tensors):
    save_file({k: v.to(torch.bfloat16) for k, v in tensors.items()}, tmp_path / "bf16.safetensors")
    save_file({k: v.to(torch.float16) for k, v in tensors.items()}, tmp_path / "f16.safetensors")
    save_file({k: v.double() for k, v in tensors.items()}, tmp_path / "f64.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    for name, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        ckpt = open_checkpoint(tmp_path / f"{name}.safetensors")
        assert ckpt.dtype(key) == dtype
        got = ckpt.get(key)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, tensors[key].to(dtype).float(), rtol=0, atol=0)
    got = open_checkpoint(tmp_path / "f64.safetensors").get(key)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, tensors[key].double(), rtol=0, atol=0)


def test_non_float_tensor_is_refused(tmp_path):
    save_file({"q.weight": torch.ones(2, 2, dtype=torch.int8)}, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"'q\.weight'.*int8"):
        open_checkpoint(tmp_path / "m.safetensors").get("q.weight")


@pytest.mark.parametrize("name", ["pytorch_model.bin", "adapter_model.bin", "weights.pt"])
def test_pickle_needs_allow_pickle(tmp_path, tensors, name):
    torch.save(tensors, tmp_path / name)
    for target in (tmp_path, tmp_path / name):
        with pytest.raises(CheckpointError, match=rf"{name}.*allow_pickle=True"):
            open_checkpoint(target)
    _assert_same(open_checkpoint(tmp_path / name, allow_pickle=True), tensors)
    _assert_same(open_checkpoint(tmp_path, allow_pickle=True), tensors)


def test_pickle_refuses_arbitrary_objects(tmp_path):
    torch.save({"w": torch.ones(2), "obj": object}, tmp_path / "model.bin")
    with pytest.raises(CheckpointError, match="model.bin"):
        open_checkpoint(tmp_path / "model.bin", allow_pickle=True)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_safetensors_names_the_file(tmp_path, tensors, damage):
    path = tmp_path / "model.safetensors"
    save_file(tensors, path)
    data = path.read_bytes()
    blob = {
        "truncated": data[: len(data) - 40],
        "garbage": bytes(range(256)) * 8,
        "empty": b"",
    }[damage]
    path.write_bytes(blob)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        open_checkpoint(tmp_path)


def test_index_errors(tmp_path, tensors):
    save_file(tensors, tmp_path / "shard-1.safetensors")
    index = {"weight_map": {k: "shard-1.safetensors" for k in tensors}}
    index["weight_map"]["extra.weight"] = "shard-1.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"'extra\.weight'.*shard-1"):
        open_checkpoint(tmp_path)
    index["weight_map"]["extra.weight"] = "shard-2.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="shard-2.safetensors is missing"):
        open_checkpoint(tmp_path)


def test_unindexed_files_are_merged_and_duplicates_refused(tmp_path, tensors):
    keys = sorted(tensors)
    save_file({k: tensors[k] for k in keys[:2]}, tmp_path / "a.safetensors")
    save_file({k: tensors[k] for k in keys[2:]}, tmp_path / "b.safetensors")
    _assert_same(open_checkpoint(tmp_path), tensors)
    save_file({keys[0]: tensors[keys[0]]}, tmp_path / "c.safetensors")
    with pytest.raises(CheckpointError, match="stored twice"):
        open_checkpoint(tmp_path)


def test_missing_things(tmp_path, tensors):
    with pytest.raises(CheckpointError, match="does not exist"):
        open_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        open_checkpoint(tmp_path)
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="no tensor 'lm_head.weight'"):
        open_checkpoint(tmp_path).get("lm_head.weight")


def test_parse_module_key():
    assert parse_module_key("model.layers.3.self_attn.q_proj.weight") == (3, "q_proj")
    assert parse_module_key("model.layers.12.mlp.down_proj.weight") == (12, "down_proj")
    assert parse_module_key("transformer.h.7.attn.c_attn.weight") == (7, "c_attn")
    assert parse_module_key("lm_head.weight") == (None, "lm_head")
    assert parse_module_key("model.layers.3.self_attn.q_proj.bias") is None
    assert parse_module_key("model.layers.3.self_attn.rotary_emb.inv_freq") is None
