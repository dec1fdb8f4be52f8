"""A small, exact test city near Zhengzhou, built in metres on gridmap's local plane
(affine to lon/lat, so it tiles exactly in storage too).

District 4 km x 4 km -> 2 streets (west/east) -> 2 communities each (south/north)
-> 2 courtyards each (west/east) -> 2 micro-grids each (south/north) of 60
households, one building of two 30-household units per micro-grid, and one
special grid (a school) inside the first community.  Tests bend it to make
problems on purpose.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box

from gridmap import geo
from gridmap.domain.stored_geometry import densify

_ORIGIN = geo.to_local([shapely.Point(113.70, 34.75)])[0]
X0, Y0 = _ORIGIN.x, _ORIGIN.y
LEVEL_FILES = ("district", "street", "community", "courtyard", "micro", "special", "building")


def rect(x0, y0, x1, y1):
    """A rectangle given in metres relative to the city's south-west corner."""
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def city() -> dict[str, list[dict]]:
    out = {k: [] for k in LEVEL_FILES}
    out["district"].append(
        {"code": "410199", "name": "测试区", "parent_code": None, "households": 960, "geometry": rect(0, 0, 4000, 4000)}
    )
    for si, (sx0, sx1) in enumerate(((0, 2000), (2000, 4000))):
        scode = f"410199{si + 1:03d}"
        out["street"].append(
            {
                "code": scode,
                "name": f"测试{si + 1}街道",
                "parent_code": "410199",
                "households": 480,
                "geometry": rect(sx0, 0, sx1, 4000),
            }
        )
        for ci, (cy0, cy1) in enumerate(((0, 2000), (2000, 4000))):
            ccode = f"{scode}{ci + 1:03d}"
            out["community"].append(
                {
                    "code": ccode,
                    "name": f"测试{si + 1}{ci + 1}社区",
                    "parent_code": scode,
                    "households": 240,
                    "geometry": rect(sx0, cy0, sx1, cy1),
                }
            )
            for yi, (yx0, yx1) in enumerate(((sx0, sx0 + 1000), (sx0 + 1000, sx1))):
                ycode = f"{ccode}{yi + 1:03d}"
                out["courtyard"].append(
                    {
                        "code": ycode,
                        "name": f"测试{ccode[-4:]}{yi + 1}花园",
                        "parent_code": ccode,
                        "households": 120,
                        "geometry": rect(yx0, cy0, yx1, cy1),
                    }
                )
                for mi, (my0, my1) in enumerate(((cy0, cy0 + 1000), (cy0 + 1000, cy1))):
                    mcode = f"{ycode}{mi + 1:02d}"
                    out["micro"].append(
                        {
                            "code": mcode,
                            "name": f"{mcode}网格",
                            "parent_code": ycode,
                            "households": 60,
                            "geometry": rect(yx0, my0, yx1, my1),
                        }
                    )
                    out["building"].append(
                        {
                            "code": f"{ycode}B{mi + 1:03d}",
                            "name": f"{mi + 1}号楼",
                            "number": f"{mi + 1}号楼",
                            "courtyard_code": ycode,
                            "floors": 15,
                            "units": "30;30",
                            "geometry": rect(yx0 + 100, my0 + 100, yx0 + 160, my0 + 115),
                        }
                    )
    out["special"].append(
        {
            "code": "410199001001S01",
            "name": "测试小学",
            "kind": "school",
            "parent_code": "410199001001",
            "households": 0,
            "geometry": rect(300, 300, 400, 400),
        }
    )
    return out


def find(c, level, code) -> dict:
    return next(r for r in c[level] if r["code"] == code)


def frame(rows, crs="EPSG:4326") -> gpd.GeoDataFrame:
    """Rows (local-plane geometries) as a GeoDataFrame in ``crs`` (any EPSG, or gcj02/bd09)."""
    attrs = pd.DataFrame([{k: v for k, v in r.items() if k != "geometry"} for r in rows])
    local = np.array([r["geometry"] for r in rows], dtype=object)
    # densified as stored data must be: no edge longer than about 10 m (see stored_geometry)
    lonlat = geo.from_local(local)
    ok = np.array([g is not None and g.is_valid for g in lonlat])  # tests break some on purpose: keep those
    lonlat[ok] = densify(lonlat[ok])
    geoms = geo.transform_geoms(lonlat, "EPSG:4326", crs)
    return gpd.GeoDataFrame(attrs, geometry=list(geoms), crs=None if crs in ("gcj02", "bd09") else crs)


SUFFIX = {"geojson": ".geojson", "gpkg": ".gpkg", "shp": ".shp", "csv": ".csv", "parquet": ".parquet"}


def write(rows, folder: Path, name: str, fmt: str = "geojson", crs="EPSG:4326") -> Path:
    """Write rows to ``folder/name.<fmt>``; CSV gets a WKT column."""
    gdf = frame(rows, crs)
    path = Path(folder) / f"{name}{SUFFIX[fmt]}"
    if fmt == "csv":
        out = pd.DataFrame(gdf.drop(columns="geometry"))
        out["wkt"] = [g.wkt if g is not None else "" for g in gdf.geometry]
        out.to_csv(path, index=False)
    elif fmt == "parquet":
        gdf.to_parquet(path)
    else:
        if fmt == "shp":
            gdf = gdf.rename(columns={"parent_code": "parent", "courtyard_code": "courtyard"})
        gdf.to_file(path, engine="pyogrio", **({"encoding": "UTF-8"} if fmt == "shp" else {}))
    return path


def load(cli, c, folder: Path, levels=LEVEL_FILES):
    """Import the city level by level through the real CLI; returns the CLI results."""
    results = []
    for level in levels:
        if c[level]:
            path = write(c[level], folder, level)
            res = cli("import", path, "--level", level)
            assert res.exit_code == 0, res.output
            results.append(res)
    return results


def local_xy(lon, lat):
    """A lon/lat point in metres on the city's plane, relative to its south-west corner."""
    p = geo.to_local([shapely.Point(lon, lat)])[0]
    return p.x - X0, p.y - Y0


def area_m2(geom_local) -> float:
    """The area in m² (EPSG:4547) of a geometry given on the local plane, as gridmap measures it."""
    return float(shapely.area(geo.to_metric(geo.from_local([geom_local])))[0])
