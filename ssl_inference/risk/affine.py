r"""The affine form ``phi(x) = a + B x`` of a fitted feature map, when it has one.

PCA scores, factor scores and spectral features ``A x`` are affine in the raw inputs;
their population moments under a known input law then have the closed form of
:meth:`ssl_inference.risk.PopulationMoments.affine`.
"""
from __future__ import annotations

import numpy as np

from ..representations.base import Representation

__all__ = ["affine_feature_map"]


def affine_feature_map(representation: Representation, X=None, *, rtol: float = 1e-8
                       ) -> tuple[np.ndarray, np.ndarray]:
    r"""``(a, B)`` with ``phi(x; theta_hat) = a + B x`` for an affine fitted feature map.

    The map is probed at the centre ``c`` of the check rows and at ``c + s_j e_j``
    (``s_j`` their spread plus one): ``B e_j = (phi(c + s_j e_j) - phi(c)) / s_j``,
    ``a = phi(c) - B c``. It is then checked on up to 50 rows: the map is affine when
    ``|a + B x - phi(x)| <= rtol * scale`` on each of them.

    Parameters
    ----------
    representation : Representation
        A fitted first stage.
    X : array_like (n, p), optional
        Rows on which to check affinity; default: the pre-training rows (for paired
        views, the anchor view ``x``).
    rtol : float
        Relative tolerance of the check.

    Returns
    -------
    a : ndarray (k,)
    B : ndarray (k, p)

    Raises
    ------
    ValueError
        If the feature map is not affine in ``x`` (e.g. mixture responsibilities); then
        use :meth:`PopulationMoments.from_sample` on a large simulated sample instead.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> X_pre = np.random.default_rng(0).normal(size=(500, 3)) * [3.0, 1.0, 0.5] + 2.0
    >>> pca = ssi.PCA(1).fit(X_pre)
    >>> a, B = affine_feature_map(pca)
    >>> np.allclose(a + X_pre[:5] @ B.T, pca.transform(X_pre[:5]))
    True
    """
    if X is None:  # multi-view first stages store the views side by side, x first
        rows = np.asarray(representation.pretrain_data_, dtype=float)
        rows = rows[:, :representation.n_features_in_]
    else:
        rows = representation._validate_rows(X, "X")
    p = rows.shape[1]
    centre = rows.mean(axis=0)
    step = rows.std(axis=0) + 1.0
    phi = representation._transform(np.vstack([centre, centre + np.diag(step)]))
    B = ((phi[1:] - phi[0]) / step[:, None]).T
    a = phi[0] - B @ centre
    check = rows[:min(len(rows), 50)]
    actual = representation._transform(check)
    scale = np.abs(actual).max() + np.abs(phi).max() + 1.0
    error = np.abs(a + check @ B.T - actual).max()
    if not error <= rtol * scale:
        raise ValueError(
            f"The features of {type(representation).__name__} are not affine in x (the "
            f"best affine fit misses by {error:.3g}). Their population moments have no "
            "closed form: use PopulationMoments.from_sample on a large simulated sample.")
    return a, B
