"""Rows (dicts) to an Arrow table of a given schema: missing fields are null, values that do not fit
the field's type are carried as text rather than failing the write."""
from __future__ import annotations

import pyarrow as pa


def _array(values: list, type_: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        text = pa.array([None if v is None else str(v) for v in values], pa.string())
        return text if pa.types.is_string(type_) else text.cast(type_, safe=False)


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows as a table of ``schema``; fields a row lacks are null."""
    return columns_table({f.name: [r.get(f.name) for r in rows] for f in schema}, schema)


def columns_table(columns: dict[str, list], schema: pa.Schema) -> pa.Table:
    """Columns (``{name: values}``, all of one length) as a table of ``schema``, as ``to_table`` does."""
    return pa.Table.from_arrays([_array(columns[f.name], f.type) for f in schema], schema=schema)

