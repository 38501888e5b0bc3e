// The display language of the portal and the panel: Japanese and English
// (the default), Japanese only or English only, as the browser's shomei_lang
// cookie says (set by /language, and at login from the account's choice).
// Loaded in <head>, so the page never flashes the other language. It also
// marks each bilingual text "日本語 / English" by language (lang="ja" /
// lang="en"), so screen readers speak each half in its own voice.
(function () {
  var m = document.cookie.match(/(?:^|;\s*)(?:__Host-)?shomei_lang=(both|ja|en)/);
  var show = m ? m[1] : 'both';
  var html = document.documentElement;
  html.setAttribute('data-show', show);
  if (show === 'en') html.lang = 'en';
  var CJK = /[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]/;
  function span(cls, lang, text) {
    var s = document.createElement('span');
    s.className = cls;
    if (lang) s.lang = lang;
    s.textContent = text;
    return s;
  }
  // inside an element whose language is said already (below <body>)
  function marked(el) {
    for (var a = el; a && a !== document.body; a = a.parentElement) if (a.hasAttribute('lang')) return true;
    return false;
  }
  function mark(root) {
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, null);
    var texts = [];
    while (walker.nextNode()) texts.push(walker.currentNode);
    texts.forEach(function (t) {
      var p = t.parentElement;
      if (!p || p.closest('script, style, textarea, option, title, .lang-switch') || marked(p)) return;
      var s = t.nodeValue;
      if (!CJK.test(s)) return;
      var frag = document.createDocumentFragment();
      var cut = s.indexOf(' / ');
      if (cut > 0 && CJK.test(s.slice(0, cut)) && !CJK.test(s.slice(cut + 3)) && /[A-Za-z]/.test(s.slice(cut + 3))) {
        // "日本語 / English" in one text
        frag.appendChild(span('ja-text', 'ja', s.slice(0, cut)));
        frag.appendChild(span('sep', '', ' / '));
        frag.appendChild(span('en', 'en', s.slice(cut + 3)));
      } else if (p.querySelector(':scope > .en, :scope > [lang=en]')) {
        // a label with its English beside it: hidden when English alone is shown
        frag.appendChild(span('ja-text', 'ja', s));
      } else {
        // Japanese with no English beside it is what someone wrote (a name,
        // an address): marked as Japanese, shown whatever the choice
        frag.appendChild(span('', 'ja', s));
      }
      p.replaceChild(frag, t);
    });
  }
  document.addEventListener('DOMContentLoaded', function () {
    mark(document.body);
    // a table wider than a phone scrolls in its own box: by keyboard too
    document.querySelectorAll('main table').forEach(function (t) {
      if (t.scrollWidth > t.clientWidth + 1 && !t.hasAttribute('tabindex')) t.setAttribute('tabindex', '0');
    });
    // the switch comes back to this page; the language shown is marked
    var here = location.pathname + location.search;
    document.querySelectorAll('.lang-switch a[data-lang]').forEach(function (a) {
      a.href = '/language?to=' + a.getAttribute('data-lang') + '&back=' + encodeURIComponent(here);
      if (a.getAttribute('data-lang') === show) a.setAttribute('aria-current', 'true');
    });
  });
})();
