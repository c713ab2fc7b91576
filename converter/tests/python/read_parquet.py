"""Reads a Parquet file with pyarrow and with DuckDB and prints both as canonical JSON.

Canonical form: one JSON object per row with every column; timestamps as integer
microseconds since the Unix epoch; structs as objects; lists as arrays. The Rust tests compare
this with the values they expect from the NDJSON input, so any reader disagreeing with the
input (or with the other reader) fails the test.

usage: read_parquet.py FILE.parquet
"""
import datetime
import json
import sys

import duckdb
import pyarrow.parquet as pq

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
MICRO = datetime.timedelta(microseconds=1)


def canon(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise SystemExit(f"naive timestamp read back: {value!r}")
        return (value - EPOCH) // MICRO
    if isinstance(value, dict):
        return {k: canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canon(v) for v in value]
    return value


def main(path):
    table = pq.read_table(path)
    from_pyarrow = [canon(row) for row in table.to_pylist()]

    con = duckdb.connect()
    cursor = con.execute("SELECT * FROM read_parquet(?)", [path])
    names = [d[0] for d in cursor.description]
    from_duckdb = [canon(dict(zip(names, row))) for row in cursor.fetchall()]

    metadata = pq.ParquetFile(path).metadata
    json.dump(
        {
            "pyarrow": from_pyarrow,
            "duckdb": from_duckdb,
            "pyarrow_schema": str(table.schema),
            "num_row_groups": metadata.num_row_groups,
            "num_rows": metadata.num_rows,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1])
