"""Compare two results directories record by record (e.g. a case's quick mode before and
after a refactor).

    python scripts/compare_results.py BEFORE_DIR AFTER_DIR [--rtol 0] [--ignore-kind random]
        [--values-only] [--rename metric:OLD=NEW] [--rename attack:OLD=NEW] [--rename model:..]

Records are matched on (case, model, attack, epsilon, metric, variable, step, kind); results
written before the ``kind``/``variable``/``step`` columns existed are upgraded on reading, so
an old run compares with a new one. Prints, per kind, how many records are identical, differ
(with the largest relative difference) or exist on one side only, then each differing or
unmatched record. Exits 1 if a record of a kind not passed to ``--ignore-kind`` differs or is
missing after the change.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections import Counter
from pathlib import Path

from scirobust.results import Record, Results


def _key(r: Record) -> tuple:
    return (r.case, r.model, r.attack, r.epsilon, r.metric, r.variable, r.step, r.kind)


def _same(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= rtol * max(abs(a), abs(b))


def renamed(results: Results, renames: dict[tuple[str, str], str]) -> Results:
    """``results`` with model, attack or metric names renamed (``{("metric", old): new}``)."""
    records = [dataclasses.replace(
        r, metric=renames.get(("metric", r.metric), r.metric),
        attack=renames.get(("attack", r.attack), r.attack),
        model=renames.get(("model", r.model), r.model)) for r in results]
    return Results(records, results.metadata)


def compare(before: Results, after: Results, rtol: float = 0.0,
            values_only: bool = False) -> dict[str, list]:
    """``{"identical", "differ", "missing", "added"}`` lists of (key, before, after) values;
    ``values_only`` compares values and ignores standard errors."""
    old = {_key(r): r for r in before}
    new = {_key(r): r for r in after}
    out: dict[str, list] = {"identical": [], "differ": [], "missing": [], "added": []}
    for key, rec in old.items():
        if key not in new:
            out["missing"].append((key, rec.value, None))
        elif _same(rec.value, new[key].value, rtol) and (
                values_only or _same(rec.stderr, new[key].stderr, rtol)):
            out["identical"].append((key, rec.value, new[key].value))
        else:
            out["differ"].append((key, rec.value, new[key].value))
    out["added"] = [(key, None, rec.value) for key, rec in new.items() if key not in old]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=0.0,
                        help="relative tolerance for 'identical' (default 0: bit for bit)")
    parser.add_argument("--ignore-kind", action="append", default=[],
                        help="kinds whose differences are intended (repeatable)")
    parser.add_argument("--limit", type=int, default=40, help="rows printed per group")
    parser.add_argument("--values-only", action="store_true",
                        help="compare values only (a standard error added where there was "
                        "none is not a difference)")
    parser.add_argument("--rename", action="append", default=[], metavar="FIELD:OLD=NEW",
                        help="rename a metric, attack or model of BEFORE (repeatable), e.g. "
                        "metric:abs_error=mae")
    args = parser.parse_args(argv)
    renames = {}
    for item in args.rename:
        field, _, pair = item.partition(":")
        old, _, new = pair.partition("=")
        if field not in ("metric", "attack", "model") or not old or not new:
            parser.error(f"--rename {item!r}: use metric:, attack: or model:OLD=NEW")
        renames[(field, old)] = new
    before = renamed(Results.load(args.before), renames)
    found = compare(before, Results.load(args.after), args.rtol, args.values_only)
    counts = {group: Counter(key[-1] for key, *_ in rows) for group, rows in found.items()}
    kinds = sorted({k for c in counts.values() for k in c})
    print(f"{'kind':12s} " + " ".join(f"{g:>9s}" for g in found))
    for kind in kinds:
        print(f"{kind:12s} " + " ".join(f"{counts[g][kind]:9d}" for g in found))
    for group in ("differ", "missing", "added"):
        for key, a, b in found[group][: args.limit]:
            rel = "" if a is None or b is None or not a else f"  rel {abs(b - a) / abs(a):.2e}"
            print(f"{group:8s} {key}: {a} -> {b}{rel}")
    bad = [row for group in ("differ", "missing") for row in found[group]
           if row[0][-1] not in args.ignore_kind]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
