"""External artificial entanglement: the entanglement profiles of a model's attention matrices.

METHOD.md section 4. For every layer and head the attention matrix ``A`` (``T x T``, causal, rows
summing to one) of each text is read as a state (``amplitude``: ``A / ||A||_F``; ``born``:
``sqrt(A) / sqrt(T)``, whose squared amplitudes are the attention probabilities over ``T``), its
sites are the prime factors of ``T`` on each side (qubits for a power of two), in ``sequential``
and ``interleaved`` order, and its exact profile is taken.

Averaging: the profile is taken *per text* and then averaged over the texts (the ``entropy``
column is that mean, ``std`` the spread across texts, ``ddof=1``). Profiling the text-averaged
matrix instead would report the entanglement of a mixture no single input produces, and it lowers
the volume of the profile by smoothing; per text is the honest order of operations. The Cardy fit
(``c``, ``c0``, ``r2``), the law comparison and ``center_entropy`` of ``external_summary`` are
those of the mean profile.

Beyond METHOD.md: ``beta_fit`` estimates each head's inverse temperature as the RMS, over query
rows (and texts), of the standard deviation of ``ln A[i, j]`` over the keys ``j <= i``. For
``softmax(beta * G)`` with Gaussian scores this is ``beta`` exactly in expectation (the log-weights
are the scores less a per-row constant), so the random-attention baseline is drawn at the median
``beta_fit`` of the model (``beta_source = "fitted"``) besides a fixed grid of betas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artent.entanglement.batched import batched_profiles
from artent.entanglement.fits import compare_laws, fit_cardy
from artent.entanglement.rmt import ENCODINGS, random_attention, random_attention_profile
from artent.entanglement.sites import ORDERS, matrix_layout, prime_factors
from artent.validation import check_device, check_fields, flag

__all__ = ["ExternalConfig", "plot_external", "run_external", "tokenize_texts"]

BOUNDARIES = ("periodic", "open")


@dataclass
class ExternalConfig:
    """Options of the external (attention) analysis.

    Args:
        seq_len: tokens per text ``T`` (the first ``T`` of each); at least two prime factors
            (``T = 64`` is 12 qubits) so that every chain has three bonds or more.
        encodings: ``"amplitude"`` (``A`` itself) and/or ``"born"`` (``sqrt(A)``).
        orders: ``"sequential"`` (row sites, then column sites) and/or ``"interleaved"``.
        n_texts: how many texts to use (the first ones); ``None`` uses all given.
        boundary: Cardy form, ``"periodic"`` or ``"open"``.
        device: torch device of the profile computation; ``None`` computes where the attention
            maps are (the model's device).
        baseline_samples: random attention matrices per baseline beta.
        baseline_betas: inverse temperatures of the random-attention baseline grid (a fitted
            beta is added to them).
        seed: seed of the baseline samples.
        scaling_lengths: lengths ``T`` of the cut-entropy scaling; ``None`` means the powers of
            two from 8 to ``seq_len`` (``[seq_len]`` when ``seq_len < 8``).
        batch_size: texts per forward pass.
    """

    seq_len: int = 64
    encodings: tuple[str, ...] = ("amplitude", "born")
    orders: tuple[str, ...] = ("sequential", "interleaved")
    n_texts: int | None = 8
    boundary: str = "periodic"
    device: str | None = None
    baseline_samples: int = 16
    baseline_betas: tuple[float, ...] = field(default=(0.5, 1.0, 2.0, 4.0))
    seed: int = 0
    scaling_lengths: tuple[int, ...] | None = None
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_fields(self, flag)
        if self.device is not None:
            check_device(self.device, "--device")
        self.seq_len = _positive_int(self.seq_len, "--seq-len")
        if len(prime_factors(self.seq_len)) < 2:
            raise ValueError(
                f"--seq-len {self.seq_len}: needs at least two prime factors (e.g. a power of two "
                ">= 4) so that an attention profile has three bonds to fit"
            )
        self.encodings = _choices(self.encodings, ENCODINGS, "--encodings")
        self.orders = _choices(self.orders, ORDERS, "--orders")
        if self.n_texts is not None:
            self.n_texts = _positive_int(self.n_texts, "--n-texts")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"--boundary: expected one of {BOUNDARIES}, got {self.boundary!r}")
        self.baseline_samples = _positive_int(self.baseline_samples, "--baseline-samples")
        betas = tuple(float(b) for b in self.baseline_betas)
        if not all(math.isfinite(b) and b >= 0 for b in betas):
            raise ValueError(f"--baseline-betas: expected finite numbers >= 0, got {betas}")
        self.baseline_betas = betas
        if self.scaling_lengths is None:
            lengths = [2**k for k in range(3, self.seq_len.bit_length()) if 2**k <= self.seq_len]
            self.scaling_lengths = tuple(lengths) or (self.seq_len,)
        else:
            lengths = sorted({_positive_int(t, "--scaling-lengths") for t in self.scaling_lengths})
            if not lengths or lengths[0] < 2 or lengths[-1] > self.seq_len:
                raise ValueError(
                    f"--scaling-lengths: expected lengths in 2..{self.seq_len} (--seq-len), "
                    f"got {list(self.scaling_lengths)}"
                )
            self.scaling_lengths = tuple(lengths)
        self.batch_size = _positive_int(self.batch_size, "--batch-size")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _choices(values: Any, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        raise ValueError(f"{name}: expected a non-empty subset of {allowed}, got {list(values)}")
    return tuple(dict.fromkeys(values))


def tokenize_texts(tokenizer: Any, texts: list[str], seq_len: int, n_texts: int | None = None):
    """The first ``seq_len`` token ids of each text, as a ``[n, seq_len]`` ``torch.long`` tensor.

    Uses ``tokenizer(text)["input_ids"]`` and prepends the BOS token when the tokenizer has one
    and did not add it (as artent's chat formatting does).

    Raises:
        ValueError: no texts, fewer texts than ``n_texts``, or a text with fewer than
            ``seq_len`` tokens (named by its 0-based index).
    """
    import torch

    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts: expected a non-empty list of strings")
    if n_texts is not None:
        if len(texts) < n_texts:
            raise ValueError(f"texts: got {len(texts)} texts, fewer than --n-texts {n_texts}")
        texts = texts[:n_texts]
    bos = getattr(tokenizer, "bos_token_id", None)
    rows = []
    for i, text in enumerate(texts):
        ids = list(tokenizer(text)["input_ids"])
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        if len(ids) < seq_len:
            raise ValueError(
                f"texts: text {i} has {len(ids)} tokens, fewer than --seq-len {seq_len}"
            )
        rows.append(ids[:seq_len])
    return torch.tensor(rows, dtype=torch.long)


def _states(attn, encoding: str, order: str | None):
    """``[..., T, T]`` attention as ``[batch, T*T]`` states in chain order, and the chain dims."""
    t = attn.shape[-1]
    x = attn.reshape(-1, t, t).double()
    if encoding == "born":
        x = x.clamp_min(0.0).sqrt()  # eager softmax rounding can leave -0.0; never NaN
    if order is None:  # two sites, [T, T]: the bond is the row|column cut
        return x.reshape(x.shape[0], -1), [t, t]
    layout = matrix_layout((t, t), None, order)
    x = x.reshape(x.shape[0], *layout.row_dims, *layout.col_dims)
    x = x.permute(0, *(a + 1 for a in layout.axes))
    return x.reshape(x.shape[0], -1), layout.dims


def _score_std_sums(attn):
    """Sum over query rows of ``var_j ln A[i, j]`` (keys ``j <= i``, ``ddof=1``) and the row count.

    ``attn`` is ``[layers, batch, heads, T, T]``; returns two ``[layers, heads]`` arrays (summed
    over the batch). Weights that underflowed to zero and rows with one key are left out.
    """
    import torch

    a = attn.double()
    t = a.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=a.device).tril()
    keep = causal & (a > 0)
    logs = torch.where(keep, torch.log(torch.where(keep, a, 1.0)), 0.0)
    count = keep.sum(-1).double()
    mean = logs.sum(-1) / count.clamp_min(1.0)
    sq = torch.where(keep, (logs - mean[..., None]) ** 2, 0.0).sum(-1)
    valid = count >= 2
    var = torch.where(valid, sq / (count - 1).clamp_min(1.0), 0.0)
    return var.sum(dim=(1, 3)).cpu().numpy(), valid.sum(dim=(1, 3)).cpu().numpy()


def run_external(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    cfg: ExternalConfig,
    *,
    step: int | None = None,
    label: str | None = None,
) -> dict:
    """Attention entanglement profiles, their Cardy fits, length scaling and baselines.

    Args:
        model: a transformers causal LM or a PeftModel around one (switched to eager attention
            for the forward passes, then restored).
        tokenizer: its tokenizer.
        texts: input texts, each at least ``cfg.seq_len`` tokens long.
        cfg: :class:`ExternalConfig`.
        step: training step of the checkpoint (a column of every table).
        label: run label, e.g. ``"lora r=8"`` (a column of every table).

    Returns:
        pandas DataFrames (entropies in nats):

        * ``external``: ``step, label, T, layer, head, encoding, order, bond, entropy, std``:
          the mean over texts of the per-text profile and its standard deviation.
        * ``external_summary``: ``step, label, T, layer, head, encoding, order, c, c0, r2, law,
          delta_aic, center_entropy, beta_fit``: the Cardy fit and law comparison
          (:func:`compare_laws`) of the mean profile, its entropy at the middle bond ``N // 2``
          (the row|column cut in sequential order) and the head's fitted inverse temperature.
        * ``scaling``: ``step, label, layer, head, encoding, T, ln_T, cut_entropy, std``: the
          row|column entropy of the attention computed on the first ``T`` tokens.
        * ``baseline``: ``step, label, encoding, order, beta, beta_source, T, bond, entropy,
          std, c, c0, r2``: random causal attention ``softmax(beta * G)`` of the same ``T``.

    Raises:
        ValueError: too few texts, or a text shorter than ``cfg.seq_len`` tokens.
    """
    import pandas as pd

    from artent.models.attention import attention_maps

    ids = tokenize_texts(tokenizer, texts, cfg.seq_len, cfg.n_texts)
    combos = [(e, o) for e in cfg.encodings for o in cfg.orders]
    profiles: dict[tuple[str, str], list[np.ndarray]] = {k: [] for k in combos}
    cuts: dict[tuple[str, int], list[np.ndarray]] = {
        (e, t): [] for e in cfg.encodings for t in cfg.scaling_lengths
    }
    var_sum = row_count = 0
    for start in range(0, len(ids), cfg.batch_size):
        chunk = ids[start : start + cfg.batch_size]
        attn = attention_maps(model, chunk)  # [layers, batch, heads, T, T]
        n_layers, batch, n_heads = attn.shape[:3]
        s, n = _score_std_sums(attn)
        var_sum, row_count = var_sum + s, row_count + n
        for encoding, order in combos:
            per_layer = []
            for layer in range(n_layers):
                states, dims = _states(attn[layer], encoding, order)
                prof = batched_profiles(states, dims, device=cfg.device)
                per_layer.append(prof.reshape(batch, n_heads, -1))
            profiles[encoding, order].append(np.stack(per_layer))  # [layers, batch, heads, bonds]
        for t in cfg.scaling_lengths:
            attn_t = attn if t == cfg.seq_len else attention_maps(model, chunk[:, :t])
            for encoding in cfg.encodings:
                states, dims = _states(attn_t, encoding, None)
                cut = batched_profiles(states, dims, device=cfg.device)[:, 0]
                cuts[encoding, t].append(cut.reshape(n_layers, batch, n_heads))
    beta_fit = np.sqrt(var_sum / np.maximum(row_count, 1))  # [layers, heads]

    ext_rows, summary_rows = [], []
    meta = {"step": step, "label": label}
    for (encoding, order), chunks in profiles.items():
        per_text = np.concatenate(chunks, axis=1)
        mean = per_text.mean(axis=1)
        std = per_text.std(axis=1, ddof=1) if per_text.shape[1] > 1 else np.zeros_like(mean)
        n_bonds = mean.shape[-1]
        for layer in range(mean.shape[0]):
            for head in range(mean.shape[1]):
                prof = mean[layer, head]
                for bond in range(1, n_bonds + 1):
                    ext_rows.append(
                        dict(
                            meta,
                            T=cfg.seq_len,
                            layer=layer,
                            head=head,
                            encoding=encoding,
                            order=order,
                            bond=bond,
                            entropy=prof[bond - 1],
                            std=std[layer, head, bond - 1],
                        )
                    )
                laws = compare_laws(prof, boundary=cfg.boundary)
                summary_rows.append(
                    dict(
                        meta,
                        T=cfg.seq_len,
                        layer=layer,
                        head=head,
                        encoding=encoding,
                        order=order,
                        c=laws.cardy.c,
                        c0=laws.cardy.c0,
                        r2=laws.cardy.r2,
                        law=laws.best,
                        delta_aic=laws.delta_aic,
                        center_entropy=prof[(n_bonds + 1) // 2 - 1],
                        beta_fit=beta_fit[layer, head],
                    )
                )

    scaling_rows = []
    for (encoding, t), chunks in cuts.items():
        per_text = np.concatenate(chunks, axis=1)
        mean = per_text.mean(axis=1)
        std = per_text.std(axis=1, ddof=1) if per_text.shape[1] > 1 else np.zeros_like(mean)
        for layer in range(mean.shape[0]):
            for head in range(mean.shape[1]):
                scaling_rows.append(
                    dict(
                        meta,
                        layer=layer,
                        head=head,
                        encoding=encoding,
                        T=t,
                        ln_T=math.log(t),
                        cut_entropy=mean[layer, head],
                        std=std[layer, head],
                    )
                )

    fitted = float(np.median(beta_fit))
    baseline_rows = _baseline_rows(cfg, fitted, meta)
    return {
        "external": pd.DataFrame(ext_rows),
        "external_summary": pd.DataFrame(summary_rows),
        "scaling": pd.DataFrame(scaling_rows),
        "baseline": pd.DataFrame(baseline_rows),
    }


def random_attention_profiles(
    T: int, beta: float, *, samples: int, seed: int, encoding: str, order: str, device: Any = None
) -> np.ndarray:
    """Per-sample profiles of random causal attention in either site order, ``[samples, bonds]``.

    Draws exactly the matrices :func:`~artent.entanglement.rmt.random_attention_profile` draws for
    the same ``seed`` (one ``numpy.random.default_rng(seed)``, one ``T x T`` Gaussian per sample),
    so in sequential order its mean is that function's ``mean``.
    """
    import torch

    rng = np.random.default_rng(seed)
    mats = np.stack([random_attention(T, beta, rng=rng) for _ in range(samples)])
    states, dims = _states(torch.from_numpy(mats), encoding, order)
    return batched_profiles(states, dims, device=device)


def _baseline_rows(cfg: ExternalConfig, fitted_beta: float, meta: dict) -> list[dict]:
    rows = []
    betas = [(b, "grid") for b in cfg.baseline_betas] + [(fitted_beta, "fitted")]
    for encoding in cfg.encodings:
        for order in cfg.orders:
            for beta, source in betas:
                if order == "sequential":
                    base = random_attention_profile(
                        cfg.seq_len,
                        beta,
                        samples=cfg.baseline_samples,
                        seed=cfg.seed,
                        encoding=encoding,
                        boundary=cfg.boundary,
                    )
                    mean, std, c, c0, r2 = base.mean, base.std, base.c, base.c0, base.r2
                else:  # rmt's baseline is sequential only; the same draws, interleaved
                    prof = random_attention_profiles(
                        cfg.seq_len,
                        beta,
                        samples=cfg.baseline_samples,
                        seed=cfg.seed,
                        encoding=encoding,
                        order=order,
                        device=cfg.device,
                    )
                    mean = prof.mean(axis=0)
                    std = prof.std(axis=0, ddof=1) if len(prof) > 1 else np.zeros_like(mean)
                    fit = fit_cardy(mean, cfg.boundary)
                    c, c0, r2 = fit.c, fit.c0, fit.r2
                for bond, (m, s) in enumerate(zip(mean, std, strict=True), start=1):
                    rows.append(
                        dict(
                            meta,
                            encoding=encoding,
                            order=order,
                            beta=beta,
                            beta_source=source,
                            T=cfg.seq_len,
                            bond=bond,
                            entropy=float(m),
                            std=float(s),
                            c=c,
                            c0=c0,
                            r2=r2,
                        )
                    )
    return rows


def _run_key(frame):
    """A readable run name per row: ``label`` and ``step`` (either may be missing)."""
    label = frame["label"].astype(object).where(frame["label"].notna(), "")
    step = frame["step"].astype(object)
    with_step = step.notna()
    out = label.astype(str)
    out[with_step] = out[with_step] + " step " + step[with_step].astype("int64").astype(str)
    return out.str.strip().replace("", "model")


def plot_external(tables: dict, path_png: str | Path, *, boundary: str = "periodic") -> Path:
    """Attention profiles over the random baseline, and the cut entropy against ln T.

    One panel per (encoding, order) and a last panel for the length scaling. With one run
    (one ``(step, label)``) the curves are the layers: each layer's profile averaged over heads
    (band: the range over heads) with its Cardy fit (dashed). With several runs (checkpoints or
    models concatenated) the curves are the runs, each averaged over layers and heads (band: the
    range over layers), so that a stable ``c`` shows as overlapping curves. The random-attention
    baseline at the (first run's) fitted beta is drawn black dotted. The scaling panel shows the
    row|column entropy against ``ln T`` (amplitude solid, born dashed) with its slope. Written
    atomically as a PNG.

    Args:
        tables: the result of :func:`run_external`, or several concatenated.
        path_png: output path.
        boundary: Cardy form of the drawn fit (use the run's ``cfg.boundary``).
    """
    from artent.io import pyplot, save_figure

    plt = pyplot()

    ext = tables["external"].assign(run=lambda f: _run_key(f))
    scal = tables["scaling"].assign(run=lambda f: _run_key(f))
    base = tables["baseline"].assign(run=lambda f: _run_key(f))
    runs = list(dict.fromkeys(ext.run))
    # One run: a curve per layer, band over heads. Several: a curve per run, band over layers.
    curve, band = ("layer", "head") if len(runs) == 1 else ("run", "layer")
    curves = runs if curve == "run" else sorted(ext.layer.unique())
    combos = list(ext[["encoding", "order"]].drop_duplicates().itertuples(index=False))
    n_panels = len(combos) + 1
    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.8 * nrows), squeeze=False)
    axes = list(grid.ravel())
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    cmap = plt.get_cmap("viridis")

    def color(i: int):
        return cmap(i / max(len(curves) - 1, 1))

    def name(key) -> str:
        return f"layer {key}" if curve == "layer" else str(key)

    for ax, (encoding, order) in zip(axes, combos, strict=False):
        sub = ext[(ext.encoding == encoding) & (ext.order == order)]
        for i, key in enumerate(curves):
            g = sub[sub[curve] == key]
            # Mean over the band variable's members of the mean over everything else.
            per_member = g.groupby([band, "bond"]).entropy.mean().unstack(band)
            mean = per_member.mean(axis=1)
            ax.plot(mean.index, mean.values, "o-", ms=3, color=color(i), label=name(key))
            ax.fill_between(
                mean.index,
                per_member.min(axis=1),
                per_member.max(axis=1),
                color=color(i),
                alpha=0.15,
            )
            if len(mean) >= 3:
                fit = fit_cardy(mean.values, boundary)
                ax.plot(mean.index, fit.predict(), "--", lw=1, color=color(i))
        rnd = base[(base.encoding == encoding) & (base.order == order)]
        rnd = rnd[(rnd.beta_source == "fitted") & (rnd.run == runs[0])]
        if len(rnd):
            ax.plot(
                rnd.bond,
                rnd.entropy,
                ":",
                color="black",
                lw=1.5,
                label=f"random, beta={rnd.beta.iloc[0]:.2f}, c={rnd.c.iloc[0]:.2f}",
            )
        ax.set(xlabel="bond l", ylabel="S_l (nats)", title=f"{encoding}, {order}")
        ax.legend(fontsize=7)
    ax = axes[n_panels - 1]
    for i, key in enumerate(curves):
        for encoding, style in (("amplitude", "o-"), ("born", "s--")):
            g = scal[(scal[curve] == key) & (scal.encoding == encoding)]
            if not len(g):
                continue
            m = g.groupby("ln_T").cut_entropy.mean()
            slope = np.polyfit(m.index, m.values, 1)[0] if len(m) > 1 else float("nan")
            ax.plot(
                m.index,
                m.values,
                style,
                ms=3,
                color=color(i),
                label=f"{name(key)} {encoding}: slope {slope:.2f}",
            )
    ax.set(xlabel="ln T", ylabel="row|column S (nats)", title="scaling with length")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path_png)
