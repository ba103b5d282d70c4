"""Options of the external (attention) analysis, checked where they are made."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from artent.data.corpus import DEFAULT_WINDOW_START, check_window_start
from artent.entanglement.rmt import ENCODINGS
from artent.entanglement.sites import ORDERS, prime_factors
from artent.validation import check_device, check_fields, keyword

BOUNDARIES = ("periodic", "open")


@dataclass
class ExternalConfig:
    """Options of the external (attention) analysis.

    Args:
        seq_len: tokens per window ``T``; at least two prime factors (``T = 64`` is 12 qubits)
            so that every chain has three bonds or more.
        encodings: ``"amplitude"`` (``A`` itself) and/or ``"born"`` (``sqrt(A)``).
        orders: ``"sequential"`` (row sites, then column sites) and/or ``"interleaved"``.
        n_texts: the most windows of ``T`` tokens to cut from the corpus (the first ones);
            ``None`` uses every window. A corpus with fewer windows uses them all, with a note.
        boundary: Cardy form, ``"periodic"`` or ``"open"``.
        device: torch device of the profile computation; ``None`` computes where the attention
            maps are (the model's device).
        baseline_samples: random attention matrices per baseline beta.
        baseline_betas: inverse temperatures of the random-attention baseline grid (a fitted
            beta is added to them).
        seed: seed of the baseline samples.
        scaling_lengths: lengths ``T`` of the cut-entropy scaling; ``None`` means the powers of
            two from 8 to ``seq_len`` (``[seq_len]`` when ``seq_len < 8``).
        batch_size: windows per forward pass (fewer where one layer's maps of that many windows
            would pass ``max_map_elements``).
        max_map_elements: a bound on ``batch * heads * T * T``, the size of one layer's maps in
            one forward pass; with the per-chunk profile work it bounds memory at long ``T``.
        profile_chunk_elements: map elements profiled (and widened to float64) at a time; with
            ``max_map_elements`` it bounds memory at long ``T`` (the default, 2^23, is two maps
            at ``T = 2048``, 64 MB of float64 each copy). The tables do not depend on it.
        window_start: how each window starts: ``"model"`` (as the tokenizer frames a text: BOS,
            nothing, or ``[CLS] ... [SEP]``), ``"bos"`` or ``"none"`` (the stream cut as it is);
            see :mod:`artent.data.corpus`.
        scaling_baseline_samples: random causal attention matrices per head and length drawn
            at each head's fitted inverse temperature for the sequence-length reading's
            random-matrix prediction (the ``scaling_baseline`` table; one a head suffices, the
            row|column entropy of a large random matrix barely varies); 0 draws none.
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
    max_map_elements: int = 2**27
    profile_chunk_elements: int = 2**23
    window_start: str = DEFAULT_WINDOW_START
    scaling_baseline_samples: int = 1

    def __post_init__(self) -> None:
        check_fields(self, keyword)
        if self.device is not None:
            check_device(self.device, "device=")
        self.seq_len = positive_int(self.seq_len, "seq_len=")
        if len(prime_factors(self.seq_len)) < 2:
            raise ValueError(
                f"seq_len={self.seq_len}: needs at least two prime factors (e.g. a power of two "
                ">= 4) so that an attention profile has three bonds to fit"
            )
        self.encodings = _choices(self.encodings, ENCODINGS, "encodings=")
        self.orders = _choices(self.orders, ORDERS, "orders=")
        if self.n_texts is not None:
            self.n_texts = positive_int(self.n_texts, "n_texts=")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"boundary=: expected one of {BOUNDARIES}, got {self.boundary!r}")
        self.baseline_samples = positive_int(self.baseline_samples, "baseline_samples=")
        betas = tuple(float(b) for b in self.baseline_betas)
        if not all(math.isfinite(b) and b >= 0 for b in betas):
            raise ValueError(f"baseline_betas=: expected finite numbers >= 0, got {betas}")
        self.baseline_betas = betas
        if self.scaling_lengths is None:
            lengths = [2**k for k in range(3, self.seq_len.bit_length()) if 2**k <= self.seq_len]
            self.scaling_lengths = tuple(lengths) or (self.seq_len,)
        else:
            lengths = sorted({positive_int(t, "scaling_lengths=") for t in self.scaling_lengths})
            if not lengths or lengths[0] < 2 or lengths[-1] > self.seq_len:
                raise ValueError(
                    f"scaling_lengths=: expected lengths in 2..{self.seq_len} (seq_len=), "
                    f"got {list(self.scaling_lengths)}"
                )
            self.scaling_lengths = tuple(lengths)
        self.batch_size = positive_int(self.batch_size, "batch_size=")
        self.max_map_elements = positive_int(self.max_map_elements, "max_map_elements")
        self.profile_chunk_elements = positive_int(
            self.profile_chunk_elements, "profile_chunk_elements="
        )
        self.window_start = check_window_start(self.window_start, "window_start=")
        if self.scaling_baseline_samples < 0:
            raise ValueError(
                "scaling_baseline_samples=: expected an integer >= 0, got "
                f"{self.scaling_baseline_samples!r}"
            )

    def maps_per_chunk(self, t: int) -> int:
        """How many ``t x t`` maps one profile chunk holds (at least one)."""
        return max(1, self.profile_chunk_elements // (t * t))


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1, or a ValueError naming the option."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and int(value) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _choices(values: Any, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        raise ValueError(f"{name}: expected a non-empty subset of {allowed}, got {list(values)}")
    return tuple(dict.fromkeys(values))
