"""Summary extensions: a first-stage block, an SE-inflation table and notes."""
from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.iolib.table import SimpleTable


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
             ("Second-stage cov:", [res._spec.second_stage]),
             ("Overlapping rows:", [n_overlap]),
             ("X_pre clustered:", ["yes" if res._spec.pretrain_groups is not None
                                      else "no"])]
    return left, right


def inflation_frame(res) -> pd.DataFrame:
    """Naive SE, two-stage SE, their ratio and the pre-training share of the variance."""
    parts = res._parts
    total = np.diag(parts.total)
    naive = np.sqrt(np.diag(res._cov_naive))
    two = np.sqrt(total)
    return pd.DataFrame({"naive SE": naive, "two-stage SE": two, "SE ratio": two / naive,
                         "pretrain share": np.diag(parts.pretraining) / total},
                        index=list(res.model.exog_names))


def notes(res) -> list[str]:
    rep = res.model.representation
    lines = [f"First-stage gauge ({type(rep).__name__}): {rep.gauge_convention}."]
    if res.cov_type != "two-stage":
        lines.append("These SEs are naive: they ignore that the features were estimated on "
                     "X_pre. Use cov_type='two-stage' for valid inference.")
    return lines


def extend_summary(res, smry):
    """Add the first-stage block (under the header) and the SE-inflation table."""
    left, right = first_stage_items(res)
    smry.add_table_2cols(res, gleft=left, gright=right, title="")
    smry.tables.insert(1, smry.tables.pop())
    frame = inflation_frame(res)
    data = [[f"{v:.4g}" for v in row] for row in frame.to_numpy()]
    smry.tables.append(SimpleTable(data, headers=list(frame.columns), stubs=list(frame.index),
                                   title="Standard errors: two-stage vs naive"))
    existing = smry.extra_txt.splitlines() if smry.extra_txt else []
    offset = sum(1 for line in existing if line.startswith("["))
    smry.add_extra_txt(existing + [f"[{offset + i + 1}] {line}"
                                   for i, line in enumerate(notes(res))])
    return smry


def extend_summary2(res, smry):
    left, right = first_stage_items(res)
    smry.add_dict({label: value[0] for label, value in left + right})
    smry.add_df(inflation_frame(res))
    for line in notes(res):
        smry.add_text(line)
    return smry
