// The console's only script: live updates of the page from the agency's event feed, and the
// print button of a meeting pack. Loaded from the console itself; no inline code anywhere.
(function () {
  'use strict';

  document.addEventListener('click', function (event) {
    var printer = event.target.closest('[data-print-frame]');
    if (printer) {
      var frame = document.getElementById(printer.getAttribute('data-print-frame'));
      if (frame && frame.contentWindow) { frame.contentWindow.focus(); frame.contentWindow.print(); }
    }
  });

  // A second click on a submit button while the first is on its way sends nothing new (the
  // form's idempotency key makes it harmless anyway).
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (form.dataset.sent === '1') { event.preventDefault(); return; }
    form.dataset.sent = '1';
  });

  if (!document.body.hasAttribute('data-live') || !window.EventSource) { return; }
  var typed = false;
  document.addEventListener('input', function () { typed = true; });
  var banner = document.getElementById('live-banner');
  var pending = null;

  function refresh() {
    fetch(window.location.href, { credentials: 'same-origin', headers: { 'X-Console-Refresh': '1' } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('main');
        var main = document.getElementById('main');
        if (fresh && main) {
          main.replaceWith(document.importNode(fresh, true));
          document.body.setAttribute('data-refreshed', String(Date.now()));
        }
      })
      .catch(function () { banner.hidden = false; });
  }

  document.getElementById('live-reload').addEventListener('click', function () {
    typed = false; banner.hidden = true; refresh();
  });

  var source = new EventSource('/live');
  source.addEventListener('feed', function () {
    if (typed) { banner.hidden = false; return; }
    clearTimeout(pending);
    pending = setTimeout(refresh, 250);
  });
})();
