r"""Passes over the pre-training rows as chunked reductions: numpy, memmap or dask.

Every pass a first stage makes over ``X_pre`` (moments, EM statistics, the influence
contraction of the two-stage covariance, clustered sums, the overlap cross term) is a
sum over chunks of rows of a function of the chunk,

.. math:: R = \sum_{b} f(X_b, \text{start}_b, \text{stop}_b, a_b),

where ``a_b`` are the matching slices of row-aligned arrays (cluster codes). This module
runs such a sum once for every kind of storage:

* a numpy array or a numpy ``memmap``: a loop over ``chunk_rows`` rows at a time (a
  memmap is read from disk one chunk at a time);
* a ``dask.array``: one task per dask block computes its partial sum (itself in
  sub-chunks of ``chunk_rows`` rows), and the partial sums are added in a tree by dask,
  so the same code runs on the threaded scheduler or a ``dask.distributed`` cluster and
  the array is never materialised as a whole.

Rows are cast to float64 per chunk, so float32 data are accumulated in float64 without a
float64 copy of the array. Memory beyond one chunk is that of the partial sums.

dask is optional (``pip install "ssl_inference[dask]"``); nothing here imports it
unless the data are a dask array.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence

import numpy as np

from .._validation import nonfinite_message

__all__ = ["is_dask_array", "refuse_dask", "as_pretrain_array", "reduce_rows", "row_moments",
           "data_fingerprint", "RunningFingerprint", "shippable"]

DEFAULT_CHUNK_ROWS = 8192


def is_dask_array(X) -> bool:
    """Whether ``X`` is a ``dask.array.Array`` (without importing dask).

    Examples
    --------
    >>> is_dask_array(np.zeros((2, 2)))
    False
    """
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "to_delayed")


def refuse_dask(X, owner: str, reason: str) -> None:
    """Raise a clear ``TypeError`` for a dask array given to a fit that does not stream.

    Examples
    --------
    >>> refuse_dask(np.zeros((2, 2)), "GaussianMixture", "")   # numpy: nothing to say
    """
    if is_dask_array(X):
        raise TypeError(
            f"{owner}.fit does not take a dask array: {reason} It would have to "
            "materialise X_pre, which is what a dask array is meant to avoid. Pass "
            "X_pre.compute() (or a numpy memmap of it) when it fits in memory or on disk; "
            "PCA, FactorModel and MEstimatorRepresentation fit dask arrays chunk by chunk.")


def as_pretrain_array(X, name: str = "X_pre"):
    """Pre-training rows in the form the chunked passes read, without a copy when possible.

    A dask array stays a dask array (rechunked lazily to whole rows); a numpy
    ``memmap`` or a float32 array is kept as it is (each pass casts one chunk at a time
    to float64); anything else becomes a float64 ndarray (no copy for a float64 array).
    Finiteness is checked by the first pass over the rows (:func:`row_moments`, or a
    first stage's own first pass), not by an extra read here.

    Raises
    ------
    ValueError
        For data that are not 2-D, or not of a real numeric dtype.

    Examples
    --------
    >>> as_pretrain_array(np.ones((3, 2), dtype=np.float32)).dtype
    dtype('float32')
    >>> as_pretrain_array([[1, 2], [3, 4]]).dtype
    dtype('float64')
    """
    if is_dask_array(X) or isinstance(X, np.ndarray) and (
            isinstance(X, np.memmap) or X.dtype in (np.float32, np.float64)):
        if X.ndim != 2:
            raise ValueError(
                f"{name} must be 2-dimensional (rows = observations, columns = raw "
                f"features); got an array with shape {X.shape}.")
        if X.dtype.kind not in "fiu" or X.dtype.itemsize > 8:
            raise TypeError(f"{name} must hold real numbers (float32 or float64 preferred); "
                            f"got dtype {X.dtype}.")
        if is_dask_array(X):
            return X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X
        return X
    from .._validation import as_float_matrix  # lists, DataFrames, other dtypes
    return as_float_matrix(X, name)


def is_lazy(X) -> bool:
    """Whether reading ``X`` is a pass over storage (dask or memmap) or float32 data
    whose finiteness :func:`as_pretrain_array` has not checked."""
    return is_dask_array(X) or isinstance(X, np.memmap) or X.dtype != np.float64


def _block_sum(block, start: int, fn: Callable, aligned: Sequence, chunk_rows: int):
    """``sum f`` over the sub-chunks of one block (rows ``start:start + len(block)``)."""
    total = None
    for lo in range(0, block.shape[0], chunk_rows):
        hi = min(lo + chunk_rows, block.shape[0])
        part = fn(np.asarray(block[lo:hi], dtype=np.float64), start + lo, start + hi,
                  *(a[lo:hi] for a in aligned))
        total = part if total is None else _add(total, part)
    return total


def _add(a, b):
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b))
    return a + b


def _tree_sum(parts: list):
    import dask
    while len(parts) > 1:
        parts = [dask.delayed(_add)(*parts[i:i + 2]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


def reduce_rows(X, fn: Callable, *, aligned: Sequence = (),
                chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """``sum_b fn(X_b, start_b, stop_b, *aligned_b)`` over chunks of rows of ``X``.

    Parameters
    ----------
    X : ndarray, memmap or dask array (m, w)
    fn : callable
        ``fn(block, start, stop, *aligned_blocks)`` with ``block`` a float64 ndarray of
        rows ``start:stop``; returns an ndarray or a tuple of ndarrays of fixed shapes.
        With dask it runs in the workers: it must be picklable (cloudpickle) and should
        not capture the data themselves (see :func:`shippable`).
    aligned : sequence of ndarray (m, ...)
        Row-aligned arrays sliced like ``X`` (e.g. cluster codes).
    chunk_rows : int
        Rows per call of ``fn`` (dask blocks are split into such sub-chunks).

    Returns
    -------
    ndarray or tuple of ndarray
        The sum (None when ``X`` has no rows).

    Examples
    --------
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> reduce_rows(X, lambda b, lo, hi: b.T @ b, chunk_rows=4)
    array([[220., 250.],
           [250., 286.]])
    >>> reduce_rows(X, lambda b, lo, hi, c: np.bincount(c, b[:, 0], minlength=2),
    ...             aligned=[np.array([0, 0, 1, 1, 1, 0])], chunk_rows=4)
    array([12., 18.])
    """
    if not is_dask_array(X):
        return _block_sum(X, 0, fn, aligned, chunk_rows) if X.shape[0] else None
    import dask
    if X.ndim == 2 and len(X.chunks[1]) > 1:  # whole rows in every block
        X = X.rechunk({1: -1})
    blocks = X.to_delayed().ravel()
    bounds = np.concatenate([[0], np.cumsum(X.chunks[0])])
    task = dask.delayed(_block_sum, pure=True)
    parts = [task(block, int(bounds[i]), fn, [a[bounds[i]:bounds[i + 1]] for a in aligned],
                  chunk_rows) for i, block in enumerate(blocks)]
    if not parts:
        return None
    (out,) = dask.compute(_tree_sum(parts))
    return out


def shippable(obj):
    """A shallow copy of a fitted representation without its pre-training data, for
    the tasks of a dask reduction (so the array's graph is not sent with every task)."""
    out = copy.copy(obj)
    out.__dict__["_pretrain_data"] = None
    return out


def _moments_chunk(block, start, stop, *weights, shift):
    centred = block - shift
    if not weights:
        return np.array([float(stop - start)]), centred.sum(axis=0), centred.T @ centred
    w = weights[0]
    drawn = w > 0  # a bootstrap leaves about 37% of the rows out: skip them
    root = centred[drawn] * np.sqrt(w[drawn])[:, None]  # R'R: the symmetric product
    return np.array([float(w.sum())]), w[drawn] @ centred[drawn], root.T @ root


def row_moments(X, name: str = "X_pre", *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                weights: np.ndarray | None = None):
    r"""Mean and (1/m) covariance of the rows of ``X`` in one chunked pass.

    Moments are accumulated about a shift ``s`` (the mean of the first rows), so that
    a large mean does not cancel: ``S = (1/m) sum (x - s)(x - s)' - (xbar - s)(xbar - s)'``.
    Non-finite entries make the sums non-finite (the finiteness check of lazy inputs:
    only then are the offending rows looked for).

    With ``weights`` (one count ``w_i >= 0`` per row, e.g. how often a bootstrap
    resample drew row ``i``) the sums are ``sum_i w_i (...)`` and ``m = sum_i w_i``:
    the moments of the sample in which row ``i`` appears ``w_i`` times, read chunk by
    chunk with the matching slice of ``weights`` (no gather of the resampled rows).

    Raises
    ------
    ValueError
        When ``X`` contains NaN or infinite values.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(1000, 3)) + 1e6
    >>> mean, cov = row_moments(X, chunk_rows=300)
    >>> bool(np.allclose(cov, np.cov(X.T, bias=True), rtol=1e-9))
    True
    >>> w = np.random.default_rng(1).integers(0, 3, size=1000)
    >>> wmean, wcov = row_moments(X, weights=w, chunk_rows=300)
    >>> copy = X[np.repeat(np.arange(1000), w)]
    >>> bool(np.allclose(wcov, np.cov(copy.T, bias=True), rtol=1e-9))
    True
    """
    m, p = X.shape
    shift = np.asarray(X[:min(m, 256)], dtype=np.float64).mean(axis=0)
    if not np.all(np.isfinite(shift)):
        shift = np.zeros(p)
    aligned = () if weights is None else (np.asarray(weights, dtype=np.float64),)
    count, total, cross = reduce_rows(X, functools.partial(_moments_chunk, shift=shift),
                                      aligned=aligned, chunk_rows=chunk_rows)
    if not (np.all(np.isfinite(total)) and np.all(np.isfinite(cross))):
        # a NaN or infinite entry makes its column's sum non-finite; otherwise the
        # finite values overflowed (the rows are looked for on this error path only)
        bad = nonfinite_rows(X)
        if bad.size:
            raise ValueError(nonfinite_message(name, bad))
        raise ValueError(f"The moments of {name} overflow float64: rescale its columns.")
    delta = total / count[0]
    return shift + delta, cross / count[0] - np.outer(delta, delta)


def nonfinite_rows(X) -> np.ndarray:
    """Indices of the rows of ``X`` with a NaN or infinite value (an error path: the
    boolean row mask, ``m`` bytes, is gathered)."""
    mask = reduce_rows(X, lambda b, lo, hi: _row_flags(b, lo, hi, X.shape[0]))
    return np.flatnonzero(mask)


def _row_flags(block, start, stop, m):
    flags = np.zeros(m, dtype=bool)
    flags[start:stop] = ~np.isfinite(block).all(axis=1)
    return flags


def data_fingerprint(X) -> tuple:
    r"""What identifies the pre-training data between ``fit`` and later reads.

    * ndarray or memmap: shape, dtype and a position-weighted checksum of the bytes,
      read in row chunks: with ``w_ij`` the unsigned machine words of row ``i``
      (8 bytes when a row's length allows, else 4 or 1), ``s_1 = sum_ij w_ij`` and
      ``s_2 = sum_i (i + 1) sum_j w_ij``, both modulo ``2^64`` (a Fletcher-type sum:
      any change of one word changes ``s_1``; moving a row changes ``s_2``). It costs a
      fraction of a bare ``X'X`` pass (integer additions at memory speed) where
      CRC-32 cost more than the pass itself; it guards against accidents such as an
      in-place ``X_pre *= 10``, not against crafted collisions;
    * dask array: shape, dtype, chunks and the array's ``name``, dask's deterministic
      token of the graph that produces it (dask arrays are immutable descriptions: the
      token changes with every operation on the array, and hashing the bytes would cost
      a full pass over storage at every read). Files behind a dask array that are
      rewritten in place after ``fit`` are not detected.

    Examples
    --------
    >>> X = np.arange(6.0).reshape(3, 2)
    >>> data_fingerprint(X)[:2]
    ((3, 2), '<f8')
    >>> data_fingerprint(X) == data_fingerprint(X[::-1].copy())   # rows moved
    False
    """
    if is_dask_array(X):
        return X.shape, X.dtype.str, X.chunks, X.name
    running = RunningFingerprint(X)
    rows = max(1, (1 << 24) // max(1, running.row_bytes))
    for start in range(0, X.shape[0], rows):
        running.add(X[start:start + rows], start)
    return running.value()


class RunningFingerprint:
    """:func:`data_fingerprint` of an ndarray or memmap accumulated over its row chunks,
    as a pass that reads them anyway does (each row added once, in any order).

    Examples
    --------
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> running = RunningFingerprint(X)
    >>> running.add(X[4:], 4); running.add(X[:4], 0)
    >>> running.value() == data_fingerprint(X)
    True
    """

    def __init__(self, X):
        self._shape, self._dtype = X.shape, X.dtype.str
        self.row_bytes = X.itemsize * int(np.prod(X.shape[1:]))
        self._word = next(w for w in (np.uint64, np.uint32, np.uint8)
                          if self.row_bytes % np.dtype(w).itemsize == 0)
        self._total = self._weighted = 0

    def add(self, rows: np.ndarray, start: int) -> None:
        """Add the rows ``start:start + len(rows)`` (in the array's own dtype)."""
        chunk = np.ascontiguousarray(rows)
        sums = chunk.view(np.uint8).reshape(chunk.shape[0], -1).view(self._word).sum(
            axis=1, dtype=np.uint64)
        positions = np.arange(start + 1, start + 1 + chunk.shape[0], dtype=np.uint64)
        self._total = (self._total + int(sums.sum(dtype=np.uint64))) % 2 ** 64
        self._weighted = (self._weighted
                          + int((positions * sums).sum(dtype=np.uint64))) % 2 ** 64

    def value(self) -> tuple:
        return self._shape, self._dtype, self._total, self._weighted
