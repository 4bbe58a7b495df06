"""The filter protocol (datatrove style) and the reject-row builder.

A filter is a small object with one method, ``check(row) -> Drop | None``:
``None`` keeps the row, a ``Drop`` names the reason (a code from
``clipcurate.schemas.reasons``) and an optional message. Counting and routing
to the rejects output happen once, in ``pipeline.stage.apply_filters``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

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


def reject_row(row: dict, reason: str, message: str = "") -> dict:
    """A copy of ``row`` marked as dropped, without the internal payloads."""
    out = {k: v for k, v in row.items() if k not in ("image", "local_path", "image_embedding", "text_embedding")}
    out["stage"] = REASONS[reason].stage
    out["reason"] = reason
    out["error_message"] = (message or "")[:2000]
    return out
