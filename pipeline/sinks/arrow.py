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


def shape_columns(rows: list[dict], names) -> tuple[list[dict], dict[str, list]]:
    """(the rows in their new order, {name: values}) with the rows grouped by their fields (one
    ``zip`` a group, not a lookup a row and field); a row without a field has None there."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    ordered, columns = [], {name: [] for name in names}
    for keys, group in groups.items():
        ordered += group
        cols = dict(zip(keys, zip(*(r.values() for r in group))))
        for name in names:
            col = cols.get(name)
            columns[name].extend(col if col is not None else (None,) * len(group))
    return ordered, columns
