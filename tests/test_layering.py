"""The architecture holds: imports point down the floors, and records' fields are written down in one place.

Floors, top to bottom (a module may import its own package and anything on a lower floor):

    cli -> flow -> sources / stages / sinks / inspect / demo -> stages.base -> net / media / clip / files
        -> imports -> filters -> schemas
"""
from __future__ import annotations

import ast
from pathlib import Path

from clipcurate import schemas
from clipcurate.schemas.records import ADDED_BY, REJECT_FIELDS, fields_after

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"pipeline": "clipcurate.pipeline", "filters": "clipcurate.filters", "schemas": "clipcurate.schemas"}

# longest prefix wins; same number = same floor (siblings may not import each other, see SIBLINGS_OK)
FLOORS = {
    "clipcurate.pipeline.cli": 7,
    "clipcurate.pipeline.flow": 6,
    "clipcurate.pipeline.sources": 5,
    "clipcurate.pipeline.stages": 5,
    "clipcurate.pipeline.sinks": 5,
    "clipcurate.pipeline.inspect": 5,
    "clipcurate.pipeline.demo": 5,
    "clipcurate.pipeline.stages.base": 4,     # the Beam bookkeeping every source, stage and sink shares
    "clipcurate.pipeline.net": 3,
    "clipcurate.pipeline.media": 3,
    "clipcurate.pipeline.clip": 3,
    "clipcurate.pipeline.files": 2,
    "clipcurate.pipeline.imports": 2,
    "clipcurate.pipeline": 2,
    "clipcurate.filters": 1,
    "clipcurate.schemas": 0,
}
# the one sideways import on a floor: the textness probe (clip) draws its pictures with media.draw
SIBLINGS_OK = {("clipcurate.pipeline.clip", "clipcurate.pipeline.media")}


def _where(module: str) -> str:
    return max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)


def _package(module: str) -> str:
    """The sub-package a module belongs to (what may import itself freely)."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[1] == "pipeline" and len(parts) > 2 else ".".join(parts[:2])


def _modules():
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clipcurate"):
            names = [node.module] if node.module != "clipcurate" else [f"clipcurate.{a.name}" for a in node.names]
            for name in names:
                yield node.lineno, name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("clipcurate"):
                    yield node.lineno, alias.name


def upward_imports(modules) -> list[str]:
    bad = []
    for module, path in modules:
        here, mine = _where(module), _package(module)
        for line, target in _imports(path):
            there = _where(target)
            if _package(target) == mine and FLOORS[there] <= FLOORS[here] or (here, there) in SIBLINGS_OK:
                continue
            if FLOORS[there] >= FLOORS[here]:
                bad.append(f"{path.name}:{line} {module} imports {target} (floor {FLOORS[there]} >= {FLOORS[here]})")
    return bad


def test_every_module_has_a_floor_and_imports_only_below_it():
    modules = list(_modules())
    assert len(modules) > 60
    assert upward_imports(modules) == []


def test_the_check_finds_an_upward_import(tmp_path):
    """The checker itself: a filter importing a stage, a stage importing the CLI, a sideways import."""
    bad = tmp_path / "bad.py"
    bad.write_text("from clipcurate.pipeline.cli import UsageError\nimport clipcurate.pipeline.stages.base\n"
                   "from clipcurate.pipeline.sinks.shards import WriteShards\nfrom clipcurate import schemas\n")
    found = upward_imports([("clipcurate.filters.fake", bad)])
    assert len(found) == 3 and all("clipcurate.filters.fake imports clipcurate.pipeline" in f for f in found)
    assert len(upward_imports([("clipcurate.pipeline.stages.fake", bad)])) == 2  # the CLI, and the sink beside it
    assert upward_imports([("clipcurate.pipeline.cli.fake", bad)]) == []


def test_filters_and_schemas_import_nothing_from_the_pipeline():
    for module, path in _modules():
        if module.startswith(("clipcurate.filters", "clipcurate.schemas")):
            assert not [t for _, t in _imports(path) if t.startswith("clipcurate.pipeline")], module


def test_every_written_field_is_added_by_a_stage():
    added = {f for _, fields in ADDED_BY for f in fields}
    written = {f.name for f in schemas.SAMPLE_FIELDS} | set(schemas.INTERNAL_KEYS)
    assert written <= added
    assert set(REJECT_FIELDS) == {f.name for f in schemas.REJECT_EXTRA_FIELDS}
    assert "image" in fields_after("download") and "image" not in fields_after("prompts")
    assert {"similarity", "phash", "key"} <= fields_after("score")
