#!/usr/bin/env python
"""Geocode incoming citizen reports: what a report pipeline calls.

    python scripts/geocode_reports.py reports.csv [--crs gcj02] [--lon-col lng --lat-col lat]
                                      [--address-col address] [--out assigned.csv] [--store]
                                      [--source hotline] [--id-col id] [--time-col reported_at]
                                      [--rejects rejected.csv]

Every report gets its micro-grid and the chain above it (coordinates in WGS84, CGCS2000, GCJ-02,
BD-09 or any EPSG code; or a standard address).  ``--out`` writes the assigned rows; ``--store``
records them in the report table (one transaction) by source and id, with their own time: a
re-run updates changed reports and skips the rest.  Rows that cannot be stored (no text, a bad
time, a missing or repeated id) go, with the reason, to a CSV this script reads back once
corrected (default SRC.rejected.csv).  Prints one summary line per action; exits 1 when rows were
rejected, 2 with one error line on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridmap.errors import GridmapError  # noqa: E402
from gridmap.services.assignment import assign_file  # noqa: E402
from gridmap.services.database import ready_engine  # noqa: E402
from gridmap.services.locator import Locator  # noqa: E402
from gridmap.services.report_intake import Columns, record_reports, summary_line  # noqa: E402
from gridmap.settings import Settings  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path)
    parser.add_argument("--crs")
    parser.add_argument("--lon-col")
    parser.add_argument("--lat-col")
    parser.add_argument("--address-col")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--id-col", help="the reports' ids in their source (default: id, if present)")
    parser.add_argument("--time-col", help="the reports' own times (default: reported_at, if present)")
    parser.add_argument("--source", default="file", help="the channel the file comes from (default: file)")
    parser.add_argument("--rejects", type=Path, help="write rejected rows here (default: SRC.rejected.csv)")
    parser.add_argument("--out", type=Path, help="write the assigned rows here (CSV, GeoJSON, GPKG, Parquet)")
    parser.add_argument("--store", action="store_true", help="record the reports in the database")
    args = parser.parse_args(argv)
    if not args.out and not args.store:
        parser.error("give --out FILE, --store, or both")
    try:
        eng = ready_engine(Settings.from_env())
        locator = Locator(eng)
        options = dict(crs=args.crs, lon_col=args.lon_col, lat_col=args.lat_col, address_col=args.address_col)
        if args.out:
            s = assign_file(locator, args.src, args.out, **options)
            print(
                f"assigned {s['rows']} reports: {s['placed']} placed, {s['outside']} outside, {s['bad']} bad "
                f"-> {args.out}",
                file=sys.stderr,
            )
        if args.store:
            columns = Columns(text=args.text_col, id=args.id_col, time=args.time_col, source=args.source)
            s = record_reports(locator, args.src, columns=columns, rejects=args.rejects, **options)
            print(summary_line(s), file=sys.stderr)
            if s["rejected"]:
                return 1
    except GridmapError as exc:
        print(f"geocode_reports: error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
