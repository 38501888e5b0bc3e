// Keeps the verification page (with the universities' public keys) and its
// script, so that a phone that loaded it once checks a certificate's QR
// code with the network cut. Network first: online, the server's page
// (with the revocation answer) always wins; each online visit refreshes
// the kept copy, and so the keys.
var CACHE = "shomei-verify-2";
var KEPT = ["/verify", "/static/verify.js", "/static/lang.js", "/static/confirm.js"];
self.addEventListener("install", function (e) {
  e.waitUntil(caches.open(CACHE).then(function (c) { return c.addAll(KEPT); }).then(function () { return self.skipWaiting(); }));
});
self.addEventListener("activate", function (e) {
  e.waitUntil(self.clients.claim());
});
self.addEventListener("fetch", function (e) {
  var url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== self.location.origin || KEPT.indexOf(url.pathname) < 0) return;
  e.respondWith(
    fetch(e.request)
      .then(function (resp) {
        if (resp.ok && (url.pathname !== "/verify" || !url.search)) {
          var copy = resp.clone();
          caches.open(CACHE).then(function (c) { return c.put(url.pathname, copy); });
        }
        return resp;
      })
      .catch(function () {
        return caches.match(url.pathname);
      })
  );
});
