"""Exporting one level's grids as GeoJSON (RFC 7946), GeoPackage, Shapefile or CSV."""

from __future__ import annotations

import json
from datetime import datetime

import geopandas as gpd
import lazy_loader
from sqlalchemy.engine import Engine

from .. import geo
from ..domain import dates
from ..domain.levels import check_level
from ..errors import InputError
from ..store import db, grids, shares
from . import memberships
from .files import check_output, write_csv

pd = lazy_loader.load("pandas")

#: format -> (GDAL driver, accepted file name endings)
EXPORT_FORMATS = {
    "geojson": ("GeoJSON", (".geojson", ".json")),
    "gpkg": ("GPKG", (".gpkg",)),
    "shp": ("ESRI Shapefile", (".shp",)),
    "csv": (None, (".csv",)),
}


def export_level(
    eng: Engine, level: str, fmt: str, out, *, at: datetime | None = None, encoding: str = "utf-8-sig"
) -> int:
    """Write the grids of ``level`` valid at ``at`` to ``out``. GeoJSON follows RFC 7946; CSV is in
    ``encoding`` (default UTF-8 with a BOM, as Excel expects)."""
    if level == "share":  # the membership file: which floors each micro-grid holds
        if fmt != "csv":
            raise InputError("--level share is written as CSV (building,unit,floor_from,floor_to,micro_code)")
        return memberships.export_csv(eng, out, at=at, encoding=encoding)
    check_level(level)
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    out = check_output(out, EXPORT_FORMATS[fmt][1])
    frame = grids.frame(eng, level=level, at=at)
    if level == "micro":  # each micro-grid's floors, as the membership file has them
        with eng.connect() as conn:
            held = shares.of_grids(conn, at=at)
        per = (
            held.groupby("code").apply(
                lambda d: json.dumps(
                    [
                        {
                            "building": b,
                            "unit": int(u),
                            "floor_from": int(f0),
                            "floor_to": int(f1),
                            "households": int(h),
                        }
                        for b, u, f0, f1, h in zip(
                            d["building_code"], d["unit"], d["floor_from"], d["floor_to"], d["households"]
                        )
                    ],
                    ensure_ascii=False,
                ),
                include_groups=False,
            )
            if len(held)
            else pd.Series(dtype=object)
        )
        frame["shares"] = frame["code"].map(per)
    for col in ("valid_from", "valid_to"):
        frame[col] = dates.iso_column(frame[col], db.zone_of(eng))
    if out.exists():
        out.unlink()
    if fmt == "csv":
        frame["wkt"] = frame.pop("geometry").map(lambda g: g.wkt)
        write_csv(frame, out, encoding)
        return len(frame)
    geoms = geo.rfc7946(frame.pop("geometry").to_numpy())
    if fmt == "shp":  # dBase field names are at most 10 characters
        frame = frame.rename(columns={"parent_code": "parent"})
    gdf = gpd.GeoDataFrame(frame, geometry=list(geoms), crs=f"EPSG:{geo.STORAGE_SRID}")
    driver = EXPORT_FORMATS[fmt][0]
    # full precision: RFC 7946's suggested 7 decimals (~1 cm) moves vertices that lie on a parent's
    # long edge off it, and a round trip would then fail validation by square metres
    options = {"RFC7946": "YES", "WRITE_BBOX": "YES", "COORDINATE_PRECISION": 15} if fmt == "geojson" else {}
    gdf.to_file(
        out,
        driver=driver,
        engine="pyogrio",
        layer_options=options or None,
        **({"encoding": "UTF-8"} if fmt == "shp" else {}),
    )
    return len(gdf)
