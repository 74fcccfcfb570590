// Reloads a live page (monitoring overview, a point's page) every data-seconds seconds, as the devices' minute
// reports arrive, but never while the user is filling in a form on it: a reload then would throw their input away.
// Without JavaScript the page's <noscript> meta refresh does the plain reload.
(function () {
  "use strict";
  var script = document.currentScript;
  var seconds = parseInt((script && script.getAttribute("data-seconds")) || "60", 10);
  var dirty = false;
  function editing() {
    var active = document.activeElement;
    return dirty || Boolean(active && active.form);
  }
  document.addEventListener("input", function (event) { if (event.target && event.target.form) { dirty = true; } });
  document.addEventListener("submit", function () { dirty = false; });
  function tick() {
    if (editing()) {
      window.setTimeout(tick, seconds * 1000);
      return;
    }
    window.location.reload();
  }
  window.setTimeout(tick, seconds * 1000);
}());
