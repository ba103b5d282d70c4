"""The spectral companions of every adapter kind against numpy, and intruders against peft's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_deltas import KINDS, _build_adapter, dense, weight

from artent.analysis.internal import InternalConfig, profile_deltas
from artent.models.deltas import deltas_from_adapter, deltas_from_pair


def _numpy_companions(M: np.ndarray, W: np.ndarray, dW: np.ndarray) -> dict[str, float]:
    s = np.linalg.svd(M, compute_uv=False)
    U = np.linalg.svd(W)[0][:, : min(W.shape)]
    Um = np.linalg.svd(W + dW)[0][:, :10]
    return dict(
        stable_rank=(s**2).sum() / s[0] ** 2,
        relative_norm=np.linalg.norm(dW) / np.linalg.norm(W),
        intruders=float((np.abs(Um.T @ U).max(axis=1) < 0.5).sum()),
    )


def _check(summary, deltas, what):
    assert len(summary) == len(deltas)
    for row, d in zip(summary.itertuples(), deltas, strict=True):
        dW, W = dense(d), d.base.double().numpy()
        M = {"update": dW, "merged": W + dW, "base": W}[what]
        ref = _numpy_companions(M, W, dW)
        assert row.what == what and row.name == d.name
        assert row.stable_rank == pytest.approx(ref["stable_rank"], rel=1e-6)
        assert row.relative_norm == pytest.approx(ref["relative_norm"], rel=1e-6)
        assert row.intruders == ref["intruders"]
        assert np.exp(row.center_entropy) == pytest.approx(row.effective_rank, rel=1e-9)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_companions_of_every_adapter_kind_equal_numpy(tmp_path, base_model, base_dir, kind):
    merged = _build_adapter(base_model, kind, tmp_path)
    deltas = list(deltas_from_adapter(tmp_path, base=base_dir))
    for d in deltas:  # the base the reader hands over is the base checkpoint's weight
        np.testing.assert_array_equal(
            d.base.double().numpy(), weight(base_model.state_dict(), d.name)
        )
        np.testing.assert_allclose(
            d.base.double().numpy() + dense(d), weight(merged, d.name), rtol=0, atol=1e-5
        )
    summaries = {}
    for what in ("update", "merged") if kind in ("lora", "dora") else ("update",):
        _, summaries[what] = profile_deltas(
            deltas, InternalConfig(what=what), label=kind, step=None
        )
        _check(summaries[what], deltas, what)
    if kind not in ("dora", "vera"):  # without the base: ranks still, pair columns unknown
        _, alone = profile_deltas(
            deltas_from_adapter(tmp_path), InternalConfig(), label=kind, step=None
        )
        assert alone.relative_norm.isna().all() and alone.intruders.isna().all()
        np.testing.assert_allclose(alone.stable_rank, summaries["update"].stable_rank, rtol=1e-12)
        with pytest.raises(ValueError, match="what=merged needs the base weights"):
            profile_deltas(
                deltas_from_adapter(tmp_path), InternalConfig(what="merged"), label=kind, step=None
            )


def test_companions_of_a_pair_and_of_the_base(base_dir, tuned_dir):
    deltas = list(deltas_from_pair(base_dir, tuned_dir, modules=["all"], layers=[0]))
    for what in ("update", "base"):
        _, summary = profile_deltas(deltas, InternalConfig(what=what), label="fft", step=None)
        _check(summary, deltas, what)


def test_intruders_equal_peft_reduce_intruder_dimension(base_model):
    import peft
    from peft.tuners.lora.intruders import reduce_intruder_dimension

    from artent.models.deltas.live import find_targets, live_deltas

    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
    model = peft.get_peft_model(copy.deepcopy(base_model), config)
    generator = torch.Generator().manual_seed(5)
    scales = iter([1e-3, 0.3, 3.0] * 4)  # per module: from no intruders to several
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_A" in name:
                param.copy_(torch.randn(param.shape, generator=generator))
            elif "lora_B" in name:
                param.copy_(next(scales) * torch.randn(param.shape, generator=generator))
    targets = find_targets(model, ["q_proj", "v_proj", "up_proj"])
    _, summary = profile_deltas(live_deltas(targets), InternalConfig(), label="lora", step=None)
    ours = dict(zip(summary.name, summary.intruders.astype(int), strict=True))

    said: list[str] = []
    reduce_intruder_dimension(model, logging_sink=said.append)
    theirs = {}
    for line in said:
        name, _, what = line.partition(": ")
        if what == "No intruders":
            theirs[name.removeprefix("base_model.model.")] = 0
        elif what.startswith("Intruders: "):
            theirs[name.removeprefix("base_model.model.")] = int(what.split()[-1])
    assert theirs == ours
    assert min(ours.values()) == 0 and max(ours.values()) >= 2  # both cases are exercised


def test_factored_updates_stay_factored_and_orders_agree(tmp_path, base_model, monkeypatch):
    from artent.entanglement.profile import LowRank

    _build_adapter(base_model, "lora", tmp_path)
    deltas = list(deltas_from_adapter(tmp_path, modules=["q_proj"]))  # 64 x 64: both orders
    _, sequential = profile_deltas(deltas, InternalConfig(), label="a", step=None)

    def refuse(self):
        raise AssertionError("a factored update was formed m x n")

    monkeypatch.setattr(LowRank, "to_dense", refuse)
    _, again = profile_deltas(deltas, InternalConfig(), label="a", step=None)
    cfg = InternalConfig(order="interleaved")
    monkeypatch.undo()  # the interleaved profile forms LowRank densely (documented fallback)
    _, interleaved = profile_deltas(deltas, cfg, label="a", step=None)
    for col in ("effective_rank", "roy_vetterli_rank", "stable_rank"):
        np.testing.assert_array_equal(again[col], sequential[col])
        np.testing.assert_allclose(interleaved[col], sequential[col], rtol=1e-9)
