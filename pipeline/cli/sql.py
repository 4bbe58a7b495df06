"""``clipcurate sql OUT "SELECT ..."``: DuckDB over an output folder (views ``pairs`` and ``rejects``)."""
from __future__ import annotations

import csv
import json
import sys

from clipcurate.pipeline.cli import UsageError
from clipcurate.pipeline.cli.beamflags import use_beam_flags

ACCEPTS_EXTRA_ARGS = True  # Beam's object-store flags (--s3_endpoint_url URL ...) for an s3:// or gs:// output


def add_arguments(parser):
    parser.add_argument("output", help="an output folder written by clipcurate run")
    parser.add_argument("query", help='SQL over the views pairs and rejects, e.g. "select reason, count(*) from rejects group by 1"')
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--max-rows", type=int, default=1000, help="rows printed in table format (default 1000)")


def connect(out: str):
    """A DuckDB connection with the views over ``out``; UsageError if it is not an output folder."""
    from clipcurate.pipeline.cli.report import is_output_folder
    from clipcurate.pipeline.inspect.views import connect as open_views

    if not is_output_folder(out):
        raise UsageError(f"{out!r} is not a clipcurate output folder (no stats.json or shards/)")
    return open_views(out)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def print_table(columns, rows, file=sys.stdout):
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths)), file=file)
    print("-+-".join("-" * w for w in widths), file=file)
    for r in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths)), file=file)


def main(args) -> int:
    import duckdb

    use_beam_flags(args.extra_args, "a clipcurate sql option")
    con = connect(args.output)
    try:
        cursor = con.execute(args.query)
    except duckdb.Error as err:
        raise UsageError(f"query failed: {str(err).splitlines()[0]}") from None
    if cursor.description is None:
        return 0
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    if args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([[("" if v is None else v) for v in r] for r in rows])
    elif args.format == "json":
        for r in rows:
            print(json.dumps(dict(zip(columns, r)), default=lambda v: f"<{len(v)} bytes>" if isinstance(v, bytes) else str(v), ensure_ascii=False))
    else:
        print_table(columns, rows[: args.max_rows])
        if len(rows) > args.max_rows:
            print(f"({len(rows)} rows, {args.max_rows} shown)")
    return 0
