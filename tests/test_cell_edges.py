"""Mixed cells answered from their own segments (gridmap.domain.cell_edges) give exactly what GEOS
gives (covers, lowest code first) on hostile grids: edges on cell lines and through cell centres,
a vertex on a centre, diagonals through cell corners, a hole filled by another grid, a grid in two
parts, a part smaller than a cell, two grids sharing a tower's footprint; and a loaded index answers
a batch without decoding the city's polygons (issue #18: a Dask worker's memory)."""

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from gridmap.domain import cell_edges
from gridmap.domain.lookup import GridIndex
from gridmap.store import db
from gridmap.store import grids as store


def _truth(index: GridIndex, x, y) -> np.ndarray:
    """Micro number per point by brute force: the lowest code among every micro-grid covering it."""
    tree = shapely.STRtree(index.micro_geom)
    pts, grids = tree.query(shapely.points(x, y), predicate="intersects")
    out = np.full(len(x), np.iinfo(np.int64).max)
    np.minimum.at(out, pts, grids)
    return np.where(out == np.iinfo(np.int64).max, -1, out)


def _by_geos(index: GridIndex, x, y) -> np.ndarray:
    """The same index answering mixed cells with prepared GEOS polygons (no cell edges)."""
    held = index._edges
    index._edges = None
    try:
        return index.locate(x, y).micro
    finally:
        index._edges = held


def _loaded(index: GridIndex) -> GridIndex:
    """``index`` through its persisted form, as a CLI run or a Dask worker loads it."""
    return GridIndex.from_state(*index.state())


def _frame(polygons: dict) -> pd.DataFrame:
    rows = [
        {"id": i + 1, "code": code, "name": code, "level": "micro", "parent_code": None, "geometry": g}
        for i, (code, g) in enumerate(sorted(polygons.items()))
    ]
    return pd.DataFrame(rows)


def _cell_size(lat: float) -> tuple[float, float]:
    probe = GridIndex(_frame({"P": box(113.6, lat, 113.601, lat + 0.001)}))
    return probe.dx, probe.dy


@pytest.fixture(scope="module")
def hostile():
    """Grids drawn on the index's own cell lines (coordinates in whole and half cells)."""
    lat = 34.75
    dx, dy = _cell_size(lat)
    bx, by = np.floor(113.6 / dx) * dx, np.floor(lat / dy) * dy

    def at(u, v):
        return bx + u * dx, by + v * dy

    def rect(u0, v0, u1, v1):
        return Polygon([at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)])

    grids = {
        "G10": rect(0, 0, 3.5, 4),  # the east edge runs through the centres of column 3
        "G11": rect(3.5, 0, 7, 4),  # shares it
        "G05": rect(2.2, 1.2, 4.8, 2.8),  # a tower's footprint over both (lowest code: it wins there)
        "G20": Polygon(
            shell=[at(0, 5), at(6, 5), at(6, 9), at(0, 9)], holes=[[at(2, 6), at(4, 6), at(4, 8), at(2, 8)]]
        ),
        "G21": rect(2, 6, 4, 8),  # fills the hole, its edges on cell lines
        "G30": MultiPolygon([rect(8, 0, 9, 1), rect(10.3, 0.3, 10.7, 0.7)]),  # a part inside one cell
        "G40": Polygon([at(7, 5), at(12, 5), at(7, 10)]),  # a diagonal through cell corners
        "G50": Polygon([at(12.5, 0.5), at(14, 0.5), at(14.2, 2.3), at(12.5, 2)]),  # a vertex on a centre
        "G60": Polygon([at(15 + 0.5 * np.cos(t), 3 + 0.5 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)[:-1]]),
    }
    index = GridIndex(_frame(grids))
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = shapely.total_bounds(index.micro_geom)
    verts = shapely.get_coordinates(index.micro_geom)
    mids = (verts[:-1] + verts[1:]) / 2
    u, v = np.meshgrid(np.arange(-1, 18, 0.5), np.arange(-1, 12, 0.5))  # cell corners, side middles, centres
    lines = np.column_stack([np.repeat(np.arange(0, 17), 40), rng.uniform(-1, 11, 17 * 40)])  # on vertical lines
    pts = np.concatenate(
        [
            np.column_stack([rng.uniform(x0, x1, 20_000), rng.uniform(y0, y1, 20_000)]),
            verts,
            mids,
            np.column_stack(at(u.ravel(), v.ravel())),
            np.column_stack(at(lines[:, 0], lines[:, 1])),
            np.column_stack(at(lines[:, 1], lines[:, 0] % 11)),  # on horizontal lines
            verts + rng.normal(0, 1e-12, verts.shape),  # within rounding of a vertex
        ]
    )
    return index, pts[:, 0], pts[:, 1]


def test_cell_edges_answer_hostile_grids_exactly(hostile):
    index, x, y = hostile
    truth = _truth(index, x, y)
    loaded = _loaded(index)
    assert loaded._edges is not None and loaded.source == "disk"
    ours = loaded.locate(x, y).micro
    assert np.array_equal(ours, truth)
    assert np.array_equal(_by_geos(index, x, y), truth)
    # the tower wins over both grids it stands on; the hole is its filler's; a point in no grid is out
    code = loaded.code[loaded.micro]
    assert code[ours[(truth >= 0)]].tolist().count("G05") > 0
    assert (ours == -1).any() and (ours >= 0).mean() > 0.3


def test_only_uncertain_points_reach_geos(hostile, monkeypatch):
    """A point on a boundary (or within rounding of it) goes to the exact test; one clear of every
    edge never does."""
    index, x, y = hostile
    loaded = _loaded(index)
    asked = []
    real = loaded._prepared

    def counting(numbers):
        asked.append(len(numbers))
        return real(numbers)

    monkeypatch.setattr(loaded, "_prepared", counting)
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = shapely.total_bounds(index.micro_geom)
    rx, ry = rng.uniform(x0, x1, 5_000), rng.uniform(y0, y1, 5_000)
    assert np.array_equal(loaded.locate(rx, ry).micro, _truth(index, rx, ry))
    random_asked = sum(asked)
    asked.clear()
    verts = shapely.get_coordinates(index.micro_geom)
    assert np.array_equal(loaded.locate(verts[:, 0], verts[:, 1]).micro, _truth(index, verts[:, 0], verts[:, 1]))
    # here a few cells of about 190 have their centre on an edge (drawn so), and all their points
    # go to GEOS; on real data that is a rare event (the demo test below)
    assert random_asked < len(rx) // 10
    assert sum(asked) > 0  # vertices are on boundaries: GEOS decides them


def test_batches_of_point_segment_pairs_give_the_same_answer(hostile, monkeypatch):
    index, x, y = hostile
    loaded = _loaded(index)
    whole = loaded.locate(x, y).micro
    monkeypatch.setattr(cell_edges, "PAIRS_AT_ONCE", 7)
    assert np.array_equal(loaded.locate(x, y).micro, whole)


def test_a_loaded_demo_index_answers_without_decoding_the_city(demo_url):
    """The memory of #18: GEOS held every polygon a batch reached, decoded and prepared; the cell
    edges need none but those of the few uncertain points."""
    with db.engine(demo_url).connect() as conn:
        frame = store.index_frame(conn)
    built = GridIndex(frame)
    loaded = _loaded(built)
    rng = np.random.default_rng(11)
    x0, y0, x1, y1 = shapely.total_bounds(built.micro_geom)
    x, y = rng.uniform(x0, x1, 200_000), rng.uniform(y0, y1, 200_000)
    verts = shapely.get_coordinates(built.micro_geom[::7])
    x, y = np.concatenate([x, verts[:, 0]]), np.concatenate([y, verts[:, 1]])
    ours = loaded.locate(x, y).micro
    assert np.array_equal(ours, _by_geos(built, x, y))
    assert np.array_equal(ours, _truth(built, x, y))
    decoded = int((~shapely.is_missing(loaded._micro_geom)).sum())
    assert decoded <= len(loaded.micro) // 2, (decoded, len(loaded.micro))  # the vertices' grids, not all
    fresh = _loaded(built)
    fresh.locate(x[:200_000], y[:200_000])
    assert int((~shapely.is_missing(fresh._micro_geom)).sum()) <= len(fresh.micro) // 50


def test_an_index_of_no_grids_has_empty_cell_edges():
    empty = GridIndex(store.empty_index_frame())
    loaded = _loaded(empty)
    assert loaded.locate(np.array([113.6]), np.array([34.7])).micro.tolist() == [-1]
