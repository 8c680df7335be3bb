"""Copy a finished full-mode case folder into ``docs/reference/<case>/`` as its reference
output: verdict, run record, records, tables and the case's PNG figures (no HTML report or
per-sample arrays, to keep the repository small), with a README stating how it was made;
then rewrite ``docs/reference/index.html`` and ``summary.csv`` over every case.

    python scripts/export_reference.py runs/full/qcd [--dest docs/reference]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from scirobust import cases
from scirobust.results import atomic_write_text


def export(folder: Path, dest_root: Path) -> Path:
    """Copy ``folder`` (a finished full run) to ``dest_root/<case>``; return that path."""
    missing = [n for n in ("run.json", "verdict.json", "results.csv") if not (folder / n).is_file()]
    if missing:
        raise SystemExit(f"{folder}: no {', '.join(missing)}; give the output folder of a "
                         "finished `scirobust reproduce CASE` run.")
    run = json.loads((folder / "run.json").read_text())
    if run.get("status") != "finished" or run.get("quick"):
        raise SystemExit(f"{folder}: not a finished full-mode run ({run}).")
    verdict = json.loads((folder / "verdict.json").read_text())
    dest = dest_root / run["case"]
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "figures").mkdir(parents=True)
    for name in ("verdict.json", "run.json", "results.csv"):
        shutil.copy2(folder / name, dest / name)
    if (folder / "tables").is_dir():
        shutil.copytree(folder / "tables", dest / "tables")
    for figure in sorted((folder / "figures" / "case").glob("*")):
        if figure.suffix in (".png", ".txt"):
            shutil.copy2(figure, dest / "figures" / figure.name)
    lines = [
        f"# Reference output: `scirobust reproduce {run['case']}` (full mode)", "",
        f"Command: `scirobust reproduce {run['case']} --output runs/full/{run['case']}` "
        f"(seed {run['seed']}, scirobust {run.get('scirobust_version', '?')}); "
        f"wall time {run['wall_time_s']:.0f} s inside the case, on a 2-core CPU machine "
        "shared with other jobs at low priority, so the time is an upper bound.", "",
        f"Overall outcome: **{verdict.get('outcome', '?')}**.", "",
    ]
    for v in verdict.get("verdicts", []):
        lines.append(f"- **{v.get('outcome')}**: {v.get('claim')}")
        if v.get("paper"):
            lines.append(f"  - paper: {v['paper']}")
        if v.get("ours"):
            lines.append(f"  - ours: {v['ours']}")
        lines.append(f"  - criterion: {v.get('criterion')}")
    lines += ["", "Files: `verdict.json`, `run.json`, `results.csv` (every record), `tables/`, "
              "`figures/` (the case's PNG figures with captions). The HTML report and the "
              "per-sample arrays are left out to keep the repository small.", ""]
    atomic_write_text(dest / "README.md", "\n".join(lines))
    return dest


EXAMPLE = "python scripts/export_reference.py runs/full/qcd runs/full/sio2"


def main() -> int:
    """Export every folder given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog=f"Example: {EXAMPLE}")
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--dest", type=Path, default=Path(__file__).parents[1] / "docs" /
                        "reference")
    args = parser.parse_args()
    for folder in args.folders:
        print(export(folder, args.dest), file=sys.stderr)
    print(cases.write_reproduction_index(args.dest), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
