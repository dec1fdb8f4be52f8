"""The one map page: folium builds the Leaflet map from ``layers/``; every asset is served by this app.

Grid levels, risk elements and risk shading are vector tiles (``/tiles/...``, Leaflet.VectorGrid);
reports are clustered markers (Leaflet.markercluster); the info panel, search, statistics and
legend are ``static/gridmap.js``.  Clicking the map asks the lookup which grids hold the point,
so the panel works for every level without hit-testing tiles in the browser.
"""

from __future__ import annotations

import folium
from branca.element import CssLink, Element, JavascriptLink, MacroElement
from flask import Blueprint, Response, url_for
from jinja2 import Template

from ..services import grid_views
from ..services.layers import basemap, level_layers, overlay_layers
from .auth import public
from .context import engine, risk_rules, settings

bp = Blueprint("pages", __name__, static_folder="static", static_url_path="/static")

#: Zhengzhou, when nothing is loaded yet.
DEFAULT_BOUNDS = ((34.60, 113.55), (34.85, 113.85))
VENDOR_JS = (
    "vendor/leaflet/leaflet.js",
    "vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js",
    "vendor/markercluster/leaflet.markercluster.js",
    "vendor/geoman/leaflet-geoman.min.js",
)
VENDOR_CSS = (
    "vendor/leaflet/leaflet.css",
    "vendor/markercluster/MarkerCluster.css",
    "vendor/markercluster/MarkerCluster.Default.css",
    "vendor/geoman/leaflet-geoman.css",
)


class LocalMap(folium.Map):
    """A folium Map whose Leaflet comes from this app, not a CDN (pages must work offline)."""

    default_js: list = []
    default_css: list = []

    def __init__(self, *args, js: list, css: list, **kwargs):
        type(self).default_js = [(f"js{i}", u) for i, u in enumerate(js)]
        type(self).default_css = [(f"css{i}", u) for i, u in enumerate(css)]
        super().__init__(*args, **kwargs)


class GridmapApp(MacroElement):
    """Starts ``gridmapInit`` (static/gridmap.js) on the folium map with the layer configuration."""

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var cfg = {{ this.cfg|tojson }};
  cfg.groups = { {% for name, group in this.groups.items() %}{{ name|tojson }}: {{ group }},{% endfor %} };
  gridmapInit({{ this._parent.get_name() }}, cfg);
  gridmapView();
  gridmapAuth.check();
})();
{% endmacro %}
""")

    def __init__(self, cfg: dict, groups: dict):
        super().__init__()
        self._name = "GridmapApp"
        self.cfg = cfg
        self.groups = groups


PANELS = """
<div class="gridmap-title">gridmap 一张图<small>网格化基层治理</small><span id="gridmap-user"></span></div>
<div id="gridmap-search" class="gm-box"><input type="search" placeholder="编码、名称、地址 code, name, address"
  aria-label="search"><button type="button">搜索</button><ul></ul></div>
<div id="gridmap-asof" class="gm-box"><label>边界日期 boundaries as of <input type="text" inputmode="numeric"
  placeholder="年-月-日 YYYY-MM-DD" size="13" aria-label="boundaries as of"></label>
  <div class="gm-date-error gm-error"></div><div class="gm-note"></div></div>
<div id="gridmap-panel" class="gm-box" aria-live="polite"></div>
<div id="gridmap-stats" class="gm-box"><button type="button" class="gm-toggle">统计 statistics</button>
  <div class="gm-body"></div></div>
<div id="gridmap-legend" class="gm-box"><button type="button" class="gm-toggle">图例 legend</button>
  <div class="gm-body">{legend}</div></div>
"""


def _legend(levels, rules) -> str:
    items = [
        f'<div><span class="gm-swatch" style="border-color:{d["colour"]};background:{d["fill"]}33"></span>'
        f"{d['label']}</div>"
        for d in levels
    ]
    for colour in ("red", "yellow", "blue"):
        s = rules.styles.get(colour, {})
        dot = f'<span class="gm-dot" style="background:{s.get("fill", colour)}"></span>'
        items.append(f"<div>{dot}{s.get('label', colour)}</div>")
    od = rules.styles.get("overdue", {})
    dashed = "dashed" if od.get("dash_array") else "solid"
    items.append(
        f'<div><span class="gm-dot gm-overdue" style="border: 2px {dashed} {od.get("colour", "#000")}">'
        f"</span>{od.get('label', 'overdue')}</div>"
    )
    fills = "".join(
        f'<span class="gm-swatch gm-shade" style="background:{rules.styles.get(c, {}).get("fill", c)}"></span>'
        for c in ("red", "yellow", "blue")
    )
    items.append(f"<div>{fills}网格风险底色 grid shading: its elements' colour (roll-up)</div>")
    items.append(
        '<div><span class="gm-dot gm-report"></span>群众上报 open report '
        '<span class="gm-cluster">12</span> 聚合 cluster of reports (not a risk colour)</div>'
    )
    items.append(
        '<div><span class="gm-swatch" style="border-color:#555;background:repeating-linear-gradient('
        '45deg,#555 0 1px,transparent 1px 5px)"></span>共享楼栋 shared tower</div>'
    )
    return "".join(items)


def _risk_cfg(rules) -> dict:
    st = rules.styles
    od = st.get("overdue", {})
    return {
        "colours": {c: st.get(c, {}).get("fill", c) for c in ("red", "yellow", "blue")},
        "styles": {c: st.get(c, {}) for c in ("red", "yellow", "blue")},
        "overdue": {
            "outline": od.get("colour", "#000000"),
            "weight": od.get("weight", 2.5),
            "extra_radius": 2,
            "dash_array": od.get("dash_array", ""),
        },
    }


def build_map() -> folium.Map:
    """The one map: grid levels, risk shading, risk elements and reports, each its own layer."""
    rules = risk_rules()
    base = basemap(settings())
    folder = settings().layers_dir
    bounds = grid_views.extent(engine())
    fit = ((bounds[1], bounds[0]), (bounds[3], bounds[2])) if bounds else DEFAULT_BOUNDS
    static = lambda f: url_for("pages.static", filename=f)  # noqa: E731
    fmap = LocalMap(
        location=[(fit[0][0] + fit[1][0]) / 2, (fit[0][1] + fit[1][1]) / 2],
        zoom_start=11,
        tiles=None,
        js=[static(f) for f in VENDOR_JS],
        css=[static(f) for f in VENDOR_CSS],
        prefer_canvas=True,
        control_scale=True,
        max_zoom=20,
    )
    root = fmap.get_root()
    root.header.add_child(Element(f'<link rel="icon" type="image/svg+xml" href="{static("favicon.svg")}">'))
    root.header.add_child(Element("<title>gridmap 一张图</title>"))
    root.header.add_child(CssLink(static("gridmap.css")))
    root.header.add_child(JavascriptLink(static("gridmap-auth.js")))
    root.header.add_child(JavascriptLink(static("gridmap.js")))
    root.header.add_child(JavascriptLink(static("gridmap-view.js")))
    root.header.add_child(JavascriptLink(static("gridmap-edit.js")))
    if base["url"]:
        folium.TileLayer(
            base["url"],
            attr=base["attribution"] or " ",
            name="底图 base map",
            max_zoom=base["max_zoom"],
            overlay=False,
            control=False,
        ).add_to(fmap)
    crs_arg = "?crs=gcj02" if base["crs"] == "gcj02" else ""

    def tile_url(name):
        return url_for("tiles.tile", layer=name, z=0, x=0, y=0).replace("/0/0/0.pbf", "/{z}/{x}/{y}.pbf") + crs_arg

    groups, levels, overlays = {}, [], []
    for d in level_layers(folder):
        group = folium.FeatureGroup(name=d["label"], show=d["show"]).add_to(fmap)
        groups[d["level"]] = group.get_name()
        levels.append({**d, "name": d["level"], "url": tile_url(d["level"])})
    risk = _risk_cfg(rules)
    for d in overlay_layers(folder):
        group = folium.FeatureGroup(name=d["label"], show=d["show"]).add_to(fmap)
        groups[d["name"]] = group.get_name()
        entry = dict(d)
        if d["source"] in ("risk", "grid", "building"):
            entry["url"] = tile_url(d["name"])
        if d["source"] == "risk":
            style = risk["styles"].get(d.get("colour_filter"), {})
            entry.update(colour=style.get("fill", "#888"), radius=style.get("radius", 5))
        overlays.append(entry)
    cfg = {
        "api": url_for("grids.stats").rsplit("/", 1)[0],
        "basemap": base,
        "levels": levels,
        "overlays": overlays,
        "risk": risk,
        "timezone": settings().timezone,
        # fitted by static/gridmap-view.js unless the URL holds a view (folium's fit would animate over it)
        "fit": fit,
    }
    fmap.add_child(GridmapApp(cfg, groups))
    folium.LayerControl(collapsed=True).add_to(fmap)
    root.html.add_child(Element(PANELS.replace("{legend}", _legend(level_layers(folder), rules))))
    return fmap


@bp.get("/")
@public  # open whatever AUTH_READ says, so the page can ask for a token
def index():
    return Response(build_map().get_root().render(), mimetype="text/html")
