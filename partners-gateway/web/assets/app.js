// The dashboard's charts, drawn by Chart.js from the figures the page carries in
// data-charts (the same figures as the table under each chart and its CSV).
"use strict";
(function () {
  var root = document.getElementById("charts");
  if (!root || typeof Chart === "undefined") return;
  var charts = JSON.parse(root.getAttribute("data-charts") || "[]");
  var rtl = root.getAttribute("data-dir") === "rtl";
  var locale = root.getAttribute("data-lang") === "fa" ? "fa-IR" : "en-GB";
  var palette = ["#1d4ed8", "#059669", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#4b5563", "#be185d", "#65a30d", "#9333ea", "#0f766e", "#b45309"];
  Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
  Chart.defaults.animation = false;
  charts.forEach(function (c) {
    var canvas = document.getElementById("chart-" + c.id);
    if (!canvas) return;
    var doughnut = c.kind === "doughnut";
    var datasets = c.series.map(function (s, i) {
      var color = palette[i % palette.length];
      return {
        label: s.label,
        data: s.data,
        backgroundColor: doughnut ? c.labels.map(function (_, j) { return palette[j % palette.length]; }) : color,
        borderColor: color,
        borderWidth: c.kind === "line" ? 2 : 0,
        tension: 0.25
      };
    });
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      locale: locale,
      plugins: { legend: { rtl: rtl, display: doughnut || c.series.length > 1 }, tooltip: { rtl: rtl } }
    };
    if (!doughnut) {
      options.scales = {
        x: { reverse: rtl, stacked: c.stacked },
        y: { stacked: c.stacked, beginAtZero: true, position: rtl ? "right" : "left" }
      };
    }
    var chart = new Chart(canvas, { type: c.kind, data: { labels: c.labels, datasets: datasets }, options: options });
    canvas.setAttribute("data-drawn", String(chart.data.datasets.reduce(function (n, d) {
      return n + d.data.filter(function (v) { return v !== 0; }).length;
    }, 0)));
  });
})();
