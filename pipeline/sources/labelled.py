"""Labelled datasets as a source: each image becomes a pair captioned by its label's prompt.

Two layouts:

- an ImageFolder tree, one sub-folder per label (images may sit deeper inside
  it), local files with the extensions in ``IMAGE_EXTENSIONS``, hidden files
  and folders skipped;
- a table (.parquet, .csv, .tsv, .jsonl, optionally gzip'd; read by ingest's
  reader, so CSV columns are text) with a ``label`` column and either a
  local path column (``path``, ``image_path`` or ``file``, relative to the
  table's folder) or a ``url`` column.

Local files are read only from inside the root (the folder, or the table's
folder). A row whose path resolves outside it (``..``, a symlink) is kept with
``local_path=None`` and ``invalid_path=True``, so the download stage rejects it
as ``local_file_error``; nothing is dropped here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from clipcurate.filters.prompts import PromptConfig, clean_label, make_prompt
from clipcurate.pipeline.files import resolve_under as _resolve_under
from clipcurate.pipeline.sources.base import ReadEach
from clipcurate.pipeline.sources.errors import InputError
from clipcurate.pipeline.stages.base import NAMESPACE
from clipcurate.pipeline.sources.tables import format_of, read_whole_table
from clipcurate.schemas import RESERVED_NAMES, carried_name

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
TABLE_EXTENSIONS = (".parquet", ".csv", ".tsv", ".jsonl")
PATH_COLUMNS = ("path", "image_path", "file")
URL_COLUMN = "url"
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class LabelledConfig:
    """``source``: an ImageFolder directory or a table file; ``prompt``: how labels become captions."""

    source: str
    prompt: PromptConfig = field(default_factory=PromptConfig)


def labelled_root(source) -> str:
    """The folder labelled images are read from: the source folder itself, or the table's folder."""
    source = Path(source)
    return os.path.realpath(source if source.is_dir() else source.parent)


class _Captioner:
    """Label string -> (caption, cleaned label), once per distinct label."""

    def __init__(self, config: PromptConfig):
        self.config = config
        self._cache: dict[str, tuple[str, str]] = {}

    def __call__(self, raw) -> tuple[str, str]:
        if raw is None:
            return "", ""
        raw = str(raw)
        if raw not in self._cache:
            label = clean_label(raw)
            if not label:
                caption = ""
            elif self.config.enabled:
                caption = make_prompt(label, self.config.template, self.config.domain)
            else:
                caption = label
            self._cache[raw] = (caption, label)
        return self._cache[raw]


# --- ImageFolder ---------------------------------------------------------------

def _hidden(name: str) -> bool:
    return name.startswith(".")


def _image_files(label_dir: Path) -> list[str]:
    """Image paths under ``label_dir``, relative to it, posix, sorted; follows
    symlinked folders once (their files are checked against the root later)."""
    found: list[str] = []
    seen: set[str] = set()

    def walk(folder: Path, prefix: str) -> None:
        real = os.path.realpath(folder)
        if real in seen:
            return
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if _hidden(entry.name):
                continue
            rel = prefix + entry.name
            if entry.is_dir():  # follows symlinks
                walk(Path(entry.path), rel + "/")
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(rel)

    walk(label_dir, "")
    return sorted(found)


def _read_folder(root: Path, prompt: PromptConfig) -> list[dict]:
    captioner = _Captioner(prompt)
    source_file = str(root.absolute())
    rows: list[dict] = []
    base = labelled_root(root)
    labels = sorted(e.name for e in os.scandir(root) if e.is_dir() and not _hidden(e.name))
    for raw_label in labels:
        caption, label = captioner(raw_label)
        if not label:
            raise InputError(f"label folder {raw_label!r} in {root} has no words to make a caption from")
        for rel_in_label in _image_files(root / raw_label):
            rel = f"{raw_label}/{rel_in_label}"
            rows.append(_row(base, rel, rel, caption, raw_label, label, source_file, len(rows)))
    if not rows:
        raise InputError(f"no images in the label sub-folders of {root} (expected ROOT/LABEL/IMAGE)")
    return rows


def _row(base: str, relpath: str, url: str, caption: str, raw_label, label: str,
         source_file: str, index: int) -> dict:
    local = _resolve_under(base, relpath)
    row = {
        "url": url,
        "caption": caption,
        "raw_caption": raw_label,
        "label": label,
        "local_path": local,
        "source_file": source_file,
        "source_row": index,
    }
    if local is None:
        row["invalid_path"] = True
    return row


# --- tables --------------------------------------------------------------------

def _image_column(path, names: list[str]) -> str | None:
    """The table's local-path column (None: it has a url column); InputError when it has neither, or no label."""
    if LABEL_COLUMN not in names:
        raise InputError(f"labelled table {path} has no {LABEL_COLUMN!r} column (columns: {', '.join(names)})")
    path_col = next((c for c in PATH_COLUMNS if c in names), None)
    if path_col is None and URL_COLUMN not in names:
        wanted = ", ".join(repr(c) for c in PATH_COLUMNS + (URL_COLUMN,))
        raise InputError(f"labelled table {path} has none of the columns {wanted} (columns: {', '.join(names)})")
    return path_col


def _read_table(path: Path, prompt: PromptConfig) -> list[dict]:
    table = read_whole_table(str(path), what="labelled table")
    names = table.column_names
    path_col = _image_column(path, names)
    if table.num_rows == 0:
        raise InputError(f"labelled table {path} has no rows")
    used = {LABEL_COLUMN, path_col or URL_COLUMN}
    carried = {c: (carried_name(c) if c in RESERVED_NAMES else c) for c in names if c not in used}
    base = labelled_root(path)
    source_file = str(path.absolute())
    captioner = _Captioner(prompt)
    rows = []
    for index, record in enumerate(table.to_pylist()):
        raw_label = record[LABEL_COLUMN]
        caption, label = captioner(raw_label)
        raw_caption = None if raw_label is None else str(raw_label)
        if path_col is not None:
            rel = record[path_col]
            rel = "" if rel is None else str(rel)
            row = _row(base, rel, rel.replace(os.sep, "/"), caption, raw_caption, label, source_file, index)
        else:
            row = {"url": record[URL_COLUMN], "caption": caption, "raw_caption": raw_caption, "label": label,
                   "local_path": None, "source_file": source_file, "source_row": index}
        for column, name in carried.items():
            row[name] = record[column]
        rows.append(row)
    return rows


# --- entry points ----------------------------------------------------------------

def _is_folder(source: Path) -> bool:
    """True for an ImageFolder tree, False for a table; InputError for anything else."""
    if source.is_dir():
        return True
    if not source.is_file():
        raise InputError(f"labelled source {source} does not exist")
    if format_of(source.name) is None:
        raise InputError(f"labelled source {source} is neither a folder nor a table ({', '.join(TABLE_EXTENSIONS)},"
                         " optionally .gz)")
    return False


def read_labelled(config: LabelledConfig) -> list[dict]:
    """Every labelled image as a pair row, in a deterministic order: for a
    folder, sorted labels then sorted files; for a table, its row order."""
    source = Path(config.source)
    return _read_folder(source, config.prompt) if _is_folder(source) else _read_table(source, config.prompt)


def list_labels(config: LabelledConfig) -> list[str]:
    """The distinct cleaned labels, sorted."""
    return sorted({row["label"] for row in read_labelled(config) if row["label"]})


def labelled_images(source) -> list[tuple[str, str]]:
    """(local image path, label) of every labelled image that is a local file inside the root."""
    rows = read_labelled(LabelledConfig(source=str(source)))
    return [(r["local_path"], r["label"]) for r in rows if r.get("local_path") and r.get("label")]


def check_labelled(config: LabelledConfig) -> list:
    """What can be checked up front from the folder's top level or the table's header (the rows are read
    by the pipeline, ``ReadLabelled``); returns the Arrow fields of the user columns a table carries."""
    import pyarrow as pa

    from clipcurate.pipeline.sources.tables import file_format, read_schema

    source = Path(config.source)
    if _is_folder(source):
        if not any(e.is_dir() and not _hidden(e.name) for e in os.scandir(source)):
            raise InputError(f"no label sub-folders in {source} (expected ROOT/LABEL/IMAGE)")
        return []
    schema = read_schema(str(source), file_format(str(source)))
    path_col = _image_column(source, schema.names)
    used = {LABEL_COLUMN, path_col or URL_COLUMN}
    return [pa.field(carried_name(f.name) if f.name in RESERVED_NAMES else f.name,
                     pa.string() if pa.types.is_null(f.type) else f.type) for f in schema if f.name not in used]


class _ReadLabelledDoFn(beam.DoFn):
    def setup(self):
        self.rows = Metrics.counter(NAMESPACE, "input_rows")

    def process(self, config: LabelledConfig):
        rows = read_labelled(config)
        self.rows.inc(len(rows))
        yield from rows


class ReadLabelled(beam.PTransform):
    """PBegin -> labelled pair rows (dicts): the folder or table is read on a worker, not the launcher."""

    def __init__(self, config: LabelledConfig):
        super().__init__()
        self.config = config

    def expand(self, pbegin):
        rows, _ = pbegin | "Source" >> ReadEach([self.config], _ReadLabelledDoFn())
        return rows
