"""The filter protocol (datatrove style) and the reject-row builder.

A filter is a small object with one method, ``check(row) -> Drop | None``:
``None`` keeps the row, a ``Drop`` names the reason (a code from
``clipcurate.schemas.reasons``) and an optional message. Counting and routing
to the rejects output happen once, in ``pipeline.stages.base.RowCheckDoFn`` (``FilterStage`` in
``pipeline.stages.curate`` makes any filter a stage).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from clipcurate.schemas import INTERNAL_KEYS
from clipcurate.schemas.reasons import REASONS


@dataclass(frozen=True)
class Drop:
    reason: str
    message: str = ""

    def __post_init__(self):
        if self.reason not in REASONS:
            raise ValueError(f"unknown reason code {self.reason!r}")


class RowFilter(Protocol):
    def check(self, row: dict) -> Optional[Drop]:
        ...


THUMBNAIL_SIZE = 96


def thumbnail(image: bytes, size: int = THUMBNAIL_SIZE) -> bytes | None:
    """A small JPEG of an image, for the report's grids of rejected pairs."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(image)) as img:
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=70)
            return buf.getvalue()
    except (OSError, ValueError):
        return None


def reject_row(row: dict, reason: str, message: str = "") -> dict:
    """A copy of ``row`` marked as dropped, without the internal payloads.

    A row that already has its image keeps a small thumbnail of it.
    """
    out = {k: v for k, v in row.items() if k not in INTERNAL_KEYS}
    if row.get("image") and "thumbnail" not in out:
        out["thumbnail"] = thumbnail(row["image"])
    out["stage"] = REASONS[reason].stage
    out["reason"] = reason
    out["error_message"] = (message or "")[:2000]
    return out
