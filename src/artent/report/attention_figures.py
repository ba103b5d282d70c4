"""The report's attention figures: the profiles per model state, and the sequence-length reading.

Each function returns a base64 PNG or ``None`` when its tables are missing. Amplitude encoding,
sequential order; entropies in nats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from artent.analysis.external.readings import amplitude_sequential, length_law
from artent.entanglement.fits import chord_regressor
from artent.report.plotting import new_figure, png_base64

if TYPE_CHECKING:
    from artent.report.tables import StudyTables


def _state(ext: pd.DataFrame, label, step) -> pd.DataFrame:
    """The rows of one (label, step), as a per-(layer, bond) mean profile table."""
    same = (ext.label == label) & (ext.step.astype(float) == float(step))
    return ext[same].groupby(["layer", "bond"]).entropy.mean()


def _attention_panels(t: StudyTables, ext: pd.DataFrame) -> list[tuple[str, object, object]]:
    """(title, label, step) of the panels: one per distinct model state.

    The candidates are the base model (step 0), then one run per method at its final step; a
    candidate whose profiles equal an earlier panel's (every run at step 0 is the base itself)
    joins that panel's title instead of drawing the same curves again.
    """
    from artent.report.tables import final_rows

    candidates = []
    zero = ext[ext.step.astype(float) == 0]
    if len(zero):
        candidates.append(("base (step 0)", zero.label.iloc[0], 0))
    meta = t.run_meta(final_rows(ext)[["label", "step"]].drop_duplicates())
    for method in ("fft", "lora", "mps"):
        rows = meta[meta.method == method]
        if len(rows):
            r = rows.iloc[0]
            candidates.append((f"{r.label} (step {r.step:g})", r.label, r.step))
    if not candidates:
        r = meta.iloc[0]
        candidates.append((f"{r.label}", r.label, r.step))
    panels: list[list] = []
    seen: list[pd.Series] = []
    for title, label, step in candidates:
        profile = _state(ext, label, step)
        match = next(
            (
                i
                for i, other in enumerate(seen)
                if other.index.equals(profile.index)
                and np.allclose(other.values, profile.values, rtol=0, atol=1e-12)
            ),
            None,
        )
        if match is None:
            panels.append([title, label, step])
            seen.append(profile)
        else:
            panels[match][0] += f" = {title}"
    return [tuple(p) for p in panels]


def attention_figure(t: StudyTables) -> str | None:
    """Attention profiles per layer (mean over heads), Cardy fits and the random baseline."""
    if t.external is None or t.external.empty:
        return None
    ext = amplitude_sequential(t.external)
    if ext.empty:
        return None
    panels = _attention_panels(t, ext)
    fig, axes = new_figure(1, len(panels), w=5.0, h=4.6)
    summ = t.external_summary
    for ax, (title, label, step) in zip(axes[0], panels, strict=True):
        same = (ext.label == label) & (ext.step.astype(float) == float(step))
        sub = ext[same]
        layers = sorted(sub.layer.unique())
        if len(layers) > 8:  # a real LLM has dozens: eight evenly spaced keep the panel legible
            layers = [layers[i] for i in np.linspace(0, len(layers) - 1, 8).round().astype(int)]
        for k, layer in enumerate(layers):
            mean = sub[sub.layer == layer].groupby("bond").entropy.mean()
            color = f"C{k % 10}"
            fit = ""
            if summ is not None:
                s = amplitude_sequential(summ)
                s = s[(s.label == label) & (s.step.astype(float) == float(step))]
                s = s[s.layer == layer]
                if len(s):  # the mean of the per-head fits: the fit law is linear in (c, c0)
                    x = chord_regressor(mean.index.to_numpy(), len(mean) + 1, "periodic")
                    c, c0 = s.c.mean(), s.c0.mean()
                    ax.plot(mean.index, c * x + c0, "--", lw=1, color=color)
                    fit = f", c={c:.2f}"
            ax.plot(mean.index, mean.values, "o-", ms=3, color=color, label=f"layer {layer}{fit}")
        if t.baseline is not None:
            b = amplitude_sequential(t.baseline)
            b = b[(b.label == label) & (b.step.astype(float) == float(step))]
            b = b[b.beta_source == "fitted"] if (b.beta_source == "fitted").any() else b
            if len(b):
                beta = b.beta.iloc[0]
                b = b[b.beta == beta]
                ax.plot(
                    b.bond,
                    b.entropy,
                    ":",
                    color="black",
                    lw=1.5,
                    label=f"random, beta={beta:.2f}, c={b.c.iloc[0]:.2f}",
                )
        ax.set(xlabel="bond l", ylabel="S_l (nats)")
        ax.set_title(title, fontsize=8)
        # below the panel, outside the data
        ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    return png_base64(fig)


def sequence_length_figure(t: StudyTables) -> str | None:
    """S_cut against ln T with the line (c/3) ln T + c0, random attention and the volume law."""
    base_stage = t.base_scaling is not None and not t.base_scaling.empty
    scaling = t.base_scaling if base_stage else t.scaling
    if scaling is None or scaling.empty:
        return None
    s = scaling[scaling.encoding == "amplitude"]
    if s["T"].nunique() < 2:
        return None
    law, mean = length_law(s)
    x = np.log(mean.index.to_numpy(float))
    fig, axes = new_figure(1, 1, w=6.4, h=4.4)
    ax = axes[0][0]
    ax.plot(x, mean.values, "o", color="C0", label="measured (mean of layers, heads)")
    ax.plot(
        x,
        law.slope * x + law.c0,
        "-",
        color="C0",
        label=f"(c/3) ln T + c0: c = {law.c_periodic:.2f} (c/6 form: {law.c_open:.2f}), "
        f"R^2 {law.r2:.3f}",
    )
    rand = t.base_scaling_baseline if base_stage else t.scaling_baseline
    if rand is not None and not rand.empty and rand["T"].nunique() >= 2:
        rlaw, rmean = length_law(rand)
        rx = np.log(rmean.index.to_numpy(float))
        ax.plot(rx, rmean.values, "s", color="grey", ms=4)
        ax.plot(
            rx,
            rlaw.slope * rx + rlaw.c0,
            "-",
            color="grey",
            label=f"random attention at each head's beta: c = {rlaw.c_periodic:.2f}",
        )
    ax.plot(x, x - 0.5, ":", color="black", label="volume law (Page): ln T - 1/2")
    ax.set_xticks(x, [str(int(T)) for T in mean.index])
    ax.set(xlabel="T (axis: ln T)", ylabel="row|column S (nats)")
    ax.set_title(
        "sequence-length reading: " + ("base model" if base_stage else "runs and steps"),
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    return png_base64(fig)
