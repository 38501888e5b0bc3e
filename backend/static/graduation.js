// A graduation-day run's page follows the run: every 2 s it reads the
// run's counts and the graduates not issued, moves the progress bar and
// rewrites the lists in place; the status line says when it has finished
// (no reload: the reader's place and focus stay). No framework.
(function () {
  "use strict";
  var run = document.getElementById("run");
  if (!run || run.dataset.finished === "true") { return; }
  var bar = document.getElementById("progress");
  var status = document.getElementById("run-status");
  var section = document.getElementById("not-issued-section");
  var body = document.querySelector("#not-issued tbody");
  function set(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== text) { el.textContent = text; }
  }
  // the status line: Japanese, then English marked as such
  function say(ja, en) {
    status.textContent = ja + " ";
    var span = document.createElement("span");
    span.className = "en";
    span.lang = "en";
    span.textContent = en;
    status.appendChild(span);
  }
  function list(rows) {
    var fresh = document.createDocumentFragment();
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      [r.student_no, r.why].forEach(function (text) {
        var td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      fresh.appendChild(tr);
    });
    body.replaceChildren(fresh);
    section.hidden = rows.length === 0;
  }
  function refresh() {
    fetch("/admin/graduation/" + run.dataset.run + "/progress", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        // the session ended (the panel's login answers instead): say so, stop asking
        if (r.redirected || r.status === 401 || r.status === 403) {
          say("ログインの有効期限が切れました。ページを再読み込みしてください。", "Your session has ended: reload the page.");
          throw new Error("session");
        }
        if (!r.ok) { throw new Error(r.status); }
        return r.json();
      })
      .then(function (p) {
        bar.max = Math.max(p.total, 1);
        bar.value = p.issued;
        bar.textContent = p.issued + " / " + p.total;
        set("issued", String(p.issued));
        set("total", String(p.total));
        set("count-issued", String(p.issued));
        set("count-pending", String(p.pending));
        set("count-failed", String(p.failed));
        set("count-no-account", String(p.no_account));
        list(p.not_issued);
        if (p.finished) {
          run.dataset.finished = "true";
          say("完了しました。", "Finished.");
          return;
        }
        window.setTimeout(refresh, 2000);
      })
      .catch(function (e) { if (e.message !== "session") { window.setTimeout(refresh, 5000); } });
  }
  window.setTimeout(refresh, 1000);
})();
