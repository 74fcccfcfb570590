// Live market product page: subscribes to the server-sent event stream of /api/market/stream for the product
// named by the element with data-live-product, and refreshes the trade tape and the order-book depth in place.
// Plain JavaScript, served from the package's static folder; prices arrive in integer fen and are shown in yuan.
(function () {
  "use strict";
  var root = document.querySelector("[data-live-product]");
  if (!root || typeof EventSource === "undefined") { return; }
  var product = root.getAttribute("data-live-product");
  var tapeBody = document.querySelector("[data-live-tape] tbody");
  var depthBody = document.querySelector("[data-live-depth] tbody");
  var phase = document.querySelector("[data-live-phase]");
  var status = document.querySelector("[data-live-status]");
  var tapeRows = 30;
  var clock = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });

  function yuan(fen) {
    if (fen === null || fen === undefined || fen === "") { return ""; }
    var sign = fen < 0 ? "-" : "";
    var whole = Math.floor(Math.abs(fen) / 100);
    var cents = Math.abs(fen) % 100;
    return sign + whole.toLocaleString("en-US") + "." + (cents < 10 ? "0" : "") + cents;
  }

  function cell(text, numeric) {
    var td = document.createElement("td");
    if (numeric) { td.className = "num"; }
    td.textContent = text;
    return td;
  }

  // EventSource reconnects by itself with the same address; trades already shown are skipped.
  var lastTrade = Number(root.getAttribute("data-live-after") || "0");

  function addTrade(trade) {
    if (!tapeBody || trade.trade_id <= lastTrade) { return; }
    lastTrade = trade.trade_id;
    var row = document.createElement("tr");
    row.appendChild(cell(clock.format(new Date(trade.at)), false));
    row.appendChild(cell(yuan(trade.price_fen), true));
    row.appendChild(cell(String(trade.lots), true));
    tapeBody.insertBefore(row, tapeBody.firstChild);
    while (tapeBody.rows.length > tapeRows) { tapeBody.deleteRow(tapeBody.rows.length - 1); }
  }

  function showDepth(book) {
    if (phase) { phase.textContent = book.phase; }
    if (!depthBody) { return; }
    var rows = Math.max(book.bids.length, book.asks.length, 1);
    var fresh = document.createDocumentFragment();
    for (var i = 0; i < rows; i++) {
      var bid = book.bids[i], ask = book.asks[i];
      var row = document.createElement("tr");
      row.appendChild(cell(bid ? String(bid.lots) : "", true));
      row.appendChild(cell(bid ? yuan(bid.price_fen) : "", true));
      row.appendChild(cell(ask ? yuan(ask.price_fen) : "", true));
      row.appendChild(cell(ask ? String(ask.lots) : "", true));
      fresh.appendChild(row);
    }
    while (depthBody.firstChild) { depthBody.removeChild(depthBody.firstChild); }
    depthBody.appendChild(fresh);
  }

  var source = new EventSource("/api/market/stream?product=" + encodeURIComponent(product) + "&after=" +
                               encodeURIComponent(String(lastTrade)));
  source.addEventListener("trade", function (event) { addTrade(JSON.parse(event.data)); });
  source.addEventListener("depth", function (event) { showDepth(JSON.parse(event.data)); });
  source.addEventListener("open", function () { if (status) { status.hidden = false; } });
  source.addEventListener("error", function () { if (status) { status.hidden = true; } });
}());
