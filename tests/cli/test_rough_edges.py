"""The rough edges a new user meets first: each with its independent answer.

No ln r for dense updates; ``profile`` on an adapter (peft's own merge) and on a whole model
(layer/module columns, progress); ``valleys(by=...)`` for every column; ``--log-base``;
``--version``; file permissions; the callback's report naming the model and what each claim needs.
"""

from __future__ import annotations

import copy
import math
import os
import re
import stat
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import artent
import tiny_families
from artent.cli import main as cli_main
from artent.entanglement import entanglement_profile


def tiny_llama(seed: int = 0):
    return tiny_families.tiny_llama(
        seed,
        eval=True,
        hidden_size=32,
        intermediate_size=64,
        vocab_size=64,
        max_position_embeddings=32,
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A base, a perturbed copy (FFT) and a LoRA adapter with random B, with the merged model."""
    import peft

    from artent.models.peft_warnings import peft_quietly

    root = tmp_path_factory.mktemp("rough")
    base = tiny_llama()
    base.save_pretrained(root / "base")
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    tuned.save_pretrained(root / "tuned")
    with peft_quietly():
        lora = peft.get_peft_model(
            copy.deepcopy(base),
            peft.LoraConfig(
                r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False
            ),
        )
    lora.save_pretrained(root / "adapter")
    merged = lora.merge_and_unload()
    return dict(root=root, base=base, merged=merged)


def test_dense_updates_have_no_ln_r(folders, tmp_path, capsys):
    root = folders["root"]
    args = ["internal", "--base", str(root / "base"), "--tuned", str(root / "tuned")]
    assert cli_main([*args, "--adapter", str(root / "adapter"), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = pd.read_parquet(tmp_path / "internal_summary.parquet")
    dense, lora = summary[summary.kind == "dense"], summary[summary.kind == "lora"]
    assert len(dense) == len(lora) == 4
    assert dense.ln_rank.isna().all() and dense.within_bound.isna().all()
    np.testing.assert_allclose(lora.ln_rank, math.log(2), rtol=0, atol=0)
    assert lora.within_bound.astype(bool).all()
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    cells = [c.strip() for c in rows["tuned"].split("│")[1:-1]]
    assert cells[4:6] == ["-", "-"]  # mean ln r, all <= ln r
    cells = [c.strip() for c in rows["adapter"].split("│")[1:-1]]
    assert cells[4:6] == [f"{math.log(2):.3f}", "True"]


def test_profile_of_an_adapter_is_the_merged_update_per_module(folders, tmp_path):
    root = folders["root"]
    out = tmp_path / "a.parquet"
    assert cli_main(["profile", str(root / "adapter"), "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    names = list(dict.fromkeys(frame.tensor))
    assert len(names) == 4 and not any("lora_" in n for n in names)
    assert set(frame.module) == {"q_proj", "v_proj"} and set(frame.layer) == {0, 1}
    for name, g in frame.groupby("tensor"):
        # peft's own merge: W_merged - W_base
        module = folders["merged"].get_submodule(name).weight.detach().double()
        delta = module - folders["base"].get_submodule(name).weight.detach().double()
        want = entanglement_profile(delta.numpy(), method="svd")
        np.testing.assert_allclose(g.sort_values("bond").entropy, want, rtol=0, atol=1e-8)


def test_profile_of_a_fresh_adapter_is_one_line(tmp_path, capsys):
    import peft

    from artent.models.peft_warnings import peft_quietly

    with peft_quietly():
        fresh = peft.get_peft_model(tiny_llama(), peft.LoraConfig(r=2, target_modules=["q_proj"]))
    fresh.save_pretrained(tmp_path / "fresh")
    assert cli_main(["profile", str(tmp_path / "fresh")]) == 2
    err = capsys.readouterr().err.strip()
    assert "every adapted module's update is zero" in err and len(err.splitlines()) == 1


def test_profile_of_a_whole_model_has_layers_modules_and_progress(folders, tmp_path, capsys):
    out = tmp_path / "m.parquet"
    assert cli_main(["profile", str(folders["root"] / "base"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    frame = pd.read_parquet(out)
    q = frame[frame.tensor == "model.layers.1.self_attn.q_proj.weight"]
    assert (q.layer == 1).all() and (q.module == "q_proj").all()
    embed = frame[frame.tensor == "model.embed_tokens.weight"]
    assert embed.layer.isna().all()
    assert frame[frame.tensor == "lm_head.weight"].layer.isna().all()
    assert len(frame.tensor.unique()) == 2 * 7 + 2  # both layers' matrices, embeddings, head
    assert re.search(r"profile base.*16/16", captured.err), captured.err


def test_profile_log_base_and_the_old_base_option(folders, tmp_path, capsys):
    path = str(folders["root"] / "adapter")
    nats, bits, old = (tmp_path / f"{n}.parquet" for n in ("nats", "bits", "old"))
    assert cli_main(["profile", path, "--out", str(nats)]) == 0
    assert cli_main(["profile", path, "--log-base", "2", "--out", str(bits)]) == 0
    assert "--base" not in capsys.readouterr().err
    assert cli_main(["profile", path, "--base", "2", "--out", str(old)]) == 0
    err = capsys.readouterr().err
    assert "--base is now --log-base" in err and len(err.strip().splitlines()) == 1
    n, b, o = (pd.read_parquet(p) for p in (nats, bits, old))
    np.testing.assert_allclose(b.entropy, n.entropy / math.log(2), rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(b, o)
    assert cli_main(["profile", path, "--base", "2", "--log-base", "e"]) == 2
    assert "disagree" in capsys.readouterr().err
    assert cli_main(["profile", path, "--log-base", "10"]) == 2
    assert "--log-base must be 'e' (nats) or '2' (bits)" in capsys.readouterr().err


def test_valleys_by_every_column_it_names(folders):
    from artent.analysis.internal import VALLEY_GROUPS

    root = folders["root"]
    res = artent.internal(base=root / "base", tuned=root / "tuned", adapter=root / "adapter")
    ok = res.summary[res.summary.status == "ok"]
    for column in VALLEY_GROUPS:
        got = res.valleys(by=column)
        assert list(got.columns[:1]) == [column]
        want = ok.groupby(column, sort=False, dropna=False).center_entropy.mean()
        np.testing.assert_allclose(got.center_entropy, want.to_numpy(), rtol=0, atol=1e-15)
        pd.testing.assert_frame_equal(got, res.valleys(by=[column]))
    both = res.valleys(by=("layer", "module"))
    assert len(both) == 4 and (both.updates == 2).all()
    with pytest.raises(ValueError, match="by: no column 'l'"):
        res.valleys(by=["l"])


def test_version_is_the_package_version(capsys):
    assert cli_main(["--version"]) == 0
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert capsys.readouterr().out.strip() == f"artent {project['project']['version']}"
    assert artent.__version__ == project["project"]["version"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_results_and_checkpoints_get_the_umask_permissions(tiny_runs, folders, tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    want = 0o666 & ~mask
    files = [f for f in (tiny_runs["lora"] / "checkpoints").rglob("*") if f.is_file()]
    files += [f for f in (tiny_runs["fft"] / "checkpoints").rglob("*") if f.is_file()]
    assert any(f.suffix == ".safetensors" for f in files)
    assert {f.name: _mode(f) for f in files if _mode(f) != want} == {}
    root = folders["root"]
    assert cli_main(["internal", "--adapter", str(root / "adapter"), "--out", str(tmp_path)]) == 0
    assert {f.name: _mode(f) for f in tmp_path.iterdir() if f.is_file() and _mode(f) != want} == {}


def test_callback_report_names_the_model_and_what_each_claim_needs(tmp_path):
    import peft
    from transformers import LlamaForCausalLM, Trainer, TrainingArguments

    from artent.integrations.transformers import EntanglementCallback
    from artent.report import evaluate_claims, load_study

    tiny_llama().save_pretrained(tmp_path / "base")
    model = peft.get_peft_model(
        LlamaForCausalLM.from_pretrained(tmp_path / "base"),
        peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]),
    )
    ids = torch.randint(0, 64, (8, 12), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": x, "labels": x} for x in ids]
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
        learning_rate=1e-2, report_to="none", save_strategy="no", use_cpu=True,
        disable_tqdm=True,
    )  # fmt: skip
    cb = EntanglementCallback(every=1)
    Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()
    study = load_study(tmp_path / "out")
    assert study.model_name == str(tmp_path / "base")
    claims = evaluate_claims(study)
    on_model = claims[claims.model.str.endswith(("fine-tuned runs", ", base"))]
    assert len(on_model) >= 10 and on_model.model.str.startswith(str(tmp_path / "base")).all()
    unmeasured = claims[claims.reproduced.isna()]
    assert len(unmeasured) >= 5
    for cell in unmeasured.measured:
        reason = cell.removeprefix("not measured: ")
        assert reason != cell and len(reason) > 10, cell
    made_by = unmeasured.measured.str.contains(r"missing \(made by artent \w+", regex=True)
    assert made_by.sum() >= 3, unmeasured.measured.tolist()
