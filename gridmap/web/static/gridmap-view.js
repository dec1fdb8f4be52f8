/* gridmap view habits of a web map: the view in the URL hash (share and restore it), grid names on the
 * map at each level's label zooms, collapsible statistics and legend, and "boundaries as of" a past
 * date, which every part of the page follows or says it does not. */
(function () {
  "use strict";

  var g = function () { return window.gridmap; };

  /* ---- the view in the URL: #map=ZOOM/LAT/LON&at=YYYY-MM-DD&grid=CODE ---- */
  function readHash() {
    var out = {};
    window.location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) out[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1));
    });
    return out;
  }
  function writeHash() {
    var gm = g(), map = gm.map, c = map.getCenter(), z = map.getZoom();
    var digits = Math.max(0, Math.ceil(Math.log(Math.pow(2, z)) / Math.LN10));  // ~1 px precision
    var parts = ["map=" + z + "/" + c.lat.toFixed(digits) + "/" + c.lng.toFixed(digits)];
    if (gm.state.day) parts.push("at=" + gm.state.day);
    if (gm.state.selected) parts.push("grid=" + encodeURIComponent(gm.state.selected));
    window.history.replaceState(null, "", "#" + parts.join("&"));
    gm.mark("hash", window.location.hash);
  }

  /* ---- grid names at each level's label zooms (levels.toml label_zooms) ---- */
  function labeller() {
    var gm = g(), map = gm.map, cfg = gm.cfg, layer = L.layerGroup().addTo(map), seq = 0;
    return function () {
      var z = map.getZoom(), b = map.getBounds(), mine = ++seq;
      var wanted = cfg.levels.filter(function (d) {
        return d.label_zooms && z >= d.label_zooms[0] && z <= d.label_zooms[1] && map.hasLayer(cfg.groups[d.level]);
      });
      var box = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(",");
      Promise.all(wanted.map(function (d) {
        return gm.getJSON(cfg.api + "/labels?" + gm.q({level: d.level, bbox: box, at: gm.state.at,
                                                        crs: cfg.basemap.crs}));
      })).then(function (res) {
        if (mine !== seq) return;
        layer.clearLayers();
        var n = 0;
        res.forEach(function (r) {
          r.labels.forEach(function (l) {
            n += 1;
            L.marker([l.lat, l.lon], {interactive: false, keyboard: false, icon: L.divIcon({
              className: "gm-label gm-label-" + r.level, html: "<span>" + gm.esc(l.name) + "</span>",
              iconSize: null})}).addTo(layer);
          });
        });
        gm.mark("labels", n);
        gm.mark("label-levels", wanted.map(function (d) { return d.level; }).join(","));
      }).catch(function () { /* names are a help; the map works without them */ });
    };
  }

  /* ---- collapsible boxes: closed at first on a small screen, the choice kept ---- */
  function collapsible(id) {
    var box = document.getElementById(id);
    if (!box) return;
    var head = box.querySelector(".gm-toggle"), key = "gridmap.collapsed." + id;
    var kept = null;
    try { kept = window.localStorage.getItem(key); } catch (e) { /* storage off */ }
    var small = window.innerWidth < 1200 || window.innerHeight < 720;  // e.g. a 1024×640 laptop
    var set = function (closed) {
      box.classList.toggle("gm-collapsed", closed);
      head.setAttribute("aria-expanded", String(!closed));
      g().mark("collapsed-" + id, closed ? "1" : "0");
    };
    set(kept === null ? small : kept === "1");
    head.addEventListener("click", function () {
      var closed = !box.classList.contains("gm-collapsed");
      set(closed);
      try { window.localStorage.setItem(key, closed ? "1" : "0"); } catch (e) { /* storage off */ }
    });
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
  }

  /* ---- boundaries as of a date, typed the local way (年-月-日) ---- */
  var DATE = /^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*$/;
  function parseDay(text) {
    var m = DATE.exec(text);
    if (!m) return null;
    var y = +m[1], mo = +m[2], d = +m[3], t = new Date(Date.UTC(y, mo - 1, d));
    if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d) return null;
    return y + "-" + String(mo).padStart(2, "0") + "-" + String(d).padStart(2, "0");
  }
  function note(html) {
    var el = document.querySelector("#gridmap-asof .gm-note");
    el.innerHTML = html;
    el.style.display = html ? "block" : "none";
  }
  /** Show the boundaries valid at the end of ``day`` (office zone); null: now. */
  function setDay(day) {
    var gm = g(), st = gm.state, cfg = gm.cfg;
    st.day = day;
    st.at = day ? day + "T23:59:59" + gm.zoneOffset(day, cfg.timezone) : null;
    // grid levels, their names and the risk shading's outlines follow the date
    var dated = {};
    cfg.levels.forEach(function (d) { dated[d.name] = true; });
    cfg.overlays.forEach(function (d) { if (d.source === "grid") dated[d.name] = true; });
    gm.setTileParams({at: st.at}, dated);
    gm.relabel();
    var stats = gm.loadStats();
    if (st.selected) gm.showPanel(st.selected);
    writeHash();
    gm.mark("asof", day || "now");
    if (!day) { note(""); return; }
    stats.then(function (s) {
      var first = s.first_valid_from ? gm.when(s.first_valid_from, false) : null;
      if (!first || day < first) {
        note("<b>" + gm.esc(day) + " 之前没有网格 no grids yet on this date</b>" +
             (first ? " — 最早的边界始于 the first boundaries begin " + gm.esc(first) : ""));
        gm.mark("asof-empty", "1");
        return;
      }
      gm.mark("asof-empty", "0");
      note("网格、名称、统计与面板按 " + gm.esc(day) + " — grids, names, statistics and panel as of that day. " +
           "<b>风险颜色、风险要素和上报仍为今天 risk colours, risk elements and reports are today's</b> " +
           "(no history is kept for them); search finds today's grids.");
    });
  }

  window.gridmapView = function () {
    var gm = g(), map = gm.map, holder = document.getElementById("gridmap-asof");
    gm.relabel = labeller();
    collapsible("gridmap-stats");
    collapsible("gridmap-legend");
    var input = holder.querySelector("input"), say = holder.querySelector(".gm-date-error");
    L.DomEvent.disableClickPropagation(holder);
    function apply() {
      var text = input.value.trim(), day = text ? parseDay(text) : null;
      if (text && !day) {
        say.textContent = "日期格式 date as 2024-03-01 (年-月-日)";
        gm.mark("asof", "invalid");
        return;
      }
      say.textContent = "";
      if (day) input.value = day;
      setDay(day);
    }
    input.addEventListener("change", apply);
    input.addEventListener("keydown", function (e) { if (e.key === "Enter") apply(); });

    var h = readHash(), view = /^(\d+)\/(-?[\d.]+)\/(-?[\d.]+)$/.exec(h.map || "");
    if (view) map.setView([+view[2], +view[3]], +view[1], {animate: false});
    else map.fitBounds(gm.cfg.fit, {animate: false});
    if (h.at && parseDay(h.at)) { input.value = parseDay(h.at); setDay(parseDay(h.at)); }
    if (h.grid) gm.showPanel(h.grid);
    gm.onSelect = writeHash;
    map.on("moveend", function () { writeHash(); gm.relabel(); });
    map.on("overlayadd overlayremove", gm.relabel);
    gm.relabel();
  };
})();
