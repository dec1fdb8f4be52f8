"""Coordinate systems: GCJ-02/BD-09 against the reference implementation prcoords, CRS parsing, place checks."""

import numpy as np
import prcoords
import pytest

from gridmap import geo
from gridmap.errors import InputError

rng = np.random.default_rng(42)
# points over mainland China, denser around Zhengzhou
LON = np.concatenate([rng.uniform(75, 134, 300), rng.uniform(113.0, 114.3, 300)])
LAT = np.concatenate([rng.uniform(18, 53, 300), rng.uniform(34.2, 35.0, 300)])


def test_wgs84_to_gcj02_matches_reference():
    lon, lat = geo.wgs84_to_gcj02(LON, LAT)
    ref = np.array([prcoords.wgs_gcj((a, o)) for a, o in zip(LAT, LON)])
    assert np.abs(lat - ref[:, 0]).max() < 1e-9
    assert np.abs(lon - ref[:, 1]).max() < 1e-9
    # the offset is real: hundreds of metres around Zhengzhou
    assert np.all(np.abs(lon - LON)[300:] > 1e-3)


def test_gcj02_to_wgs84_matches_reference_and_round_trips():
    glon, glat = geo.wgs84_to_gcj02(LON, LAT)
    lon, lat = geo.gcj02_to_wgs84(glon, glat)
    ref = np.array([prcoords.gcj_wgs_bored((a, o)) for a, o in zip(glat, glon)])
    assert np.abs(lat - ref[:, 0]).max() <= 1e-6
    assert np.abs(lon - ref[:, 1]).max() <= 1e-6
    assert np.abs(lon - LON).max() < 1e-9 and np.abs(lat - LAT).max() < 1e-9


def test_bd09_matches_reference_and_round_trips():
    blon, blat = geo.wgs84_to_bd09(LON, LAT)
    ref = np.array([prcoords.wgs_bd((a, o)) for a, o in zip(LAT, LON)])
    assert np.abs(blat - ref[:, 0]).max() < 1e-9 and np.abs(blon - ref[:, 1]).max() < 1e-9
    lon, lat = geo.bd09_to_wgs84(blon, blat)
    ref_back = np.array([prcoords.bd_wgs_bored((a, o)) for a, o in zip(blat, blon)])
    assert np.abs(lat - ref_back[:, 0]).max() <= 1e-6 and np.abs(lon - ref_back[:, 1]).max() <= 1e-6
    assert np.abs(lon - LON).max() < 1e-9 and np.abs(lat - LAT).max() < 1e-9


def test_outside_china_no_offset():
    lon, lat = geo.wgs84_to_gcj02([2.35, -74.0], [48.85, 40.7])
    assert lon.tolist() == [2.35, -74.0] and lat.tolist() == [48.85, 40.7]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("wgs84", "EPSG:4326"),
        ("CGCS2000", "EPSG:4490"),
        ("gcj02", "gcj02"),
        ("BD09", "bd09"),
        ("EPSG:4547", "EPSG:4547"),
        ("4326", "EPSG:4326"),
        (None, "EPSG:4326"),
    ],
)
def test_parse_crs(text, expected):
    assert geo.parse_crs(text) == expected


@pytest.mark.parametrize("text", ["mars", "EPSG:999999", "epsg:abc"])
def test_parse_crs_rejects_with_the_value(text):
    with pytest.raises(InputError, match="unknown CRS"):
        geo.parse_crs(text)


def test_transform_through_metric_is_exact_enough():
    x, y = geo.transform_xy(LON[300:], LAT[300:], "EPSG:4326", "EPSG:4547")
    assert np.all((x > 3.6e7) & (x < 3.9e7)) or np.all((x > 3e5) & (x < 7e5))
    lon, lat = geo.transform_xy(x, y, "EPSG:4547")
    assert np.abs(lon - LON[300:]).max() < 1e-9


def test_bounds_problem():
    assert geo.bounds_problem(113.5, 34.6, 113.9, 34.9) is None
    assert "swapped" in geo.bounds_problem(34.6, 113.5, 34.9, 113.9)
    assert "outside China" in geo.bounds_problem(2.0, 48.0, 3.0, 49.0)
