#!/usr/bin/env python3
"""Runs the benchmark sections and prints their tables; all results also go to JSON.

    scripts/bench.py [--quick] [--json PATH] [text] [core] [cloud] [piper] [kokoro] [server]

Each section is ``scripts/bench_<name>.py`` with ``run(quick=False)`` returning
``{"section": name, "rows": [dict, ...], "notes": [str, ...]}``. A section that
is missing or fails is reported and the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SECTIONS = ("text", "core", "cloud", "piper", "kokoro", "server")


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned plain text; the columns are the union of their keys, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    cells = [columns] + [["" if row.get(c) is None else str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run_section(name: str, quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench_{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bench_{name}":
            raise
        return {"section": name, "error": f"scripts/bench_{name}.py is missing"}
    result = dict(module.run(quick=quick))
    result.setdefault("section", name)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def show(result: dict[str, Any]) -> None:
    print(f"\n== {result['section']} ==" + (f"  ({result['seconds']} s)" if "seconds" in result else ""))
    if "error" in result:
        print(f"SECTION FAILED: {result['error']}")
        return
    rows = result.get("rows") or []
    print(table(rows) if rows else "(no rows)")
    for note in result.get("notes") or []:
        print(f"- {note}")
    sys.stdout.flush()


def machine() -> dict[str, Any]:
    import numpy

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", metavar="section", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer runs and shorter narrations (about 2 minutes)")
    parser.add_argument("--json", default="bench-results.json", metavar="PATH", help="where to write all results")
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    sys.path.insert(0, str(HERE))
    results = []
    for name in args.sections or SECTIONS:
        try:
            result = run_section(name, args.quick)
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            traceback.print_exc()
            result = {"section": name, "error": f"{type(exc).__name__}: {exc}"}
        show(result)
        results.append(result)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "sections": results,
    }
    Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults written to {args.json}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
