"""Three LAPACK/BLAS routines numpy does not expose, from the OpenBLAS numpy already loaded.

The dense profile's cost is one Gram matrix and the eigenvalues of a few symmetric matrices, and
numpy alone leaves time on the table at both:

* ``eigvalsh`` runs LAPACK's one-stage ``syevd``, whose Householder tridiagonalisation is half
  matrix-vector products (memory-bound once the matrix leaves the cache). LAPACK's two-stage
  ``dsyevd_2stage`` (values only) first reduces to a band with matrix-matrix products and then
  chases the bulges. It pays only on large matrices, and later with more threads (numpy's
  ``syevd`` parallelises better): measured on the project machine (quiet, best of 3) it took
  0.91x numpy's time at order 2560 and 0.71x at 4096 on one thread, but 1.56x at 2048, 1.20x at
  2560, 0.95x at 3072 and 0.83x at 4096 on two, hence :data:`TWO_STAGE_FROM` and
  :data:`TWO_STAGE_FROM_THREADED`.
* ``x @ x.T`` is a BLAS ``syrk`` inside numpy, but it cannot accumulate into an existing matrix,
  so a Gram matrix of a float32 state would need the whole state in float64 first (twice its
  float32 size, for a 14336 x 4096 update 470 MB). ``cblas_dsyrk`` with ``beta = 1`` adds one
  float64 block at a time (a few tens of MB) instead.
* The number of BLAS threads, so that parallel workers do not each start one thread per core.

numpy's wheels bundle OpenBLAS as ``libscipy_openblas64_`` (64-bit integers, every symbol
prefixed ``scipy_`` and suffixed ``64_``); that library is opened here by path, which returns the
copy numpy already loaded, with its thread pool. Anything else (another numpy build, MKL, a
platform without it) finds nothing, and every caller falls back to plain numpy: same results,
numpy's speed. The routines are checked once against numpy on a small matrix before first use.
Set ``ARTENT_NO_LAPACK=1`` to force the fallback.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "TWO_STAGE_FROM",
    "TWO_STAGE_FROM_THREADED",
    "available",
    "blas_threads",
    "eigvalsh_inplace",
    "syrk_lower",
]

#: Matrices from this order up use the two-stage eigensolver on one BLAS thread (numpy's syevd
#: below: see above).
TWO_STAGE_FROM = 2560
#: The same with two or more BLAS threads.
TWO_STAGE_FROM_THREADED = 3072

_COL_MAJOR = 102
_CBLAS_COL_MAJOR, _CBLAS_UPPER, _CBLAS_NO_TRANS, _CBLAS_TRANS = 102, 121, 111, 112


class _Lib:
    """The three entry points of one OpenBLAS library, with its integer type."""

    def __init__(self, lib: ctypes.CDLL, prefix: str, suffix: str, int_t) -> None:
        self.int_t = int_t
        self.eig = getattr(lib, f"{prefix}LAPACKE_dsyevd_2stage{suffix}")
        self.eig.restype = int_t
        self.eig.argtypes = [
            ctypes.c_int, ctypes.c_char, ctypes.c_char, int_t, ctypes.c_void_p, int_t,
            ctypes.c_void_p,
        ]  # fmt: skip
        self.syrk = getattr(lib, f"{prefix}cblas_dsyrk{suffix}")
        self.syrk.restype = None
        self.syrk.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_int, int_t, int_t, ctypes.c_double,
            ctypes.c_void_p, int_t, ctypes.c_double, ctypes.c_void_p, int_t,
        ]  # fmt: skip
        self.set_threads = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
        self.set_threads.restype = None
        self.set_threads.argtypes = [ctypes.c_int]
        self.get_threads = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
        self.get_threads.restype = ctypes.c_int
        self.get_threads.argtypes = []


_lib: _Lib | None = None
_loaded = False
_load_lock = threading.Lock()


def _candidates() -> list[Path]:
    """numpy's bundled OpenBLAS: ``numpy.libs`` beside the package (Linux), ``.dylibs`` (macOS)."""
    here = Path(np.__file__).parent
    out: list[Path] = []
    for folder in (here.parent / "numpy.libs", here / ".dylibs"):
        out += [Path(p) for p in sorted(glob.glob(str(folder / "libscipy_openblas64_*")))]
    return out


def _open() -> _Lib | None:
    if os.environ.get("ARTENT_NO_LAPACK"):
        return None
    for path in _candidates():
        try:
            lib = _Lib(ctypes.CDLL(str(path)), "scipy_", "64_", ctypes.c_int64)
        except (OSError, AttributeError):
            continue
        if _self_check(lib):
            return lib
    return None


def _self_check(lib: _Lib) -> bool:
    """Both routines agree with numpy on a small random matrix (else they are never used)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5))
    try:
        gram = np.zeros((7, 7))
        _call_syrk(lib, gram, np.ascontiguousarray(x[:, :3]), "rows", 0.0)
        _call_syrk(lib, gram, np.ascontiguousarray(x[:, 3:]), "rows", 1.0)
        expect = x @ x.T
        if not np.allclose(np.tril(gram), np.tril(expect), rtol=1e-12, atol=1e-12):
            return False
        cols = np.zeros((5, 5))
        _call_syrk(lib, cols, x[:4], "cols", 0.0)
        _call_syrk(lib, cols, x[4:], "cols", 1.0)
        if not np.allclose(np.tril(cols), np.tril(x.T @ x), rtol=1e-12, atol=1e-12):
            return False
        h = expect.copy()
        w = np.empty(7)
        if lib.eig(_COL_MAJOR, b"N", b"U", 7, h.ctypes.data, 7, w.ctypes.data) != 0:
            return False
        return bool(np.allclose(w, np.linalg.eigvalsh(expect), rtol=1e-10, atol=1e-12))
    except Exception:  # a crash-free mismatch of any kind: do not use this library
        return False


def _get() -> _Lib | None:
    global _lib, _loaded
    if not _loaded:
        with _load_lock:
            if not _loaded:
                _lib = _open()
                _loaded = True
    return _lib


def available() -> bool:
    """Whether the OpenBLAS routines were found and passed their check."""
    return _get() is not None


def _call_syrk(lib: _Lib, gram: np.ndarray, a: np.ndarray, side: str, beta: float) -> None:
    # Column-major views of C-order arrays: gram reads as gram^T (its C-lower triangle is the
    # column-major upper one), and a C-order (r x c) array as a column-major (c x r) one, lda c.
    # side "rows", a (n x k): gram += a a^T = A^T A for A = a^T column-major (k x n): TRANS.
    # side "cols", a (k x n): gram += a^T a = A A^T for A column-major (n x k): NO_TRANS.
    r, c = a.shape
    n, k, trans = (r, c, _CBLAS_TRANS) if side == "rows" else (c, r, _CBLAS_NO_TRANS)
    lib.syrk(
        _CBLAS_COL_MAJOR, _CBLAS_UPPER, trans, n, k, 1.0, a.ctypes.data, c, beta,
        gram.ctypes.data, n,
    )  # fmt: skip


def syrk_lower(gram: np.ndarray, a: np.ndarray, *, side: str = "rows", beta: float = 1.0) -> bool:
    """``gram = beta * gram + a @ a.T`` (``side="rows"``) or ``+ a.T @ a`` (``"cols"``), lower half.

    Only the lower triangle (C order) of ``gram`` is written; the upper one keeps what it held.

    Args:
        gram: ``n x n`` float64, C-contiguous, updated in place.
        a: float64, C-contiguous: ``n x k`` for ``"rows"``, ``k x n`` for ``"cols"``.
        side: ``"rows"`` (``a a^T``) or ``"cols"`` (``a^T a``).
        beta: factor on the existing ``gram`` (``0`` overwrites it).

    Returns:
        ``False`` (nothing done) when the OpenBLAS routines are not available.
    """
    lib = _get()
    if lib is None:
        return False
    for arr, name in ((gram, "gram"), (a, "a")):
        if arr.dtype != np.float64 or not arr.flags.c_contiguous:
            raise ValueError(f"syrk_lower: {name} must be C-contiguous float64")
    n = a.shape[0] if side == "rows" else a.shape[1]
    if side not in ("rows", "cols") or not gram.flags.writeable or gram.shape != (n, n):
        raise ValueError(f"syrk_lower: gram must be a writable {n} x {n} matrix, side rows|cols")
    _call_syrk(lib, gram, a, side, beta)
    return True


def eigvalsh_inplace(h: np.ndarray) -> np.ndarray | None:
    """Eigenvalues (ascending) of the symmetric ``h`` from its lower triangle; ``h`` is destroyed.

    Uses the two-stage solver from :data:`TWO_STAGE_FROM` up (:data:`TWO_STAGE_FROM_THREADED`
    with several BLAS threads); returns ``None`` (``h`` untouched) below that, for non-float64 or
    non-contiguous input, or when the routine is not available.
    """
    lib = _get()
    n = h.shape[0]
    if (
        lib is None
        or n < (TWO_STAGE_FROM if lib.get_threads() <= 1 else TWO_STAGE_FROM_THREADED)
        or h.dtype != np.float64
        or not h.flags.c_contiguous
        or not h.flags.writeable
    ):
        return None
    w = np.empty(n)
    # The C-order lower triangle is the column-major upper one.
    info = lib.eig(_COL_MAJOR, b"N", b"U", n, h.ctypes.data, n, w.ctypes.data)
    if info != 0:
        raise np.linalg.LinAlgError(f"dsyevd_2stage failed to converge (info={info})")
    return w


@contextmanager
def blas_threads(n: int):
    """Run a block with OpenBLAS limited to ``n`` threads (a no-op where it is not available)."""
    lib = _get()
    if lib is None:
        yield
        return
    before = lib.get_threads()
    lib.set_threads(max(1, int(n)))
    try:
        yield
    finally:
        lib.set_threads(before)
