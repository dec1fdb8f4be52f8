"""The README's command-line examples run as written on the demo city (issue #15, "Done when"):
every ``gridmap`` line of its ``sh`` blocks, in order, on a fresh demo in the test database.

Not run here: the ``curl`` lines (they need a server; the same requests are the API tests') and the
set-up commands ``make demo``/``make test`` (what this suite itself runs).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import shapely
from click.testing import CliRunner
from shapely.geometry import mapping

from gridmap.cli import main
from gridmap.store import grids

README = Path(__file__).resolve().parent.parent / "README.md"


def examples() -> list[list[str]]:
    """The ``gridmap`` command lines of the README's ``sh`` blocks, as argument lists."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    lines = [ln for b in blocks for ln in b.splitlines() if ln.startswith("gridmap ")]
    return [shlex.split(ln, comments=True)[1:] for ln in lines]


def _cut_line(engine, code: str, path: Path) -> None:
    """cut.geojson: a line straight across courtyard ``code`` from west to east, through its middle
    (lon/lat, as stored)."""
    with engine.connect() as conn:
        yard = grids.current(conn, [code])[code].geom
    x0, y0, x1, y1 = yard.bounds
    y = shapely.point_on_surface(yard).y
    line = shapely.LineString([(x0 - 0.001, y), (x1 + 0.001, y)])
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": mapping(line)}))


def test_the_readme_examples_run_as_written(engine, database_url, tmp_path, monkeypatch):
    found = examples()
    assert ["demo", "load"] in found and any(a[:2] == ["edit", "split"] for a in found), found
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"GRIDMAP_DATABASE_URL": database_url}
    for args in found:
        if args[:2] == ["edit", "split"]:
            _cut_line(engine, args[2], tmp_path / args[args.index("--line") + 1])
        res = runner.invoke(main, args, env=env)
        assert res.exit_code == 0, f"gridmap {shlex.join(args)}\n{res.output}"
