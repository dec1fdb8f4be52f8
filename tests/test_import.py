"""Import of every format through the real CLI into the real PostGIS; the all-or-nothing rule."""

import json

import pytest
import shapely
import sqlalchemy as sa

from gridmap import geo
from gridmap.services.resources import DEMO_DATA as DATA

import cityfactory as cf


def count(engine, table="grid", where="true"):
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one()


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv", "parquet"])
def test_import_each_format(engine, cli, tmp_path, fmt):
    city = cf.city()
    for level in ("district", "street", "community"):
        path = cf.write(city[level], tmp_path, level, fmt)
        args = ["import", path, "--level", level] + (["--parent-field", "parent"] if fmt == "shp" else [])
        res = cli(*args)
        assert res.exit_code == 0, res.output
        assert f"imported {len(city[level])} {level} rows" in res.output
    assert count(engine) == 1 + 2 + 4
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.text(
                    "SELECT name, parent_code, households, ST_Area(ST_Transform(geom, 4547)) AS a, "
                    "ST_SRID(geom) AS srid, "
                    "GeometryType(geom) AS t FROM grid WHERE code = '410199002001'"
                )
            )
            .mappings()
            .one()
        )
    assert row["name"] == "测试21社区" and row["parent_code"] == "410199002" and row["households"] == 240
    assert row["srid"] == 4326 and row["t"] == "MULTIPOLYGON"
    assert row["a"] == pytest.approx(cf.area_m2(cf.rect(2000, 0, 4000, 2000)), rel=1e-6)


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "EPSG:4547", "cgcs2000"])
def test_import_converts_crs(engine, cli, tmp_path, crs):
    city = cf.city()
    path = cf.write(city["district"], tmp_path, "district", "geojson", crs=crs)
    assert cli("import", path, "--level", "district", "--crs", crs).exit_code == 0
    with engine.connect() as conn:
        wkb = conn.execute(sa.text("SELECT ST_AsBinary(geom) FROM grid")).scalar_one()
    stored = geo.to_local([shapely.from_wkb(bytes(wkb))])[0]
    # the stored square is the original one to well under a millimetre
    assert shapely.hausdorff_distance(stored, city["district"][0]["geometry"]) < 1e-3


def test_real_district_imports_with_gcj02(engine, cli):
    path = DATA / "districts_gcj02" / "410104.geojson"
    # the shipped files are bare geometries: give them a code and name through a small wrapper
    feature = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "410104", "name": "管城回族区"},
                "geometry": json.loads(path.read_text()),
            }
        ],
    }
    wrapped = path.parent.parent / "_tmp_guancheng.geojson"
    try:
        wrapped.write_text(json.dumps(feature, ensure_ascii=False))
        assert cli("import", wrapped, "--level", "district", "--crs", "gcj02").exit_code == 0
    finally:
        wrapped.unlink()
    with engine.connect() as conn:
        area = conn.execute(sa.text("SELECT ST_Area(ST_Transform(geom, 4547)) FROM grid")).scalar_one()
    assert area / 1e6 == pytest.approx(205.7, abs=0.1)


BAD_CASES = {
    "invalid geometry": (
        lambda rows: rows[1].update(
            geometry=shapely.Polygon(
                [(cf.X0, cf.Y0), (cf.X0 + 2000, cf.Y0 + 4000), (cf.X0 + 2000, cf.Y0), (cf.X0, cf.Y0 + 4000)]
            )
        ),
        "row 2 (code 410199002): invalid geometry: Self-intersection",
    ),
    "unknown parent": (
        lambda rows: rows[1].update(parent_code="410198"),
        "row 2 (code 410199002): unknown parent code 410198",
    ),
    "duplicate code": (
        lambda rows: rows[1].update(code="410199001"),
        "row 2 (code 410199001): duplicate code 410199001 (also row 1)",
    ),
    "wrong type": (
        lambda rows: rows[1].update(geometry=shapely.LineString([(cf.X0, cf.Y0), (cf.X0 + 9, cf.Y0 + 9)])),
        "row 2 (code 410199002): wrong geometry type LineString",
    ),
    "missing parent": (lambda rows: rows[1].update(parent_code=None), "row 2 (code 410199002): missing parent code"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_row_rejects_whole_file(engine, cli, tmp_path, case):
    city = cf.city()
    cf.load(cli, city, tmp_path, levels=("district",))
    mutate, message = BAD_CASES[case]
    rows = city["street"]
    mutate(rows)
    path = cf.write(rows, tmp_path, "streets", "geojson")
    res = cli("import", path, "--level", "street")
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "gridmap: error: import of streets.geojson rejected, nothing written"
    )
    assert message in lines[0]
    assert count(engine, where="level = 'street'") == 0
    assert count(engine, "edit_log", "action = 'import street'") == 0


def test_outside_china_and_swapped_coordinates(engine, cli, tmp_path):
    city = cf.city()
    cf.load(cli, city, tmp_path, levels=("district",))
    gdf = cf.frame(city["street"])
    gdf.loc[0, "geometry"] = shapely.transform(gdf.geometry[0], lambda c: c[:, ::-1])  # lat, lon
    gdf.loc[1, "geometry"] = shapely.affinity.translate(gdf.geometry[1], xoff=-120)  # the Atlantic
    path = tmp_path / "streets.geojson"
    gdf.to_file(path)
    report = tmp_path / "report.json"
    res = cli("import", path, "--level", "street", "--report", report)
    assert res.exit_code == 2 and "row 1 (code 410199001): coordinates look like swapped lat/lon" in res.output
    problems = json.loads(report.read_text())["problems"]
    assert [p["row"] for p in problems] == [1, 2]
    assert "outside China" in problems[1]["problem"]
    assert count(engine, where="level = 'street'") == 0


def test_many_problems_listed_in_report(engine, cli, tmp_path):
    city = cf.city()
    cf.load(cli, city, tmp_path, levels=("district", "street"))
    rows = city["community"]
    rows[0]["parent_code"] = "nope"
    rows[3]["households"] = -4
    rows[2]["name"] = None
    path = cf.write(rows, tmp_path, "communities", "csv")
    report = tmp_path / "r.json"
    res = cli("import", path, "--level", "community", "--report", report)
    assert res.exit_code == 2 and "and 2 more problems" in res.output
    detail = json.loads(report.read_text())
    assert detail["count"] == 3
    assert {p["row"] for p in detail["problems"]} == {1, 3, 4}
    assert count(engine, where="level = 'community'") == 0


def test_existing_code_rejected_then_versioned_with_replace(engine, cli, tmp_path):
    city = cf.city()
    cf.load(cli, city, tmp_path, levels=("district",))
    path = cf.write(city["district"], tmp_path, "again", "geojson")
    res = cli("import", path, "--level", "district")
    assert res.exit_code == 2 and "already exists in the current version" in res.output
    assert cli("import", path, "--level", "district", "--replace").exit_code == 0
    assert count(engine, where="code = '410199'") == 2
    assert count(engine, where="code = '410199' AND valid_to IS NULL") == 1


def test_overlapping_versions_are_impossible(engine, cli, tmp_path):
    city = cf.city()
    cf.load(cli, city, tmp_path, levels=("district",))
    with pytest.raises(sa.exc.IntegrityError, match="overlap in time"):
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO grid (code, name, level, geom, valid_from, valid_to) "
                    "SELECT code, name, level, geom, valid_from - interval '1 day', valid_from + interval '1 hour' "
                    "FROM grid WHERE code = '410199'"
                )
            )


def test_buildings_and_people(engine, cli, tmp_path):
    city = cf.city()
    cf.load(cli, city, tmp_path)
    assert count(engine, "building") == 16 and count(engine, "unit") == 32
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(households) FROM unit")).scalar_one() == 960
    people = tmp_path / "people.csv"
    people.write_text("grid_code,name,role,phone\n41019900100100101,王芳,grid_worker,13900000000\n")
    assert cli("import", people, "--level", "person").exit_code == 0
    people.write_text("grid_code,name,role,phone\nnope,王芳,grid_worker,13900000000\n")
    res = cli("import", people, "--level", "person")
    assert res.exit_code == 2 and "row 1 (code nope): unknown grid 'nope'" in res.output


def test_building_with_bad_units_is_rejected(engine, cli, tmp_path):
    city = cf.city()
    cf.load(cli, city, tmp_path, levels=("district", "street", "community", "courtyard"))
    city["building"][2]["units"] = "30;0"
    path = cf.write(city["building"], tmp_path, "buildings", "gpkg")
    res = cli("import", path, "--level", "building")
    assert res.exit_code == 2 and "row 3" in res.output and "unit households must be > 0" in res.output
    assert count(engine, "building") == 0


def test_unsupported_file_and_missing_column(engine, cli, tmp_path):
    bad = tmp_path / "grids.xlsx"
    bad.write_text("x")
    res = cli("import", bad, "--level", "district")
    assert res.exit_code == 2 and "unsupported file type '.xlsx'" in res.output
    path = cf.write(cf.city()["district"], tmp_path, "d", "geojson")
    res = cli("import", path, "--level", "district", "--code-field", "adcode")
    assert res.exit_code == 2 and "no column 'adcode'" in res.output


@pytest.mark.parametrize(
    "rows, line",
    [
        (["410199,a,POLYGON((0 0,1 0,1 1,0 0))"], 2),
        (['410199,a,"POLYGON((0 0,1 0,1 1,0 0))"', "410198,b,POLYGON((0 0,1 0,1 1,0 0))"], 3),
    ],
)
def test_csv_row_with_more_fields_than_the_header(engine, cli, tmp_path, rows, line):
    path = tmp_path / "c3.csv"
    path.write_text("\n".join(["code,name,geometry", *rows]) + "\n")
    res = cli("import", path, "--level", "district")
    assert res.exit_code == 2, res.output
    assert res.output.startswith(
        f"gridmap: error: cannot read c3.csv: line {line} has 6 fields but the header has 3; "
        "put a field holding commas (such as a WKT geometry) in double quotes"
    )
    assert len(res.output.strip().splitlines()) == 1
    assert count(engine) == 0
