"""CSV output opens in Excel on Chinese Windows, and `gridmap stats` reads as a table (issue #15 item 14)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from gridmap.cli import main
from gridmap.domain.levels import ALL_LEVELS

BOM = b"\xef\xbb\xbf"


@pytest.fixture
def demo(demo_url):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, [str(a) for a in args], env={"GRIDMAP_DATABASE_URL": demo_url})

    return run


def test_export_csv_has_a_bom_by_default_and_gbk_on_request(demo, tmp_path):
    out = tmp_path / "streets.csv"
    assert demo("export", "--level", "street", "--format", "csv", out).exit_code == 0
    data = out.read_bytes()
    assert data.startswith(BOM) and "街道" in data[3:].decode("utf-8")
    res = demo("export", "--level", "street", "--format", "csv", out, "--encoding", "gbk")
    assert res.exit_code == 0, res.output
    data = out.read_bytes()
    assert not data.startswith(BOM) and "街道" in data.decode("gbk")
    assert len(pd.read_csv(out, encoding="gbk")) == 14


def test_assign_csv_has_a_bom_and_gbk_refuses_what_it_cannot_hold(demo, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"lon": [113.68], "lat": [34.74], "note": ["井盖😀"]}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    res = demo("assign", src, out)
    assert res.exit_code == 0, res.output
    assert out.read_bytes().startswith(BOM)
    res = demo("assign", src, tmp_path / "gbk.csv", "--encoding", "gbk")
    assert res.exit_code == 2 and not (tmp_path / "gbk.csv").exists()
    assert res.output.strip() == (
        "gridmap: error: row 1, column note: '😀' cannot be written in gbk; use --encoding utf-8-sig"
    )


def test_stats_is_a_table_in_level_order_and_json_on_request(demo):
    res = demo("stats")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["level", "grids", "households", "population", "name"]
    assert [ln.split()[0] for ln in lines[1:7]] == list(ALL_LEVELS)
    assert re.match(r"district +1 +[\d,]+ +[\d,]+  区县$", lines[1])
    assert lines[-1].startswith("buildings ")
    body = json.loads(demo("stats", "--format", "json").output)
    assert list(body["levels"]) == list(ALL_LEVELS)
