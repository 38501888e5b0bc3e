// A graduation-day run's page follows the run: every 2 s it reads the run's
// counts and moves the progress bar; when the run finishes it reloads once
// to list the graduates not issued. No framework.
(function () {
  "use strict";
  var run = document.getElementById("run");
  if (!run || run.dataset.finished === "true") { return; }
  var bar = document.getElementById("progress");
  function set(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== text) { el.textContent = text; }
  }
  function refresh() {
    fetch("/admin/graduation/" + run.dataset.run + "/progress", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (p) {
        bar.max = Math.max(p.total, 1);
        bar.value = p.issued + p.failed;
        bar.textContent = (p.issued + p.failed) + " / " + p.total;
        set("issued", String(p.issued));
        set("total", String(p.total));
        set("count-issued", String(p.issued));
        set("count-pending", String(p.pending));
        set("count-failed", String(p.failed));
        set("count-no-account", String(p.no_account));
        if (p.finished) { window.location.reload(); return; }
        window.setTimeout(refresh, 2000);
      })
      .catch(function () { window.setTimeout(refresh, 5000); });
  }
  window.setTimeout(refresh, 1000);
})();
