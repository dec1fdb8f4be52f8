"""Export of every format; GeoJSON is RFC 7946; an export imports back unchanged."""

import json
import stat

import numpy as np
import pyogrio
import pytest
import shapely
import sqlalchemy as sa

from gridmap.store import db

import cityfactory as cf


@pytest.fixture
def loaded(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path, levels=("district", "street", "community"))
    return tmp_path


def test_geojson_is_rfc7946(loaded, cli):
    out = loaded / "out.geojson"
    # store one shell clockwise on purpose: export must still write it counter-clockwise
    res = cli("export", "--level", "community", "--format", "geojson", out)
    assert res.exit_code == 0 and "wrote 4 community grids" in res.output
    fc = json.loads(out.read_text())
    assert "crs" not in fc and len(fc["features"]) == 4
    for f in fc["features"]:
        for polygon in f["geometry"]["coordinates"]:
            ring = shapely.LinearRing(polygon[0])
            assert ring.is_ccw
            lon, lat = polygon[0][0]
            assert 113 < lon < 114.5 and 34 < lat < 35.5


@pytest.mark.parametrize("fmt, suffix", [("gpkg", ".gpkg"), ("shp", ".shp"), ("csv", ".csv")])
def test_export_formats_round_trip(loaded, cli, engine, fmt, suffix):
    out = loaded / f"streets{suffix}"
    assert cli("export", "--level", "street", "--format", fmt, out).exit_code == 0
    if fmt == "csv":
        text = out.read_text(encoding="utf-8")
        assert text.startswith(
            "\ufeffcode,name,level"
        )  # a BOM: Excel on Chinese Windows reads UTF-8 and "MULTIPOLYGON" in text
    else:
        df = pyogrio.read_dataframe(out)
        assert list(df["code"]) == ["410199001", "410199002"]
        areas = shapely.area(cf.geo.to_metric(np.asarray(df.geometry.to_numpy(), dtype=object)))
        expected = [cf.area_m2(cf.rect(0, 0, 2000, 4000)), cf.area_m2(cf.rect(2000, 0, 4000, 4000))]
        assert areas == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "level, fmt, name", [("street", "csv", "streets.csv"), ("share", "csv", "shares.csv"), ("street", "gpkg", "s.gpkg")]
)
def test_export_files_get_the_permissions_of_a_plain_open(loaded, cli, level, fmt, name):
    plain = loaded / "plain.txt"
    plain.write_text("")  # 0666 less the umask, as any program writes a file
    out = loaded / name
    assert cli("export", "--level", level, "--format", fmt, out).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert not list(loaded.glob(".gridmap-*"))  # no temporary file left behind


def test_export_at_date_before_anything_is_empty(loaded, cli):
    out = loaded / "old.csv"
    assert cli("export", "--level", "street", "--format", "csv", out, "--at", "2001-01-01").exit_code == 0
    assert out.read_text().strip().count("\n") == 0
    res = cli("export", "--level", "street", "--format", "csv", out, "--at", "soon")
    assert res.exit_code == 2 and "not an ISO date" in res.output


def test_geojson_round_trip_of_demo_city_validates_clean(demo_url, engine, cli, tmp_path):
    """Every level of the real-outline demo city, exported as GeoJSON and imported into an empty
    store, still proves whole: export keeps full coordinate precision.  The buildings stay behind, so
    micro-grids sharing a tower (their ``shares`` say so) overlap on a footprint the store no longer
    knows: those overlaps, and only those, are reported."""
    held = {}
    for level in ("district", "street", "community", "courtyard", "micro"):
        out = tmp_path / f"{level}.geojson"
        assert cli("export", "--level", level, "--format", "geojson", out, url=demo_url).exit_code == 0
        if level == "micro":
            for f in json.loads(out.read_text())["features"]:
                shares = f["properties"]["shares"]  # a JSON text column, read back as JSON by GDAL
                shares = json.loads(shares) if isinstance(shares, str) else shares or []
                held[f["properties"]["code"]] = {s["building"] for s in shares}
        res = cli("import", out, "--level", level)
        assert res.exit_code == 0, res.output
    res = cli("validate", "--format", "json")
    report = json.loads(res.output)
    with db.engine(demo_url).connect() as conn:
        sql = "SELECT count(*) FROM grid WHERE valid_to IS NULL AND level <> 'special'"
        grids = conn.execute(sa.text(sql)).scalar()
    assert report["grids_checked"] == grids
    for p in report["problems"]:
        a, b = p["codes"]
        assert p["kind"] == "overlap" and held[a] & held[b], p


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "geojson", "streets.gpkg"], "streets.gpkg: the file name should end in .geojson or .json"),
        (["--format", "csv", "no/such/folder/streets.csv"], "no such folder no/such/folder"),
    ],
)
def test_export_refuses_bad_output_path(loaded, cli, args, message, monkeypatch):
    monkeypatch.chdir(loaded)
    res = cli("export", "--level", "street", *args)
    assert res.exit_code == 2 and message in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (loaded / "streets.gpkg").exists()
