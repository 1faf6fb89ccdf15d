// Draws the storage page's charts: each .plot element carries its Plotly figure as JSON in
// data-figure (built by app/web/charts.py). A file of its own, not an inline script, because the
// dashboard's Content-Security-Policy runs scripts from this site's files only.
"use strict";

function drawStorageCharts() {
  for (const element of document.querySelectorAll(".plot[data-figure]")) {
    const figure = JSON.parse(element.dataset.figure);
    Plotly.newPlot(element, figure.data, figure.layout, {displaylogo: false, responsive: true});
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", drawStorageCharts);
} else {
  drawStorageCharts();
}
