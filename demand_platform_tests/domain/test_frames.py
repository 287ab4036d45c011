"""stack_rows: the rows of pd.concat, faster on the platform's per-warehouse frames; fetch_frame: the frame of .df()."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from demand_platform.frames import fetch_frame, stack_rows


def _frame(n: int, seed: int, with_overrides: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sku": np.array([f"S{i}" for i in range(n)], dtype=object),
            "p50": rng.random(n),
            "horizon": rng.integers(1, 31, n),
            "origin": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 3, n), unit="D"),
            "applied": rng.random(n) < 0.5,
            "author": np.full(n, None, dtype=object),
        }
    )
    if with_overrides:
        frame.loc[0, "author"] = "planner"
    return frame


@pytest.mark.parametrize("sizes", [[5], [5, 0, 7], [3, 4, 5, 6]])
def test_stack_rows_equals_concat(sizes: list[int]) -> None:
    frames = [_frame(n, seed, with_overrides=seed == 1) for seed, n in enumerate(sizes)]
    stacked = stack_rows(frames)
    pd.testing.assert_frame_equal(stacked, pd.concat(frames, ignore_index=True))
    assert isinstance(stacked.index, pd.RangeIndex)


def test_frames_that_differ_fall_back_to_concat() -> None:
    a, b = _frame(3, 0), _frame(4, 1)
    b["p50"] = b["p50"].astype("float32")  # another dtype
    c = _frame(2, 2).assign(tier=pd.Categorical(["x", "y"]))  # another column, an extension dtype
    for frames in ([a, b], [a, c], [c, c]):
        pd.testing.assert_frame_equal(stack_rows(frames), pd.concat(frames, ignore_index=True))


def test_no_frame_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        stack_rows([])


def test_fetch_frame_gives_the_frame_of_df_with_null_text_columns() -> None:
    """Text with NULLs, and a text column NULL on every row (no override on any forecast), as .df() gives them."""
    con = duckdb.connect()
    sql = """
        SELECT * FROM (VALUES ('A', NULL::VARCHAR, 'x', 1.5), ('B', NULL, NULL, 2.5), ('A', NULL, 'y', 3.5))
        AS t(sku, author, reason, value)
    """
    got = fetch_frame(con.sql(sql))
    expected = con.execute(sql).df()
    assert got["author"].tolist() == [None, None, None] and got["reason"].tolist() == ["x", None, "y"]
    for column in expected.columns:
        assert got[column].tolist() == expected[column].tolist(), column
    assert got["sku"].dtype == object
