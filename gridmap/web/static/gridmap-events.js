/* gridmap one map: the event centre's open cases as a vector-tile layer (coloured by state, overdue
 * ones outlined), the case panel (timeline with photos, the actions the viewer's role may take), and
 * the open cases of a grid in the grid panel.  Loaded after gridmap.js, which calls
 * gridmapEventsInit when the map is ready. */
(function () {
  "use strict";

  var STATE_COLOURS = {reported: "#e67e22", filed: "#e67e22", reopen_requested: "#e67e22", dispatched: "#2980b9",
                       suspended: "#7f8c8d", disposed: "#27ae60", verified: "#27ae60", split_up: "#8e44ad"};
  var STATE_LABELS = {reported: "发现", filed: "立案 · 待派遣", dispatched: "派遣 · 处置中", suspended: "挂起",
                      disposed: "处置完毕 · 待核查", verified: "核查通过", closed: "结案", assessed: "考核",
                      reopen_requested: "申请重办", split_up: "已拆分", merged: "已合并", cancelled: "已撤销"};
  var NEEDS_DEPARTMENT = {dispatch: true, reassign: true};

  function caseStyle(d) {
    return function (p) {
      var clock = p.clock, overdue = clock === "overdue";
      return {radius: overdue ? d.radius + 2 : d.radius, fill: true, fillColor: STATE_COLOURS[p.state] || "#34495e",
              fillOpacity: 0.9, stroke: true, weight: overdue ? 3 : clock === "warning" ? 2 : 1,
              color: overdue ? "#c0392b" : clock === "warning" ? "#e67e22" : "#ffffff"};
    };
  }

  window.gridmapEventsInit = function (map, cfg, syncZoom) {
    var gm = window.gridmap, esc = gm.esc, panel = document.getElementById("gridmap-panel");
    var defs = cfg.overlays.filter(function (d) { return d.source === "case"; });
    defs.forEach(function (d) { gm.tileLayer(d, caseStyle(d)); });
    syncZoom();

    /* a click within a few pixels of an open case opens the case (the server finds it: VectorGrid's
     * own hit-testing does not work with this Leaflet), anywhere else the grid panel as before */
    window.gridmapClickHook = function (e) {
      var d = defs[0];
      if (!d || map.getZoom() < d.min_zoom || !map.hasLayer(cfg.groups[d.name])) return Promise.resolve(false);
      var p = map.latLngToContainerPoint(e.latlng);
      var edge = map.containerPointToLatLng([p.x + d.radius + 4, p.y]);
      var metres = Math.max(1, map.distance(e.latlng, edge));
      return gm.getJSON(cfg.api + "/events/near?" + gm.q({lon: e.latlng.lng.toFixed(7), lat: e.latlng.lat.toFixed(7),
                                                          radius_m: metres.toFixed(1), crs: cfg.basemap.crs}))
        .then(function (res) {
          if (!res.id) return false;
          showCase(res.id);
          return true;
        })
        .catch(function () { return false; });
    };

    function photo(m, caseId) {
      if (m.url) return '<a href="' + esc(m.url) + '" target="_blank" rel="noopener">' + esc(m.stage) + " 照片</a>";
      if (!m.file) return "";
      var id = "gm-photo-" + m.id;
      fetch(cfg.api + "/events/" + caseId + "/media/" + m.id, {headers: gm.authHeaders()})
        .then(function (r) { return r.ok ? r.blob() : null; })
        .then(function (b) {
          var el = document.getElementById(id);
          if (b && el) el.innerHTML = '<img alt="' + esc(m.stage) + '" src="' + URL.createObjectURL(b) + '">';
        });
      return '<span id="' + id + '">' + esc(m.stage) + " 照片</span>";
    }

    function showCase(id) {
      panel.classList.add("open");
      panel.innerHTML = '<div class="gm-loading">…</div>';
      return gm.getJSON(cfg.api + "/events/" + id).then(function (c) {
        var clock = c.status !== "open" ? "" : c.paused_at ? "paused" : c.overdue ? "overdue" : "on_time";
        var timeline = c.timeline.map(function (e) {
          return "<li><b>" + esc(e.action) + "</b> " + esc(e.from_state || "") + " → " + esc(e.to_state || "") +
                 "<br><small>" + esc((e.at || "").slice(0, 16).replace("T", " ")) + " · " + esc(e.actor || e.role) +
                 (e.note ? " · " + esc(e.note) : "") + "</small>" +
                 (e.media || []).map(function (m) { return photo(m, c.id); }).join("") + "</li>";
        }).join("");
        var buttons = (c.actions || []).map(function (a) {
          return '<button type="button" data-action="' + esc(a) + '">' + esc(a) + "</button>";
        }).join("");
        panel.innerHTML =
          '<button class="gm-close" title="close">×</button>' +
          "<h3>事件 #" + esc(c.id) + " " + esc(c.matter_name || c.matter_code) + "</h3>" +
          "<table>" +
          "<tr><th>状态 state</th><td id=\"gm-case-state\">" + esc(STATE_LABELS[c.state] || c.state) +
          (clock ? ' <span class="gm-badge ' + clock + '">' + clock + "</span>" : "") + "</td></tr>" +
          "<tr><th>时限 due</th><td>" + esc((c.due_at || "–").replace("T", " ")) + " <small>" + esc(c.time_zone) +
          "</small></td></tr>" +
          "<tr><th>层级 level</th><td>" + esc(c.handling_level || "") + " " + esc(c.department_code || c.assignee || "") +
          "</td></tr>" +
          "<tr><th>网格 grid</th><td>" + esc(c.micro_code || (c.outside ? "网格外 outside" : "")) + "</td></tr>" +
          "<tr><th>派遣依据 why</th><td><small>" + esc((c.route || {}).why || "") + "</small></td></tr>" +
          (c.text ? "<tr><th>内容 text</th><td>" + esc(c.text) + "</td></tr>" : "") +
          "</table>" +
          "<h4>流程 timeline</h4><ul class=\"gm-timeline\">" + timeline + "</ul>" +
          (buttons ? '<div class="gm-case-actions"><h4>操作 actions</h4>' + buttons +
                     '<input class="gm-case-note" placeholder="说明 note">' +
                     '<input class="gm-case-department" placeholder="部门编码 department (dispatch, reassign)">' +
                     '<div class="gm-case-error gm-error"></div></div>' : "");
        gm.mark("case", String(c.id));
        gm.mark("case-log", String(c.timeline.length));
        panel.querySelectorAll("[data-action]").forEach(function (b) {
          b.addEventListener("click", function () { act(c, b.dataset.action); });
        });
      }).catch(function (err) { panel.innerHTML = '<div class="gm-error">' + esc(err.message) + "</div>"; });
    }
    gm.showCase = showCase;

    function act(c, action) {
      var body = {version: c.version, note: panel.querySelector(".gm-case-note").value};
      if (NEEDS_DEPARTMENT[action]) body.department = panel.querySelector(".gm-case-department").value;
      fetch(cfg.api + "/events/" + c.id + "/" + action, {
        method: "POST", body: JSON.stringify(body),
        headers: Object.assign({"Content-Type": "application/json"}, gm.authHeaders())
      }).then(function (r) {
        return r.json().then(function (res) {
          if (!r.ok) throw new Error((res.error && res.error.message) || r.statusText);
          gm.mark("case-action", action + ":" + res.state);
          gm.refreshTiles();
          return showCase(c.id);
        });
      }).catch(function (err) {
        var box = panel.querySelector(".gm-case-error");
        if (box) box.textContent = err.message;
        gm.mark("case-action", "refused");
      });
    }

    /* the statistics box: the event centre's figures for the whole city (assessment, 考核) */
    function addStats() {
      if (document.body.getAttribute("data-stats") !== "ready") { setTimeout(addStats, 200); return; }
      gm.getJSON(cfg.api + "/events/stats?group=district").then(function (res) {
        var t = {cases: 0, open: 0, overdue: 0, closed: 0, onTime: 0, sat: 0, rated: 0};
        res.rows.forEach(function (r) {
          t.cases += r.cases; t.open += r.open; t.overdue += r.overdue; t.closed += r.closed;
          t.onTime += (r.on_time_rate || 0) * r.closed;
          if (r.satisfaction != null) { t.sat += r.satisfaction * r.cases; t.rated += r.cases; }
        });
        var pct = t.closed ? Math.round(100 * t.onTime / t.closed) + "%" : "–";
        var box = document.createElement("div");
        box.id = "gridmap-event-stats";
        box.innerHTML = "<h4>事件 cases</h4>" + esc(t.cases.toLocaleString()) + " · 待办 open " +
          esc(t.open.toLocaleString()) + ' · <span class="gm-badge overdue">超时 ' + esc(t.overdue.toLocaleString()) +
          "</span><br>按时办结 on time " + esc(pct) + " · 满意度 satisfaction " +
          esc(t.rated ? (t.sat / t.rated).toFixed(2) : "–") + ' · <a href="/events">派遣 queue</a>';
        document.getElementById("gridmap-stats").appendChild(box);
        gm.mark("event-stats", String(t.cases));
      }).catch(function () { /* reads need a token and none was given: the map asks for it already */ });
    }
    addStats();

    /* the grid panel lists the grid's open cases, at its end and only when it has some, for the event
     * centre's roles (without a token nothing is asked: the queue is not a public read) */
    window.gridmapPanelHooks = window.gridmapPanelHooks || [];
    window.gridmapPanelHooks.push(function (gridPanel, p) {
      if (!gm.token()) return;
      fetch(cfg.api + "/events?" + gm.q({grid: p.code, page_size: 10}), {headers: gm.authHeaders()})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (page) {
          if (!page || !page.total || gm.state.selected !== p.code) return;
          var items = page.cases.map(function (c) {
            return '<li><a href="#" data-case="' + esc(c.id) + '">#' + esc(c.id) + " " + esc(c.matter_name) + "</a> " +
                   '<small>' + esc(STATE_LABELS[c.state] || c.state) + (c.overdue ? ' <span class="gm-badge overdue">overdue</span>' : "") +
                   "</small></li>";
          }).join("");
          var section = document.createElement("div");
          section.className = "gm-grid-cases";
          section.innerHTML = "<h4>事件 open cases (" + esc(page.total) + ")</h4><ul>" + items + "</ul>";
          gridPanel.appendChild(section);
          section.addEventListener("click", function (e) {
            if (e.target.dataset && e.target.dataset.case) { e.preventDefault(); showCase(e.target.dataset.case); }
          });
          gm.mark("grid-cases", String(page.total));
        });
    });
  };
})();
