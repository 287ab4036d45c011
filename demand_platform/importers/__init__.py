"""Importers: turn public retail datasets into a platform source directory.

A source is a directory with one parquet file per table (see :mod:`demand_platform.schemas`). Each
importer writes ``transactions``, ``products`` and ``warehouses`` (plus ``calendar`` when the dataset
has one) and an ``import_quarantine.parquet`` file with the input rows it could not turn into valid
lines, each with its reason and the original row as JSON. The written source is then validated by the
platform exactly like any bring-your-own-data source.

* :func:`demand_platform.importers.m5.import_m5`: the Walmart M5 competition files.
* :func:`demand_platform.importers.online_retail.import_online_retail`: UCI "Online Retail II".

This module holds what the importers share: :class:`ImportSummary`, the Arrow schemas of the written
tables and the writers.
"""

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from demand_platform import columns as C
from demand_platform.source_files import SOURCE_FILE_SCHEMAS

__all__ = [
    "QUARANTINE_COLUMNS",
    "QUARANTINE_FILE",
    "SCHEMAS",
    "ImportSummary",
    "existing_other_tables",
    "write_frame",
    "write_quarantine",
]

QUARANTINE_FILE = "import_quarantine.parquet"
"""Name of the file (in the output directory) holding the rows an importer set aside."""

QUARANTINE_COLUMNS = (C.SOURCE_TABLE, C.WAREHOUSE_ID, C.PARTITION_DATE, C.REASON, C.ORIGINAL_ROW)
"""Columns of the import quarantine: the platform's quarantine columns without ``detected_by``."""

SCHEMAS: dict[str, pa.Schema] = {
    **{t: SOURCE_FILE_SCHEMAS[t] for t in (C.TRANSACTIONS, C.PRODUCTS, C.WAREHOUSES, C.CALENDAR)},
    C.QUARANTINE: pa.schema(
        [
            (C.SOURCE_TABLE, pa.string()),
            (C.WAREHOUSE_ID, pa.string()),
            (C.PARTITION_DATE, pa.timestamp("ns")),
            (C.REASON, pa.string()),
            (C.ORIGINAL_ROW, pa.string()),
        ]
    ),
}
"""Arrow schema of every written table: strings are ``string``, dates ``date32``."""


@dataclasses.dataclass(frozen=True)
class ImportSummary:
    """What an importer wrote.

    Attributes:
        out_dir: The source directory written.
        rows: Rows written per table name (``transactions``, ``products``, ``warehouses``, ...).
        quarantined: Input rows set aside in ``import_quarantine.parquet``, per reason (a row with
            several reasons counts once, under its joined ``"a; b"`` reason).
        first_date: First transaction date written (None when no line was written).
        last_date: Last transaction date written (None when no line was written).
        seconds: Wall-clock import time.
        notes: Remarks on choices the importer made for this input (fallbacks, skipped items...).
    """

    out_dir: Path
    rows: dict[str, int]
    quarantined: dict[str, int]
    first_date: dt.date | None
    last_date: dt.date | None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def n_quarantined(self) -> int:
        """Total input rows set aside."""
        return sum(self.quarantined.values())

    def __str__(self) -> str:
        """A few human-readable lines: rows per table, date range, quarantine reasons, notes."""
        span = f"{self.first_date} .. {self.last_date}" if self.first_date and self.last_date else "no dates"
        lines = [f"imported {self.out_dir} in {self.seconds:.1f} s ({span})"]
        lines += [f"  {table}: {n:,} rows" for table, n in self.rows.items()]
        lines.append(f"  quarantined: {self.n_quarantined:,} rows ({QUARANTINE_FILE})")
        for reason, n in sorted(self.quarantined.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {reason}: {n:,}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def write_frame(frame: pd.DataFrame, out_dir: Path, table: str) -> int:
    """Write ``frame`` as ``<out_dir>/<table>.parquet`` with the table's Arrow schema.

    Args:
        frame: Rows holding (at least) the schema's columns; dates may be datetimes or dates.
        out_dir: The source directory (must exist).
        table: Table name, a key of :data:`SCHEMAS`.

    Returns:
        The number of rows written.
    """
    schema = SCHEMAS[table]
    arrays = []
    for field in schema:
        values = frame[field.name]
        if pa.types.is_date(field.type):
            stamps = pd.to_datetime(values).dt.normalize().to_numpy(dtype="datetime64[ns]")
            arrays.append(pa.array(stamps, from_pandas=True).cast(field.type))
        else:
            arrays.append(pa.array(values.to_numpy(), type=field.type, from_pandas=True))
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), out_dir / f"{table}.parquet")
    return len(frame)


def write_quarantine(frame: pd.DataFrame, out_dir: Path) -> dict[str, int]:
    """Write the import quarantine (possibly empty) and count its rows per reason.

    Args:
        frame: Rows with :data:`QUARANTINE_COLUMNS` (as built by
            :func:`demand_platform.source.quarantine_frame`).
        out_dir: The source directory (must exist).

    Returns:
        Rows per reason.
    """
    table = pa.Table.from_pandas(
        frame.loc[:, list(QUARANTINE_COLUMNS)].reset_index(drop=True),
        schema=SCHEMAS[C.QUARANTINE],
        preserve_index=False,
    )
    pq.write_table(table, out_dir / QUARANTINE_FILE)
    counts = frame[C.REASON].value_counts(sort=True)
    return {str(reason): int(n) for reason, n in counts.items()}


def existing_other_tables(out_dir: Path, written: tuple[str, ...]) -> list[str]:
    """Source table files already in ``out_dir`` that an import does not write (left untouched)."""
    return sorted(
        path.name
        for table in C.SOURCE_TABLES
        if table not in written
        for path in (out_dir / f"{table}.parquet", out_dir / f"{table}.csv")
        if path.exists()
    )
