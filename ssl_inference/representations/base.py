"""The representation protocol: what every first stage provides to second-stage inference.

A representation is a feature map ``phi(x; theta)`` in R^k fitted on a pre-training
sample ``X_pre`` (m rows). Second-stage inference needs four things from it
(THEORY.md §3):

* the features ``phi(x; theta_hat)`` (:meth:`Representation.transform`);
* vector-Jacobian products ``sum_j (d phi_j / d theta)' c_j`` (:meth:`feature_vjp`),
  so that no ``n x k x q`` Jacobian is ever formed;
* the horizontal first-stage influence ``IF(x)`` with
  ``theta_hat - theta* ~= (1/m) sum_i IF(x_i)`` (:meth:`influence`), delivered to
  the covariance code as the streamed contraction ``IF(X_chunk) K'``
  (:meth:`influence_contract`), so that neither an ``m x q`` array nor a ``q x q``
  covariance is formed;
* its symmetry group and the gauge convention that picks one representative of each
  orbit (``symmetry_``, :attr:`gauge_convention`).
"""
from __future__ import annotations

import functools
import inspect
import warnings
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import pandas as pd

from .._validation import as_float_matrix
from ..exceptions import (ConvergenceWarning, IdentificationWarning, NotFittedError,
                          PretrainDataModifiedError)
from ..symmetry import Group

__all__ = ["Representation"]

DEFAULT_CHUNK_ROWS = 8192


class Representation(ABC):
    """Base class of first-stage feature maps (scikit-learn style).

    ``__init__`` stores hyper-parameters untouched, ``fit`` returns ``self`` and
    sets trailing-underscore attributes:

    Attributes
    ----------
    params_ : ndarray of shape (q,)
        ``theta_hat`` in the reported gauge.
    nobs_ : int
        Number of pre-training rows ``m``.
    symmetry_ : Group
        The group under which the pre-training loss is invariant.
    n_features_in_ : int
        Number of raw input columns ``p``.
    feature_names_in_ : ndarray of str
        Raw column names, when ``fit`` saw a DataFrame with string column names.
    pretrain_data_ : ndarray of shape (m, p)
        The pre-training rows (needed for the first-stage influence), read-only.
    pretrain_row_labels_ : pandas Index or None
        Index of ``X_pre`` when ``fit`` saw a DataFrame (``pretrain_groups`` given as a
        Series is aligned on it), else None.
    fit_warnings_ : list of str
        The ``IdentificationWarning`` and ``ConvergenceWarning`` messages of the last
        ``fit`` (they are still issued as warnings); second-stage summaries repeat them.

    Notes
    -----
    Ownership of the pre-training data. A fitted representation does not copy
    ``X_pre`` (it can be larger than memory allows twice): ``pretrain_data_`` is a
    read-only view of the array ``fit`` validated, which is the caller's own array when
    that was already a float64 ndarray. A fingerprint of its bytes (CRC-32, streamed
    in chunks, several GB/s) is taken when it is set, and every read of
    ``pretrain_data_`` (influence streaming for standard errors and predictions, the
    bootstrap, the risk plug-in) checks it first: if the caller changed the array in
    place after ``fit`` (``X_pre *= 10``), reading raises
    :class:`~ssl_inference.exceptions.PretrainDataModifiedError` instead of returning
    standard errors of data the fit never saw. Pass ``X_pre.copy()`` to ``fit`` to keep
    modifying your array. :meth:`_pretrain_fingerprint` is the one place that reads
    the bytes for the check.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "fit" in cls.__dict__ and not getattr(cls.fit, "_records_warnings", False):
            cls.fit = _recording_fit_warnings(cls.__dict__["fit"])

    #: How the fitted representative of each symmetry orbit is chosen.
    gauge_convention: str = ""
    #: Prefix of the output feature names.
    feature_prefix: str = "f"

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
    def influence(self, X) -> np.ndarray:
        """Horizontal first-stage influence ``IF(x)`` of the given rows, shape (n, q).

        Scaled so that ``theta_hat - theta* ~= (1/m) sum_i IF(x_i)`` over the
        pre-training rows; it has no component along the symmetry orbit.
        """

    # ------------------------------------------------------------------ symmetry
    def act(self, g) -> "Representation":
        """A copy moved by group element ``g`` (features ``rho(g) phi``)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement act(g); alignment and the aligned "
            "bootstrap need it."
        )

    def alignment_coordinates(self) -> np.ndarray:
        """Per-feature (or per-block) rows that move with ``rho(g)``, used by ``align``."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement alignment_coordinates()."
        )

    def get_params(self) -> dict:
        """Hyper-parameters as passed to ``__init__`` (scikit-learn convention)."""
        names = [n for n, p in inspect.signature(type(self).__init__).parameters.items()
                 if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {n: getattr(self, n) for n in names}

    def clone(self) -> "Representation":
        """An unfitted copy with the same hyper-parameters."""
        return type(self)(**self.get_params())

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
            raise PretrainDataModifiedError(
                f"X_pre was modified after fit: the pre-training rows this "
                f"{type(self).__name__} was fitted on have changed in place (the "
                "representation keeps a read-only reference to your array, not a copy, to "
                "save memory). Its parameters describe the old data, so first-stage "
                "influences, two-stage standard errors, predictions and bootstrap "
                "replicates computed from the changed rows would be wrong. Refit the "
                "representation on the data you mean (rep.fit(X_pre)) and refit the "
                "model; pass X_pre.copy() to fit if you need to modify the array "
                "afterwards.")
        return data

    @pretrain_data_.setter
    def pretrain_data_(self, X: np.ndarray | None) -> None:
        if X is None:  # dropped (e.g. bootstrap replicates keep only what transforms)
            self._pretrain_data, self._pretrain_checksum = None, None
            return
        view = X.view()
        view.flags.writeable = False
        self._pretrain_data = view
        self._pretrain_checksum = self._pretrain_fingerprint(view)

    @staticmethod
    def _pretrain_fingerprint(X: np.ndarray) -> tuple:
        """Shape, dtype and CRC-32 of the bytes of ``X``, read in row chunks.

        Each chunk is hashed in place when its rows are contiguous (a C-ordered array);
        otherwise one chunk at a time is copied, so memory stays O(chunk).
        """
        crc = 0
        rows = max(1, (1 << 24) // max(1, X.itemsize * int(np.prod(X.shape[1:]))))
        for start in range(0, X.shape[0], rows):
            chunk = np.ascontiguousarray(X[start:start + rows])
            crc = zlib.crc32(memoryview(chunk).cast("B"), crc)
        return X.shape, X.dtype.str, crc

    # ------------------------------------------------------------------ shared
    def influence_contract(
        self, K: np.ndarray, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``B = IF(X_pre[start:stop]) K'`` over the pre-training rows.

        Parameters
        ----------
        K : ndarray of shape (r, q)
            Contraction (e.g. the first-stage Jacobian of the coefficients).
        chunk_rows : int
            Pre-training rows per chunk; memory is O(chunk_rows * (q + r)).

        Yields
        ------
        start, stop : int
            Row range of the chunk in ``pretrain_data_``.
        B : ndarray of shape (stop - start, r)
        """
        self._check_fitted()
        X = self.pretrain_data_
        for start in range(0, X.shape[0], chunk_rows):
            stop = min(start + chunk_rows, X.shape[0])
            yield start, stop, self.influence(X[start:stop]) @ K.T

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
