// The map panel's people (issue 13): who serves the grid and its party organisation, read with the
// user's token (names are personal data: without a viewer token the panel says so), and a button that
// prints the grid's QR code (dispatcher and above).  Called by gridmap.js after it fills the panel.
(function () {
  "use strict";
  function fetchWith(url) {
    return fetch(url, {headers: window.gridmap.authHeaders()}).then(function (r) {
      if (r.ok) return r;
      return r.json().then(function (b) { throw new Error((b.error && b.error.message) || r.statusText); },
                           function () { throw new Error(r.statusText); });
    });
  }
  window.gridmapPeoplePanel = function (panel, p) {
    var esc = window.gridmap.esc, api = window.gridmap.cfg.api;
    var cell = panel.querySelector("#gm-panel-people");
    if (!cell) return;
    if (!window.gridmap.token()) {
      cell.innerHTML = "<small>需要查看令牌 / a viewer token shows who serves here</small>";
    } else {
      fetchWith(api + "/grids/" + encodeURIComponent(p.code) + "/people").then(function (r) { return r.json(); })
        .then(function (body) {
          var people = body.posts.map(function (m) {
            return esc(m.name) + " <small>" + esc(m.role_label) + (m.phone ? " · " + esc(m.phone) : "") + "</small>";
          });
          var orgs = body.organisations.slice(0, 2).map(function (o) {
            return esc(o.name) + " <small>" + esc(o.kind_label) + "</small>";
          });
          cell.innerHTML = (people.join("<br>") || "<b class='gm-gap'>无网格员 no one</b>") +
            (orgs.length ? "<br>" + orgs.join("<br>") : "");
          window.gridmap.mark("people", String(body.posts.length));
        })
        .catch(function (err) { cell.innerHTML = "<small>" + esc(err.message) + "</small>"; });
    }
    var button = document.createElement("button");
    button.type = "button";
    button.id = "gm-print-qr";
    button.textContent = "打印二维码 print QR";
    button.addEventListener("click", function () {
      var win = window.open("", "_blank");
      fetchWith(api + "/qr/" + encodeURIComponent(p.code) + "?kind=g&format=svg")
        .then(function (r) { return r.blob(); })
        .then(function (blob) {
          var url = URL.createObjectURL(blob);
          if (win) win.location.href = url; else window.location.href = url;
          window.gridmap.mark("qr", p.code);
        })
        .catch(function (err) { if (win) win.close(); window.alert(err.message); });
    });
    panel.appendChild(button);
  };
})();
