"""External artificial entanglement: the entanglement profiles of a model's attention matrices.

docs/method.md, "The attention law: two readings". The corpus is cut into windows of ``T`` tokens
(:func:`artent.data.corpus.corpus_windows`). For every layer and head the attention matrix ``A``
(``T x T``, rows summing to one; causal in a decoder) of each window is read as a state
(``amplitude``: ``A / ||A||_F``; ``born``: ``sqrt(A) / sqrt(T)``, whose squared amplitudes are the
attention probabilities over ``T``), its sites are the prime factors of ``T`` on each side (qubits
for a power of two), in ``sequential`` and ``interleaved`` order, and its exact profile is taken.

Averaging: the profile is taken *per window* and then averaged over the windows (the ``entropy``
column is that mean, ``std`` the spread across windows, ``ddof=1``). Profiling the averaged
matrix instead would report the entanglement of a mixture no single input produces, and it lowers
the volume of the profile by smoothing; per window is the honest order of operations. The Cardy
fit (``c``, ``c0``, ``r2``), the law comparison and ``center_entropy`` of ``external_summary`` are
those of the mean profile.

Architectures: any model whose attention transformers returns under eager attention
(:mod:`artent.models.attention`): decoders (LLaMA, Qwen2/3, Mistral, Phi-3, Gemma 2/3, GPT-2,
GPT-NeoX, OPT) and encoders (BERT). Every table says whether the maps were ``causal`` (nothing
above the diagonal, read off the maps themselves) and, per layer, whether it is ``local`` (a
sliding-window layer, from the config) and its ``window``. The random baseline of an encoder is
the non-causal softmax.

Beyond docs/method.md: ``beta_fit`` estimates each head's inverse temperature as the RMS, over query
rows (and windows), of the standard deviation of ``ln A[i, j]`` over the keys with ``A[i, j] > 0``
(``j <= i`` in a causal model). For ``softmax(beta * G)`` with Gaussian scores this is ``beta``
exactly in expectation (the log-weights are the scores less a per-row constant), so the
random-attention baseline is drawn at the median ``beta_fit`` of the model (``beta_source =
"fitted"``) besides a fixed grid of betas.

The package's modules: ``config`` (:class:`ExternalConfig`), ``measure`` (the layer-by-layer
measurement of one model and its tables), ``jobs`` (which models and checkpoints are measured,
and the loop that loads and measures each), ``encoding`` (maps as states), ``baseline`` (random
attention), ``plot`` (the figure), ``readings`` and ``compare`` (the tables read afterwards).
"""

from __future__ import annotations

from artent.analysis.external.baseline import random_attention_profiles
from artent.analysis.external.config import BOUNDARIES, ExternalConfig
from artent.analysis.external.measure import run_external, tokenize_texts
from artent.analysis.external.plot import plot_external

__all__ = [
    "BOUNDARIES",
    "ExternalConfig",
    "plot_external",
    "random_attention_profiles",
    "run_external",
    "tokenize_texts",
]
