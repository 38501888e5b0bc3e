// The verification page checks the signed payload a certificate's QR code
// carries (the link's #p=...) itself, against the universities' public keys
// the page publishes: it works with the network cut once the page has been
// loaded (a service worker keeps it). Only revocation needs the network: the
// server's answer for the code, when the page came from the server.
(function () {
  "use strict";
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/verify-sw.js", { scope: "/verify" }).catch(function () {});
  }
  var box = document.getElementById("offline");
  var m = /[#&]p=([A-Za-z0-9_.\-]+)/.exec(location.hash);
  if (!box || !m) return;
  box.hidden = false;
  var verdict = document.getElementById("offline-verdict");
  var revocation = document.getElementById("revocation");
  function say(el, cls, ja, en) {
    el.className = cls;
    el.textContent = ja + " ";
    var s = document.createElement("span");
    s.className = "en";
    s.lang = "en";
    s.textContent = en;
    el.appendChild(s);
  }
  function bytes(b64url) {
    var s = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function json(b64url) {
    return JSON.parse(new TextDecoder().decode(bytes(b64url)));
  }
  var parts = m[1].split(".");
  var keys = [];
  var header = null;
  try {
    keys = JSON.parse(box.dataset.keys || "{}").keys || [];
    header = parts.length === 3 ? json(parts[0]) : null;
  } catch (e) {
    header = null;
  }
  if (!header) {
    say(verdict, "bad", "QRコードの署名を読めません。", "The QR code's signature cannot be read.");
    return;
  }
  var key = keys.filter(function (k) { return k.kid === header.kid; })[0];
  if (!key || header.alg !== "EdDSA") {
    say(verdict, "bad", "この署名は、このサービスのどの大学の鍵でもありません。本物ではありません。",
      "This signature is by no university on this service: it is not genuine.");
    return;
  }
  if (!window.crypto || !crypto.subtle) {
    say(verdict, "bad", "このブラウザでは署名を確認できません。", "This browser cannot check the signature.");
    return;
  }
  crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: key.x }, { name: "Ed25519" }, false, ["verify"])
    .then(function (k) {
      return crypto.subtle.verify({ name: "Ed25519" }, k, bytes(parts[2]), new TextEncoder().encode(parts[0] + "." + parts[1]));
    })
    .then(function (ok) {
      if (!ok) {
        say(verdict, "bad", "署名が合いません。内容が書き換えられています。本物ではありません。",
          "The signature does not match: the contents were altered. It is not genuine.");
        return;
      }
      var c = json(parts[1]);
      say(verdict, "ok", key.name_ja + " が発行した証明書です（署名を確認しました）。",
        "Issued by " + key.name_en + " (signature checked).");
      var rows = [
        ["証明書", "Certificate", c.t],
        ["氏名（在学時）", "Name (as in school)", c.n + " / " + c.r],
        ["発行者", "Issued by", key.name_ja + " / " + key.name_en],
        ["発行日", "Issued on", c.d],
        ["証明書番号", "Serial number", c.s]
      ];
      var table = document.getElementById("offline-claims");
      rows.forEach(function (r) {
        var tr = document.createElement("tr");
        var th = document.createElement("th");
        th.scope = "row";
        say(th, "", r[0], r[1]);
        var td = document.createElement("td");
        td.textContent = r[2];
        tr.appendChild(th);
        tr.appendChild(td);
        table.appendChild(tr);
      });
      table.hidden = false;
      var result = document.getElementById("result");
      var typed = document.getElementById("code");
      if (result && typed && typed.value.trim() !== c.c) {
        say(revocation, "bad", "リンクの照合コードがこの証明書のものではありません。失効は確認できていません。",
          "The code in the link is not this certificate's: revocation is not checked.");
      } else if (result && result.dataset.result === "valid") {
        say(revocation, "ok", "失効していません（いまサーバで確認しました）。", "Not revoked (checked with the server just now).");
      } else if (result && result.dataset.result === "revoked") {
        say(revocation, "bad", "この証明書は失効しています。", "This certificate was revoked.");
      } else if (result) {
        say(revocation, "bad", "この照合コードの証明書は発行されていません（サーバで確認しました）。",
          "No certificate with this code has been issued (checked with the server).");
      } else {
        say(revocation, "warn", "接続がないため、失効は確認できていません。署名と内容は確認済みです。",
          "No connection: revocation is not checked. The signature and contents are checked.");
      }
    })
    .catch(function () {
      say(verdict, "bad", "このブラウザでは署名を確認できません。", "This browser cannot check the signature.");
    });
})();
