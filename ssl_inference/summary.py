"""Summary extensions: a first-stage block, an SE-inflation table and notes."""
from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
from statsmodels.iolib.summary2 import Summary as Summary2
from statsmodels.iolib.table import SimpleTable

from .invariance import gauge_dependent_columns


def covariance_description(spec, covariance) -> str:
    """The "description" note of a two-stage covariance: estimators and small-sample factors.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> from ssl_inference.covariance import CovarianceSpec, TwoStageCovariance
    >>> rep = ssi.PCA(1).fit(np.random.default_rng(0).normal(size=(50, 3)))
    >>> engine = TwoStageCovariance(rep, np.zeros((1, 6)), np.eye(1), np.zeros((4, 1)),
    ...                             small_sample=True)
    >>> print(covariance_description(CovarianceSpec.parse("HC1", None), engine))
    Two-stage standard errors: second-stage HC1 covariance (statsmodels) plus the first-stage (PCA, m=50) term. Small-sample factors: statsmodels' on the second-stage part; G/(G-1) = 1.0204 on the first-stage part (G = 50 pre-training rows).
    """
    rep = covariance.representation
    text = (f"Two-stage standard errors: second-stage {spec.second_stage} covariance "
            f"(statsmodels) plus the first-stage ({type(rep).__name__}, m={rep.nobs_}) term.")
    if not covariance.small_sample:
        return text + (" No small-sample factors (an uncorrected second stage, so none on "
                       "the first-stage part either).")
    units = covariance.n_pretrain_units
    kind = "clusters" if covariance.pretrain_groups is not None else "rows"
    text += (f" Small-sample factors: statsmodels' on the second-stage part; G/(G-1) = "
             f"{covariance.pretrain_factor:.4f} on the first-stage part (G = {units} "
             f"pre-training {kind})")
    if covariance.has_cross:
        text += "; the square root of both samples' factors on the overlap part"
    return text + "."


def resampling_description(spec, replicates) -> str:
    """The "description" note of a bootstrap or jackknife covariance.

    Examples
    --------
    >>> import numpy as np
    >>> from ssl_inference.covariance import CovarianceSpec
    >>> from ssl_inference.jackknife import jackknife_units
    >>> from types import SimpleNamespace
    >>> units = jackknife_units(50, 20)
    >>> fake = SimpleNamespace(units=units, method="one-step")
    >>> print(resampling_description(CovarianceSpec.parse("jackknife", {"method": "one-step"}),
    ...                              fake))
    Two-stage jackknife standard errors (one-step: one Newton step of each stage without each of 70 units, 50 pre-training and 20 labeled; stratified delete-one variance).
    """
    if spec.cov_type == "bootstrap":
        spread = {"sd": "the replicates' SD", "iqr": "IQR / 1.349 of the replicates",
                  "mad": "1.4826 x MAD of the replicates"}[spec.spread]
        return (f"Two-sample bootstrap standard errors ({spec.reps} replicates; pre-training "
                "and labeled rows resampled, representation refitted and aligned to the "
                f"estimate's gauge; spread: {spread}).")
    units = replicates.units
    kinds = np.bincount(units.stratum, minlength=2)
    if kinds[1] == 0:
        where = "clusters with rows in either sample"
    else:
        where = f"{kinds[0]} pre-training and {kinds[1]} labeled"
    how = ("exact: the pipeline refitted, and the representation aligned to the "
           "estimate's gauge," if replicates.method == "exact" else
           "one-step: one Newton step of each stage")
    return (f"Two-stage jackknife standard errors ({how} without each of {units.n_units} "
            f"units, {where}; stratified delete-one variance).")


def resampling_note(res) -> str | None:
    """The summary note counting degenerate replicates (None for analytic fits)."""
    replicates = getattr(res, "_replicates", None)
    if replicates is None:
        return None
    kind = "bootstrap replicates" if res._spec.cov_type == "bootstrap" else \
        "jackknife deletions"
    dropped = replicates.degenerate
    if not dropped.count and not dropped.repeated:
        return f"Degenerate {kind}: none of {dropped.total}."
    text = f"Degenerate {kind}: {dropped}"
    if dropped.count:
        text += (" Their refits are not regular estimates and were left out of the "
                 "standard errors (res.degenerate_replicates).")
    return text


def second_stage_label(spec, replicates=None) -> str:
    """The summary's "Second-stage cov:" entry, e.g. ``HC1``, ``HAC (4 lags)``."""
    if spec.cov_type == "bootstrap":
        return f"bootstrap ({spec.reps})"
    if spec.cov_type == "jackknife":
        return f"jackknife ({replicates.units.n_units})"
    if spec.second_stage == "HAC":
        return f"HAC ({spec.maxlags} lags)"
    return spec.second_stage


def first_stage_items(res) -> tuple[list, list]:
    """Left and right (label, [value]) rows describing the first stage."""
    model, rep = res.model, res.model.representation
    overlap = model.pretrain_index
    n_overlap = "none" if overlap is None else str(int((overlap >= 0).sum()))
    left = [("First stage:", [type(rep).__name__]),
            ("Pre-train rows m:", [str(rep.nobs_)]),
            ("Labeled rows n:", [str(int(res.nobs))]),
            ("Features k:", [str(rep.n_features_out_)])]
    right = [("Symmetry group:", [rep.symmetry_.symbol]),
             ("Second-stage cov:",
              [second_stage_label(res._spec, getattr(res, "_replicates", None))]),
             ("Overlapping rows:", [n_overlap]),
             ("X_pre clustered:", [_pretrain_clusters(res)])]
    return left, right


def _pretrain_clusters(res) -> str:
    if res._spec.pretrain_groups is None:
        return "no"
    shared = res._covariance.shared_clusters
    return f"yes, {shared} shared" if shared else "yes"


def inflation_frame(res) -> pd.DataFrame:
    """Naive SE, two-stage SE, their ratio and the pre-training share of the variance."""
    parts = res.variance_decomposition()
    naive = np.sqrt(np.diag(res._cov_naive))
    resampled = res._spec.cov_type in ("bootstrap", "jackknife")
    two = np.sqrt(np.diag(res.cov_params_default) if resampled
                  else parts["total"].to_numpy())
    label = f"{res._spec.cov_type} SE" if resampled else "two-stage SE"
    frame = pd.DataFrame({"naive SE": naive, label: two, "SE ratio": two / naive,
                          "pretrain share": parts["pretraining_share"].to_numpy()},
                         index=parts.index)
    if res._covariance.has_cross:  # the shares add to one with the cross term
        frame["overlap share"] = parts["overlap"] / parts["total"]
    return frame


def first_stage_problems(rep) -> list[str]:
    """The first stage's identification and convergence warnings from its last fit."""
    return [textwrap.fill(f"WARNING (first stage): {message}", width=74,
                          subsequent_indent="    ")
            for message in getattr(rep, "fit_warnings_", [])]


def notes(res) -> list[str]:
    rep = res.model.representation
    lines = first_stage_problems(rep)
    lines.append(f"First-stage gauge ({type(rep).__name__}): {rep.gauge_convention}.")
    if res.model.coefficient_action is None:
        lines.append(
            f"GAUGE-DEPENDENT DESIGN (allow_gauge=True): the formula's terms in the learned "
            f"features are not mapped onto themselves by {rep.symmetry_.name}, so every "
            "number here (coefficients, standard errors, tests, fitted values) holds only "
            "in the reported gauge above.")
    shared = res._covariance.shared_clusters
    if shared:
        how = ("is resampled as one unit, with its rows in both samples"
               if res._spec.cov_type == "bootstrap" else
               "is deleted as one unit, with its rows in both samples"
               if res._spec.cov_type == "jackknife" else
               "is one unit: its labeled and pre-training rows' influences are summed "
               "before squaring (the cross term, 'overlap' in variance_decomposition())")
        lines.append(
            f"{shared} clusters have rows in both samples (labels present in both groups "
            f"and pretrain_groups); each {how}. If the two samples' labels name different "
            "clusters, make them distinct.")
    resampling = resampling_note(res)
    if resampling:
        lines.append(resampling)
    if res._spec.cov_type == "naive":
        lines.append("These SEs are naive: they ignore that the features were estimated on "
                     "X_pre. Use cov_type='two-stage' for valid inference.")
    return lines


def blank_table_rows(params_table, names) -> None:
    """Star the rows ``names`` of a parameter table and hide their test statistic,
    p-value and interval (the cells after the estimate and its standard error)."""
    for row in params_table:
        if row[0].data in names:
            _blank_row(row)


def _blank_row(row) -> None:
    row[0].data = f"{row[0].data}*"
    for cell in row[3:]:
        cell.data = "--"


def _blank_gauge_dependent_rows(res, params_table) -> list[str]:
    """Hide t, p and interval of coefficients whose single test is not invariant.

    The table's data rows are the coefficients in order (with several equations, one
    block of rows per equation under its header row).
    """
    cols = gauge_dependent_columns(res)
    rows = [row for row in params_table if row.datatype != "header"]
    for c in cols:
        _blank_row(rows[c])
    return [res.model.param_names[c] for c in cols]


def invariant_tests_table(res) -> SimpleTable:
    frame = res.invariant_tests()
    data = [[f"{r.statistic:.4g}", str(r.df), f"{r.pvalue:.4g}", r.distribution]
            for r in frame.itertuples()]
    return SimpleTable(data, headers=["statistic", "df", "p-value", "dist"],
                       stubs=list(frame.index),
                       title=f"Invariant tests (symmetry {res.model.representation.symmetry_})")


def extend_summary(res, smry):
    """Add the first-stage block, invariant tests, SE inflation; hide gauge-dependent t/p."""
    hidden = _blank_gauge_dependent_rows(res, smry.tables[1])
    left, right = first_stage_items(res)
    smry.add_table_2cols(res, gleft=left, gright=right, title="")
    smry.tables.insert(1, smry.tables.pop())
    frame = inflation_frame(res)
    data = [[f"{v:.4g}" for v in row] for row in frame.to_numpy()]
    smry.tables.append(SimpleTable(data, headers=list(frame.columns), stubs=list(frame.index),
                                   title="Standard errors: two-stage vs naive"))
    smry.tables.append(invariant_tests_table(res))
    existing = smry.extra_txt.splitlines() if smry.extra_txt else []
    offset = sum(1 for line in existing if line.startswith("["))
    extra = notes(res)
    description = res.cov_kwds.get("description")
    if description and description not in (smry.extra_txt or ""):
        extra.insert(0, description)  # GLM and discrete summaries do not print it
    if hidden:
        extra.append(f"{', '.join(n + '*' for n in hidden)}: coefficients in the reported gauge "
                     f"of {res.model.representation.symmetry_.name}; individually they have no "
                     "gauge-free meaning, so t, p and intervals are not shown. Use the "
                     "invariant tests.")
    header = [] if any(line.startswith("Notes:") for line in existing) else ["Notes:"]
    smry.add_extra_txt(existing + header
                       + [f"[{offset + i + 1}] {line}" for i, line in enumerate(extra)])
    return smry


def _blank_frame_rows(smry, cols: set, n_params: int) -> None:
    """Star and blank the coefficients ``cols`` in ``Summary2``'s parameter tables: the
    tables after the first hold the coefficients in order (one table per equation for
    MNLogit)."""
    offset, t = 0, 1
    while offset < n_params:
        params = smry.tables[t]
        rows = [i for i in range(len(params)) if offset + i in cols]
        if rows:
            # MNLogit's tables carry the names in a first column, the others in the index
            in_column = not pd.api.types.is_numeric_dtype(params.iloc[:, 0])
            start = 3 if in_column else 2
            hidden = params.columns[start:]
            params[hidden] = params[hidden].astype(object)
            params.iloc[rows, start:] = "--"
            labels = list(params.iloc[:, 0] if in_column else params.index)
            for i in rows:
                labels[i] = f"{labels[i]}*"
            if in_column:
                params.iloc[:, 0] = labels
            else:
                params = params.set_axis(labels, axis=0)
            smry.tables[t] = params
        offset += len(params)
        t += 1


class TwoStageSummary2(Summary2):
    """statsmodels' ``Summary2`` whose text rules all have the width of the widest table.

    ``Summary2`` pads each table separately, so tables of different shapes end with
    rules of different lengths; the two-stage tables make that visible.
    """

    def as_text(self):
        lines = super().as_text().split("\n")
        rules = [line for line in lines if line and set(line) <= {"=", "-"}]
        width = max((len(line) for line in rules), default=0)
        return "\n".join(line[0] * width if line in rules else line for line in lines)


def extend_summary2(res, smry):
    cols = gauge_dependent_columns(res)
    names = [res.model.param_names[c] for c in cols]
    if names:
        _blank_frame_rows(smry, set(cols), len(res.model.param_names))
    left, right = first_stage_items(res)
    smry.add_dict({label: value[0] for label, value in left + right})
    smry.add_df(inflation_frame(res), float_format="%.4g")
    tests = res.invariant_tests().astype({"df": str})
    smry.add_df(tests, float_format="%.4g")
    extra = notes(res)
    if names:
        extra.insert(0, f"{', '.join(n + '*' for n in names)}: gauge-dependent coefficients "
                     "(no t, p or interval); use the invariant tests.")
    existing = "\n".join(smry.extra_txt)
    offset = len(re.findall(r"^\[\d+\]", existing, flags=re.M))
    if "Notes:" not in existing:
        smry.add_text("Notes:")
    for i, line in enumerate(extra):
        smry.add_text(f"[{offset + i + 1}] {line}")
    smry.__class__ = TwoStageSummary2
    return smry
