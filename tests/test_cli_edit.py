"""The CLI shows a rejected edit whole (issue #15 item 5), has no option that does nothing, and counts
right (item 15): every problem in text, the whole report in JSON, hints naming the CLI's option."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_edits import ll

from gridmap.cli import main

import cityfactory as cf

Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"


@pytest.fixture
def run(database_url):
    """The real command with stdout and stderr apart."""
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], env={"GRIDMAP_DATABASE_URL": database_url})


def _outline(tmp_path, geom):
    path = tmp_path / "outline.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": ll(geom)}))
    return path


def test_every_problem_in_text_and_the_whole_report_in_json(city, run, tmp_path):
    # sticks out of the courtyard on the west and leaves a strip on the east: two problems
    path = _outline(tmp_path, cf.rect(-100, 0, 900, 1000))
    res = run("edit", "replace", M1, path, "--dry-run")
    assert res.exit_code == 2
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and {ln.split()[0] for ln in lines} == {"gap", "outside_parent"}, res.stdout
    assert all(" m² at " in ln for ln in lines)
    error = res.stderr.strip()
    assert error.startswith("gridmap: error: replace rejected: ") and error.endswith("(and 1 more problem)")
    assert len(error.splitlines()) == 1

    res = run("edit", "replace", M1, path, "--dry-run", "--format", "json")
    assert res.exit_code == 2
    body = json.loads(res.stdout)
    problems = body["error"]["detail"]["problems"]
    assert body["error"]["code"] == "edit_rejected" and len(problems) == 2
    assert all(p["geometry"]["type"] in ("Polygon", "MultiPolygon") and p["area_m2"] > 0 for p in problems)


def test_the_gap_hint_names_the_cli_option(city, run, tmp_path):
    res = run("edit", "replace", M1, _outline(tmp_path, cf.rect(0, 0, 1000, 900)), "--dry-run")
    assert res.exit_code == 2
    assert res.stderr.strip().endswith("name the sibling that takes it with --gap-to"), res.stderr
    assert "(and 1 more problems)" not in res.stderr


@pytest.mark.parametrize("args", [("retire", M2, "--gap-to", M1), ("merge", M1, M2)])
def test_merge_and_retire_take_no_crs(city, run, args):
    res = run("edit", *args, "--crs", "gcj02", "--dry-run")
    assert res.exit_code == 2 and "No such option '--crs'" in res.output
    assert run("edit", *args, "--dry-run").exit_code == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("junk", "junk.json: not a readable edit JSON file (Expecting value: line 1 column 1 (char 0))"),
        ('{"a": 1}', 'junk.json: not an edit: no "op" (one of replace, update, split, merge, move_boundary, '),
        ("[1, 2]", 'junk.json: not an edit: no "op" (one of replace, update, split, merge, move_boundary, '),
    ],
)
def test_apply_names_a_file_that_is_no_edit(engine, run, tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.json").write_text(text)
    res = run("edit", "apply", "junk.json")
    assert res.exit_code == 2
    assert res.stderr.startswith(f"gridmap: error: {message}") and len(res.stderr.strip().splitlines()) == 1
