"""Files a reproduction writes beside its results: captioned figures and CSV tables.

`write_report` embeds ``figures/case/*.png`` (with ``<stem>.txt`` as caption) and renders
``tables/*.csv``; these helpers write them in exactly that layout.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from scirobust.report.figures import save_figure
from scirobust.results import atomic_write_text


def save_case_figure(fig: Figure, directory: Path, stem: str, caption: str) -> None:
    """Save ``fig`` as ``directory/figures/case/<stem>.png|svg`` with a caption file."""
    folder = Path(directory) / "figures" / "case"
    save_figure(fig, folder, stem)
    atomic_write_text(folder / f"{stem}.txt", caption)


def write_case_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write a CSV table atomically; floats with 6 significant digits; cells holding commas
    or quotes are quoted (RFC 4180)."""

    def fmt(value: Any) -> str:
        return f"{float(value):.6g}" if isinstance(value, float | np.floating) else str(value)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([fmt(v) for v in row] for row in rows)
    atomic_write_text(Path(path), buffer.getvalue())
