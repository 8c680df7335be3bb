"""Fill the README's reproduction table (column ``verdict``) from a `reproduce all` folder
(its ``summary.csv``) or from a folder of case folders (e.g. ``docs/reference``).

    scirobust reproduce all --output runs/full          # full scale, every case
    python scripts/update_readme_verdicts.py runs/full   # rewrites README.md in place
    python scripts/update_readme_verdicts.py docs/reference

Only the verdict cells of cases present in ``DIR/summary.csv`` change; quick-mode rows are
refused unless ``--allow-quick`` (the README quotes full runs).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

from scirobust.report.index import fill_verdict_column, verdict_cells, write_index
from scirobust.results import atomic_write_text


def _summary_of_case_folders(root: Path) -> Path | None:
    """A summary.csv (written to a temporary folder, not into ``root``) of ``root``'s case
    folders, e.g. the reference outputs under ``docs/reference/``; None if there are none."""
    from scirobust import cases

    if not any(root.glob("*/run.json")):
        return None
    out = Path(tempfile.mkdtemp())
    write_index(out, cases.reproduction_entries(root))
    return out / "summary.csv"


EXAMPLE = "python scripts/update_readme_verdicts.py docs/reference"


def main() -> int:
    """Rewrite the README's verdict column; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog=f"Example: {EXAMPLE}")
    parser.add_argument("folder", type=Path, help="a `scirobust reproduce all` output folder")
    parser.add_argument("--readme", type=Path, default=Path(__file__).parents[1] / "README.md")
    parser.add_argument("--allow-quick", action="store_true")
    args = parser.parse_args()
    summary = args.folder / "summary.csv"
    if not summary.is_file():
        summary = _summary_of_case_folders(args.folder)
    if summary is None:
        print(f"{args.folder} has neither summary.csv nor case folders with run.json: run "
              f"`scirobust reproduce all --output {args.folder}` first.", file=sys.stderr)
        return 2
    with summary.open(newline="") as handle:
        quick = sorted({r["case"] for r in csv.DictReader(handle) if r["mode"] == "quick"})
    if quick and not args.allow_quick:
        print(f"quick-mode rows for {', '.join(quick)}: the README quotes full runs "
              "(pass --allow-quick to fill them anyway).", file=sys.stderr)
        return 2
    text = args.readme.read_text()
    atomic_write_text(args.readme, fill_verdict_column(text, verdict_cells(summary)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
