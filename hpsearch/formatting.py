"""Plain-text rendering of progress lines and result tables (no heavy imports)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence


def fmt_value(value: Any) -> str:
    """Numbers with 4 significant digits (floats), everything else as ``str``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def fmt_duration(seconds: float) -> str:
    """``H:MM:SS``."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A left-aligned text table with a header rule."""
    cells = [[str(h) for h in headers]] + [[fmt_value(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def settings_table(params: Mapping[str, Any]) -> str:
    """``name  value`` lines for a trial's settings."""
    return table(["setting", "value"], sorted(params.items()))
