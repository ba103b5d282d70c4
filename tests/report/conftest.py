"""A synthetic study folder, shaped exactly like the one ``artent demo`` writes.

The internal tables come from the real per-update analysis (``analyse_delta``) run on synthetic
factored updates (random LoRA factors whose spectrum flattens with the step and the learning
rate, MPS-factored ones, dense ones for FFT), so their columns and metrics are those of a real
study. The attention tables are Cardy-law profiles (or volume-law ones, ``attention_law``) fitted
with the project's own law comparison. Everything else (losses, no-hair pairs, the RMT study,
``study.json``, ``run.json``) follows the writers' schemas.
"""

from __future__ import annotations

import json
import math
import shutil
from itertools import combinations
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

SHAPES = {"q_proj": (128, 128), "v_proj": (64, 128)}  # the default tiny LLaMA's
LAYERS = 2
HEADS = 4
T = 32
SAVE_STEPS = [0, 10, 20, 40]


def plan(ranks=(2, 8, 32), lrs=(2e-3, 6e-3)) -> list[dict]:
    """The runs of the default study: a rank and lr sweep on tulu, one LoRA on openthoughts."""
    common = dict(steps=SAVE_STEPS[-1], save_steps=SAVE_STEPS, batch_size=8, seed=0, alpha=16.0)
    runs = [dict(name="tulu-fft", method="fft", data="synthetic-tulu", lr=3e-4)]
    runs += [
        dict(name=f"tulu-lora-r{r}", method="lora", data="synthetic-tulu", rank=r, lr=lrs[0])
        for r in ranks
    ]
    runs += [
        dict(name=f"tulu-lora-r8-lr{lr:g}", method="lora", data="synthetic-tulu", rank=8, lr=lr)
        for lr in lrs[1:]
    ]
    runs += [
        dict(name="tulu-mps", method="mps", data="synthetic-tulu", rank=8, chi=4, lr=2e-3),
        dict(name="ot-fft", method="fft", data="synthetic-openthoughts", lr=3e-4),
        dict(name="ot-lora-r8", method="lora", data="synthetic-openthoughts", rank=8, lr=lrs[0]),
    ]
    return [{**common, **r} for r in runs]


def _update(run: dict, step: int, rows: int, cols: int, rng):
    """A synthetic update: its cut spectrum flattens (entropy grows) with step and lr."""
    from artent.entanglement import LowRank

    if run["method"] == "fft":  # small against the base: few intruders (the scale-free profile
        return 0.01 * rng.standard_normal((rows, cols)), None, "dense"  # does not change)
    r = run["rank"]
    decay = 1.5 / (1.0 + (run["lr"] / 2e-3) * step / 10.0)
    B = rng.standard_normal((rows, r)) * np.exp(-decay * np.arange(r))
    if run["method"] == "lora":
        return LowRank(B, rng.standard_normal((r, cols))), r, "lora"
    n1 = 16  # MPS: A[k, (i1, i2)] = sum_c G1[k, i1, c] G2[c, i2]
    g1 = rng.standard_normal((r, n1, run["chi"]))
    g2 = rng.standard_normal((run["chi"], cols // n1))
    return LowRank(B, np.einsum("kic,cj->kij", g1, g2).reshape(r, cols)), r, "mps"


def internal_tables(runs: list[dict], seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    from artent.analysis.internal import InternalConfig, analyse_delta

    rng = np.random.default_rng(seed)
    bases = np.random.default_rng(seed + 100)  # the base weights, apart from the updates' draws
    cfg = InternalConfig()
    prof, summ = [], []
    for run in runs:
        for step in SAVE_STEPS:
            for layer in range(LAYERS):
                for module, (m, n) in SHAPES.items():
                    update, rank, kind = _update(run, step, m, n, rng)
                    delta = SimpleNamespace(
                        name=f"model.layers.{layer}.self_attn.{module}",
                        layer=layer,
                        module=module,
                        update=update,
                        rows=m,
                        cols=n,
                        rank=rank,
                        kind=kind,
                        is_zero=step == 0,
                        base=torch.tensor(bases.standard_normal((m, n))),
                    )
                    rows, summary = analyse_delta(delta, cfg)
                    tag = dict(label=run["name"], step=step)
                    prof += [{**tag, **r} for r in rows]
                    summ.append({**tag, **summary})
    return pd.DataFrame(prof), pd.DataFrame(summ)


def cardy_cut(c: float, t: int) -> float:
    """The Cardy law at the middle bond of the chain of N = 2 log2 t qubits (periodic form)."""
    n = 2 * math.log2(t)
    return c / 3 * math.log(n / math.pi) + 0.3


def external_tables(runs: list[dict], law: str = "cardy", seed: int = 1) -> dict:
    from artent.entanglement import compare_laws, random_attention_profile

    rng = np.random.default_rng(seed)
    n_sites = 2 * int(math.log2(T))  # row qubits, then column qubits
    bonds = np.arange(1, n_sites)
    chord = np.log(n_sites / np.pi * np.sin(np.pi * bonds / n_sites)) / 3
    head_c = rng.uniform(0.6, 1.2, size=(LAYERS, HEADS))  # the model's heads, shared by runs
    ext, summ, scal, base = [], [], [], []
    baselines = {
        (enc, beta, src): random_attention_profile(T, beta, samples=2, seed=0, encoding=enc)
        for enc in ("amplitude", "born")
        for beta, src in ((1.0, "grid"), (2.0, "fitted"))
    }
    for run in runs:
        for step in SAVE_STEPS:
            meta = dict(step=step, label=run["name"])
            for layer in range(LAYERS):
                for head in range(HEADS):
                    c = head_c[layer, head] * (1 + 0.01 * rng.standard_normal())
                    for enc in ("amplitude", "born"):
                        for order in ("sequential", "interleaved"):
                            if law == "cardy":
                                prof = c * chord + 0.3
                            else:
                                prof = 0.6 * np.minimum(bonds, n_sites - bonds) + 0.1
                            prof = prof + 0.01 * rng.standard_normal(len(bonds))
                            key = dict(meta, T=T, layer=layer, head=head, encoding=enc)
                            key["order"] = order
                            ext += [
                                dict(key, bond=int(b), entropy=s, std=0.05)
                                for b, s in zip(bonds, prof, strict=True)
                            ]
                            laws = compare_laws(prof)
                            summ.append(
                                dict(
                                    key,
                                    c=laws.cardy.c,
                                    c0=laws.cardy.c0,
                                    r2=laws.cardy.r2,
                                    law=laws.best,
                                    delta_aic=laws.delta_aic,
                                    center_entropy=prof[n_sites // 2 - 1],
                                    beta_fit=2.0,
                                )
                            )
                        for t in (8, 16, 32):
                            scal.append(
                                dict(meta, layer=layer, head=head, encoding=enc, T=t)
                                | dict(ln_T=math.log(t), cut_entropy=cardy_cut(c, t), std=0.0)
                            )
            for (enc, beta, src), b in baselines.items():
                for order in ("sequential", "interleaved"):
                    base += [
                        dict(meta, encoding=enc, order=order, beta=beta, beta_source=src, T=T)
                        | dict(bond=i + 1, entropy=m, std=s, c=b.c, c0=b.c0, r2=b.r2)
                        for i, (m, s) in enumerate(zip(b.mean, b.std, strict=True))
                    ]
    return {
        "external": pd.DataFrame(ext),
        "external_summary": pd.DataFrame(summ),
        "scaling": pd.DataFrame(scal),
        "baseline": pd.DataFrame(base),
    }


def base_attention_tables(law: str = "cardy", seed: int = 3) -> dict:
    """The base model's stage (``attention/``): profiles at T, scaling to 256, the sink."""
    tables = external_tables([{"name": "base"}], law, seed)
    tables = {k: v[v.step == 0].reset_index(drop=True) for k, v in tables.items()}
    rng = np.random.default_rng(seed)
    head_c = tables["external_summary"].groupby(["layer", "head"]).c.first()
    lengths = (8, 16, 32, 64, 128, 256)
    tables["scaling"] = pd.DataFrame(
        dict(step=0, label="base", layer=layer, head=head, encoding="amplitude", T=t)
        | dict(ln_T=math.log(t), cut_entropy=cardy_cut(c, t), std=0.0)
        if law == "cardy"
        else dict(step=0, label="base", layer=layer, head=head, encoding="amplitude", T=t)
        | dict(ln_T=math.log(t), cut_entropy=0.4 * math.log(t), std=0.0)
        for (layer, head), c in head_c.items()
        for t in lengths
    )
    uniform = float(np.mean(1.0 / np.arange(2, T + 1)))
    tables["sink"] = pd.DataFrame(
        dict(step=0, label="base", T=T, layer=layer, head=head, uniform_share=uniform)
        | dict(sink_share=float(rng.uniform(0.2, 0.9)))
        for layer in range(LAYERS)
        for head in range(HEADS)
    )
    return tables


def nohair_table(models=("base", "tulu-fft", "tulu-lora-r8", "tulu-mps"), seed=2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in combinations(models, 2):
        x, ref = (b, a) if a == "base" else (a, b)
        internal = math.nan if ref == "base" else rng.uniform(0.5, 1.0)
        external = rng.uniform(0.01, 0.04)
        rows.append(
            dict(
                model=x,
                reference=ref,
                internal_contrast=internal,
                external_contrast=external,
                nohair_ratio=external / internal,
                context_rel_dist=rng.uniform(0.02, 0.1),
                context_cos=rng.uniform(0.97, 0.999),
                hidden_rel_dist=rng.uniform(0.02, 0.1),
                hidden_cos=rng.uniform(0.97, 0.999),
                attention_js=rng.uniform(1e-4, 1e-3),
            )
        )
    return pd.DataFrame(rows)


def losses_table(run: dict, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    speed = run["lr"] / 2e-3
    rows = [
        dict(step=0, split="heldout", loss=3.0, lr=0.0),
    ]
    for step in range(1, run["steps"] + 1):
        loss = 3.0 - 0.4 * math.log1p(speed * step) + 0.05 * rng.standard_normal()
        rows.append(dict(step=step, split="train", loss=loss, lr=run["lr"], tokens=2048))
        rows[-1]["wall_s"] = 0.1 * step
        if step in run["save_steps"]:
            held = 3.05 - 0.4 * math.log1p(speed * step)
            rows.append(dict(step=step, split="heldout", loss=held, lr=run["lr"]))
    return pd.DataFrame(rows)


def write_study(root: Path, *, ranks=(2, 8, 32), lrs=(2e-3, 6e-3), attention_law="cardy"):
    """Write a complete synthetic study folder at ``root``; return ``root``."""
    from artent.analysis.baselines import BaselineStudyConfig, run_baseline_study

    runs = plan(ranks, lrs)
    root.mkdir(parents=True, exist_ok=True)
    study = dict(
        config=dict(quick=False, model="smollm2", ranks=list(ranks), lora_lrs=list(lrs), steps=40),
        runs=runs,
        versions={"python": "3.11", "artent": "0.1.0"},
        timings={"internal": 1.0, "external": 2.0},
        quick=False,
        base_model="/cache/smollm2-135m-instruct",
    )
    (root / "study.json").write_text(json.dumps(study, indent=2))
    for i, run in enumerate(runs):
        folder = root / "runs" / run["name"]
        folder.mkdir(parents=True)
        losses_table(run, seed=i).to_parquet(folder / "losses.parquet", index=False)
        record = {"command": "train", "config": {k: v for k, v in run.items() if k != "name"}}
        (folder / "run.json").write_text(json.dumps(record | {"versions": study["versions"]}))
    prof, summ = internal_tables(runs)
    (root / "internal").mkdir()
    prof.to_parquet(root / "internal" / "internal.parquet", index=False)
    summ.to_parquet(root / "internal" / "internal_summary.parquet", index=False)
    (root / "external").mkdir()
    for name, frame in external_tables(runs, attention_law).items():
        frame.to_parquet(root / "external" / f"{name}.parquet", index=False)
    (root / "attention").mkdir()
    for name, frame in base_attention_tables(attention_law).items():
        frame.to_parquet(root / "attention" / f"{name}.parquet", index=False)
    (root / "nohair").mkdir()
    nohair_table().to_parquet(root / "nohair" / "nohair.parquet", index=False)
    res = run_baseline_study(
        BaselineStudyConfig(rows=128, cols=128, attention_T=16, attention_betas=[1.0])
    )
    (root / "baselines").mkdir()
    res["profiles"].to_parquet(root / "baselines" / "profiles.parquet", index=False)
    return root


@pytest.fixture(scope="session")
def study_writer():
    """:func:`write_study` itself, for tests that need a study with other settings."""
    return write_study


@pytest.fixture(scope="session")
def synthetic_study(tmp_path_factory) -> Path:
    """A complete synthetic study folder (read-only: copy it with ``study_copy`` to edit)."""
    return write_study(tmp_path_factory.mktemp("study") / "study")


@pytest.fixture
def study_copy(synthetic_study, tmp_path):
    """A fresh editable copy of the synthetic study, and a helper to edit its tables."""

    root = Path(shutil.copytree(synthetic_study, tmp_path / "study"))

    def edit(rel: str, fn=None) -> Path:
        """Replace the table at ``rel`` by ``fn(table)``, or delete it when ``fn`` is None."""
        path = root / rel
        if fn is None:
            path.unlink()
        else:
            fn(pd.read_parquet(path)).to_parquet(path, index=False)
        return path

    return root, edit
