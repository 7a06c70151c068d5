// Charts of the analytics page, from the JSON the server embedded (no inline script, no CDN).
(function () {
  "use strict";
  var source = document.getElementById("analytics-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var colors = {
    blue: "#2f6fde", teal: "#14919b", amber: "#f0b429", red: "#d64545", violet: "#7b61c7", slate: "#9aa5b1",
  };
  var channelColors = {
    email: colors.blue, dashboard: colors.teal, api: colors.violet, telegram: "#3ebd93", auto: colors.amber,
  };
  Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  Chart.defaults.color = "#616e7c";
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;

  function make(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) new Chart(canvas, config);
  }
  var grid = { color: "#eef1f4" };

  make("chart-volume", {
    type: "bar",
    data: {
      labels: data.periods,
      datasets: [
        { label: "Created", data: data.created, backgroundColor: colors.blue, borderRadius: 3 },
        { label: "Resolved", data: data.resolved, backgroundColor: colors.teal, borderRadius: 3 },
      ],
    },
    options: {
      scales: { y: { beginAtZero: true, ticks: { precision: 0 }, grid: grid }, x: { grid: { display: false }, ticks: { maxRotation: 0, maxTicksLimit: 12 } } },
      plugins: { legend: { position: "top", align: "end" } },
    },
  });

  make("chart-response", {
    type: "line",
    data: {
      labels: data.periods,
      datasets: [
        { label: "Median", data: data.median, borderColor: colors.violet, backgroundColor: colors.violet, tension: 0.3, spanGaps: true },
        { label: "p90", data: data.p90, borderColor: colors.amber, backgroundColor: colors.amber, borderDash: [5, 4], tension: 0.3, spanGaps: true },
      ],
    },
    options: {
      interaction: { mode: "index", intersect: false },
      scales: {
        y: { beginAtZero: true, title: { display: true, text: "minutes" }, grid: grid },
        x: { grid: { display: false }, ticks: { maxRotation: 0, maxTicksLimit: 12 } },
      },
      plugins: { legend: { position: "top", align: "end" } },
    },
  });

  make("chart-sla", {
    type: "line",
    data: {
      labels: data.periods,
      datasets: [{
        label: "Within SLA", data: data.sla, borderColor: colors.teal, backgroundColor: "rgba(20, 145, 155, .12)",
        fill: true, tension: 0.3, spanGaps: true, pointRadius: 2,
      }],
    },
    options: {
      scales: {
        y: { min: 0, max: 100, ticks: { callback: function (v) { return v + " %"; } }, grid: grid },
        x: { grid: { display: false }, ticks: { maxRotation: 0, maxTicksLimit: 7 } },
      },
      plugins: { legend: { display: false } },
    },
  });

  make("chart-decisions", {
    type: "bar",
    data: {
      labels: data.outcomes,
      datasets: [
        { label: "Human", data: data.human, backgroundColor: colors.blue, borderRadius: 3 },
        { label: "Auto", data: data.auto, backgroundColor: colors.amber, borderRadius: 3 },
      ],
    },
    options: {
      indexAxis: "y",
      scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, grid: grid }, y: { stacked: true, grid: { display: false } } },
      plugins: { legend: { position: "top", align: "end" } },
    },
  });

  make("chart-channels", {
    type: "doughnut",
    data: {
      labels: data.channels,
      datasets: [{
        data: data.channel_counts,
        backgroundColor: data.channels.map(function (c) { return channelColors[c] || colors.slate; }),
        borderWidth: 2,
      }],
    },
    options: { cutout: "58%", plugins: { legend: { position: "right" } } },
  });
})();
