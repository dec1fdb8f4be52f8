"""Vector tiles from the real app over the real demo city: content, properties, empty tiles
outside the city, caching headers, bad input, the GCJ-02 overlay shift, and layers as files."""

from __future__ import annotations

import shutil

import mapbox_vector_tile
import mercantile
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import shape

from gridmap import geo
from gridmap.domain import tiling
from gridmap.errors import InputError
from gridmap.services import layers as layer_defs
from gridmap.services.resources import load_rules
from gridmap.settings import PACKAGE_LAYERS
from gridmap.store import db
from gridmap.store.risk import overdue_sql
from gridmap.web import create_app

EXTENT = tiling.EXTENT


def decode(data: bytes) -> dict:
    # y_coord_down: MVT's own frame (y grows southwards), like ST_AsMVTGeom writes it
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data else {}


@pytest.fixture(scope="module")
def sample(demo_url):
    """A micro-grid with risk elements, and its vertices."""
    with db.engine(demo_url).connect() as conn:
        row = (
            conn.execute(
                sa.text("""
            SELECT g.code, g.households, r.colour, ST_AsBinary(g.geom) AS wkb,
                   ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
            FROM grid g JOIN grid_risk r ON r.code = g.code
            WHERE g.valid_to IS NULL AND g.level = 'micro' AND r.colour = 'red' ORDER BY g.code LIMIT 1""")
            )
            .mappings()
            .one()
        )
    return {**row, "geom": shapely.from_wkb(bytes(row["wkb"]))}


def tile_of(lon, lat, z):
    return mercantile.tile(lon, lat, z)


def get_tile(client, layer, t, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return client.get(f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.pbf" + (f"?{qs}" if qs else ""))


def test_micro_tile_has_the_grid_and_its_properties(demo_client, sample):
    t = tile_of(sample["lon"], sample["lat"], 15)
    res = get_tile(demo_client, "micro", t)
    assert res.status_code == 200 and res.mimetype == "application/vnd.mapbox-vector-tile"
    layer = decode(res.data)["micro"]
    assert layer["extent"] == EXTENT
    props = {f["properties"]["code"]: f["properties"] for f in layer["features"]}
    p = props[sample["code"]]
    assert p["level"] == "micro" and p["households"] == sample["households"] and p["risk"] == "red"
    assert all(q["level"] == "micro" for q in props.values()) and len(props) > 1
    feature = next(f for f in layer["features"] if f["properties"]["code"] == sample["code"])
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_tile_geometry_lands_where_the_grid_is(demo_client, sample):
    """Decode the tile's polygon back to lon/lat: it matches the stored grid to a tile pixel."""
    t = tile_of(sample["lon"], sample["lat"], 16)
    layer = decode(get_tile(demo_client, "micro", t).data)["micro"]
    feature = next(f for f in layer["features"] if f["properties"]["code"] == sample["code"])
    x0, y0, x1, y1 = tiling.Tile(t.z, t.x, t.y).merc_bounds()

    def to_ll(coords):
        c = np.asarray(coords, float)
        mx = x0 + c[:, 0] / EXTENT * (x1 - x0)
        my = y1 - c[:, 1] / EXTENT * (y1 - y0)
        lon, lat = tiling._TO_MERC.transform(mx, my, direction="INVERSE")
        return np.column_stack([lon, lat])

    def filled(g):
        # a micro-grid round a tower other grids hold has a hole; the decoder's ring orientation in
        # the y-down frame makes holes separate polygons, so compare where the grid's outline lands
        parts = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
        return shapely.union_all([shapely.Polygon(p.exterior) for p in parts])

    window = shapely.box(*mercantile.bounds(t))
    got = shapely.intersection(filled(shapely.transform(shape(feature["geometry"]), to_ll)), window)  # no buffer
    want = shapely.intersection(filled(sample["geom"]), window)
    # one MVT unit at z16 is ~0.6 m; allow a couple of units of snapping
    assert shapely.hausdorff_distance(geo.to_metric([got])[0], geo.to_metric([want])[0]) < 3.0


def test_empty_tiles_outside_the_city_and_outside_zooms(demo_client, sample):
    far = tile_of(100.0, 30.0, 15)  # Sichuan: no grids there
    res = get_tile(demo_client, "micro", far)
    assert res.status_code == 200 and res.data == b""
    low = tile_of(sample["lon"], sample["lat"], 9)  # micro-grids start at z15 (layers/levels.toml)
    assert get_tile(demo_client, "micro", low).data == b""
    assert decode(get_tile(demo_client, "district", low).data)["district"]["features"]


def test_risk_tiles_split_by_colour_with_overdue(demo_client, demo_url, sample):
    t = tile_of(sample["lon"], sample["lat"], 14)
    seen = {}
    for colour in ("red", "yellow", "blue"):
        data = get_tile(demo_client, f"risk-{colour}", t).data
        feats = decode(data).get(f"risk-{colour}", {"features": []})["features"]
        assert all(f["properties"]["colour"] == colour for f in feats)
        seen[colour] = feats
    assert seen["red"], "the sample micro-grid has a red element, so its z14 tile has one"
    with db.engine(demo_url).connect() as conn:
        truth = dict(
            conn.execute(
                sa.text(
                    f"SELECT e.id, {overdue_sql(load_rules(PACKAGE_LAYERS), 'e', 'now()')} FROM risk_element e "
                    "WHERE e.colour = 'red'"
                )
            ).all()
        )
    for f in seen["red"]:
        assert bool(f["properties"]["overdue"]) == truth[f["properties"]["id"]]


def test_risk_shading_has_only_coloured_grids(demo_client, sample):
    t = tile_of(sample["lon"], sample["lat"], 15)
    feats = decode(get_tile(demo_client, "shade-micro", t).data)["shade-micro"]["features"]
    assert feats and all(f["properties"]["risk"] in ("red", "yellow", "blue") for f in feats)
    assert sample["code"] in {f["properties"]["code"] for f in feats}


def test_caching_headers_and_304(demo_client, sample):
    t = tile_of(sample["lon"], sample["lat"], 15)
    res = get_tile(demo_client, "micro", t)
    assert res.headers["Cache-Control"] == "public, max-age=60" and res.headers["ETag"]
    again = demo_client.get(f"/tiles/micro/{t.z}/{t.x}/{t.y}.pbf", headers={"If-None-Match": res.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_tile_cache_follows_writes(database_url, engine, cli, tmp_path):
    """A cached tile is replaced as soon as the grids change (the epoch is in the cache key)."""
    import cityfactory as cf

    cf.load(cli, cf.city(), tmp_path)
    client = create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()
    with engine.connect() as conn:
        lon, lat = conn.execute(
            sa.text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
                "WHERE level = 'street' LIMIT 1) s"
            )
        ).one()
    t = tile_of(lon, lat, 14)
    before = decode(get_tile(client, "street", t).data)["street"]["features"]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE grid SET name = name || ' (renamed)' WHERE level = 'street'"))
    after = decode(get_tile(client, "street", t).data)["street"]["features"]
    assert len(after) == len(before)
    assert all(f["properties"]["name"].endswith("(renamed)") for f in after)


@pytest.mark.parametrize(
    "path, status, message",
    [
        ("/tiles/nope/1/0/0.pbf", 404, "no tile layer 'nope'"),
        ("/tiles/micro/23/0/0.pbf", 400, "zoom 23 is outside 0..22"),
        ("/tiles/micro/3/8/0.pbf", 400, "tile 3/8/0 does not exist"),
        ("/tiles/micro/a/0/0.pbf", 400, "tile coordinates must be integers"),
        ("/tiles/micro/3/1/1.pbf?crs=bd09", 400, "crs must be wgs84 or gcj02"),
    ],
)
def test_bad_tile_requests(demo_client, path, status, message):
    res = demo_client.get(path)
    assert res.status_code == status and message in res.get_json()["error"]["message"]


def test_gcj02_shift_matches_the_exact_transform(demo_client, sample):
    """With a GCJ-02 base map, tiles are drawn shifted: a stored vertex lands within half a screen
    pixel of its exact GCJ-02 position, and the grid is not where it is on a WGS84 base map."""
    corner = shapely.get_coordinates(sample["geom"])[0]
    glon, glat = geo.wgs84_to_gcj02(np.array([corner[0]]), np.array([corner[1]]))
    for z in (15, 17, 19):  # micro-grids are drawn from z15
        moved = tile_of(float(glon[0]), float(glat[0]), z)
        shifted = decode(get_tile(demo_client, "micro", moved, crs="gcj02").data)["micro"]["features"]
        feature = next(f for f in shifted if f["properties"]["code"] == sample["code"])
        x0, y0, x1, y1 = tiling.Tile(moved.z, moved.x, moved.y).merc_bounds()
        ex, ey = tiling._TO_MERC.transform(glon[0], glat[0])
        exact = shapely.Point((ex - x0) / (x1 - x0) * EXTENT, (y1 - ey) / (y1 - y0) * EXTENT)
        vertices = shapely.points(shapely.get_coordinates(shape(feature["geometry"])))
        px = EXTENT / 256  # MVT units per screen pixel
        d = float(shapely.distance(vertices, exact).min())
        assert d <= 0.5 * px + 1, f"z{z}: the shifted vertex is {d / px:.2f} px from its exact GCJ-02 place"
    # on a WGS84 base map the same tile does not hold that vertex: the shift is real (~600 m)
    plain = decode(get_tile(demo_client, "micro", moved).data).get("micro", {"features": []})["features"]
    plain_vertices = [
        shapely.points(shapely.get_coordinates(shape(f["geometry"])))
        for f in plain
        if f["properties"]["code"] == sample["code"]
    ]
    assert not plain_vertices or float(shapely.distance(plain_vertices[0], exact).min()) > 50 * px


@pytest.mark.parametrize("z", [8, 10, 12, 13, 15, 18])
def test_gcj_affine_error_under_half_a_pixel(z):
    """The per-tile affine against the exact GCJ-02 shift on a 17x17 lattice of each tile."""
    rng = np.random.default_rng(z)
    worst = 0.0
    for _ in range(20):
        t = mercantile.tile(rng.uniform(113.3, 114.1), rng.uniform(34.4, 34.9), z)
        tile = tiling.Tile(t.z, t.x, t.y)
        a, b, d, e, xo, yo = tiling.gcj_affine(tile)
        x0, y0, x1, y1 = tile.merc_bounds()
        X, Y = np.meshgrid(np.linspace(x0, x1, 17), np.linspace(y0, y1, 17))
        qx, qy = tiling.shift_merc(X.ravel(), Y.ravel())
        px, py = a * X.ravel() + b * Y.ravel() + xo, d * X.ravel() + e * Y.ravel() + yo
        worst = max(worst, float(np.hypot(px - qx, py - qy).max()) / tiling.pixel_m(tile))
    assert worst < 0.5


def test_reports_and_search_shift_for_gcj02(demo_client, sample):
    code = sample["code"]
    plain = demo_client.get(f"/api/v1/search?q={code}").get_json()["results"][0]
    moved = demo_client.get(f"/api/v1/search?q={code}&crs=gcj02").get_json()["results"][0]
    glon, glat = geo.wgs84_to_gcj02(np.array(plain["bbox"][::2]), np.array(plain["bbox"][1::2]))
    assert np.allclose(moved["bbox"], [glon[0], glat[0], glon[1], glat[1]], atol=1e-9)
    g = demo_client.get(f"/api/v1/grids/{code}?crs=gcj02").get_json()["geometry"]
    w = demo_client.get(f"/api/v1/grids/{code}").get_json()["geometry"]
    assert shape(g).centroid.distance(shape(w).centroid) > 0.003  # ~500 m and more


def test_adding_a_layer_is_editing_a_file(tmp_path, monkeypatch, demo_url, sample):
    folder = tmp_path / "layers"
    shutil.copytree(PACKAGE_LAYERS, folder)
    with open(folder / "overlays.toml", "a", encoding="utf-8") as f:
        f.write(
            '\n[[overlay]]\nname = "red-people"\nlabel = "红色人员 Red people"\nsource = "risk"\n'
            'colour_filter = "red"\nkind_filter = "person"\nmin_zoom = 12\nmax_zoom = 22\nshow = true\n'
            'group = "risk"\n'
        )
    monkeypatch.setenv("GRIDMAP_LAYERS", str(folder))
    client = create_app({"DATABASE_URL": demo_url, "TESTING": True}).test_client()
    assert "/tiles/red-people/{z}/{x}/{y}.pbf" in client.get("/").get_data(as_text=True)
    t = tile_of(sample["lon"], sample["lat"], 12)
    feats = decode(get_tile(client, "red-people", t).data).get("red-people", {"features": []})["features"]
    assert all(f["properties"]["kind"] == "person" and f["properties"]["colour"] == "red" for f in feats)
    with open(folder / "overlays.toml", "a", encoding="utf-8") as f:
        f.write(
            '\n[[overlay]]\nname = "broken"\nlabel = "x"\nsource = "satellite"\nmin_zoom = 1\nmax_zoom = 2\n'
            'show = true\ngroup = "x"\n'
        )
    with pytest.raises(InputError, match="overlay 'broken' has source 'satellite'"):
        layer_defs.overlay_layers(folder)
