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

from artent.entanglement.profile import _check_renyi, _log_base
from artent.entanglement.sites import check_dims

__all__ = ["batched_profiles", "batched_spectra"]


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
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        bad = int(torch.nonzero(~finite)[0, 0])
        raise ValueError(f"states: batch item {bad} contains NaN or Inf values")
    peaks = x.abs().amax(dim=1)
    if not bool((peaks > 0).all()):
        bad = int(torch.nonzero(peaks == 0)[0, 0])
        raise ValueError(f"states: batch item {bad} is all zeros: a zero state has no entanglement")
    # Each state by its own Frobenius norm: the profile is scale-free, so this only fixes units.
    # Divided by its largest entry first, so that the squares of entries near 1e300 (or 1e-300)
    # neither overflow nor underflow before the norm is taken.
    x = x / peaks[:, None]
    return x / torch.linalg.vector_norm(x, dim=1)[:, None], dims


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

    alpha = _check_renyi(renyi)
    bits = _log_base(base) == 2
    spectra = batched_spectra(states, dims, device=device)
    out = torch.stack([_entropies(p, alpha) for p in spectra], dim=1)
    if bits:
        out = out / log(2)
    return out.cpu().numpy()
