"""The handful of dense linear-algebra operations the profile engine needs, on numpy or torch.

The engine is written once against this interface, so the same code runs on the CPU through
numpy/LAPACK (the default) and on a GPU through torch (``device="cuda"``). Everything is float64
(complex128 for complex input): exactness is the point, and a Gram matrix squares the condition
number, so single precision would lose the small Schmidt values that matter for Renyi indices < 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class NumpyBackend:
    """LAPACK through numpy; the CPU default."""

    name = "numpy"

    @staticmethod
    def asarray(x: Any) -> np.ndarray:
        return to_numpy_float(x)

    @staticmethod
    def gram_rows(x: np.ndarray) -> np.ndarray:
        """``x @ x^H``; numpy dispatches ``x @ x.T`` to BLAS syrk (half a matmul)."""
        return x @ x.conj().T if np.iscomplexobj(x) else x @ x.T

    @staticmethod
    def gram_cols(x: np.ndarray) -> np.ndarray:
        """``x^H @ x``."""
        return x.conj().T @ x if np.iscomplexobj(x) else x.T @ x

    @staticmethod
    def eigvalsh(h: np.ndarray) -> np.ndarray:
        return np.linalg.eigvalsh(h)

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
    def max_abs(x: np.ndarray) -> float:
        return float(np.abs(x).max()) if x.size else 0.0

    @staticmethod
    def all_finite(x: np.ndarray) -> bool:
        return bool(np.isfinite(x).all())

    @staticmethod
    def to_numpy(x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    @staticmethod
    def transpose(x: np.ndarray, axes: list[int]) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(x, axes))


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
        return x.detach().to(device=self.device, dtype=dtype)

    def gram_rows(self, x):
        return x @ x.mH

    def gram_cols(self, x):
        return x.mH @ x

    def eigvalsh(self, h):
        return self.torch.linalg.eigvalsh(h)

    def trace_last(self, rho, keep: int, d: int):
        return self.torch.einsum("iaja->ij", rho.reshape(keep, d, keep, d))

    def trace_first(self, rho, keep: int, d: int):
        return self.torch.einsum("aiaj->ij", rho.reshape(d, keep, d, keep))

    def qr_r(self, x):
        return self.torch.linalg.qr(x, mode="r")[1]

    def norm(self, x) -> float:
        return float(self.torch.linalg.vector_norm(x))

    def max_abs(self, x) -> float:
        return float(x.abs().max()) if x.numel() else 0.0

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
