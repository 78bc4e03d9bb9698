"""What the CLI prints for people: aligned tables and UTC times, every cell escaped."""

from __future__ import annotations

import datetime

from gateway.printable import escape


def when(ts: float | None) -> str:
    """A wall-clock time as UTC, to the second; ``-`` for none."""
    return "-" if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def table(columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Aligned columns; every cell escaped (lease ids, services, SMS texts and modem replies come
    from outside, and a terminal would act on their control characters)."""
    cells = [tuple(escape(x) for x in row) for row in (columns, *rows)]
    widths = [max(len(x) for x in col) for col in zip(*cells)]
    for row in cells:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
