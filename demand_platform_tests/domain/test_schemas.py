"""The platform's pandera schemas: the fast text dtype rejects what pandera's ``str`` rejects."""

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from demand_platform import columns as C
from demand_platform.schemas import RawSalesModel


def raw_sales_rows(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.SKU: [f"SKU{i:03d}" for i in range(n)],
            C.WAREHOUSE_ID: ["WH001"] * n,
            C.DATE: pd.date_range("2024-01-01", periods=n, freq="D"),
            C.QUANTITY: np.arange(n, dtype=float),
            C.REVENUE: np.zeros(n),
            C.N_ORDERS: np.zeros(n, dtype="int64"),
        }
    )


def test_text_columns_of_strings_pass() -> None:
    rows = raw_sales_rows()
    pd.testing.assert_frame_equal(RawSalesModel.validate(rows), rows)


@pytest.mark.parametrize("bad", [5, 3.5, b"SKU", ("SKU",)])
def test_a_non_string_id_is_rejected_with_its_row(bad: object) -> None:
    rows = raw_sales_rows()
    rows[C.SKU] = rows[C.SKU].astype(object)
    rows.loc[2, C.SKU] = bad
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        RawSalesModel.validate(rows, lazy=True)
    cases = caught.value.failure_cases
    dtype_cases = cases[cases["check"].astype(str).str.startswith("dtype")]
    assert dtype_cases["column"].tolist() == [C.SKU]
    assert dtype_cases["index"].tolist() == [2]


def test_a_null_id_is_still_refused() -> None:
    rows = raw_sales_rows()
    rows.loc[1, C.WAREHOUSE_ID] = None
    with pytest.raises(pandera.errors.SchemaError, match="null"):
        RawSalesModel.validate(rows)
