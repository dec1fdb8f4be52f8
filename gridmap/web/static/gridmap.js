/* gridmap one map: vector-tile grid levels, three-colour risk layers, reports, info panel,
 * search, statistics and legend.  Everything comes from this app (no CDN); the layer list is the
 * server's layers/*.toml, passed in as `cfg`. */
(function () {
  "use strict";

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  /* credentials: static/gridmap-auth.js keeps the token; a 401 opens its sign-in form */
  function authHeaders() { return window.gridmapAuth ? window.gridmapAuth.headers() : {}; }
  function token() { return window.gridmapAuth ? window.gridmapAuth.token() : ""; }
  function getJSON(url) {
    return fetch(url, {headers: authHeaders()}).then(function (r) {
      return r.json().then(function (body) {
        if (r.status === 401 && window.gridmapAuth) window.gridmapAuth.open((body.error && body.error.message) || r.statusText);
        if (!r.ok) {
          var err = new Error((body.error && body.error.message) || r.statusText);
          err.status = r.status;
          err.body = body;
          throw err;
        }
        return body;
      });
    });
  }
  /* times: shown in the office's zone (settings' timezone), the zone stated */
  var zoneFormats = {};
  function inZone(iso, tz, withTime) {
    if (!iso) return "";
    var key = tz + withTime;
    var f = zoneFormats[key] || (zoneFormats[key] = new Intl.DateTimeFormat("en-CA", {
      timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23"}));
    var p = {};
    f.formatToParts(new Date(iso)).forEach(function (x) { p[x.type] = x.value; });
    var day = p.year + "-" + p.month + "-" + p.day;
    return withTime ? day + " " + p.hour + ":" + p.minute : day;
  }
  /* the UTC offset of zone ``tz`` on day ``day`` (yyyy-mm-dd), as +08:00 */
  function zoneOffset(day, tz) {
    var name = new Intl.DateTimeFormat("en-US", {timeZone: tz, timeZoneName: "longOffset"})
      .formatToParts(new Date(day + "T12:00:00Z")).filter(function (x) { return x.type === "timeZoneName"; })[0];
    var m = /GMT([+-]\d\d:\d\d)?/.exec(name ? name.value : "");
    return m && m[1] ? m[1] : "+00:00";
  }
  function q(params) {
    return Object.keys(params).filter(function (k) { return params[k] != null && params[k] !== ""; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]); }).join("&");
  }
  function mark(name, value) { document.body.setAttribute("data-" + name, value); }

  window.gridmapInit = function (map, cfg) {
    var crs = cfg.basemap.crs;
    // at: the "boundaries as of" instant (ISO with the office zone's offset), null = now
    var state = {tiles: {}, loadedTiles: {}, selected: null, at: null, day: null};
    var when = function (iso, withTime) { return inZone(iso, cfg.timezone, withTime); };
    window.gridmap = {map: map, cfg: cfg, state: state, getJSON: getJSON, authHeaders: authHeaders, token: token,
                      esc: esc, q: q, mark: mark, when: when, zoneOffset: zoneOffset};

    /* ---- vector tile layers (grid levels, risk elements, risk shading) ---- */
    function gridStyle(d) {
      return function () {
        return {stroke: d.weight > 0, color: d.colour, weight: d.weight, fill: true,
                fillColor: d.fill || d.colour, fillOpacity: d.fill_opacity};
      };
    }
    function shadeStyle(d) {
      // shaded grids are outlined in their risk colour's stroke, so at z10–11 (before the community
      // boundaries draw) a shaded area still shows where it ends
      return function (p) {
        var c = cfg.risk.colours[p.risk] || d.colour, s = cfg.risk.styles[p.risk] || {};
        return {stroke: true, color: s.colour || c, weight: 1, opacity: 0.8, fill: true, fillColor: c,
                fillOpacity: d.fill_opacity};
      };
    }
    function riskStyle(d) {
      var od = cfg.risk.overdue;
      return function (p) {
        var overdue = p.overdue === true || p.overdue === 1 || p.overdue === "true";
        return {radius: overdue ? d.radius + od.extra_radius : d.radius, fill: true, fillColor: d.colour,
                fillOpacity: overdue ? 0.95 : 0.75, stroke: true,
                color: overdue ? od.outline : "#ffffff", weight: overdue ? od.weight : 1,
                dashArray: overdue && od.dash_array ? od.dash_array : null};
      };
    }
    state.drawn = {};
    state.styles = {};
    function hatch(colour) {
      if (!state.hatch) {
        var c = document.createElement("canvas");
        c.width = c.height = 8;
        var x = c.getContext("2d");
        x.strokeStyle = colour; x.lineWidth = 1.5;
        x.beginPath(); x.moveTo(0, 8); x.lineTo(8, 0); x.moveTo(-2, 2); x.lineTo(2, -2); x.moveTo(6, 10); x.lineTo(10, 6);
        x.stroke();
        state.hatch = x.createPattern(c, "repeat");
      }
      return state.hatch;
    }
    function tileLayer(d, style) {
      var styles = {};
      state.styles[d.name] = style;
      // count the features drawn per layer (the browser test and the curious read data-drawn-*)
      styles[d.name] = function (p, z) {
        state.drawn[d.name] = (state.drawn[d.name] || 0) + 1;
        return style(p, z);
      };
      var layer = L.vectorGrid.protobuf(d.url, {
        rendererFactory: L.canvas.tile, vectorTileLayerStyles: styles, interactive: !!d.interactive,
        minZoom: d.min_zoom, maxZoom: 22, maxNativeZoom: 22, pane: d.pane || "overlayPane",
        fetchOptions: {headers: authHeaders()}
      });
      var count = 0;
      layer.on("tileload", function () {
        count += 1; state.loadedTiles[d.name] = count; mark("tiles-" + d.name, count);
        mark("drawn-" + d.name, state.drawn[d.name] || 0);
      });
      // drawn only inside its zoom range (the server also sends empty tiles outside it)
      layer._gm_range = [d.min_zoom, d.max_zoom];
      state.tiles[d.name] = layer;
      return layer;
    }
    gridmap.tileLayer = tileLayer;  // for the layers other scripts add (static/gridmap-events.js)
    cfg.levels.forEach(function (d) { tileLayer(d, gridStyle(d)); });
    cfg.overlays.forEach(function (d) {
      if (d.source === "risk") tileLayer(d, riskStyle(d));
      else if (d.source === "grid") tileLayer(d, shadeStyle(d));
      else if (d.source === "building") tileLayer(d, function (props) {
        // a tower shared by several micro-grids (each holding some of its floors) is drawn hatched: the
        // canvas renderer takes a CanvasPattern as its fill style
        var shared = (props.grids || 0) > 1;
        if (shared) { state.sharedDrawn = (state.sharedDrawn || 0) + 1; mark("shared-buildings", state.sharedDrawn); }
        return {stroke: true, color: d.colour, weight: shared ? d.weight + 1 : d.weight, fill: true,
                fillColor: shared ? hatch(d.colour) : (d.fill || d.colour), fillOpacity: shared ? 0.9 : d.fill_opacity};
      });
      else if (d.source === "coverage") tileLayer(d, function () {  // grids with no grid worker
        return {stroke: true, color: d.colour, weight: 1.5, dashArray: "4 3", fill: true, fillColor: d.colour,
                fillOpacity: d.fill_opacity};
      });
    });
    function syncZoom() {
      var z = map.getZoom();
      Object.keys(state.tiles).forEach(function (name) {
        var layer = state.tiles[name], group = cfg.groups[name];
        var inRange = z >= layer._gm_range[0] && z <= layer._gm_range[1];
        if (inRange && !group.hasLayer(layer)) group.addLayer(layer);
        if (!inRange && group.hasLayer(layer)) group.removeLayer(layer);
      });
    }
    map.on("zoomend", syncZoom);
    syncZoom();

    /* ---- reports, clustered in a colour no risk colour uses (clusters must not read as risk) ---- */
    var reportDef = cfg.overlays.filter(function (d) { return d.source === "report"; })[0];
    if (reportDef) {
      var cluster = L.markerClusterGroup({
        showCoverageOnHover: false, maxClusterRadius: 50,
        iconCreateFunction: function (c) {
          var n = c.getChildCount(), size = n < 10 ? 28 : n < 100 ? 34 : 40;
          return L.divIcon({html: "<div><span>" + n + "</span></div>", className: "gm-report-cluster",
                            iconSize: L.point(size, size)});
        }
      });
      cfg.groups[reportDef.name].addLayer(cluster);
      var reportSeq = 0;
      var loadReports = function () {
        var group = cfg.groups[reportDef.name];
        if (!map.hasLayer(group)) return;
        if (map.getZoom() < reportDef.min_zoom) { cluster.clearLayers(); mark("reports", 0); return; }
        var b = map.getBounds(), seq = ++reportSeq;
        getJSON(cfg.api + "/reports?" + q({bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(","),
                                            status: reportDef.status, crs: crs, limit: 5000}))
          .then(function (fc) {
            if (seq !== reportSeq) return;
            cluster.clearLayers();
            cluster.addLayers(fc.features.map(function (f) {
              var c = f.geometry.coordinates, p = f.properties;
              return L.circleMarker([c[1], c[0]], {radius: reportDef.radius, color: "#fff", weight: 1,
                                                    fillColor: reportDef.colour, fillOpacity: 0.9})
                .bindPopup('<div class="gridmap-popup"><b>上报 #' + esc(p.id) + "</b><br>" + esc(p.text) +
                           "<br><small>" + esc(p.address || "") + " · " + esc(when(p.received_at, true)) +
                           " " + esc(cfg.timezone) + " · " + esc(p.micro_code || "") + "</small></div>");
            }));
            mark("reports", fc.numberReturned);
          });
      };
      map.on("moveend", loadReports);
      map.on("overlayadd", loadReports);
      loadReports();
    }

    /* ---- info panel: click anywhere, the lookup finds the grid chain ---- */
    var panel = document.getElementById("gridmap-panel");
    var highlight = L.geoJSON(null, {style: {color: "#00e5ff", weight: 3, fill: false}, interactive: false}).addTo(map);
    function visibleLevel(chain) {
      var z = map.getZoom(), pick = null;
      cfg.levels.forEach(function (d) {
        var hit = chain.filter(function (c) { return c.level === d.level; })[0];
        if (hit && z >= d.min_zoom) pick = hit;
      });
      return pick || chain[chain.length - 1];
    }
    function row(k, v) { return "<tr><th>" + esc(k) + "</th><td>" + v + "</td></tr>"; }
    gridmap.showPanel = showPanel;
    // extra query parameters of the tile URLs, per layer: at (a past date; grid layers only) and t
    // (after an edit, so the browser does not reuse tiles it cached for up to a minute)
    state.tileParams = {};
    gridmap.setTileParams = function (params, only) {
      cfg.levels.concat(cfg.overlays).forEach(function (d) {
        var layer = state.tiles[d.name];
        if (!layer || (only && !only[d.name])) return;
        var mine = state.tileParams[d.name] = Object.assign(state.tileParams[d.name] || {}, params);
        var extra = q(mine);
        layer.setUrl(extra ? d.url + (d.url.indexOf("?") < 0 ? "?" : "&") + extra : d.url);
      });
    };
    gridmap.refreshTiles = function () { gridmap.setTileParams({t: Date.now()}); };
    function clearPanel(html) {
      highlight.clearLayers();
      state.selected = null;
      if (html) { panel.classList.add("open"); panel.innerHTML = '<button class="gm-close" title="close">×</button>' + html; }
      else { panel.classList.remove("open"); panel.innerHTML = ""; }
      if (gridmap.onSelect) gridmap.onSelect(null);
    }
    gridmap.clearPanel = clearPanel;
    function chainLinks(chain) {
      return chain.map(function (c) {
        return '<a href="#" data-code="' + esc(c.code) + '">' + esc(c.name) + "</a>";
      }).join(" › ");
    }
    function riskRows(risk) {
      var colours = ["red", "yellow", "blue"].map(function (c) {
        return '<span class="gm-dot gm-' + c + '"></span>' + (risk[c] || 0);
      }).join(" ");
      var rule = risk.rule || {}, t = rule.thresholds || {};
      return row("风险 risk", '<span class="gm-risk-colour gm-' + esc(risk.colour || "none") + '">' +
                 esc(risk.colour || "none") + "</span> " + colours) +
        row("为何此色 why", '<span id="gm-panel-why">' + esc(rule.why || "") + "</span>" +
            '<br><small>规则 rule: red ≥ ' + esc(t.red) + " red → red; red + yellow ≥ " + esc(t.yellow) +
            " → yellow; ≥ " + esc(t.blue) + " element(s) → blue</small>") +
        row("逾期 overdue", '<span id="gm-panel-overdue">' + esc(risk.overdue || 0) + "</span>");
    }
    function showPanel(code) {
      panel.classList.add("open");
      panel.innerHTML = '<div class="gm-loading">…</div>';
      var dated = state.at !== null;
      var asked = [getJSON(cfg.api + "/grids/" + encodeURIComponent(code) + "?" + q({crs: crs, at: state.at}))];
      // the panel's risk and reports exist for today only: at a past date the panel says so instead
      if (!dated) asked.push(getJSON(cfg.api + "/grids/" + encodeURIComponent(code) + "/panel"));
      return Promise.all(asked)
        .then(function (res) {
          var feature = res[0], p = dated ? feature.properties : res[1].properties;
          highlight.clearLayers(); highlight.addData(feature);
          state.selected = code;
          var people = (p.people || []).map(function (m) {
            return esc(m.name) + " <small>" + esc(m.role_label || m.role) + (m.phone ? " · " + esc(m.phone) : "") + "</small>";
          }).join("<br>") || "—";
          var reports = dated ? "" : (p.reports.latest || []).slice(0, 5).map(function (r) {
            return "<li>" + esc(r.text) + " <small>" + esc(when(r.received_at, true)) + "</small></li>";
          }).join("");
          // a micro-grid's floors: whole buildings, whole units, or floor ranges of a shared tower
          var floors = (p.shares || []).map(function (b) {
            return esc(b.building) + ": " + b.units.map(function (u) {
              return esc(u.unit) + "单元 " + (u.whole ? "" : esc(u.floor_from) + "–" + esc(u.floor_to) + "层 ") +
                "(" + esc(u.households) + ")";
            }).join(", ") + (b.shared_with.length ? ' <span class="gm-shared">共享 shared with ' +
              b.shared_with.map(esc).join(", ") + "</span>" : "");
          }).join("<br>");
          panel.innerHTML =
            '<button class="gm-close" title="close">×</button>' +
            '<h3 id="gm-panel-name">' + esc(p.name) + "</h3>" +
            '<div class="gm-chain">' + chainLinks(p.chain) + "</div>" +
            (dated ? '<div class="gm-dated" id="gm-panel-dated">边界日期 as of ' + esc(state.day) +
                     ": 此版本的边界与户数; 风险与上报只有今天的 — boundaries and households of that version; " +
                     "risk and reports exist for today only</div>" : "") +
            "<table>" +
            row("编码 code", '<span id="gm-panel-code">' + esc(p.code) + "</span>") +
            row("层级 level", esc(p.level) + (p.kind ? " (" + esc(p.kind) + ")" : "")) +
            row("户数 households", esc(p.households)) +
            row("人口 population", esc(p.population)) +
            (dated ? row("有效 valid", esc(when(p.valid_from, false)) + " – " +
                         esc(p.valid_to ? when(p.valid_to, false) : "now")) : "") +
            (dated ? "" :
              row("面积 area", esc(Math.round(p.area_m2).toLocaleString()) + " m²") +
              row("下级 children", esc(p.children)) +
              row("负责人 people", '<span id="gm-panel-people">' + people + "</span>") +
              riskRows(p.risk || {}) +
              row("待办上报 open reports", '<span id="gm-panel-reports">' + esc(p.reports.open) + "</span>")) +
            // folded: a grid of many units must not push the planner's buttons under the legend
            (floors ? row("楼栋单元楼层 floors", '<details id="gm-panel-floors"><summary>' +
              esc((p.shares || []).length) + " 栋 buildings</summary>" + floors + "</details>") : "") +
            "</table>" + (reports ? "<ul>" + reports + "</ul><small>时间 times: " + esc(cfg.timezone) +
                          "</small>" : "");
          mark("panel", p.code);
          if (gridmap.onSelect) gridmap.onSelect(p.code);
          // planners' edit tools (static/gridmap-edit.js) add their buttons to the panel
          if (!dated && window.gridmapEditPanel) window.gridmapEditPanel(panel, p, feature);
          // who serves the grid, its party organisation and the print-QR button (static/gridmap-people.js)
          if (!dated && window.gridmapPeoplePanel) window.gridmapPeoplePanel(panel, p);
          // and other scripts their sections (static/gridmap-events.js: the grid's cases, today's only)
          if (!dated) (window.gridmapPanelHooks || []).forEach(function (hook) { hook(panel, p); });
        })
        .catch(function (err) { panel.innerHTML = '<div class="gm-error">' + esc(err.message) + "</div>"; });
    }
    panel.addEventListener("click", function (e) {
      var t = e.target;
      if (t.classList.contains("gm-close")) { clearPanel(); mark("panel", ""); }
      if (t.dataset && t.dataset.code) { e.preventDefault(); flyToCode(t.dataset.code); }
    });
    L.DomEvent.disableClickPropagation(panel);
    L.DomEvent.disableScrollPropagation(panel);
    map.on("click", function (e) {
      // a planner drawing a line or a grid (Geoman's draw mode) clicks for vertices, not for panels
      if (map.pm && map.pm.globalDrawModeEnabled()) return;
      // other scripts may take a click first (static/gridmap-events.js: a case under the pointer)
      var taken = window.gridmapClickHook ? window.gridmapClickHook(e) : Promise.resolve(false);
      taken.then(function (done) {
        if (done) return;
        getJSON(cfg.api + "/lookup?" + q({lon: e.latlng.lng.toFixed(7), lat: e.latlng.lat.toFixed(7), crs: crs,
                                          at: state.at}))
          .then(function (res) {
            if (res.chain && res.chain.length) { showPanel(visibleLevel(res.chain).code); return; }
            var near = res.nearest;
            clearPanel('<h3 id="gm-panel-outside">不在任何网格内 outside every grid</h3>' +
                       (near ? "<div>最近的微网格 nearest micro-grid: " + esc(near.name || "") + " <small>" +
                               esc(near.code) + "</small>, " + esc(Math.round(near.distance_m)) + " m</div>" : ""));
            mark("panel", "outside");
          });
      });
    });

    /* ---- search: grid code, grid name or address ---- */
    var box = document.getElementById("gridmap-search");
    var input = box.querySelector("input"), list = box.querySelector("ul");
    var found = L.layerGroup().addTo(map);  // the searched address's building
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    function fly(hit) {
      var b = hit.bbox;
      list.innerHTML = "";
      found.clearLayers();
      if (hit.type === "address" && hit.point) {
        L.marker([hit.point[1], hit.point[0]], {title: hit.name}).addTo(found)
          .bindTooltip(esc(hit.name) + (hit.building ? " <small>" + esc(hit.building) + "</small>" : ""),
                       {permanent: true, direction: "top", offset: [0, -36], className: "gm-address-tip"});
        mark("address-marker", hit.point.join(","));
      }
      map.once("moveend", function () { mark("flown", hit.code); });
      map.flyToBounds([[b[1], b[0]], [b[3], b[2]]], {maxZoom: 17, duration: 0.6});
      showPanel(hit.code);
    }
    function flyToCode(code) {
      return getJSON(cfg.api + "/search?" + q({q: code, crs: crs, limit: 1})).then(function (res) {
        if (res.results.length) fly(res.results[0]);
      });
    }
    gridmap.flyToCode = flyToCode;
    function retired(hit) {
      var went = hit.successors || hit.went_to || [];
      return "<li class='gm-none gm-retired'><b>" + esc(hit.code) + "</b> 已撤销 retired on " +
        esc(when(hit.retired_at, true)) + " " + esc(cfg.timezone) +
        (went.length ? "; 区域划入 area went to " + went.map(function (c) {
          var code = c.code || c;
          return '<a href="#" data-code="' + esc(code) + '">' + esc(c.name || code) + "</a>";
        }).join(", ") : "") + "</li>";
    }
    function runSearch() {
      var text = input.value.trim();
      if (!text) return;
      found.clearLayers();
      getJSON(cfg.api + "/search?" + q({q: text, crs: crs})).then(function (res) {
        var live = res.results.filter(function (h) { return h.type !== "retired"; });
        var gone = res.results.filter(function (h) { return h.type === "retired"; });
        // a retired code typed whole is the answer, even when live grids (its old children) share its prefix
        var goneExact = gone.filter(function (h) { return h.code === text; });
        if (goneExact.length && !live.some(function (h) { return h.code === text; })) { live = []; gone = goneExact; }
        if (!live.length) {
          list.innerHTML = gone.length ? gone.map(retired).join("") : "<li class='gm-none'>没有结果 no match" +
            (res.address_error ? "<br><small>" + esc(res.address_error) + "</small>" : "") + "</li>";
          Array.prototype.forEach.call(list.querySelectorAll("a[data-code]"), function (a) {
            a.addEventListener("click", function (e) { e.preventDefault(); flyToCode(a.dataset.code); });
          });
          mark("search", gone.length ? "retired" : "none");
          return;
        }
        var exact = live[0].code === text || live.length === 1;
        if (exact) { fly(live[0]); return; }
        list.innerHTML = live.map(function (h, i) {
          return '<li data-i="' + i + '">' + esc(h.name) + " <small>" + esc(h.level) + " · " + esc(h.code) + "</small></li>";
        }).join("");
        Array.prototype.forEach.call(list.children, function (li) {
          li.addEventListener("click", function () { fly(live[+li.dataset.i]); });
        });
      }).catch(function (err) { list.innerHTML = "<li class='gm-none'>" + esc(err.message) + "</li>"; });
    }
    input.addEventListener("keydown", function (e) { if (e.key === "Enter") runSearch(); });
    box.querySelector("button").addEventListener("click", runSearch);

    /* ---- statistics panel (follows "boundaries as of") ---- */
    var stats = document.getElementById("gridmap-stats"), statsBody = stats.querySelector(".gm-body");
    L.DomEvent.disableClickPropagation(stats);
    L.DomEvent.disableScrollPropagation(stats);
    gridmap.loadStats = function () {
      var at = {at: state.at};
      return Promise.all([getJSON(cfg.api + "/stats?" + q(at)), getJSON(cfg.api + "/stats/micro-households?" + q(at)),
                          getJSON(cfg.api + "/risk/summary").catch(function () { return null; })])
        .then(function (res) {
          var s = res[0], h = res[1], r = res[2];
          state.firstValidFrom = s.first_valid_from;
          var rows = cfg.levels.map(function (d) {
            var v = s.levels[d.level] || {grids: 0};
            return "<tr><td>" + esc(d.label) + '</td><td class="n">' + esc(v.grids.toLocaleString()) + "</td></tr>";
          }).join("");
          var max = Math.max.apply(null, h.bins.map(function (b) { return b.grids; }).concat([1]));
          var bars = h.bins.map(function (b) {
            var band = b.from >= h.band[0] && b.from <= h.band[1];
            return '<div class="gm-bar' + (band ? " band" : "") + '" title="' + b.from + "–" + b.to + ": " + b.grids +
                   '" style="height:' + Math.max(1, Math.round(60 * b.grids / max)) + 'px"></div>';
          }).join("");
          var risk = "";
          if (r && r.by_colour) {
            risk = "<h4>风险要素 elements" + (state.at ? " <small>(今天 today)</small>" : "") + "</h4>" +
              ["red", "yellow", "blue"].map(function (c) {
                var overdue = r.overdue ? (r.overdue[c] || 0) : 0;
                return '<span class="gm-dot gm-' + c + '"></span>' + esc((r.by_colour[c] || 0).toLocaleString()) +
                       ' <small>(' + esc(overdue.toLocaleString()) + " overdue)</small>";
              }).join("<br>");
          }
          statsBody.innerHTML = "<h4>网格 grids <small>" + esc(state.day ? "as of " + state.day : "today") +
            "</small></h4><table>" + rows + "</table>" +
            "<h4>微网格户数 households per micro-grid</h4>" +
            '<div class="gm-hist">' + bars + "</div>" +
            '<div class="gm-hist-axis"><span>' + (h.bins.length ? h.bins[0].from : "") + '</span><span id="gm-band">' +
            "median " + esc(h.median || "–") + " · " + esc(h.in_band || 0) + "/" + esc(h.count) + " in " +
            esc(h.band[0]) + "–" + esc(h.band[1]) + "</span><span>" +
            (h.bins.length ? h.bins[h.bins.length - 1].to : "") + "</span></div>" + risk;
          mark("stats", "ready");
          return s;
        });
    };
    gridmap.loadStats();
    if (window.gridmapEventsInit) window.gridmapEventsInit(map, cfg, syncZoom);
    mark("ready", "1");
  };
})();
