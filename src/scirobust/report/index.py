"""One page over every reproduction: ``index.html`` and ``summary.csv`` of a
``scirobust reproduce all`` folder.

Each case folder holds ``verdict.json`` (written by `scirobust.cases.finish`: the paper's claims,
our numbers, the criteria and outcomes) and ``run.json`` (written by the CLI when the case
finished: quick or full, seed, wall time). The index reads only those files, so it can be
rebuilt from the folder alone.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scirobust.results import atomic_write_text

__all__ = ["CaseEntry", "fill_verdict_column", "read_entry", "read_json_record",
           "total_time_line", "verdict_cells", "write_index"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#1a1a1a}table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ccc;
padding:.35em .6em;vertical-align:top;text-align:left}th{background:#f3f3f3}
.reproduced{background:#eef6f1}.partly{background:#fff8e6}.not-reproduced{background:#fff0e8}
.failed,.missing{background:#f4f4f4;color:#a34400}small{color:#555}"""


@dataclass(frozen=True)
class CaseEntry:
    """What the index shows of one case (``status``: finished, failed or missing)."""

    name: str
    title: str
    paper: str
    status: str
    outcome: str = ""
    verdicts: tuple[dict[str, Any], ...] = ()
    quick: bool | None = None
    wall_time_s: float | None = None
    message: str = ""
    report: str = ""  # link relative to the index: report.html, else the folder's README.md


def read_json_record(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path`` (``run.json``, ``verdict.json``), or None if absent or
    unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_entry(folder: Path, name: str, title: str, paper: str) -> CaseEntry:
    """The entry of the case in ``folder`` (missing if it has not finished there)."""
    run = read_json_record(folder / "run.json")
    verdict = read_json_record(folder / "verdict.json")
    if run is None:
        return CaseEntry(name, title, paper, "missing")
    if run.get("status") == "failed":
        return CaseEntry(name, title, paper, "failed", quick=run.get("quick"),
                         message=str(run.get("error", "")))
    verdict = verdict or {}
    # Reference copies (docs/reference) keep a README instead of the heavy HTML report.
    report = next((f"{folder.name}/{n}" for n in ("report.html", "README.md")
                   if (folder / n).is_file()), "")
    return CaseEntry(name, title, paper, "finished", str(verdict.get("outcome") or ""),
                     tuple(v for v in verdict.get("verdicts") or [] if isinstance(v, dict)),
                     run.get("quick"), run.get("wall_time_s"), report=report)


def total_time_line(entries: list[CaseEntry]) -> str:
    """One sentence: how many cases finished and the sum of their run times (s, h:min)."""
    done = [e for e in entries if e.status == "finished"]
    seconds = sum(e.wall_time_s or 0.0 for e in done)
    modes = sorted({"quick" if e.quick else "full" for e in done})
    return (f"{len(done)} of {len(entries)} cases finished ({', '.join(modes) or 'none'}); "
            f"their run times add up to {seconds:.0f} s ({int(seconds // 3600)} h "
            f"{int(seconds % 3600 // 60)} min), each timed inside its own run.")


def write_index(root: Path, entries: list[CaseEntry]) -> Path:
    """Write ``root/summary.csv`` (one row per verdict) and ``root/index.html`` (one row per
    case, linking each case's report); returns the HTML path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case", "paper", "status", "case_outcome", "claim", "paper_numbers",
                     "our_numbers", "criterion", "outcome", "detail", "mode", "wall_time_s",
                     "report"])
    for e in entries:
        time_s = "" if e.wall_time_s is None else f"{e.wall_time_s:.1f}"
        for v in e.verdicts or ({},):
            writer.writerow([e.name, e.paper, e.status, e.outcome, v.get("claim", ""),
                             v.get("paper", ""), v.get("ours", ""), v.get("criterion", ""),
                             v.get("outcome", ""), v.get("detail", "") or e.message, _mode(e),
                             time_s, e.report])
    atomic_write_text(root / "summary.csv", buffer.getvalue())

    def esc(text: Any) -> str:
        return html.escape(str(text))

    lines = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>scirobust reproductions</title><style>{_CSS}</style></head><body>",
             "<h1>scirobust: every reproduction, paper vs ours</h1>",
             "<p><small>The outcome of each claim comes from a criterion fixed in its case's "
             "code before the numbers were seen. Full details in each case's report; every "
             "claim is a row of summary.csv.</small></p>",
             f"<p>{esc(total_time_line(entries))}</p>",
             "<h2>At a glance</h2>",
             "<table><tr><th>case</th><th>paper</th><th>outcome</th><th>claims reproduced / "
             "partly / not</th><th>mode</th><th>time</th></tr>"]
    for e in entries:
        outcomes = [v.get("outcome") for v in e.verdicts]
        counts = " / ".join(str(outcomes.count(o))
                            for o in ("reproduced", "partly", "not reproduced"))
        lines.append(
            f"<tr class='{esc(_row_class(e))}'>"
            f"<td><a href='#{esc(e.name)}'>{esc(e.name)}</a></td><td>{esc(e.paper)}</td>"
            f"<td>{esc(e.outcome or e.status)}</td><td>{counts if e.verdicts else ''}</td>"
            f"<td>{_mode(e)}</td><td>{_seconds(e)}</td></tr>")
    lines += ["</table>", "<h2>Claims, paper vs ours</h2>",
              "<table><tr><th>case</th><th>paper</th><th>outcome</th><th>claims and numbers"
              "</th><th>mode</th><th>time</th></tr>"]
    for e in entries:
        name = f"<a href='{esc(e.report)}'>{esc(e.name)}</a>" if e.report else esc(e.name)
        claims = "".join(
            f"<p><b>{esc(v.get('outcome', ''))}</b>: {esc(v.get('claim', ''))}"
            + (f"<br><small>paper: {esc(v['paper'])}</small>" if v.get("paper") else "")
            + (f"<br><small>ours: {esc(v['ours'])}</small>" if v.get("ours") else "")
            + (f"<br><small>{esc(v['detail'])}</small>" if v.get("detail") else "") + "</p>"
            for v in e.verdicts) or esc(e.message or e.status)
        lines.append(f"<tr id='{esc(e.name)}' class='{esc(_row_class(e))}'><td>{name}<br><small>"
                     f"{esc(e.title)}</small></td><td>{esc(e.paper)}</td>"
                     f"<td>{esc(e.outcome or e.status)}</td><td>{claims}</td><td>{_mode(e)}</td>"
                     f"<td>{_seconds(e)}</td></tr>")
    lines.append("</table></body></html>")
    path = root / "index.html"
    atomic_write_text(path, "\n".join(lines))
    return path


def _row_class(entry: CaseEntry) -> str:
    return (entry.outcome or entry.status).replace(" ", "-")


def _mode(entry: CaseEntry) -> str:
    return "" if entry.quick is None else ("quick" if entry.quick else "full")


def _seconds(entry: CaseEntry) -> str:
    return "" if entry.wall_time_s is None else f"{entry.wall_time_s:.0f} s"


def verdict_cells(summary_csv: Path) -> dict[str, str]:
    """One Markdown cell per case from a ``summary.csv``: the case's outcome, the count of
    its claims per outcome, the mode and the run time, e.g. ``partly (2 of 3 claims
    reproduced; full, 683 s)``. Quick-mode rows say so: only full runs decide the README.
    Cases missing from the folder get no cell."""
    cases: dict[str, list[dict[str, str]]] = {}
    with summary_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            cases.setdefault(row["case"], []).append(row)
    cells = {}
    for name, rows in cases.items():
        first = rows[0]
        if first["status"] == "missing":
            continue  # never run there: the README keeps what it says
        if first["status"] != "finished":
            cells[name] = f"{first['status']} ({first['detail'][:60]})"
            continue
        outcomes = [r["outcome"] for r in rows if r["outcome"]]
        done = sum(o == "reproduced" for o in outcomes)
        seconds = f", {float(first['wall_time_s']):.0f} s" if first["wall_time_s"] else ""
        cells[name] = (f"{first['case_outcome'] or 'no verdict'} ({done} of {len(outcomes)} "
                       f"claims reproduced; {first['mode']}{seconds})")
    return cells


def fill_verdict_column(markdown: str, cells: dict[str, str], header: str = "verdict") -> str:
    """``markdown`` with the ``header`` column of every table row whose first cell is a
    back-quoted case name replaced by that case's cell (other rows are left as they are)."""
    lines = markdown.split("\n")
    column: int | None = None
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            column = None
            continue
        parts = line.split("|")
        names = [p.strip() for p in parts]
        if column is None and header in names:
            column = names.index(header)
            continue
        case = names[1].strip("`") if len(names) > 2 else ""
        if column is not None and case in cells and len(parts) > column:
            parts[column] = f" {cells[case]} "
            lines[i] = "|".join(parts)
    return "\n".join(lines)
