/* gridmap planners' tools on the one map: redraw or split the grid in the info panel (Leaflet-Geoman,
 * served by the app), preview the impact, and commit with the version the panel showed (If-Match).
 * Shown to planners and admins signed in (static/gridmap-auth.js); every edit goes to
 * POST /api/v1/edits, which checks it exactly like the CLI and OGC API do and decides who may edit. */
(function () {
  "use strict";

  var g = function () { return window.gridmap; };
  var edit = {layer: null, problems: null, pending: null};

  function post(body, version) {
    var headers = Object.assign({"Content-Type": "application/json"}, g().authHeaders());
    if (version) headers["If-Match"] = version;
    return fetch(g().cfg.api + "/edits", {method: "POST", headers: headers, body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (b) { return {status: r.status, body: b}; }); });
  }

  function clear() {
    var map = g().map;
    if (edit.layer) { edit.layer.pm && edit.layer.pm.disable(); map.removeLayer(edit.layer); }
    if (edit.problems) map.removeLayer(edit.problems);
    map.pm.disableDraw();
    edit.layer = edit.problems = edit.pending = null;
  }

  function box(panel) {
    var out = panel.querySelector(".gm-edit-out");
    if (!out) {
      out = document.createElement("div");
      out.className = "gm-edit-out";
      panel.appendChild(out);
    }
    return out;
  }

  function showReport(out, status, body, onCommit) {
    var esc = g().esc;
    if (status === 422 || status >= 400) {
      var err = body.error || {};
      var problems = (err.detail && err.detail.problems) || [];
      if (problems.length) {
        edit.problems = L.geoJSON({type: "FeatureCollection", features: problems.filter(function (p) {
          return p.geometry; }).map(function (p) { return {type: "Feature", geometry: p.geometry, properties: p}; })},
          {style: {color: "#b00020", weight: 2, fillColor: "#ff1744", fillOpacity: 0.5}}).addTo(g().map);
      }
      out.innerHTML = '<div class="gm-error">' + esc(err.message || status) + "</div>" +
        (problems.length ? "<ul>" + problems.map(function (p) {
          return "<li>" + esc(p.message) + "</li>"; }).join("") + "</ul>" : "");
      g().mark("edit", "rejected");
      return;
    }
    var rows = Object.keys(body.grids.before).concat(Object.keys(body.grids.after).filter(function (c) {
      return !(c in body.grids.before); })).map(function (c) {
      var b = body.grids.before[c], a = body.grids.after[c];
      return "<tr><td>" + esc(c) + "</td><td>" + (b ? esc(b.households) : "–") + " → " + (a ? esc(a.households) : "retired") +
        "</td></tr>";
    }).join("");
    var moved = Object.keys(body.moved).map(function (k) { return esc(body.moved[k].count) + " " + esc(k.replace("_", " ")); })
      .join(", ");
    out.innerHTML = "<b>" + (body.dry_run ? "预览 preview" : "已提交 committed") + "</b>" +
      "<table>" + rows + "</table><small>换网格 changing grid: " + moved + "</small>" +
      (body.out_of_band.length ? '<div class="gm-error">out of 50–70: ' + esc(body.out_of_band.join(", ")) + "</div>" : "") +
      (body.dry_run ? '<div><input class="gm-reason" placeholder="原因 reason"> <button type="button" class="gm-commit">提交 commit</button></div>' : "");
    g().mark("edit", body.dry_run ? "previewed" : "committed");
    var button = out.querySelector(".gm-commit");
    if (button) button.addEventListener("click", function () { onCommit(out.querySelector(".gm-reason").value); });
  }

  function run(panel, op, version, done) {
    var out = box(panel);
    out.innerHTML = "…";
    var body = Object.assign({crs: g().cfg.basemap.crs, dry_run: true}, op);
    if (edit.problems) { g().map.removeLayer(edit.problems); edit.problems = null; }
    post(body).then(function (res) {
      showReport(out, res.status, res.body, function (reason) {
        post(Object.assign({}, body, {dry_run: false, reason: reason || null}), version).then(function (res2) {
          showReport(out, res2.status, res2.body);
          if (res2.status === 201) { clear(); g().refreshTiles(); done(res2.body); }
        });
      });
    });
  }

  window.gridmapEditPanel = function (panel, props, feature) {
    // after a commit, open the panel of the first grid the edit made (the edited one may be retired)
    var refresh = function (report) { g().showPanel(report.opened[0] || props.code); };
    if (props.level === undefined) return;
    var auth = window.gridmapAuth;
    if (!auth || !auth.token()) return;
    // the role is known once the sign-in check is back (a panel opened from the URL may come first)
    (auth.me ? Promise.resolve(auth.me) : auth.ready).then(function () {
      if (auth.mayEdit() && g().state.selected === props.code) tools(panel, props, feature, refresh);
    });
  };

  function tools(panel, props, feature, refresh) {
    clear();
    var bar = document.createElement("div");
    bar.className = "gm-edit";
    bar.innerHTML = '<button type="button" class="gm-redraw">重绘 redraw</button> ' +
      '<button type="button" class="gm-split">分割 split</button> ' +
      '<input class="gm-gap" placeholder="让出面积给 gap to (code)" size="16">';
    panel.appendChild(bar);
    var gap = bar.querySelector(".gm-gap");
    bar.querySelector(".gm-redraw").addEventListener("click", function () {
      clear();
      edit.layer = L.geoJSON(feature, {style: {color: "#ff6d00", weight: 3, fillOpacity: 0.1}}).addTo(g().map);
      edit.layer.eachLayer(function (l) { l.pm.enable({allowSelfIntersection: false}); });
      var go = document.createElement("button");
      go.type = "button";
      go.className = "gm-preview";
      go.textContent = "预览 preview";
      bar.appendChild(go);
      go.addEventListener("click", function () {
        var geometry = edit.layer.toGeoJSON().features[0].geometry;
        run(panel, {op: "replace", code: props.code, geometry: geometry, gap_to: gap.value.trim() || null},
            props.version, refresh);
      });
      g().mark("edit", "drawing");
    });
    bar.querySelector(".gm-split").addEventListener("click", function () {
      clear();
      var map = g().map;
      map.pm.enableDraw("Line", {snappable: true});
      map.once("pm:create", function (e) {
        edit.layer = e.layer;
        map.pm.disableDraw();
        run(panel, {op: "split", code: props.code, line: e.layer.toGeoJSON().geometry}, props.version, refresh);
      });
      g().mark("edit", "drawing");
    });
    g().mark("edit-tools", "shown");
  }
})();
