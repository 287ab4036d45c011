"""Long-format frames: fetched from DuckDB, stacked from per-warehouse parts."""

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd


def fetch_frame(relation: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """A DuckDB relation's rows as the frame ``.df()`` makes, text columns as object columns of str.

    Through Arrow with the strings as categoricals, then back to object columns that share one string
    object per distinct value: the same frame as DuckDB's ``.df()``, 3x faster (one warehouse x 745
    days, 6.8 M rows: 0.7 s against 2.3 s), since ``.df()`` makes a Python string per row and column.
    Pass a relation (``con.sql(...)``, on a cursor): DuckDB 2 copies the rows once more for Arrow
    output of ``execute()``.
    """
    table = relation.to_arrow_table()
    frame = table.to_pandas(strings_to_categorical=True, self_destruct=True)
    del table
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            values = frame[column].array
            valid = values.codes >= 0
            strings = np.full(len(values), None, dtype=object)  # NULL, as .df() gives it
            # Indexed on the valid codes only: a column NULL on every row has no category to index.
            strings[valid] = values.categories.to_numpy(dtype=object)[values.codes[valid]]
            frame[column] = strings
    return frame


def stack_rows(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The rows of ``frames`` one after the other, with a fresh ``RangeIndex`` (``pd.concat``'s result).

    Frames with the same columns of the same NumPy dtypes are stacked column by column without
    consolidating blocks: pandas' ``concat`` tests every value of an all-null object column (the
    override author and reason of a forecast without override) for a typed NA in Python, 0.7 s a
    10,000-SKU warehouse of forecasts, and copies the result once more. Other frames (extension dtypes,
    different columns) go through ``pd.concat``.

    Args:
        frames: At least one frame.

    Returns:
        One frame holding every row, in order.
    """
    if not frames:
        raise ValueError("stack_rows needs at least one frame")
    first = frames[0]
    same = all(
        frame.columns.equals(first.columns) and frame.dtypes.equals(first.dtypes) for frame in frames[1:]
    )
    numpy_only = all(isinstance(dtype, np.dtype) for dtype in first.dtypes)
    if not (same and numpy_only and first.columns.is_unique):
        return pd.concat(frames, ignore_index=True)
    columns = {name: np.concatenate([frame[name].to_numpy() for frame in frames]) for name in first.columns}
    return pd.DataFrame(columns, columns=first.columns, copy=False)
