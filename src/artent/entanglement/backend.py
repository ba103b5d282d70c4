"""The handful of dense linear-algebra operations the profile engine needs, on numpy or torch.

The engine is written once against this interface, so the same code runs on the CPU through
numpy/LAPACK (the default) and on a GPU through torch (``device="cuda"``). Every Gram matrix and
every eigenvalue is float64 (complex128 for complex input): exactness is the point, and a Gram
matrix squares the condition number, so single precision would lose the small Schmidt values that
matter for Renyi indices < 1.

A dense *state* may stay in float32 on the numpy backend (a float32 or bf16 weight update): its
Gram matrix is then accumulated in float64 one block of rows or columns at a time, so the state
never exists in float64 as a whole. Every float32 entry is exact in float64, so the Gram matrix is
the one of the float64 state, up to the summation order.

Gram matrices on the numpy backend are symmetric through their lower triangle only (the upper one
is zero): partial traces keep that (entry ``(i, j)`` of a partial trace sums entries ``((i, a),
(j, a))``, below the diagonal when ``i > j``), and the eigensolvers read the lower triangle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from artent.entanglement import lapack

#: Largest float64 block (in elements) converted from a float32 state at a time: 32 MB.
GRAM_BLOCK_ELEMENTS = 1 << 22
#: States whose largest entry lies outside this range are rescaled before their Gram matrix, so
#: that squares and their sums neither overflow nor underflow.
SAFE_RANGE = (1e-100, 1e100)


class NumpyBackend:
    """LAPACK through numpy (and numpy's OpenBLAS, see :mod:`artent.entanglement.lapack`)."""

    name = "numpy"

    @staticmethod
    def asarray(x: Any) -> np.ndarray:
        return to_numpy_float(x)

    @staticmethod
    def state(x: Any) -> np.ndarray:
        """A dense state as a C-contiguous array: float32 kept (16-bit floats widened to float32),
        everything else float64 or complex128; numpy input and CPU tensors are not copied when
        they already are so."""
        return np.ascontiguousarray(to_numpy_state(x))

    @staticmethod
    def checked(x: np.ndarray, what: str) -> np.ndarray:
        """``x`` after the checks every state passes (finite, not all zero), rescaled (a float64
        copy) only when its largest entry is outside :data:`SAFE_RANGE`."""
        if np.iscomplexobj(x):
            big = float(np.abs(x).max()) if x.size else 0.0
        else:
            big = max(float(x.max()), -float(x.min())) if x.size else 0.0  # NaN propagates
        if not np.isfinite(big):
            raise ValueError(f"{what} contains NaN or Inf values")
        if big == 0.0:
            raise ValueError(f"{what} is all zeros: a zero matrix has no state and no entanglement")
        if not SAFE_RANGE[0] <= big <= SAFE_RANGE[1]:
            return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64) / big
        return x

    @staticmethod
    def gram_rows(x: np.ndarray) -> np.ndarray:
        """``x @ x^H`` in float64 (lower triangle for real ``x``)."""
        if np.iscomplexobj(x):
            x = x.astype(np.complex128, copy=False)
            return x @ x.conj().T
        return real_gram(x, "rows")

    @staticmethod
    def gram_cols(x: np.ndarray) -> np.ndarray:
        """``x^H @ x`` in float64 (lower triangle for real ``x``)."""
        if np.iscomplexobj(x):
            x = x.astype(np.complex128, copy=False)
            return x.conj().T @ x
        return real_gram(x, "cols")

    @staticmethod
    def eigvalsh(h: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """Eigenvalues of a Hermitian matrix from its lower triangle; with ``overwrite`` the
        two-stage solver may use ``h`` as its workspace (large real matrices)."""
        if overwrite:
            w = lapack.eigvalsh_inplace(h)
            if w is not None:
                return w
        return np.linalg.eigvalsh(h, UPLO="L")

    @staticmethod
    def trace_last(rho: np.ndarray, keep: int, d: int) -> np.ndarray:
        """Partial trace over the last site (dim ``d``) of a ``(keep*d) x (keep*d)`` matrix."""
        return np.einsum("iaja->ij", rho.reshape(keep, d, keep, d))

    @staticmethod
    def trace_first(rho: np.ndarray, keep: int, d: int) -> np.ndarray:
        """Partial trace over the first site (dim ``d``) of a ``(d*keep) x (d*keep)`` matrix."""
        return np.einsum("aiaj->ij", rho.reshape(d, keep, d, keep))

    @staticmethod
    def qr_r(x: np.ndarray) -> np.ndarray:
        """The R factor of a reduced QR (Q is never formed)."""
        return np.linalg.qr(x, mode="r")

    @staticmethod
    def norm(x: np.ndarray) -> float:
        return float(np.linalg.norm(x))

    @staticmethod
    def all_finite(x: np.ndarray) -> bool:
        return bool(np.isfinite(x).all())

    @staticmethod
    def to_numpy(x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    @staticmethod
    def transpose(x: np.ndarray, axes: list[int]) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(x, axes))


def real_gram(x: np.ndarray, side: str) -> np.ndarray:
    """``x x^T`` (``side="rows"``) or ``x^T x`` (``"cols"``) in float64, lower triangle, upper 0.

    A float64 ``x`` goes to BLAS ``syrk`` whole; a float32 one a block at a time (columns of
    ``x`` for ``"rows"``, rows for ``"cols"``), each block converted to float64 and added in.
    """
    m, k = x.shape
    n = m if side == "rows" else k
    if x.dtype == np.float64 and x.flags.c_contiguous:
        gram = np.zeros((n, n))
        if lapack.syrk_lower(gram, x, side=side, beta=0.0):
            return gram
        return x @ x.T if side == "rows" else x.T @ x  # numpy's own syrk, both triangles
    inner = k if side == "rows" else m  # the summed index
    step = max(1, GRAM_BLOCK_ELEMENTS // max(n, 1))
    gram = np.zeros((n, n))
    for start in range(0, inner, step):
        if side == "rows":
            block = x[:, start : start + step].astype(np.float64)  # C-contiguous copy
            if not lapack.syrk_lower(gram, block, side="rows"):
                gram += block @ block.T
        else:
            block = x[start : start + step].astype(np.float64)
            if not lapack.syrk_lower(gram, block, side="cols"):
                gram += block.T @ block
    return gram


class TorchBackend:
    """torch.linalg on a given device (a GPU where present)."""

    name = "torch"

    def __init__(self, device: Any = None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def asarray(self, x: Any):
        torch = self.torch
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x))
        dtype = torch.complex128 if x.is_complex() else torch.float64
        # Moved first, widened there: a bf16/float32 update crosses the bus at its own size.
        return x.detach().to(device=self.device).to(dtype)

    def state(self, x: Any):
        return self.asarray(x).contiguous()

    def checked(self, x, what: str):
        torch = self.torch
        big = float(x.abs().max()) if x.numel() else 0.0
        if not np.isfinite(big):
            raise ValueError(f"{what} contains NaN or Inf values")
        if big == 0.0:
            raise ValueError(f"{what} is all zeros: a zero matrix has no state and no entanglement")
        if not SAFE_RANGE[0] <= big <= SAFE_RANGE[1]:
            return x / torch.as_tensor(big, dtype=x.real.dtype, device=x.device)
        return x

    def gram_rows(self, x):
        return x @ x.mH

    def gram_cols(self, x):
        return x.mH @ x

    def eigvalsh(self, h, overwrite: bool = False):
        return self.torch.linalg.eigvalsh(h)

    def trace_last(self, rho, keep: int, d: int):
        return self.torch.einsum("iaja->ij", rho.reshape(keep, d, keep, d))

    def trace_first(self, rho, keep: int, d: int):
        return self.torch.einsum("aiaj->ij", rho.reshape(d, keep, d, keep))

    def qr_r(self, x):
        return self.torch.linalg.qr(x, mode="r")[1]

    def norm(self, x) -> float:
        return float(self.torch.linalg.vector_norm(x))

    def all_finite(self, x) -> bool:
        return bool(self.torch.isfinite(x).all())

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy()

    def transpose(self, x, axes: list[int]):
        return x.permute(*axes).contiguous()


def pick_backend(x: Any, device: Any = None):
    """numpy for numpy input and CPU tensors; torch when ``device`` is given or ``x`` is on a GPU.

    Args:
        x: the input array (numpy array, torch tensor, or anything numpy accepts).
        device: ``None`` (numpy, unless ``x`` is a tensor on a GPU: then torch there), ``"numpy"``,
            or a torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``...) to compute there with torch.
    """
    if device == "numpy":
        return NumpyBackend()
    if device is not None:
        return TorchBackend(device)
    mod = type(x).__module__
    if (
        mod.startswith("torch")
        and getattr(x, "device", None) is not None
        and x.device.type != "cpu"
    ):
        return TorchBackend(x.device)
    return NumpyBackend()


def to_numpy_float(x: Any) -> np.ndarray:
    """Any array-like (torch tensors of any float dtype, bf16 too) as a float64/complex128 array."""
    if type(x).__module__.startswith("torch"):
        import torch

        x = x.detach()
        return x.to(torch.complex128 if x.is_complex() else torch.float64).cpu().numpy()
    x = np.asarray(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64, copy=False)


def to_numpy_state(x: Any) -> np.ndarray:
    """Like :func:`to_numpy_float`, but float32 stays float32 (and float16/bf16 become float32):
    the dense state's Gram matrix is accumulated in float64 block by block (see the module)."""
    if type(x).__module__.startswith("torch"):
        import torch

        x = x.detach().cpu()
        if x.is_complex():
            return x.to(torch.complex128).numpy()
        if x.is_floating_point() and x.dtype != torch.float64:
            return x.to(torch.float32).numpy()
        return x.to(torch.float64).numpy()
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return x.astype(np.complex128, copy=False)
    if x.dtype in (np.float32, np.float16):
        return x.astype(np.float32, copy=False)
    return x.astype(np.float64, copy=False)
