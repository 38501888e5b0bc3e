// The fleet page updates itself: every 5 s it reads /admin/stations.json and
// rewrites each station's row (condition in colour and words, printer,
// paper, supplies, reader, unsynced reports, last seen) and keeps the most
// urgent first. No reload, no framework.
(function () {
  "use strict";
  var table = document.getElementById("stations");
  if (!table) { return; }
  var note = document.getElementById("fleet-updated");
  function set(row, field, text) {
    var el = row.querySelector('[data-field="' + field + '"]');
    if (el && el.textContent !== text) { el.textContent = text; }
    return el;
  }
  function refresh() {
    fetch("/admin/stations.json", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        data.stations.forEach(function (s) {
          var row = document.getElementById("station-" + s.id);
          if (!row) { return; }
          row.dataset.online = String(s.online);
          row.dataset.level = s.level;
          var c = set(row, "condition", s.condition_ja + " / " + s.condition_en);
          if (c) { c.className = "cond cond-" + s.level; }
          set(row, "printer_state", s.printer_state);
          set(row, "printer_reasons", s.printer_reasons);
          set(row, "media", s.media);
          var noA4 = row.querySelector('[data-field="no_a4"]');
          if (noA4) { noA4.hidden = !s.no_a4; }
          set(row, "supplies", s.supplies);
          var reader = set(row, "reader", s.reader_present ? "OK" : "なし / missing");
          if (reader) { reader.className = s.reader_present ? "ok" : "bad"; }
          set(row, "outbox", String(s.outbox));
          set(row, "last_seen", s.last_seen);
        });
        // the most urgent first, as the page was served: bad, warn, ok, off
        var rank = { bad: 0, warn: 1, ok: 2 };
        var rows = Array.prototype.slice.call(table.querySelectorAll("tr[id^='station-']"));
        var sorted = rows.slice().sort(function (a, b) {
          var ra = rank.hasOwnProperty(a.dataset.level) ? rank[a.dataset.level] : 3;
          var rb = rank.hasOwnProperty(b.dataset.level) ? rank[b.dataset.level] : 3;
          return ra - rb || Number(a.id.slice(8)) - Number(b.id.slice(8));
        });
        if (sorted.some(function (r, i) { return r !== rows[i]; })) {
          var body = rows.length ? rows[0].parentNode : null;
          sorted.forEach(function (r) { body.appendChild(r); });
        }
        if (note) { note.dataset.updatedAt = String(data.at); }
      })
      .catch(function () { if (note) { note.dataset.error = "1"; } });
  }
  setInterval(refresh, 5000);
})();
