"""Fine-tuning runs on the small tiny model: losses fall, adapters reload, runs resume."""

from __future__ import annotations

import json
from math import log

import numpy as np
import pandas as pd
import pytest
import torch

from artent import LowRank, entanglement_profile
from artent.cli import main as cli_main
from artent.training.config import TrainConfig
from artent.training.loop import RunFinished, train


def config(small_tiny, out, **kw) -> TrainConfig:
    opts = dict(
        model=str(small_tiny),
        out=str(out),
        steps=20,
        batch_size=8,
        seq_len=256,
        lr=3e-3,
        rank=4,
        chi=2,
        save_steps=[0, 10, 20],
        eval_every=10,
        eval_batches=4,
        n_synthetic=300,
        progress=False,
    )
    opts.update(kw)
    return TrainConfig(**opts)


def heldout(run) -> pd.DataFrame:
    df = pd.read_parquet(run / "losses.parquet")
    return df[df.split == "heldout"].set_index("step").loss


@pytest.mark.parametrize("data", ["synthetic-tulu", "synthetic-openthoughts"])
@pytest.mark.parametrize("method,lr", [("lora", 5e-3), ("mps", 5e-3), ("fft", 1e-3)])
def test_every_method_lowers_heldout_loss_on_both_formats(small_tiny, tmp_path, method, lr, data):
    run = train(config(small_tiny, tmp_path / "run", method=method, data=data, lr=lr))
    loss = heldout(run)
    assert loss.loc[20] < loss.loc[0] - 0.02, f"{method} on {data}: {loss.to_dict()}"
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["method"] == method and "torch" in record["versions"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-000000",
        "step-000010",
        "step-000020",
    ]
    assert (run / "DONE").is_file()


@pytest.mark.parametrize("method", ["lora", "mps"])
def test_saved_adapter_reloads_through_peft_with_identical_logits(small_tiny, tmp_path, method):
    from peft import PeftModel

    import artent.adapters.mps  # noqa: F401  (registers the mps method with peft)
    from artent.models.tiny import load_tiny
    from artent.training.loop import prepare

    cfg = config(small_tiny, tmp_path / "run", method=method, steps=10, save_steps=[10])
    run = train(cfg)
    trained, _, data, _ = prepare(cfg)  # a fresh base with the adapter at init ...
    from artent.training.methods import load_checkpoint_weights

    load_checkpoint_weights(trained, cfg, run / "checkpoints" / "step-000010")  # ... then loaded
    base, _ = load_tiny(small_tiny)
    reloaded = PeftModel.from_pretrained(base, run / "checkpoints" / "step-000010").eval()
    trained.eval()
    ids = data.input_ids[:2]
    with torch.no_grad():
        a, b = trained(input_ids=ids).logits, reloaded(input_ids=ids).logits
    assert torch.equal(a, b)
    base_only, _ = load_tiny(small_tiny)
    with torch.no_grad():
        assert not torch.allclose(a, base_only(input_ids=ids).logits)  # the adapter did something


def test_mps_update_has_schmidt_rank_at_most_r_and_chi(small_tiny, tmp_path):
    from artent.training.loop import prepare
    from artent.training.methods import load_checkpoint_weights

    cfg = config(
        small_tiny, tmp_path / "run", method="mps", rank=4, chi=2, steps=10, save_steps=[10]
    )
    run = train(cfg)
    model, _, _, _ = prepare(cfg)
    load_checkpoint_weights(model, cfg, run / "checkpoints" / "step-000010")
    layers = [m for m in model.modules() if hasattr(m, "factors") and hasattr(m, "cores")]
    assert len(layers) == 4  # q_proj and v_proj of 2 layers
    for layer in layers:
        B, G1, G2, scale = (t.detach().double() if torch.is_tensor(t) else t for t in layer.cores())
        r, n1, _ = G1.shape
        n2 = G2.shape[1]
        # A_MPS from the cores in float64 (float32 rounding would blur the exact ranks)
        A_mps = torch.einsum("kic,cj->kij", G1, G2).reshape(r, n1 * n2)
        torch.testing.assert_close(A_mps.float(), layer.factors()[1].detach(), atol=1e-6, rtol=1e-4)
        m = B.shape[0]
        row_dims = [2] * int(np.log2(m))
        # Renyi-0 is the log of the Schmidt rank: bond a is the row|column cut, bond a+1 is n1|n2
        s0 = entanglement_profile(LowRank(B, A_mps, scale), (row_dims, [n1, n2]), renyi=0)
        a = len(row_dims)
        assert s0[a - 1] <= log(4) + 1e-12
        assert s0[a] <= log(2) + 1e-12
        dense = (scale * B @ A_mps).numpy()
        assert np.linalg.matrix_rank(dense.reshape(m * n1, n2)) <= 2


def test_interrupted_run_resumes_to_the_same_losses(small_tiny, tmp_path, monkeypatch):
    import artent.training.loop as loop

    straight = train(
        config(
            small_tiny,
            tmp_path / "straight",
            method="lora",
            steps=12,
            save_steps=[0, 6, 12],
            dropout=0.1,
        )
    )
    cfg = config(
        small_tiny,
        tmp_path / "interrupted",
        method="lora",
        steps=12,
        save_steps=[0, 6, 12],
        dropout=0.1,
    )
    real_lr_at = loop.lr_at

    def crash_at_step_8(c, step):
        if step == 8:
            raise KeyboardInterrupt
        return real_lr_at(c, step)

    monkeypatch.setattr(loop, "lr_at", crash_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    assert not (tmp_path / "interrupted" / "DONE").exists()
    monkeypatch.setattr(loop, "lr_at", real_lr_at)
    resumed = train(cfg)
    a, b = (pd.read_parquet(r / "losses.parquet") for r in (straight, resumed))
    a, b = (d[d.split == "train"].set_index("step").loss for d in (a, b))
    np.testing.assert_allclose(b.values, a.values, rtol=1e-5)
    assert json.loads((resumed / "run.json").read_text())["resumed_at"] == [6]
    with pytest.raises(RunFinished):
        train(cfg)  # a finished run is not redone


def test_bf16_autocast_trains_close_to_fp32(small_tiny, tmp_path):
    fp32 = train(config(small_tiny, tmp_path / "fp32", method="lora", lr=5e-3, device="cpu"))
    bf16 = train(config(small_tiny, tmp_path / "bf16", method="lora", lr=5e-3, precision="bf16"))
    a, b = heldout(fp32), heldout(bf16)
    assert b.loc[20] < b.loc[0] - 0.02  # it learns
    # autocast is on (the losses are not float32's) and close to float32's
    assert not np.allclose(a.values, b.values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b.values, a.values, atol=0.05)
    assert json.loads((bf16 / "run.json").read_text())["config"]["precision"] == "bf16"
    # the saved weights stay float32
    from safetensors import safe_open

    f = next((bf16 / "checkpoints" / "step-000020").glob("*.safetensors"))
    with safe_open(str(f), "pt") as h:
        assert {h.get_tensor(k).dtype for k in h.keys()} == {torch.float32}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "case,args,match",
    [
        ("neither format", ["--data", "{bad}"], "columns"),
        ("missing column", ["--data", "{missing}"], "row"),
        ("empty file", ["--data", "{empty}"], "empty"),
        ("no such target", ["--targets", "q_proj,wq"], "no linear module named 'wq'"),
        ("rank 0", ["--rank", "0"], "rank must be a positive integer"),
        ("seq-len below the prompt", ["--seq-len", "4"], "seq_len"),
        ("unknown precision", ["--precision", "fp8"], "option precision must be one of"),
        ("unknown device", ["--device", "gpu0"], "option device must be"),
        pytest.param(
            "absent GPU",
            ["--device", "cuda"],
            "torch sees no cuda device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
    ],
)
def test_bad_input_is_one_clear_error_and_no_run_folder(
    small_tiny, tmp_path, capsys, case, args, match
):
    files = {
        "bad": _write_jsonl(tmp_path / "bad.jsonl", [{"text": "hello"}]),
        "missing": _write_jsonl(
            tmp_path / "missing.jsonl",
            [
                {
                    "messages": [
                        {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "yo"},
                    ]
                },
                {"id": 3},
            ],
        ),
        "empty": tmp_path / "empty.jsonl",
    }
    files["empty"].write_text("")
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    out = tmp_path / "run"
    code = cli_main(
        [
            "train",
            "--model",
            str(small_tiny),
            "--out",
            str(out),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--seq-len",
            "256",
            "--data",
            "synthetic-tulu",
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert match in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not out.exists()


def test_config_file_and_finished_run_via_cli(small_tiny, tmp_path, capsys):
    cfg_file = tmp_path / "run.yaml"
    out = tmp_path / "run"
    cfg_file.write_text(
        f"method: lora\nmodel: {small_tiny}\ndata: synthetic-tulu\nout: {out}\nsteps: 4\n"
        "batch-size: 4\nseq-len: 256\nsave-steps: [0, 4]\nn-synthetic: 300\nprogress: false\n"
    )
    assert cli_main(["train", "--config", str(cfg_file), "--rank", "2"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["rank"] == 2 and record["config"]["steps"] == 4
    assert cli_main(["train", "--config", str(cfg_file), "--rank", "2"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert cli_main(["train", "--config", str(cfg_file), "--rank", "3"]) == 2  # other config
