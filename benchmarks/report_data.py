"""Reading the benchmark grid's results: the columns, the types, reruns, failures.

One job: turn ``results.csv`` (and ``failures.csv``) as ``run_all.py`` writes
them into validated tables; :mod:`benchmarks.report_stats` computes on them.
The published full-data ceilings live here too: they are data the report
shows beside the grid's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skal.metrics import CURVE_METRICS
from skal.results import FAILURE_COLUMNS, LATER_COLUMNS, NUMBER_COLUMNS, RESULT_COLUMNS

__all__ = ["FULL_DATA_CEILINGS", "KEY_COLUMNS", "METRIC_LABELS", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS",
           "ceiling", "load_failures", "load_results", "validate_results"]

#: Columns the results CSV must have: skal's one result schema, less the
#: columns added later (a file without them reads as NaN there).
REQUIRED_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in LATER_COLUMNS)
#: One row per value of these; a duplicate is a rerun, and the last one is kept.
KEY_COLUMNS = ("method", "dataset", "seed", "cycle")

#: MedMNIST v2 paper, ResNet-18 at 28×28 trained on the full training split:
#: test AUC and ACC. The paper gives none for chestmnist, organcmnist and
#: organsmnist here (the report writes "n/a" for those).
FULL_DATA_CEILINGS = {
    "pathmnist": {"auc": 0.983, "acc": 0.907},
    "dermamnist": {"auc": 0.917, "acc": 0.735},
    "octmnist": {"auc": 0.943, "acc": 0.743},
    "pneumoniamnist": {"auc": 0.944, "acc": 0.854},
    "retinamnist": {"auc": 0.717, "acc": 0.524},
    "breastmnist": {"auc": 0.901, "acc": 0.863},
    "bloodmnist": {"auc": 0.998, "acc": 0.958},
    "tissuemnist": {"auc": 0.930, "acc": 0.676},
    "organamnist": {"auc": 0.997, "acc": 0.935},
}

#: Metric columns a grid may lack (written before they existed): skal's
#: schema (``skal.results.LATER_COLUMNS``) reads them as empty, and the report
#: leaves a metric out where every value is empty.
OPTIONAL_COLUMNS = tuple(c for c in LATER_COLUMNS if c in CURVE_METRICS and c != "test_loss")

#: How the report names each metric column.
METRIC_LABELS = {"acc": "ACC", "auc": "AUC", "balanced_acc": "balanced ACC"}


def ceiling(dataset):
    """The published full-data ceiling of ``dataset`` (``{"acc", "auc"}``), or None."""
    return FULL_DATA_CEILINGS.get(str(dataset).lower())


def validate_results(df):
    """Check the columns, coerce the types and drop reruns (keeping the last).

    Parameters
    ----------
    df : pandas.DataFrame
        Rows as read from the results CSV, in file order.

    Returns
    -------
    clean : pandas.DataFrame
        The rows with ``method`` and ``dataset`` as str, ``seed``, ``cycle``
        and ``n_labeled`` as int64 and the other columns as float64 (a value
        that is not a number, e.g. an empty ``acc`` after a failed
        evaluation, becomes NaN), sorted by dataset, method, seed and cycle.
        ``clean.attrs["duplicates_dropped"]`` is the number of rows that an
        identical key written later replaced.

    Raises
    ------
    ValueError
        When a required column is missing (the message names every missing
        one), when there are no rows, or when a key column has empty values.
    """
    if "seed" not in df.columns and "trial" in df.columns:
        df = df.rename(columns={"trial": "seed"})  # skal run's files before the `seed` name
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"results are missing required column(s) {', '.join(missing)}; "
            f"expected columns: {', '.join(REQUIRED_COLUMNS)}."
        )
    if len(df) == 0:
        raise ValueError("results have no rows: nothing to report.")
    df = df.reindex(columns=list(RESULT_COLUMNS))  # LATER_COLUMNS absent: NaN
    for column in ("method", "dataset"):
        if df[column].isna().any():
            raise ValueError(f"column {column!r} has empty values.")
        df[column] = df[column].astype(str).str.strip()
    for column in ("seed", "cycle", "n_labeled"):
        values = pd.to_numeric(df[column], errors="coerce")
        if values.isna().any():
            raise ValueError(f"column {column!r} has empty or non-numeric values.")
        df[column] = values.astype("int64")
    for column in NUMBER_COLUMNS:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    n_before = len(df)
    df = df.drop_duplicates(subset=list(KEY_COLUMNS), keep="last")
    df = df.sort_values(["dataset", "method", "seed", "cycle"], kind="stable")
    df = df.reset_index(drop=True)
    df.attrs["duplicates_dropped"] = n_before - len(df)
    return df


def load_results(csv_path):
    """Read the results CSV and validate it (see :func:`validate_results`).

    Parameters
    ----------
    csv_path : path-like

    Returns
    -------
    results : pandas.DataFrame

    Raises
    ------
    ValueError
        For an empty file, missing columns or no rows.
    """
    try:
        df = pd.read_csv(csv_path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"results file {csv_path} is empty; expected a header with the columns "
            f"{', '.join(REQUIRED_COLUMNS)}."
        ) from None
    return validate_results(df)


def load_failures(failures=None, csv_path=None):
    """Failed cells from ``failures`` and from a ``failures.csv`` next to the results.

    Parameters
    ----------
    failures : list of dict or None
        Each with keys ``method``, ``dataset``, ``seed`` and ``error`` (any
        missing key is shown as empty).
    csv_path : path-like or None
        The results CSV; a ``failures.csv`` in its folder is read too.

    Returns
    -------
    failures : pandas.DataFrame
        Columns ``method, dataset, seed, error`` (all str), one row per
        distinct failure, in the order given (the list first).
    """
    frames = []
    if failures:
        frames.append(pd.DataFrame(list(failures)))
    if csv_path is not None:
        path = Path(csv_path).with_name("failures.csv")
        if path.is_file():
            try:
                frames.append(pd.read_csv(path, dtype=str, keep_default_na=False))
            except pd.errors.EmptyDataError:
                pass
    if not frames:
        return pd.DataFrame(columns=list(FAILURE_COLUMNS), dtype=str)
    out = pd.concat(frames, ignore_index=True)
    for column in FAILURE_COLUMNS:
        if column not in out.columns:
            out[column] = ""
    out = out.loc[:, list(FAILURE_COLUMNS)].fillna("").astype(str)
    return out.drop_duplicates(ignore_index=True)
