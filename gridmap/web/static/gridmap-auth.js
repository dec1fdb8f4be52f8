/* gridmap sign-in on the map page: a token, or a user name and password (POST /api/v1/session gives an
 * expiring token).  The token is kept for this tab (sessionStorage), or on this computer
 * (localStorage) when "keep me signed in" is ticked, and sent as a Bearer header on every API and
 * tile request.  The page shows who is signed in and the role; the edit tools appear for planners.
 * The server still checks every request: hiding a button is a courtesy, not a permission. */
(function () {
  "use strict";

  var KEY = "gridmap.token", HOW = "gridmap.signin";
  var stores = function () {
    var out = [];
    try { out.push(window.sessionStorage); } catch (e) { /* storage off */ }
    try { out.push(window.localStorage); } catch (e) { /* storage off */ }
    return out;
  };

  var auth = window.gridmapAuth = {
    me: null,
    ready: Promise.resolve(null),
    token: function () {
      var found = "";
      stores().some(function (s) { found = s.getItem(KEY) || ""; return found; });
      return found;
    },
    headers: function () { var t = auth.token(); return t ? {Authorization: "Bearer " + t} : {}; },
    /** Keep ``token`` (``remember``: on this computer, else for this tab); ``how``: "password" or "token". */
    keep: function (token, remember, how) {
      auth.forget();
      var s = stores()[remember ? 1 : 0] || stores()[0];
      if (!s) return;
      s.setItem(KEY, token);
      s.setItem(HOW, how);
    },
    forget: function () { stores().forEach(function (s) { s.removeItem(KEY); s.removeItem(HOW); }); },
    how: function () {
      var found = "";
      stores().some(function (s) { found = s.getItem(HOW) || ""; return found; });
      return found;
    },
    /** Whether the signed-in user may change grids (planner or admin). */
    mayEdit: function () { return !!(auth.me && auth.me.may_edit); }
  };

  function esc(s) { return window.gridmap ? window.gridmap.esc(s) : String(s); }
  function mark(name, value) { document.body.setAttribute("data-" + name, value); }
  function json(r) { return r.json().then(function (b) { return {status: r.status, body: b}; }, function () {
    return {status: r.status, body: {}}; }); }
  function api() { return window.gridmap.cfg.api; }

  /** Who the kept token belongs to (GET /api/v1/session); a refused token is forgotten, with the reason. */
  auth.check = function () {
    if (!auth.token()) { render(); auth.ready = Promise.resolve(null); return auth.ready; }
    auth.ready = fetch(api() + "/session", {headers: auth.headers()}).then(json).then(function (res) {
      if (res.status === 200) { auth.me = res.body; render(); return auth.me; }
      auth.forget();
      auth.me = null;
      render();
      open((res.body.error && res.body.error.message) || "signed out");
      return null;
    });
    return auth.ready;
  };

  function render() {
    var box = document.getElementById("gridmap-user");
    if (!box) return;
    if (auth.me) {
      box.innerHTML = '<span class="gm-who">' + esc(auth.me.name) + ' <small class="gm-role">' + esc(auth.me.role) +
        "</small></span> <button type=\"button\" class=\"gm-signout\">退出 sign out</button>";
      box.querySelector(".gm-signout").addEventListener("click", signOut);
      mark("signed-in", auth.me.role);
    } else {
      box.innerHTML = '<button type="button" class="gm-signin-open">登录 sign in</button>';
      box.querySelector(".gm-signin-open").addEventListener("click", function () { open(""); });
      mark("signed-in", "");
    }
  }

  function signOut() {
    var done = function () {
      auth.forget();
      auth.me = null;
      window.location.reload();  // every layer and panel again, without the token
    };
    // a token from a password sign-in is revoked on the server; a pasted API token is only forgotten here
    if (auth.how() === "password") {
      fetch(api() + "/session", {method: "DELETE", headers: auth.headers()}).then(done, done);
    } else {
      done();
    }
  }

  /** The sign-in form (``message``: why it opened, e.g. the server's 401). */
  function open(message) {
    var form = document.getElementById("gridmap-signin");
    if (form) { form.querySelector(".gm-signin-msg").textContent = message || ""; return; }
    form = document.createElement("form");
    form.id = "gridmap-signin";
    form.className = "gm-box";
    form.innerHTML =
      '<button type="button" class="gm-close" title="close">×</button><b>登录 sign in</b>' +
      '<div class="gm-signin-msg gm-error"></div>' +
      '<label>用户名 user name<input name="name" autocomplete="username"></label>' +
      '<label>密码 password<input name="password" type="password" autocomplete="current-password"></label>' +
      '<div class="gm-or">或 or</div>' +
      '<label>访问令牌 API token<input name="token" type="password" autocomplete="off" placeholder="gm_…"></label>' +
      '<label class="gm-remember"><input name="remember" type="checkbox"> 在此电脑保持登录 keep me signed in on this computer</label>' +
      '<button type="submit">登录 sign in</button>';
    form.querySelector(".gm-signin-msg").textContent = message || "";
    document.body.appendChild(form);
    form.querySelector(".gm-close").addEventListener("click", function () { form.remove(); });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var f = form.elements, remember = f.remember.checked, say = form.querySelector(".gm-signin-msg");
      var token = f.token.value.trim();
      var attempt = token
        ? fetch(api() + "/session", {headers: {Authorization: "Bearer " + token}}).then(json).then(function (res) {
            return res.status === 200 ? {token: token, how: "token"} : Promise.reject(res);
          })
        : fetch(api() + "/session", {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify({name: f.name.value.trim(), password: f.password.value})})
            .then(json).then(function (res) {
              return res.status === 201 ? {token: res.body.token, how: "password"} : Promise.reject(res);
            });
      attempt.then(function (ok) {
        auth.keep(ok.token, remember, ok.how);
        window.location.reload();  // tiles and panels again, now with the token
      }, function (res) {
        say.textContent = (res.body && res.body.error && res.body.error.message) || String(res);
        mark("signin", "refused");
      });
    });
    mark("signin", "open");
  }
  auth.open = open;
})();
