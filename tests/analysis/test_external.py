"""External analysis: tables against entanglement_profile, fit_cardy and rmt, same matrices."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from artent.analysis.external import ExternalConfig, plot_external, run_external
from artent.analysis.external.measure import _score_std_sums
from artent.data.corpus import corpus_windows
from artent.entanglement import compare_laws, entanglement_profile, fit_cardy
from artent.entanglement.rmt import random_attention, random_attention_profile
from artent.models.attention import attention_maps
from tiny_families import tiny_llama

WORDS = [f"w{i}" for i in range(60)]
SEQ = 16


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[BOS]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="[BOS]", unk_token="[UNK]")


@pytest.fixture(scope="module")
def model():
    return tiny_llama(0, eval=True, initializer_range=0.2)


@pytest.fixture(scope="module")
def texts():
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=n)) for n in (20, 15, 30)]


@pytest.fixture(scope="module")
def cfg():
    # window_start none: these tests check the measurement on the stream cut by hand below
    return ExternalConfig(
        seq_len=SEQ,
        n_texts=3,
        baseline_samples=3,
        baseline_betas=(1.0,),
        batch_size=2,
        window_start="none",
    )


@pytest.fixture(scope="module")
def tables(model, tokenizer, texts, cfg):
    return run_external(model, tokenizer, texts, cfg, step=10, label="base")


@pytest.fixture(scope="module")
def ids(texts):
    # By hand: BOS, then the documents' word ids joined by the separator (this tokenizer has
    # neither sep nor eos, so BOS), cut into windows of SEQ: 1 + 20 + 1 + 15 + 1 + 30 = 68 tokens.
    stream = [1]
    for i, text in enumerate(texts):
        stream += ([1] if i else []) + [WORDS.index(w) + 2 for w in text.split()]
    assert len(stream) == 68
    return torch.tensor(stream[: 3 * SEQ]).reshape(3, SEQ)


def test_windows_are_cut_from_the_joined_stream(tokenizer, texts, ids):
    got = corpus_windows(tokenizer, texts, SEQ, 3, start="none")
    assert torch.equal(got.ids, ids) and got.note is None
    every = corpus_windows(tokenizer, texts, SEQ, 5, start="none")  # the corpus has 4 windows
    assert every.ids.shape == (4, SEQ) and torch.equal(every.ids[:3], ids)
    assert every.note == (
        "texts=texts: 68 tokens make 4 window(s) of 16 tokens, fewer than n_texts=5; using 4"
    )


def test_corpus_shorter_than_a_window_is_an_error_with_its_token_count(model, tokenizer, cfg):
    with pytest.raises(
        ValueError, match=r"^texts=texts: the corpus has 4 tokens, fewer than one window of "
    ):
        run_external(model, tokenizer, ["w1 w2 w3"], cfg)


def test_fewer_windows_than_asked_are_used_and_noted(model, tokenizer, texts):
    notes = []
    few = ExternalConfig(
        seq_len=SEQ, n_texts=9, baseline_samples=1, scaling_lengths=(SEQ,), window_start="none"
    )
    got = run_external(model, tokenizer, texts, few, notify=notes.append)
    assert len(notes) == 1 and "fewer than n_texts=9; using 4" in notes[0]
    assert got["external"]["T"].eq(SEQ).all()
    with pytest.warns(UserWarning, match="using 4"):
        run_external(model, tokenizer, texts, few)


def test_profile_rows_equal_entanglement_profile_per_text(tables, model, ids):
    ext = tables["external"]
    A = attention_maps(model, ids).double()
    n_bonds = {"sequential": 7, "interleaved": 7}
    assert len(ext) == 2 * 4 * 2 * 2 * 7
    for layer, head in [(0, 1), (1, 3)]:
        for encoding in ("amplitude", "born"):
            for order in ("sequential", "interleaved"):
                mats = A[layer, :, head]
                mats = mats if encoding == "amplitude" else mats.sqrt()
                per_text = np.array([entanglement_profile(m.numpy(), order=order) for m in mats])
                rows = ext[
                    (ext.layer == layer)
                    & (ext["head"] == head)
                    & (ext.encoding == encoding)
                    & (ext.order == order)
                ].sort_values("bond")
                assert list(rows.bond) == list(range(1, n_bonds[order] + 1))
                np.testing.assert_allclose(rows.entropy, per_text.mean(0), atol=1e-9, rtol=0)
                np.testing.assert_allclose(rows["std"], per_text.std(0, ddof=1), atol=1e-9)
    assert set(ext.step) == {10} and set(ext.label) == {"base"}


def test_summary_is_the_cardy_fit_of_the_mean_profile(tables):
    ext, summary = tables["external"], tables["external_summary"]
    assert len(summary) == 2 * 4 * 4
    for row in summary.itertuples():
        prof = (
            ext[
                (ext.layer == row.layer)
                & (ext["head"] == row.head)
                & (ext.encoding == row.encoding)
                & (ext.order == row.order)
            ]
            .sort_values("bond")["entropy"]
            .to_numpy()
        )
        fit = fit_cardy(prof, "periodic")
        assert row.c == pytest.approx(fit.c, abs=1e-12)
        assert row.c0 == pytest.approx(fit.c0, abs=1e-12)
        assert row.r2 == pytest.approx(fit.r2, abs=1e-12)
        assert row.law == compare_laws(prof).best
        assert row.center_entropy == prof[3]  # bond 4 of 7: the row|column cut of 16 x 16
        assert row.beta_fit > 0


def test_scaling_is_the_cut_entropy_of_attention_at_each_length(tables, model, ids):
    scal, ext = tables["scaling"], tables["external"]
    assert sorted(scal["T"].unique()) == [8, 16]
    np.testing.assert_allclose(scal.ln_T, np.log(scal["T"]))
    A8 = attention_maps(model, ids[:, :8]).double()
    # Causality: attention on the first 8 tokens is the leading block of attention on 16 (up to
    # float32 rounding), which is what the analysis profiles for a causal model.
    A16 = attention_maps(model, ids).double()
    torch.testing.assert_close(A8, A16[..., :8, :8], atol=1e-5, rtol=0)
    for layer, head in [(0, 0), (1, 2)]:
        for encoding in ("amplitude", "born"):
            mats = A16[layer, :, head, :8, :8]
            mats = mats if encoding == "amplitude" else mats.sqrt()
            cut = [entanglement_profile(m.numpy())[2] for m in mats]  # 8 = [2,2,2] | [2,2,2]
            short = A8[layer, :, head] if encoding == "amplitude" else A8[layer, :, head].sqrt()
            by_forward = [entanglement_profile(m.numpy())[2] for m in short]
            got = scal[
                (scal.layer == layer) & (scal["head"] == head) & (scal.encoding == encoding)
            ].set_index("T")
            assert got.loc[8, "cut_entropy"] == pytest.approx(np.mean(cut), abs=1e-9)
            assert got.loc[8, "cut_entropy"] == pytest.approx(np.mean(by_forward), abs=1e-4)
            seq = ext[
                (ext.layer == layer)
                & (ext["head"] == head)
                & (ext.encoding == encoding)
                & (ext.order == "sequential")
                & (ext.bond == 4)
            ]
            assert got.loc[16, "cut_entropy"] == pytest.approx(seq.entropy.item(), abs=1e-9)


def test_baseline_is_random_attention_of_the_same_length(tables, cfg):
    base = tables["baseline"]
    assert set(base.beta_source) == {"grid", "fitted"}
    fitted = np.median(tables["external_summary"].groupby(["layer", "head"]).beta_fit.first())
    assert base[base.beta_source == "fitted"].beta.unique() == pytest.approx([fitted])
    for encoding in ("amplitude", "born"):
        want = random_attention_profile(SEQ, 1.0, samples=3, seed=cfg.seed, encoding=encoding)
        rows = base[
            (base.encoding == encoding)
            & (base.order == "sequential")
            & (base.beta_source == "grid")
        ]
        np.testing.assert_allclose(rows.entropy, want.mean, atol=1e-9)
        assert rows.c.iloc[0] == pytest.approx(want.c, abs=1e-9)
        # Interleaved: the same three draws, profiled in the other site order.
        rng = np.random.default_rng(cfg.seed)
        mats = [random_attention(SEQ, 1.0, rng=rng) for _ in range(3)]
        mats = mats if encoding == "amplitude" else [np.sqrt(m) for m in mats]
        inter = np.mean([entanglement_profile(m, order="interleaved") for m in mats], axis=0)
        rows = base[
            (base.encoding == encoding)
            & (base.order == "interleaved")
            & (base.beta_source == "grid")
        ]
        np.testing.assert_allclose(rows.entropy, inter, atol=1e-9)
        assert rows.c.iloc[0] == pytest.approx(fit_cardy(inter).c, abs=1e-9)


def test_fitted_beta_recovers_the_temperature_of_random_attention():
    rng = np.random.default_rng(5)
    for beta in (0.7, 2.5):
        mats = np.stack([random_attention(64, beta, rng=rng) for _ in range(6)])
        var_sum, rows = _score_std_sums(torch.from_numpy(mats))  # per matrix
        assert rows.shape == (6,) and rows.sum() == 6 * 63
        assert math.sqrt(var_sum.sum() / rows.sum()) == pytest.approx(beta, rel=0.03)


def test_config_validation():
    with pytest.raises(ValueError, match="seq_len=17"):
        ExternalConfig(seq_len=17)
    with pytest.raises(ValueError, match="encodings="):
        ExternalConfig(encodings=("amplitude", "phase"))
    with pytest.raises(ValueError, match="scaling_lengths="):
        ExternalConfig(seq_len=16, scaling_lengths=(8, 32))
    assert ExternalConfig(seq_len=64).scaling_lengths == (8, 16, 32, 64)
    assert ExternalConfig(seq_len=96).scaling_lengths == (8, 16, 32, 64)
    assert ExternalConfig(seq_len=4).scaling_lengths == (4,)


def test_plot_writes_a_png_for_one_run_and_for_several(tables, tmp_path):
    path = plot_external(tables, tmp_path / "sub" / "external.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["external.png"]  # no temporary left
    # Checkpoints concatenated, as the CLI does (one of them without a step).
    other = {k: v.assign(step=None, label="tuned") for k, v in tables.items()}
    merged = {k: pd.concat([tables[k], other[k]], ignore_index=True) for k in tables}
    data = plot_external(merged, tmp_path / "several.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_small_memory_bounds_give_the_same_tables(
    model, tokenizer, texts, cfg, tables, monkeypatch
):
    """One window per forward pass and one 16 x 16 matrix's worth of elements per profile call:
    the same numbers."""
    import dataclasses

    from artent.analysis.external import measure

    batches, chunks = [], []
    original_profiles = measure.batched_matrix_profiles

    def spy_profiles(x, **kwargs):
        chunks.append(x.numel())
        return original_profiles(x, **kwargs)

    from artent.models import attention as attention_module

    original_read = attention_module.read_attention

    def spy_read(model_, ids, on_layer, **kwargs):
        batches.append(ids.shape[0])
        return original_read(model_, ids, on_layer, **kwargs)

    from artent.analysis.external import baseline

    monkeypatch.setattr(measure, "batched_matrix_profiles", spy_profiles)
    monkeypatch.setattr(baseline, "batched_matrix_profiles", spy_profiles)  # the baseline too
    monkeypatch.setattr(attention_module, "read_attention", spy_read)
    small = dataclasses.replace(  # 4 heads: 1 window a pass, one map a chunk
        cfg, max_map_elements=4 * SEQ * SEQ, profile_chunk_elements=SEQ * SEQ
    )
    got = run_external(model, tokenizer, texts, small, step=10, label="base")
    assert max(batches) == 1 and max(chunks) == SEQ * SEQ
    for name in ("external", "external_summary", "scaling", "baseline", "scaling_baseline"):
        pd.testing.assert_frame_equal(got[name], tables[name], check_exact=False, atol=1e-12)
