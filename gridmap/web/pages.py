"""The map page: folium builds the Leaflet map; every asset is served by this app."""
from __future__ import annotations

import folium
from branca.element import CssLink, Element, MacroElement
from flask import Blueprint, Response, url_for
from jinja2 import Template

from ..store import grids as store
from .api import engine
from .layers import level_layers

bp = Blueprint("pages", __name__, static_folder="static", static_url_path="/static")

#: Zhengzhou, when nothing is loaded yet.
DEFAULT_BOUNDS = ((34.60, 113.55), (34.85, 113.85))


class LocalMap(folium.Map):
    """A folium Map whose Leaflet comes from this app, not a CDN (pages must work offline)."""

    default_js: list = []
    default_css: list = []

    def __init__(self, *args, assets: dict, **kwargs):
        type(self).default_js = [("leaflet", assets["leaflet_js"])]
        type(self).default_css = [("leaflet_css", assets["leaflet_css"])]
        super().__init__(*args, **kwargs)


class LevelLoader(MacroElement):
    """Fetches each level's GeoJSON asynchronously into its layer group and shows it in its zoom range."""

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var map = {{ this._parent.get_name() }};
  var defs = {{ this.defs|tojson }};
  var groups = { {% for d in this.defs %}{{ d.level|tojson }}: {{ d.group }},{% endfor %} };
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"]/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
  function popup(p) {
    return '<div class="gridmap-popup"><b>' + esc(p.name) + '</b><table>' +
      '<tr><td>code</td><td>' + esc(p.code) + '</td></tr>' +
      '<tr><td>level</td><td>' + esc(p.level) + (p.kind ? ' (' + esc(p.kind) + ')' : '') + '</td></tr>' +
      '<tr><td>households</td><td>' + esc(p.households) + '</td></tr></table></div>';
  }
  var loaded = {};
  function sync() {
    var z = map.getZoom();
    defs.forEach(function (d) {
      var gj = loaded[d.level];
      if (!gj) return;
      var inRange = z >= d.min_zoom && z <= d.max_zoom;
      if (inRange && !groups[d.level].hasLayer(gj)) groups[d.level].addLayer(gj);
      if (!inRange && groups[d.level].hasLayer(gj)) groups[d.level].removeLayer(gj);
    });
  }
  defs.forEach(function (d) {
    fetch(d.url).then(function (r) { return r.json(); }).then(function (data) {
      loaded[d.level] = L.geoJSON(data, {
        style: function () { return {color: d.colour, weight: d.weight, fillColor: d.fill,
                                     fillOpacity: d.fill_opacity}; },
        onEachFeature: function (f, layer) {
          layer.bindTooltip(esc(f.properties.name), {sticky: true});
          layer.bindPopup(popup(f.properties));
        }
      });
      sync();
      document.body.setAttribute("data-loaded-" + d.level, data.features.length);
    });
  });
  map.on("zoomend", sync);
})();
{% endmacro %}
""")

    def __init__(self, defs):
        super().__init__()
        self._name = "LevelLoader"
        self.defs = defs


def build_map() -> folium.Map:
    """The first map page: every grid level as its own toggleable layer."""
    with engine().connect() as conn:
        bounds = store.extent(conn)
    fit = ((bounds[1], bounds[0]), (bounds[3], bounds[2])) if bounds else DEFAULT_BOUNDS
    assets = {"leaflet_js": url_for("pages.static", filename="vendor/leaflet/leaflet.js"),
              "leaflet_css": url_for("pages.static", filename="vendor/leaflet/leaflet.css")}
    fmap = LocalMap(location=[(fit[0][0] + fit[1][0]) / 2, (fit[0][1] + fit[1][1]) / 2], zoom_start=11,
                    tiles=None, assets=assets, prefer_canvas=True, control_scale=True)
    fmap.get_root().header.add_child(CssLink(url_for("pages.static", filename="gridmap.css")))
    fmap.fit_bounds(fit)
    defs = []
    for layer in level_layers():
        group = folium.FeatureGroup(name=layer["label"], show=layer["show"]).add_to(fmap)
        defs.append({**layer, "group": group.get_name(),
                     "url": url_for("api.grids_of_level", level=layer["level"])})
    fmap.add_child(LevelLoader(defs))
    folium.LayerControl(collapsed=False).add_to(fmap)
    fmap.get_root().html.add_child(Element(
        '<div class="gridmap-title">gridmap 一张图<small>网格化基层治理</small></div>'))
    return fmap


@bp.get("/")
def index():
    return Response(build_map().get_root().render(), mimetype="text/html")
