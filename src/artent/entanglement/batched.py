"""Exact entanglement profiles of many states at once, with batched torch linear algebra.

The same algorithm as :func:`artent.entanglement.profile.chain_spectra` (one Gram matrix per side
of the chain, taken at that side's most balanced bond, then every smaller bond by partial trace,
each bond read from whichever side is smaller), but every step runs on a ``[batch, k, k]`` stack:
one batched matmul per side and one ``torch.linalg.eigvalsh`` per bond for the whole batch. This
is what makes profiling every (layer, head, text) attention matrix of a model cheap, on a GPU
especially. Everything is float64 (complex128 for complex states), as in the single-state engine,
and the entropies follow :func:`artent.entanglement.profile.entropies_from_spectrum` exactly
(including its noise floor for Renyi indices below one).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import log, prod
from typing import Any

import numpy as np

from artent.entanglement.backend import SAFE_RANGE, NumpyBackend
from artent.entanglement.profile import chain_spectra, check_renyi, log_base
from artent.entanglement.sites import check_dims, matrix_layout

#: On the CPU, matrices of at least this many elements are profiled one at a time by the numpy
#: engine (BLAS ``syrk`` Grams, OpenBLAS's eigensolvers, see :mod:`artent.entanglement.lapack`)
#: rather than by torch's batched calls: measured per map on 2 threads, 0.81x torch's time at
#: 256^2 and 512^2, 0.64x at 1024^2 and 0.67x at 2048^2, but 1.6x at 64^2 (per-call overhead).
CPU_LOOP_FROM = 256 * 256

__all__ = [
    "CPU_LOOP_FROM",
    "batched_matrix_profiles",
    "batched_matrix_spectra",
    "batched_profiles",
    "batched_spectra",
]


def _as_batch(states: Any, dims: Sequence[int], device: Any):
    """``states`` as a float64/complex128 ``[batch, prod(dims)]`` tensor on the chosen device."""
    import torch

    if not isinstance(states, torch.Tensor):
        states = torch.as_tensor(np.asarray(states))
    if device is None:
        device = states.device  # a GPU tensor stays on its GPU; CPU input computes on the CPU
    dtype = torch.complex128 if states.is_complex() else torch.float64
    x = states.detach().to(device=torch.device(device), dtype=dtype)
    if x.ndim < 2:
        raise ValueError(
            f"states: expected a batch of states, shape [batch, ...], got shape {tuple(x.shape)}"
        )
    dims = check_dims(dims, int(prod(x.shape[1:])), f"states of shape {tuple(x.shape[1:])}")
    if len(dims) < 2:
        raise ValueError(f"states: the chain {dims} has {len(dims)} site(s); a profile needs 2")
    x = x.reshape(x.shape[0], -1)
    if x.shape[0] == 0:
        raise ValueError("states: the batch is empty")
    x = _checked(x, "states", "state")
    # No normalisation: the profile is scale-free and every spectrum is normalised to sum one.
    return x, dims


def _checked(x, what: str, item: str):
    """Refuse items holding NaN or Inf, and zero items, naming the first (batch on dim 0); items
    whose largest entry lies outside :data:`~artent.entanglement.backend.SAFE_RANGE` come back
    divided by it, so that squaring them neither overflows (1e300) nor underflows (1e-300): the
    profile is scale-free, and exact for any finite input."""
    import torch

    # one reduction; NaN propagates through amax, Inf shows as Inf
    peaks = x.reshape(x.shape[0], -1).abs().amax(dim=1)
    bad = ~torch.isfinite(peaks)
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0, 0])
        raise ValueError(f"{what}: batch item {first} contains NaN or Inf values")
    if not bool((peaks > 0).all()):
        first = int(torch.nonzero(peaks == 0)[0, 0])
        raise ValueError(
            f"{what}: batch item {first} is all zeros: a zero {item} has no entanglement"
        )
    far = (peaks < SAFE_RANGE[0]) | (peaks > SAFE_RANGE[1])
    if not bool(far.any()):
        return x
    scale = torch.where(far, peaks, torch.ones_like(peaks)).reshape(-1, *[1] * (x.ndim - 1))
    return x / scale


def _clean(ev):
    """Clip a batch of Gram spectra's rounding negatives to zero and renormalise each row."""
    ev = ev.clamp_min(0.0)
    return ev / ev.sum(dim=1, keepdim=True)


def batched_spectra(states: Any, dims: Sequence[int], *, device: Any = None) -> list:
    """Normalised Schmidt weights at every bond of a batch of states, as torch tensors.

    Args:
        states: ``[batch, ...]`` (numpy or torch), each item with ``prod(dims)`` elements in chain
            order (row-major); any scale (each item is normalised by its own Frobenius norm).
        dims: site dimensions along the chain (at least two sites).
        device: torch device to compute on; ``None`` keeps a tensor's own device (CPU for numpy).

    Returns:
        ``N - 1`` float64 tensors; entry ``l - 1`` has shape ``[batch, k_l]`` and holds the squared
        Schmidt values of bond ``l`` (each row sums to one), ``k_l`` the smaller side's dimension.
    """
    import torch

    psi, dims = _as_batch(states, dims, device)
    batch, total, n = psi.shape[0], psi.shape[1], len(dims)
    left = [prod(dims[:l]) for l in range(n + 1)]
    spectra: list = [None] * (n - 1)
    left_bonds = [l for l in range(1, n) if left[l] <= total // left[l]]
    right_bonds = [l for l in range(1, n) if left[l] > total // left[l]]
    if left_bonds:
        c = left_bonds[-1]
        x = psi.reshape(batch, left[c], total // left[c])
        rho = x @ x.mH
        for l in range(c, 0, -1):
            if l < c:
                keep, d = left[l], dims[l]
                rho = torch.einsum("biaja->bij", rho.reshape(batch, keep, d, keep, d))
            spectra[l - 1] = _clean(torch.linalg.eigvalsh(rho))
    if right_bonds:
        c = right_bonds[0]
        x = psi.reshape(batch, left[c], total // left[c])
        sigma = x.mH @ x
        for l in range(c, n):
            if l > c:
                keep, d = total // left[l], dims[l - 1]
                sigma = torch.einsum("baiaj->bij", sigma.reshape(batch, d, keep, d, keep))
            spectra[l - 1] = _clean(torch.linalg.eigvalsh(sigma))
    return spectra


def _split(x, rows: Sequence[int], cols: Sequence[int], p: int, q: int):
    """``[b, m, n]`` matrices as ``[b, left, right]``: left = (first ``p`` row sites, first ``q``
    column sites), right = the rest, each side row-major in (rows, columns)."""
    b = x.shape[0]
    rp, rr, cq, cr = prod(rows[:p]), prod(rows[p:]), prod(cols[:q]), prod(cols[q:])
    x = x.reshape(b, rp, rr, cq, cr)
    if rr > 1 and cq > 1:  # only then is there anything to move
        x = x.permute(0, 1, 3, 2, 4)
    return x.reshape(b, rp * cq, rr * cr)


def _trace_site(rho, outer: int, d: int, inner: int):
    """Partial trace of ``[b, k, k]`` (index = (outer, d, inner), row-major) over the ``d`` site."""
    import torch

    b = rho.shape[0]
    rho = rho.reshape(b, outer, d, inner, outer, d, inner)
    return torch.einsum("xiajkal->xijkl", rho).reshape(b, outer * inner, outer * inner)


def batched_matrix_spectra(
    mats: Any,
    *,
    order: str = "sequential",
    dims: tuple[Sequence[int], Sequence[int]] | None = None,
    device: Any = None,
) -> list:
    """:func:`batched_spectra` of a batch of matrices in their site order, without permuting sites.

    A matrix's chain in either order (docs/method.md, "States and sites") puts, left of each bond,
    the first ``p`` row sites and the first ``q`` column sites. Only the *set* of sites on each side
    sets a bond's spectrum, not their order, so each side's Gram matrix is taken with its index
    grouped as (rows, columns): one 4-axis permutation of the matrix per side, instead of the
    ``2N``-axis permutation that writes the interleaved state out, and then partial traces over one
    site at a time, exactly as :func:`batched_spectra` does.

    Args:
        mats: ``[batch, m, n]`` numpy array or torch tensor (float or complex; any scale).
        order: ``"sequential"`` or ``"interleaved"``.
        dims: ``(row_dims, col_dims)``; ``None`` splits each side into prime factors.
        device: torch device to compute on; ``None`` keeps a tensor's own device.

    Returns:
        ``N - 1`` float64 tensors ``[batch, k_l]``: the squared Schmidt values of each bond.

    Raises:
        ValueError: not a batch of matrices, an item with NaN or Inf or all zeros (named), bad
            dims or order.
    """
    import torch

    if not isinstance(mats, torch.Tensor):
        mats = torch.as_tensor(np.asarray(mats))
    if mats.ndim != 3 or mats.shape[0] == 0:
        raise ValueError(
            f"matrices: expected a non-empty batch [batch, m, n], got shape {tuple(mats.shape)}"
        )
    device = mats.device if device is None else torch.device(device)
    dtype = torch.complex128 if mats.is_complex() else torch.float64
    x = mats.detach().to(device=device, dtype=dtype)
    x = _checked(x, "matrices", "matrix")
    layout = matrix_layout((x.shape[1], x.shape[2]), dims, order)
    rows, cols = layout.row_dims, layout.col_dims
    a, n = len(rows), layout.n_sites
    if n < 2:
        raise ValueError(f"matrices: the chain {layout.dims} has {n} site(s); a profile needs 2")
    # (row sites, column sites) left of each bond l = 1 .. n - 1
    if order == "sequential":
        blocks = [(min(l, a), max(0, l - a)) for l in range(1, n)]
    else:
        blocks = [((l + 1) // 2, l // 2) for l in range(1, n)]
    total = x.shape[1] * x.shape[2]
    left = [prod(rows[:p]) * prod(cols[:q]) for p, q in blocks]
    left_bonds = [l for l in range(1, n) if left[l - 1] ** 2 <= total]
    right_bonds = [l for l in range(1, n) if left[l - 1] ** 2 > total]
    if device.type == "cpu" and total >= CPU_LOOP_FROM:
        return _one_at_a_time(x, layout)
    spectra: list = [None] * (n - 1)
    if left_bonds:
        c = left_bonds[-1]
        p, q = blocks[c - 1]
        xs = _split(x, rows, cols, p, q)
        rho = xs @ xs.mH
        for l in range(c, 0, -1):
            if l < c:  # drop the site bond l + 1 has on its left and bond l has not
                p_new, q_new = blocks[l - 1]
                if p_new < p:  # the last row site
                    rho = _trace_site(rho, prod(rows[:p_new]), rows[p_new], prod(cols[:q]))
                else:  # the last column site
                    rho = _trace_site(rho, prod(rows[:p]) * prod(cols[:q_new]), cols[q_new], 1)
                p, q = p_new, q_new
            spectra[l - 1] = _clean(torch.linalg.eigvalsh(rho))
    if right_bonds:
        c = right_bonds[0]
        p, q = blocks[c - 1]
        xs = _split(x, rows, cols, p, q)
        sigma = xs.mH @ xs
        for l in range(c, n):
            if l > c:  # drop the site bond l - 1 has on its right and bond l has not
                p_new, q_new = blocks[l - 1]
                if p_new > p:  # the first remaining row site
                    sigma = _trace_site(sigma, 1, rows[p], prod(rows[p + 1 :]) * prod(cols[q:]))
                else:  # the first remaining column site
                    sigma = _trace_site(sigma, prod(rows[p:]), cols[q], prod(cols[q + 1 :]))
                p, q = p_new, q_new
            spectra[l - 1] = _clean(torch.linalg.eigvalsh(sigma))
    return spectra


def _one_at_a_time(x, layout) -> list:
    """:func:`batched_matrix_spectra` on the CPU by the numpy engine, item by item (the same
    algorithm: one Gram per side at its most balanced bond, partial traces)."""
    import torch

    bk = NumpyBackend()
    per_item = []
    for item in x:
        psi = item.numpy().reshape([*layout.row_dims, *layout.col_dims])
        if layout.order == "interleaved":
            psi = bk.transpose(psi, layout.axes)
        per_item.append(chain_spectra(psi, layout.dims, bk))
    return [torch.from_numpy(np.stack(bond)) for bond in zip(*per_item, strict=True)]


def batched_matrix_profiles(
    mats: Any,
    *,
    order: str = "sequential",
    dims: tuple[Sequence[int], Sequence[int]] | None = None,
    renyi: float = 1.0,
    base: str | int = "e",
    device: Any = None,
) -> np.ndarray:
    """Exact profiles of a batch of matrices (the batched ``entanglement_profile(m, order=...)``).

    Item ``b`` equals ``entanglement_profile(mats[b], dims=dims, order=order)`` (to about
    ``1e-12`` nats); see :func:`batched_matrix_spectra` for how, and :func:`batched_profiles` for
    ``renyi`` and ``base``.

    Returns:
        float64 array ``(batch, N - 1)``.
    """
    import torch

    alpha = check_renyi(renyi)
    bits = log_base(base) == 2
    spectra = batched_matrix_spectra(mats, order=order, dims=dims, device=device)
    out = torch.stack([_entropies(p, alpha) for p in spectra], dim=1)
    if bits:
        out = out / log(2)
    return out.cpu().numpy()


def _entropies(p, alpha: float):
    """Entropy of every row of ``p`` (``[batch, k]``, rows summing to one), in nats."""
    import torch

    if alpha < 1:
        # The same floor as entropies_from_spectrum: Gram noise (~eps * k * max) must not count as
        # weight when p**alpha (alpha < 1) would amplify it.
        floor = 8.0 * np.finfo(np.float64).eps * p.shape[1] * p.amax(dim=1, keepdim=True)
        p = torch.where(p > floor, p, torch.zeros_like(p))
    positive = p > 0
    if alpha == 1:
        s = -torch.where(positive, p * torch.log(torch.where(positive, p, 1.0)), 0.0).sum(dim=1)
    elif alpha == 0:
        s = torch.log(positive.sum(dim=1).to(p.dtype))
    elif np.isinf(alpha):
        s = -torch.log(p.amax(dim=1))
    else:
        s = torch.log(torch.where(positive, p, 0.0).pow(alpha).sum(dim=1)) / (1.0 - alpha)
    return s.clamp_min(0.0)


def batched_profiles(
    states: Any,
    dims: Sequence[int],
    *,
    renyi: float = 1.0,
    base: str | int = "e",
    device: Any = None,
) -> np.ndarray:
    """Exact entanglement profiles of a batch of states (the batched ``entanglement_profile``).

    Item ``b`` of the result equals ``entanglement_profile(states[b].reshape(-1), dims)`` (to
    about ``1e-12`` nats): a flat chain of sites, no matrix layout and no site reordering here,
    so a caller wanting the interleaved order of a matrix permutes its axes first.

    Args:
        states: ``[batch, ...]`` numpy array or torch tensor (any float or complex dtype); item
            ``b`` is ``states[b]`` flattened row-major, normalised by its own Frobenius norm.
        dims: site dimensions along the chain; their product is the size of one item.
        renyi: Renyi index ``alpha >= 0``; ``1`` (default) is the von Neumann entropy.
        base: ``"e"`` (nats, default) or ``2`` (bits).
        device: torch device (``"cuda"``, ``"cpu"``...); ``None`` computes where a torch input
            already lives (the CPU for numpy input).

    Returns:
        float64 array of shape ``(batch, N - 1)``; entry ``[b, l - 1]`` is ``S_l`` of item ``b``.

    Raises:
        ValueError: an item that is all zeros or holds NaN/Inf (the message names its batch
            index), dims that do not match an item's size, fewer than two sites, a bad option.
    """
    import torch

    alpha = check_renyi(renyi)
    bits = log_base(base) == 2
    spectra = batched_spectra(states, dims, device=device)
    out = torch.stack([_entropies(p, alpha) for p in spectra], dim=1)
    if bits:
        out = out / log(2)
    return out.cpu().numpy()
