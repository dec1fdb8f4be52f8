"""A report pipeline can run the same file twice (issue #15 item 12): `gridmap record reports` and
`scripts/geocode_reports.py --store` keep each report's source, id and own time; a re-run updates
or skips and says how many; rejected rows go with their reason to a CSV the command reads back."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import cityfactory as cf

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "geocode_reports.py"


def lonlat(x, y):
    return cf.geo.from_local([cf.shapely.Point(cf.X0 + x, cf.Y0 + y)])[0].coords[0]


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path, levels=("district", "street", "community", "courtyard", "micro"))
    return engine


def _file(tmp_path, rows, name="reports.csv", **renames) -> Path:
    frame = pd.DataFrame(rows, columns=["id", "reported_at", "text", "lon", "lat"]).rename(columns=renames)
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _rows():
    a, b, c = lonlat(500, 500), lonlat(500, 1500), lonlat(2500, 2500)
    return [
        ["R1", "2026-11-28 09:30", "井盖缺失", *a],  # no zone: office time
        ["R2", "2026-11-28T10:00:00+00:00", "噪音扰民", *b],
        ["R3", "", "积水", *c],  # no time: the time it is stored
        ["R4", "2026-11-28 11:00", "", *a],  # rejected: no text
        ["R5", "昨天下午", "路灯不亮", *a],  # rejected: unreadable time
        ["R2", "2026-11-28 12:00", "重复", *b],  # rejected: the id again
    ]


def _stored(engine):
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT source, external_id, text, reported_at, micro_code, state, status FROM report "
                "ORDER BY external_id"
            )
        ).all()


def test_ids_times_reruns_and_rejects(city, cli, tmp_path):
    path = _file(tmp_path, _rows())
    res = cli("record", "reports", path)
    assert res.exit_code == 1, res.output  # some rows were rejected
    rejects = tmp_path / "reports.rejected.csv"
    assert res.output.strip() == (
        "recorded reports from file: 6 rows: 3 placed, 0 outside, 0 bad; 3 new, 0 updated, 0 unchanged; "
        f"3 rejected -> {rejects}"
    )
    rows = _stored(city)
    assert [(r.source, r.external_id, r.text) for r in rows] == [
        ("file", "R1", "井盖缺失"),
        ("file", "R2", "噪音扰民"),
        ("file", "R3", "积水"),
    ]
    assert rows[0].reported_at == datetime.fromisoformat("2026-11-28T09:30:00+08:00")
    assert rows[1].reported_at == datetime.fromisoformat("2026-11-28T10:00:00+00:00")
    assert {(r.state, r.status) for r in rows} == {("reported", "open")}  # the case starts, status from state
    back = pd.read_csv(rejects, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(back.columns) == ["id", "reported_at", "text", "lon", "lat", "gridmap_error"]
    assert back["gridmap_error"].tolist() == [
        "missing text",
        "reported_at '昨天下午' is not an ISO date/time such as 2026-01-31T08:00",
        "duplicate id R2 (also row 2)",
    ]

    res = cli("record", "reports", path)  # the same file again: nothing new
    assert "3 new" not in res.output and "0 new, 0 updated, 3 unchanged; 3 rejected" in res.output
    assert len(_stored(city)) == 3

    changed = _rows()[:3]
    changed[0][2] = "井盖缺失（已核实）"
    res = cli("record", "reports", _file(tmp_path, changed, "again.csv"))
    assert res.exit_code == 0 and "0 new, 1 updated, 2 unchanged" in res.output, res.output
    assert _stored(city)[0].text == "井盖缺失（已核实）"

    # the rejects file, corrected, is read back by the same command (its reason column is ignored)
    back.loc[0, "text"], back.loc[1, "reported_at"], back.loc[2, "id"] = "补充内容", "2026-11-28 15:00", "R6"
    back.to_csv(rejects, index=False, encoding="utf-8-sig")
    res = cli("record", "reports", rejects)
    assert res.exit_code == 0 and "3 rows: 3 placed, 0 outside, 0 bad; 3 new" in res.output, res.output
    assert [r.external_id for r in _stored(city)] == ["R1", "R2", "R3", "R4", "R5", "R6"]


def test_named_columns_and_sources(city, cli, tmp_path):
    path = _file(tmp_path, _rows()[:2], id="工单号", reported_at="来电时间")
    res = cli("record", "reports", path, "--id-col", "工单号", "--time-col", "来电时间", "--source", "12345")
    assert res.exit_code == 0 and "recorded reports from 12345: 2 rows" in res.output, res.output
    res = cli("record", "reports", path, "--id-col", "工单号", "--time-col", "来电时间", "--source", "wechat")
    assert "2 new" in res.output  # ids are per source
    assert [(r.source, r.external_id) for r in _stored(city)] == [
        ("12345", "R1"),
        ("wechat", "R1"),
        ("12345", "R2"),
        ("wechat", "R2"),
    ]
    res = cli("record", "reports", path, "--id-col", "ticket")
    assert res.exit_code == 2 and res.output.strip() == (
        "gridmap: error: reports.csv: no column 'ticket' with the reports' ids"
    )


def test_without_an_id_column_the_summary_says_a_rerun_stores_again(city, cli, tmp_path):
    path = tmp_path / "plain.csv"
    lon, lat = lonlat(500, 500)
    pd.DataFrame({"text": ["井盖缺失"], "lon": [lon], "lat": [lat]}).to_csv(path, index=False)
    res = cli("record", "reports", path)
    assert res.exit_code == 0 and "1 new, 0 updated, 0 unchanged (no id column: a re-run stores them again)" in (
        res.output
    )


def test_the_pipeline_script_stores_the_same_way(city, database_url, tmp_path):
    path = _file(tmp_path, _rows())
    env = {**os.environ, "GRIDMAP_DATABASE_URL": database_url}
    runs = [
        subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                str(path),
                "--store",
                "--source",
                "hotline",
                "--rejects",
                str(tmp_path / "r.csv"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        for _ in range(3)
    ]
    assert [r.returncode for r in runs] == [1, 1, 1], runs[0].stderr
    assert "3 new, 0 updated, 0 unchanged" in runs[0].stderr
    assert "0 new, 0 updated, 3 unchanged" in runs[2].stderr
    assert len(_stored(city)) == 3  # three runs, three reports (not 9)
    assert len(pd.read_csv(tmp_path / "r.csv", encoding="utf-8-sig")) == 3
