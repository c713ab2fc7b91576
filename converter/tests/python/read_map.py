"""Reads one MAP column of a Parquet file with pyarrow and with DuckDB and prints what each saw.

Prints JSON: for each reader, the column's type as that reader names it and, per row, the
entries as [key, value] pairs in stored order (null for a null map). The Rust test compares
both with the NDJSON input, so a reader that does not see a MAP, or sees other entries, fails it.

usage: read_map.py FILE.parquet COLUMN
"""
import json
import sys

import duckdb
import pyarrow.parquet as pq


def main(path, column):
    table = pq.read_table(path)
    arrow_type = table.schema.field(column).type
    arrow_rows = [
        None if row is None else [[k, v] for k, v in row]
        for row in table.column(column).to_pylist()
    ]

    con = duckdb.connect()
    duck_type = dict(
        (name, kind)
        for name, kind, *_ in con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?)", [path]
        ).fetchall()
    )[column]
    duck_rows = [
        None if keys is None else [[k, v] for k, v in zip(keys, values)]
        for keys, values in con.execute(
            f'SELECT map_keys("{column}"), map_values("{column}") FROM read_parquet(?)',
            [path],
        ).fetchall()
    ]
    json.dump(
        {
            "pyarrow_type": str(arrow_type),
            "pyarrow_is_map": arrow_type.__class__.__name__ == "MapType",
            "pyarrow": arrow_rows,
            "duckdb_type": duck_type,
            "duckdb": duck_rows,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
