/* The dispatchers' queue page: open cases below a grid by deadline, each with the actions the
 * viewer's role may take.  The token is the one the map page keeps (gridmap.token: for this tab in
 * sessionStorage, or on this computer in localStorage); one pasted here is kept for this tab. */
(function () {
  "use strict";
  var TOKEN_KEY = "gridmap.token", NEEDS_DEPARTMENT = {dispatch: true, reassign: true};
  var api = document.body.dataset.api, page = 1;
  var form = document.getElementById("gm-queue-filter"), body = document.querySelector("#gm-queue tbody");
  var summary = document.getElementById("gm-queue-summary"), tokenBox = document.getElementById("gm-queue-token");

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function token() {
    var found = "";
    ["sessionStorage", "localStorage"].some(function (name) {
      try { found = window[name].getItem(TOKEN_KEY) || ""; } catch (e) { /* storage off */ }
      return found;
    });
    return found;
  }
  function headers(extra) {
    var h = Object.assign({}, extra || {}), t = token();
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }
  function mark(name, value) { document.body.setAttribute("data-" + name, value); }
  function askToken(message) {
    tokenBox.hidden = false;
    tokenBox.querySelector("small").textContent = message;
    mark("queue", "token");
  }
  tokenBox.querySelector("button").addEventListener("click", function () {
    var v = tokenBox.querySelector("input").value.trim();
    if (!v) return;
    try { sessionStorage.setItem(TOKEN_KEY, v); } catch (e) { /* storage off: this page only */ }
    tokenBox.hidden = true;
    load();
  });

  function query() {
    var data = new FormData(form), out = [];
    data.forEach(function (v, k) { if (v) out.push(encodeURIComponent(k) + "=" + encodeURIComponent(v)); });
    out.push("page=" + page, "page_size=50");
    return out.join("&");
  }

  function row(c) {
    var due = (c.due_at || "").slice(0, 16).replace("T", " ");
    var actions = (c.actions || []).map(function (a) {
      return '<button type="button" data-id="' + esc(c.id) + '" data-action="' + esc(a) + '">' + esc(a) + "</button>";
    }).join("");
    return '<tr data-case="' + esc(c.id) + '"' + (c.overdue ? ' class="overdue"' : "") + "><td>" + esc(c.id) +
      "</td><td>" + esc(c.matter_code) + " " + esc(c.matter_name) + '</td><td class="state">' + esc(c.state) +
      "</td><td>" + esc(due) + (c.overdue ? ' <span class="gm-badge overdue">超时 overdue</span>' : "") +
      "</td><td>" + esc(c.micro_code || (c.outside ? "网格外 outside" : "")) + "</td><td>" +
      esc(c.department_code || c.assignee || "") + '</td><td class="gm-case-actions">' + actions +
      (actions ? '<input class="note" placeholder="说明 note"><input class="department" placeholder="部门 department">' : "") +
      '<span class="gm-error"></span></td></tr>';
  }

  function load() {
    return fetch(api + "?" + query(), {headers: headers()}).then(function (r) {
      return r.json().then(function (res) {
        if (r.status === 401 || r.status === 403) { askToken(res.error.message); body.innerHTML = ""; return; }
        if (!r.ok) { summary.textContent = res.error.message; mark("queue", "error"); return; }
        body.innerHTML = res.cases.map(row).join("");
        summary.textContent = res.total + " 件待办 open cases" + (res.grid ? " · " + res.grid : "") +
          " · 时间 times in " + res.time_zone;
        document.querySelector("#gm-queue-pager span").textContent = res.page + " / " +
          Math.max(1, Math.ceil(res.total / res.page_size));
        mark("queue", String(res.total));
      });
    });
  }

  body.addEventListener("click", function (e) {
    var b = e.target;
    if (!b.dataset || !b.dataset.action) return;
    var tr = b.closest("tr"), payload = {note: tr.querySelector(".note").value};
    if (NEEDS_DEPARTMENT[b.dataset.action]) payload.department = tr.querySelector(".department").value;
    fetch(api + "/" + b.dataset.id + "/" + b.dataset.action, {
      method: "POST", body: JSON.stringify(payload), headers: headers({"Content-Type": "application/json"})
    }).then(function (r) {
      return r.json().then(function (res) {
        if (!r.ok) {
          tr.querySelector(".gm-error").textContent = res.error.message;
          mark("queue-action", "refused");
          return;
        }
        mark("queue-action", b.dataset.action + ":" + res.state);
        return load();
      });
    });
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); page = 1; load(); });
  document.getElementById("gm-queue-pager").addEventListener("click", function (e) {
    if (!e.target.dataset.page) return;
    page = Math.max(1, page + Number(e.target.dataset.page));
    load();
  });
  var params = new URLSearchParams(location.search);
  params.forEach(function (v, k) { if (form.elements[k]) form.elements[k].value = v; });
  load();
})();
