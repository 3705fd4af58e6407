"""The representation protocol: what every first stage provides to second-stage inference.

A representation is a feature map ``phi(x; theta)`` in R^k fitted on a pre-training
sample ``X_pre`` (m rows). Second-stage inference needs four things from it
(THEORY.md §3):

* the features ``phi(x; theta_hat)`` (:meth:`Representation.transform`);
* vector-Jacobian products ``sum_j (d phi_j / d theta)' c_j`` (:meth:`feature_vjp`),
  so that no ``n x k x q`` Jacobian is ever formed;
* the horizontal first-stage influence ``IF(u)`` of the pre-training units, with
  ``theta_hat - theta* ~= (1/m) sum_i IF(u_i)`` (:meth:`influence`), delivered to
  the covariance code as the streamed contraction ``IF(U_chunk) K'``
  (:meth:`influence_contract`) or its sums over clusters (:meth:`influence_sums`),
  so that neither an ``m x q`` array nor a ``q x q`` covariance is formed;
* its symmetry group and the gauge convention that picks one representative of each
  orbit (``symmetry_``, :attr:`gauge_convention`), with the group action
  (:meth:`act`) and the rows that alignment matches (:meth:`alignment_coordinates`).

First stages that are M-estimators (all the built-in ones) derive the influence from
their per-unit estimating function and mean Hessian through
:class:`~ssl_inference.representations.linearization.MEstimatorBase`;
:func:`ssl_inference.testing.check_representation` checks any implementation.
"""
from __future__ import annotations

import copy
import functools
import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import sparse

from .._validation import as_float_matrix
from ..exceptions import (ConvergenceWarning, IdentificationWarning, NotFittedError,
                          PretrainDataModifiedError)
from ..symmetry import Group
from .chunked import (DEFAULT_CHUNK_ROWS, RunningFingerprint, data_fingerprint, is_dask_array,
                      reduce_rows, shippable)

__all__ = ["Representation"]


class Representation(ABC):
    """Base class of first-stage feature maps (scikit-learn style): the protocol.

    ``__init__`` stores hyper-parameters untouched, ``fit`` returns ``self`` and
    sets trailing-underscore attributes. Everything the rest of the package reads from
    a first stage is listed here; :func:`ssl_inference.testing.check_representation`
    checks a subclass against it.

    ==================================  ======================================================
    member                              used by
    ==================================  ======================================================
    ``fit(X_pre)`` (abstract)           the user
    :meth:`_fit_weighted`               bootstrap and jackknife replicates refit
                                        ``clone()._fit_weighted(pretrain_data_, counts)``
                                        (default: ``fit`` on the gathered rows)
    ``n_features_out_`` (abstract)      the second-stage design (``k``)
    ``_transform(X)`` (abstract)        :meth:`transform`: features of validated raw rows
    ``feature_vjp`` (abstract)          first-stage Jacobian of coefficients, predictions
    ``influence(U)`` (abstract)         everything first-stage: ``IF`` of pre-training units
    ``act(g)`` (abstract)               :func:`~ssl_inference.align`, the aligned bootstrap
    ``alignment_coordinates()``         :func:`~ssl_inference.align` (abstract)
    :meth:`influence_contract`          the two-stage covariance (default: from ``influence``)
    :meth:`influence_gram`              the two-stage covariance's first-stage sums (one
                                        chunked pass: numpy, memmap or dask)
    :meth:`influence_sums`              clustered covariance (default: from the contraction)
    :meth:`influence_covariance`        first-stage covariance of ``K theta_hat``
    :meth:`pretrain_units`              the rows ``influence`` takes (default: ``X_pre``)
    :meth:`with_params`                 derivative checks (default: copy, set ``params_``)
    :meth:`clone`, ``get_params``       the bootstrap, :mod:`pickle`-able copies
    ==================================  ======================================================

    **One meaning of the influence input.** :meth:`influence` takes *pre-training
    units*, rows laid out as :meth:`pretrain_units` returns them: the rows of
    ``X_pre`` for every built-in first stage except
    :class:`~ssl_inference.SpectralContrastive`, whose units are the triples
    ``[x, x+, x-]``. ``transform`` takes raw feature rows (``n_features_in_`` columns).

    Attributes
    ----------
    params_ : ndarray of shape (q,)
        ``theta_hat`` in the reported gauge.
    nobs_ : int
        Number of pre-training units ``m``.
    symmetry_ : Group
        The group under which the pre-training loss is invariant; ``symmetry_.k`` is
        ``n_features_out_`` and ``symmetry_.rho(g)`` moves the features.
    n_features_in_ : int
        Number of raw input columns ``p`` that ``transform`` takes.
    feature_names_in_ : ndarray of str
        Raw column names, when ``fit`` saw a DataFrame with string column names.
    pretrain_data_ : ndarray, memmap or dask array of shape (m, w)
        The pre-training rows (needed for the first-stage influence), read-only: a
        reference to what ``fit`` was given (see
        :mod:`~ssl_inference.representations.chunked`), not a copy.
    pretrain_row_labels_ : pandas Index or None
        Index of ``X_pre`` when ``fit`` saw a DataFrame (``pretrain_groups`` given as a
        Series is aligned on it), else None.
    fit_warnings_ : list of str
        The ``IdentificationWarning`` and ``ConvergenceWarning`` messages of the last
        ``fit`` (they are still issued as warnings); second-stage summaries repeat them.
    gauge_convention : str
        How the reported representative of each symmetry orbit is chosen (a class
        attribute, or set by ``fit`` when it depends on the options).

    Notes
    -----
    Ownership of the pre-training data. A fitted representation does not copy
    ``X_pre`` (it can be larger than memory allows twice): ``pretrain_data_`` is a
    read-only view of the array ``fit`` validated, which is the caller's own array when
    that was already a float64 ndarray. A fingerprint of its bytes (a position-weighted
    checksum streamed in chunks at memory speed, a fifth of a bare ``X'X`` pass) is
    taken when it is set, and every read of ``pretrain_data_`` (the bootstrap, the risk
    plug-in) checks it first, every influence stream (standard errors, predictions) as
    it reads the chunks: if the caller changed the array in place after ``fit``
    (``X_pre *= 10``), reading raises
    :class:`~ssl_inference.exceptions.PretrainDataModifiedError` instead of returning
    standard errors of data the fit never saw. Pass ``X_pre.copy()`` to ``fit`` to keep
    modifying your array. :meth:`_pretrain_fingerprint` is the one place that reads
    the bytes for the check. A dask array is an immutable description of its data: its
    fingerprint is dask's token of the graph (no pass over storage), so files rewritten
    behind it after ``fit`` are not detected.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # fit, _fit_at (a fit at a given estimate, polished: used by the adapters) and
        # _fit_weighted (a fit on weighted units: the resampling replicates)
        for name in ("fit", "_fit_at", "_fit_weighted"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_records_warnings", False):
                setattr(cls, name, _recording_fit_warnings(method))

    #: How the fitted representative of each symmetry orbit is chosen.
    gauge_convention: str = ""
    #: Prefix of the output feature names.
    feature_prefix: str = "f"
    #: Whether ``IF(u)`` is the derivative of refits on the units with ``u`` duplicated
    #: or removed (the contamination derivative). False when the units share
    #: randomness that a refit redraws (:class:`~ssl_inference.SpectralContrastive`
    #: with negatives drawn inside ``fit``); :func:`~ssl_inference.testing.
    #: check_representation` then says so instead of comparing with refits.
    influence_by_refit: bool = True

    @abstractmethod
    def fit(self, X, y=None) -> "Representation":
        """Fit the representation on the pre-training rows ``X`` and return ``self``."""

    @property
    @abstractmethod
    def n_features_out_(self) -> int:
        """Number of learned features ``k``."""

    @abstractmethod
    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Features of validated raw rows ``X`` (n, p) at ``theta_hat``: (n, k)."""

    @abstractmethod
    def feature_vjp(self, X, C, *, per_row: bool = False) -> np.ndarray:
        """Vector-Jacobian product of the feature map with respect to ``theta``.

        Parameters
        ----------
        X : ndarray of shape (n, p)
            Raw rows.
        C : ndarray of shape (n, k, r), or (n, k) with ``per_row=True``
            Cotangents, one k-vector per row and output.
        per_row : bool
            If False return ``sum_j (d phi(x_j)/d theta)' C[j, :, r]`` for each r, an
            array of shape (q, r). If True return the per-row products
            ``(d phi(x_j)/d theta)' C[j]`` as an array of shape (n, q).
        """

    @abstractmethod
    def influence(self, U) -> np.ndarray:
        """Horizontal first-stage influence ``IF(u)`` of pre-training units, shape (n, q).

        ``U`` holds units laid out as :meth:`pretrain_units` returns them. Scaled so
        that ``theta_hat - theta* ~= (1/m) sum_i IF(u_i)`` over the pre-training
        units; it has no component along the symmetry orbit.
        """

    # ------------------------------------------------------------------ symmetry
    @abstractmethod
    def act(self, g) -> "Representation":
        """A copy moved by group element ``g``: features ``rho(g) phi``.

        The copy's parameters are ``g . theta_hat`` and its influence and feature VJP
        follow, so that every invariant result is unchanged. Alignment and the aligned
        bootstrap need it.
        """

    @abstractmethod
    def alignment_coordinates(self) -> np.ndarray:
        """Rows that move with ``rho(g)``: ``symmetry_.align`` matches them (see
        :func:`~ssl_inference.align`)."""

    def get_params(self) -> dict:
        """Hyper-parameters as passed to ``__init__`` (scikit-learn convention)."""
        names = [n for n, p in inspect.signature(type(self).__init__).parameters.items()
                 if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {n: getattr(self, n) for n in names}

    def clone(self) -> "Representation":
        """An unfitted copy with the same hyper-parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        """The class with the hyper-parameters that differ from their defaults.

        Examples
        --------
        >>> import ssl_inference as ssi
        >>> ssi.PCA(2, symmetry="rotation")
        PCA(n_components=2, symmetry='rotation')
        """
        signature = inspect.signature(type(self).__init__).parameters
        parts = []
        for name, value in self.get_params().items():
            default = signature[name].default if name in signature else inspect.Parameter.empty
            if default is inspect.Parameter.empty or not _same_setting(value, default):
                parts.append(f"{name}={_short_repr(value)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # ------------------------------------------------------- pre-training data
    @property
    def pretrain_data_(self) -> np.ndarray | None:
        """The pre-training rows (read-only), checked against their fit-time fingerprint.

        Raises
        ------
        PretrainDataModifiedError
            When the array was changed in place since ``fit``.
        """
        data = self._pretrain_data  # AttributeError before fit, as for other fitted state
        if data is not None and self._pretrain_fingerprint(data) != self._pretrain_checksum:
            raise self._modified_error()
        return data

    def _modified_error(self) -> PretrainDataModifiedError:
        return PretrainDataModifiedError(
            f"X_pre was modified after fit: the pre-training rows this "
            f"{type(self).__name__} was fitted on have changed in place (the "
            "representation keeps a read-only reference to your array, not a copy, to "
            "save memory). Its parameters describe the old data, so first-stage "
            "influences, two-stage standard errors, predictions and bootstrap "
            "replicates computed from the changed rows would be wrong. Refit the "
            "representation on the data you mean (rep.fit(X_pre)) and refit the "
            "model; pass X_pre.copy() to fit if you need to modify the array "
            "afterwards.")

    def _checked_row_chunks(self, chunk_rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, X)`` over the rows of the pre-training data ``X``, the
        fingerprint checked in the same pass.

        For an ndarray or memmap the fingerprint is accumulated from each chunk as it
        is read (the chunk is in cache: a tenth of a bare pass instead of a fifth for a
        separate reading) and compared when the stream ends, which then raises
        :class:`~ssl_inference.exceptions.PretrainDataModifiedError` if the rows changed
        since ``fit`` (the sums over the stream, standard errors and predictions, are
        never returned); a dask array's token is checked up front.
        """
        X = self._pretrain_data
        running = None
        if X is None or is_dask_array(X):
            X = self.pretrain_data_
        else:
            running = RunningFingerprint(X)
        for start in range(0, self.nobs_, chunk_rows):
            stop = min(start + chunk_rows, self.nobs_)
            if running is not None:
                running.add(X[start:stop], start)
            yield start, stop, X
        if running is not None and running.value() != self._pretrain_checksum:
            raise self._modified_error()

    @pretrain_data_.setter
    def pretrain_data_(self, X) -> None:
        if X is None:  # dropped (e.g. bootstrap replicates keep only what transforms)
            self._pretrain_data, self._pretrain_checksum = None, None
            return
        if is_dask_array(X):  # an immutable description of the data: kept, not copied
            view = X
        else:
            view = X.view()
            view.flags.writeable = False
        self._pretrain_data = view
        self._pretrain_checksum = self._pretrain_fingerprint(view)

    @staticmethod
    def _pretrain_fingerprint(X) -> tuple:
        """Shape, dtype and a checksum of the bytes of ``X``, read in row chunks (for a dask
        array: its graph's token, see
        :func:`~ssl_inference.representations.chunked.data_fingerprint`)."""
        return data_fingerprint(X)

    # ------------------------------------------------------------- weighted refit
    def _fit_weighted(self, X, weights: np.ndarray, rows: np.ndarray | None = None
                      ) -> "Representation":
        r"""Fit on the pre-training units of ``X`` with unit ``i`` counted ``weights[i]``
        times: what a resampling replicate refits.

        A bootstrap resample is the full ``X`` with integer counts (how often each unit
        was drawn, 0 for units not drawn); a jackknife deletion has counts 0 and 1. The
        result equals ``fit(X[np.repeat(np.arange(m), weights)])`` (the resample with its
        rows in the order of ``X``), to rounding.

        The built-in first stages override this with a fit whose sums over units carry
        the weights (``sum_i w_i f(u_i)``), reading ``X`` chunk by chunk with the
        matching slice of ``weights``, so a replicate never gathers ``X[rows]`` (for a
        memmap or dask ``X_pre`` of 10^7 rows that gather is the replicate's cost). Such
        a fit keeps no pre-training data (``pretrain_data_`` is None: a replicate needs
        its features, not its influence). This default, for a first stage that only
        implements ``fit(X)`` (third-party representations), is the gather: one copy of
        the resampled rows per replicate, ``fit(X[rows])`` with the rows in the order
        they were drawn when the caller passes them (as before weighted refits existed,
        so such a first stage's replicates are unchanged), else in the order of ``X``.

        Parameters
        ----------
        X : ndarray, memmap or dask array (m, w)
            The pre-training data as ``pretrain_data_`` holds them.
        weights : ndarray of int (m,)
            Count of each unit (row of ``X``).
        rows : ndarray of int, optional
            The drawn units themselves (``weights`` is their ``bincount``): only the
            gathering fallback reads them.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(200, 3)) * [3.0, 2.0, 1.0]
        >>> counts = np.bincount(np.random.default_rng(1).integers(0, 200, 200), minlength=200)
        >>> weighted = ssi.PCA(1).clone()._fit_weighted(X, counts)
        >>> copied = ssi.PCA(1).fit(X[np.repeat(np.arange(200), counts)])
        >>> bool(np.allclose(weighted.params_, copied.params_, rtol=1e-10, atol=1e-12))
        True
        """
        if rows is None:
            weights = np.asarray(weights, dtype=np.intp)
            rows = np.repeat(np.arange(weights.size), weights)
        return self.fit(X[rows])

    # ------------------------------------------------------------------ shared
    def pretrain_units(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Pre-training units ``start:stop``, laid out as :meth:`influence` takes them.

        The rows of ``pretrain_data_`` by default; a first stage whose units are built
        from several rows (the triples of
        :class:`~ssl_inference.SpectralContrastive`) overrides it.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(100, 3)) * [3.0, 2.0, 1.0]
        >>> rep = ssi.PCA(1).fit(X)
        >>> bool(np.array_equal(rep.pretrain_units(5, 8), X[5:8]))
        True
        """
        self._check_fitted()
        return self._units(self.pretrain_data_, start, self.nobs_ if stop is None else stop)

    def _units(self, X: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Units ``start:stop`` built from the pre-training rows ``X`` (read once), as a
        float64 ndarray (one chunk of a memmap, float32 or dask array is cast)."""
        return np.asarray(X[start:stop], dtype=np.float64)

    def _unit_chunks(self, chunk_rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, units)`` over the pre-training units, the data read (and its
        fingerprint checked, :meth:`_checked_row_chunks`) once."""
        for start, stop, X in self._checked_row_chunks(chunk_rows):
            yield start, stop, self._units(X, start, stop)

    #: What one pre-training unit is, in words (for error messages).
    _unit_layout = "rows of X_pre"

    def _unit_width(self) -> int | None:
        """Columns of one pre-training unit (None once the data were dropped)."""
        data = getattr(self, "_pretrain_data", None)
        return None if data is None else data.shape[1]

    def _validate_units(self, U) -> np.ndarray:
        """``U`` as a float (n, w) array of pre-training units, or a clear error."""
        U = np.asarray(U, dtype=float)
        width = self._unit_width()
        if U.ndim != 2 or (width is not None and U.shape[1] != width):
            raise ValueError(
                f"influence() takes pre-training units laid out as pretrain_units() "
                f"returns them: {self._unit_layout}, {width} columns for this "
                f"{type(self).__name__}; got shape {U.shape}.")
        return U

    def influence_contract(
        self, K: np.ndarray, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``B = IF(units[start:stop]) K'`` over the pre-training units.

        Parameters
        ----------
        K : ndarray of shape (r, q)
            Contraction (e.g. the first-stage Jacobian of the coefficients).
        chunk_rows : int
            Pre-training units per chunk; memory is O(chunk_rows * (q + r)).

        Yields
        ------
        start, stop : int
            Range of the chunk in :meth:`pretrain_units` (the rows of
            ``pretrain_data_``).
        B : ndarray of shape (stop - start, r)

        Raises
        ------
        PretrainDataModifiedError
            When the stream ends, if the rows it read were changed in place since
            ``fit`` (the fingerprint is accumulated as the chunks are read).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(100, 3)) * [3.0, 2.0, 1.0]
        >>> rep = ssi.PCA(1).fit(X)
        >>> [(a, b, B.shape) for a, b, B in rep.influence_contract(np.ones((2, 6)),
        ...                                                        chunk_rows=60)]
        [(0, 60, (60, 2)), (60, 100, (40, 2))]
        """
        self._check_fitted()
        K = np.atleast_2d(np.asarray(K, dtype=float))
        for start, stop, U in self._unit_chunks(chunk_rows):
            yield start, stop, self.influence(U) @ K.T

    def _contractor(self, K: np.ndarray, chunk_rows: int):
        """``(f, rows)``: ``f(units) = IF(units) K'`` for one chunk of units, and the units
        per chunk. A first stage with a faster contraction overrides it (it is what
        the workers of a dask reduction run, so it must not capture the data)."""
        rep = shippable(self)
        return (lambda U: rep.influence(U) @ K.T), chunk_rows

    def _reduce_influence(self, K: np.ndarray, per_chunk, *, aligned=(),
                          chunk_rows: int = DEFAULT_CHUNK_ROWS):
        r"""``sum_chunks per_chunk(B, start, stop, *aligned_chunk)`` with ``B = IF(U) K'``.

        The one pass over the pre-training units behind every first-stage sum (the
        two-stage covariance, clustered sums, the overlap cross term). For in-memory
        or memmap data it consumes :meth:`influence_contract`; for a dask array it is a
        dask reduction (:func:`~ssl_inference.representations.chunked.reduce_rows`):
        each block's partial sum is computed where the block lives, and
        ``pretrain_data_`` is never materialised.
        """
        self._check_fitted()
        K = np.atleast_2d(np.asarray(K, dtype=float))
        data = self._pretrain_data  # checked below by pretrain_data_ (dask) or by
        if data is None:            # influence_contract (in memory), once per pass
            raise ValueError(
                f"This {type(self).__name__} holds no pre-training data (dropped, e.g. a "
                "bootstrap replicate), so its first-stage sums cannot be computed.")
        if is_dask_array(data):
            data = self.pretrain_data_
            contract, rows = self._contractor(K, chunk_rows)
            units = shippable(self)._units

            def block(X, start, stop, *parts):
                return per_chunk(contract(units(X, 0, stop - start)), start, stop, *parts)
            return reduce_rows(data, block, aligned=aligned, chunk_rows=rows)
        total = None
        for start, stop, B in self.influence_contract(K, chunk_rows=chunk_rows):
            part = per_chunk(B, start, stop, *(a[start:stop] for a in aligned))
            total = part if total is None else (
                tuple(x + y for x, y in zip(total, part)) if isinstance(part, tuple)
                else total + part)
        return total

    def influence_gram(self, K: np.ndarray, *, groups=None, shared=None,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
        r"""First-stage sums of squares and overlap products of ``K IF``, in one pass.

        With ``S_u = sum_{i in u} K IF(u_i)`` over the units ``u`` (the pre-training
        units, or the clusters of ``groups``), returns

        * ``gram = sum_u S_u S_u'`` (r, r): ``m^2`` times the first-stage covariance
          of ``K theta_hat``;
        * ``cross = sum_{u shared} A_u S_u'`` (t, r) over the units ``shared = (A,
          positions)`` that also have labeled rows (``A`` (n_u, t) their summed
          second-stage influences, ``positions`` their unit: a row of ``X_pre``, or a
          cluster's index in the order of ``pandas.factorize(groups)``), or None.

        Parameters
        ----------
        K : ndarray (r, q)
        groups : array_like (m,), optional
        shared : tuple (ndarray (n_u, t), ndarray (n_u,) of int), optional
        chunk_rows : int

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(100, 3)) * [3.0, 2.0, 1.0]
        >>> rep = ssi.PCA(1).fit(X)
        >>> K, A = np.eye(6)[:2], np.ones((2, 1))
        >>> gram, cross = rep.influence_gram(K, shared=(A, np.array([3, 7])))
        >>> B = rep.influence(X) @ K.T
        >>> bool(np.allclose(gram, B.T @ B)), bool(np.allclose(cross, B[3] + B[7]))
        (True, True)
        """
        K = np.atleast_2d(np.asarray(K, dtype=float))
        A, pos = (None, None) if shared is None else (np.asarray(shared[0], dtype=float),
                                                      np.asarray(shared[1], dtype=np.intp))
        if groups is not None:
            S = self.influence_sums(K, groups, chunk_rows=chunk_rows)
            return S.T @ S, (None if A is None else A.T @ S[pos])
        if A is None:
            return self._reduce_influence(K, _gram_chunk, chunk_rows=chunk_rows), None
        # the shared rows' labeled influences travel with their chunk (row-aligned)
        at_row = np.full(self.nobs_, -1, dtype=np.intp)
        at_row[pos] = np.arange(len(pos))
        if len(np.unique(pos)) != len(pos):
            raise ValueError("shared positions must be distinct pre-training units.")
        gram, cross = self._reduce_influence(
            K, functools.partial(_gram_cross_chunk, A=A), aligned=[at_row],
            chunk_rows=chunk_rows)
        return gram, cross

    def influence_sums(self, K: np.ndarray, groups, *,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
        r"""Cluster sums ``S_c = sum_{i in c} K IF(u_i)`` of the contracted influence.

        The clustered first-stage covariance of ``K theta_hat`` is
        ``(1/m^2) sum_c S_c S_c'`` (:meth:`influence_covariance`); with clusters that
        also have labeled rows, the two-stage covariance adds their cross terms.

        Parameters
        ----------
        K : ndarray of shape (r, q)
        groups : array_like of shape (m,)
            Cluster label of each pre-training unit.
        chunk_rows : int

        Returns
        -------
        ndarray of shape (G, r)
            One row per cluster, in the order of first appearance in ``groups``
            (the order of ``pandas.factorize``).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(100, 3)) * [3.0, 2.0, 1.0]
        >>> rep = ssi.PCA(1).fit(X)
        >>> K = np.eye(6)[:2]
        >>> S = rep.influence_sums(K, np.arange(100) // 10)       # 10 clusters of 10 rows
        >>> S.shape, bool(np.allclose(S[0], (rep.influence(X[:10]) @ K.T).sum(axis=0)))
        ((10, 2), True)
        """
        codes, uniques = pd.factorize(np.asarray(groups))
        if codes.shape != (self.nobs_,) or np.any(codes < 0):
            raise ValueError(
                f"groups must hold one non-missing cluster label per pre-training unit "
                f"({self.nobs_}); got shape {np.shape(groups)}.")
        K = np.atleast_2d(np.asarray(K, dtype=float))
        if is_dask_array(self._pretrain_data):  # one (G, r) partial sum per dask block
            return self._reduce_influence(
                K, functools.partial(_cluster_chunk, n_groups=len(uniques)),
                aligned=[codes], chunk_rows=chunk_rows)
        sums = np.zeros((len(uniques), K.shape[0]))
        for start, stop, B in self.influence_contract(K, chunk_rows=chunk_rows):
            present, local = np.unique(codes[start:stop], return_inverse=True)
            sums[present] += _cluster_chunk(B, start, stop, local, len(present))
        return sums

    def influence_covariance(self, K: np.ndarray, groups=None, *,
                             chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
        r"""First-stage covariance of ``K theta_hat``: ``(1/m^2) sum_u S_u S_u'``.

        ``S_u = sum_{i in u} K IF(u_i)`` over the units ``u``: the pre-training units,
        or the clusters of ``groups``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(400, 3)) * [3.0, 2.0, 1.0]
        >>> rep = ssi.PCA(1).fit(X)
        >>> se_mean = np.sqrt(np.diag(rep.influence_covariance(np.eye(6)[:3])))
        >>> bool(np.allclose(se_mean, X.std(axis=0) / np.sqrt(400)))
        True
        """
        gram, _ = self.influence_gram(K, groups=groups, chunk_rows=chunk_rows)
        return gram / self.nobs_ ** 2

    # ---------------------------------------------------------------- parameters
    def with_params(self, theta) -> "Representation":
        """A copy whose parameters are ``theta`` (``params_`` layout).

        Its features and feature VJP are evaluated at ``theta``; its first-stage
        linearisation (the influence) stays that of the fit. Used to differentiate the
        feature map (:func:`ssl_inference.testing.check_representation`).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(100, 3)) * [3.0, 2.0, 1.0]
        >>> rep = ssi.PCA(1).fit(X)
        >>> shifted = rep.with_params(rep.params_ + np.r_[1.0, 0, 0, 0, 0, 0])
        >>> bool(np.allclose(shifted.transform(X), rep.transform(X) - rep.components_[0, 0]))
        True
        """
        self._check_fitted()
        theta = np.asarray(theta, dtype=float)
        if theta.shape != self.params_.shape or not np.all(np.isfinite(theta)):
            raise ValueError(f"theta must be a finite array of shape {self.params_.shape} "
                             f"(the params_ layout); got shape {theta.shape}.")
        moved = copy.copy(self)
        moved._set_params(theta.copy())
        return moved

    def _set_params(self, theta: np.ndarray) -> None:
        """Set ``params_`` and everything the features read from it.

        The default sets ``params_`` only: override it when the features use
        quantities unpacked from ``params_`` (means, components, ...).
        """
        self.params_ = theta

    def transform(self, X):
        """Learned features of raw rows ``X``.

        Parameters
        ----------
        X : array_like or DataFrame of shape (n, p)

        Returns
        -------
        ndarray or DataFrame of shape (n, k)
            A DataFrame (same index, columns :meth:`get_feature_names_out`) when
            ``X`` is a DataFrame.
        """
        arr = self._validate_rows(X, "X")
        out = self._transform(arr)
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, index=X.index, columns=self.get_feature_names_out())
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the learned features: ``feature_prefix`` followed by 0..k-1."""
        self._check_fitted()
        return np.array([f"{self.feature_prefix}{i}" for i in range(self.n_features_out_)],
                        dtype=object)

    def _validate_rows(self, X, name: str, *, allow_nan: bool = False) -> np.ndarray:
        self._check_fitted()
        arr = as_float_matrix(X, name, allow_nan=allow_nan)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name} has {arr.shape[1]} columns but the representation was fitted on "
                f"{self.n_features_in_} raw features (X_pre). Pass the same raw columns, in "
                "the same order, that the representation was fitted on."
            )
        names = getattr(self, "feature_names_in_", None)
        if names is not None and isinstance(X, pd.DataFrame):
            given = np.asarray(X.columns, dtype=object)
            if not np.array_equal(given, names):
                raise ValueError(
                    f"{name} columns {list(given)[:5]}... differ from the columns seen in fit "
                    f"{list(names)[:5]}...; reorder or rename them to match X_pre."
                )
        return arr

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call .fit(X_pre) on the "
                "pre-training rows before transforming data or using it in a model."
            )

    @staticmethod
    def _record_input_names(est: "Representation", X) -> None:
        """Column names (``feature_names_in_``) and row index of a DataFrame ``X_pre``."""
        est.pretrain_row_labels_ = X.index if isinstance(X, pd.DataFrame) else None
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            est.feature_names_in_ = np.asarray(X.columns, dtype=object)
        elif hasattr(est, "feature_names_in_"):
            del est.feature_names_in_

    symmetry_: Group


def _recording_fit_warnings(fit):
    """Wrap ``fit`` so that its first-stage warnings are kept in ``fit_warnings_``.

    Every warning is re-issued (same category and message, located at the caller of
    ``fit``), so the user's warning filters apply as before, also when ``fit`` fails.
    """
    @functools.wraps(fit)
    def recording_fit(self, *args, **kwargs):
        caught: list = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = fit(self, *args, **kwargs)
            self.fit_warnings_ = list(dict.fromkeys(
                str(w.message) for w in caught
                if issubclass(w.category, (IdentificationWarning, ConvergenceWarning))))
        finally:
            for w in caught:
                warnings.warn(w.message, stacklevel=2)
        return out

    recording_fit._records_warnings = True
    return recording_fit


def _same_setting(value, default) -> bool:
    if value is default:
        return True
    try:
        return bool(type(value) is type(default) and value == default)
    except (TypeError, ValueError):  # arrays and other objects without a plain ==
        return False


def _short_repr(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# per-chunk parts of the first-stage sums (module level: dask workers unpickle them)
def _gram_chunk(B, start, stop):
    return B.T @ B


def _gram_cross_chunk(B, start, stop, at_row, A):
    hit = np.flatnonzero(at_row >= 0)
    return B.T @ B, A[at_row[hit]].T @ B[hit]


def _cluster_chunk(B, start, stop, codes, n_groups):
    """``sum_{i in c} B_i`` for every cluster ``c`` (G, r), one sparse product."""
    member = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))),
                               shape=(n_groups, len(codes)))
    return np.asarray(member @ B)
