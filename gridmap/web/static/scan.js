// The scanned QR page: call buttons ask the server for one number each, the report form posts as
// multipart and says clearly what happened.  Plain script, no library: the whole page stays small.
(function () {
  "use strict";
  var cfg = window.GRIDMAP_SCAN;
  function show(el, text, ok) {
    el.textContent = text;
    el.className = "msg " + (ok ? "ok" : "err");
    el.hidden = false;
  }
  function errorText(body, status) {
    if (body && body.error && body.error.message) return body.error.message;
    return "提交失败（" + status + "），请稍后再试 / failed, please try again";
  }

  document.querySelectorAll("button.call").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var msg = document.getElementById("call-msg");
      btn.disabled = true;
      fetch(cfg.call_url + "&post=" + encodeURIComponent(btn.dataset.post), {method: "POST"})
        .then(function (r) { return r.json().then(function (b) { return {ok: r.ok, status: r.status, body: b}; }); })
        .then(function (res) {
          btn.disabled = false;
          if (!res.ok) { show(msg, errorText(res.body, res.status), false); return; }
          window.location.href = res.body.tel;
        })
        .catch(function () { btn.disabled = false; show(msg, "网络异常 / network error", false); });
    });
  });

  var form = document.getElementById("report");
  var msg = document.getElementById("report-msg");
  var useLoc = document.getElementById("use-location");
  useLoc.addEventListener("change", function () {
    document.getElementById("lon").value = "";
    document.getElementById("lat").value = "";
    if (!useLoc.checked) return;
    if (!navigator.geolocation) { show(msg, "此手机不能提供位置，将使用网格位置 / no location: the grid's is used", false); useLoc.checked = false; return; }
    navigator.geolocation.getCurrentPosition(function (pos) {
      document.getElementById("lon").value = pos.coords.longitude.toFixed(6);
      document.getElementById("lat").value = pos.coords.latitude.toFixed(6);
    }, function () {
      useLoc.checked = false;
      show(msg, "未获得位置，将使用网格位置 / location refused: the grid's is used", false);
    }, {enableHighAccuracy: true, timeout: 10000});
  });

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = document.getElementById("text").value.trim();
    if (text.length < cfg.min_text) { show(msg, "请写下要反映的问题 / please describe the problem", false); return; }
    var matter = document.getElementById("matter");
    if (matter && !matter.value) { show(msg, "请选择事项 / choose what the report is about", false); return; }
    var photo = document.getElementById("photo").files[0];
    if (photo && photo.size > cfg.max_photo) {
      show(msg, "照片太大 / the photo is larger than " + Math.round(cfg.max_photo / 1048576) + " MB", false);
      return;
    }
    var button = document.getElementById("submit");
    button.disabled = true;
    fetch(form.action, {method: "POST", body: new FormData(form), headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (b) { return {ok: r.ok, status: r.status, body: b}; }); })
      .then(function (res) {
        button.disabled = false;
        if (!res.ok) { show(msg, errorText(res.body, res.status), false); return; }
        form.reset();
        show(msg, "已提交，编号 " + res.body.id + "，网格员会尽快处理。 / Sent: case " + res.body.id + ".", true);
      })
      .catch(function () { button.disabled = false; show(msg, "网络异常，未提交 / network error: not sent", false); });
  });
})();
