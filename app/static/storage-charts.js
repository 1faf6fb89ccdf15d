// Draws the storage page's charts: each .plot element carries its Plotly figure as JSON in
// data-figure (built by app/web/charts.py). A file of its own, not an inline script, because the
// dashboard's Content-Security-Policy runs scripts from this site's files only.
"use strict";

function drawStorageCharts(root = document) {
  for (const element of root.querySelectorAll(".plot[data-figure]:not([data-drawn])")) {
    const figure = JSON.parse(element.dataset.figure);
    Plotly.newPlot(element, figure.data, figure.layout, {displaylogo: false, responsive: true});
    element.dataset.drawn = "yes";
  }
}

// Parts loaded after the page (the storage forecast) bring charts of their own.
document.addEventListener("htmx:afterSettle", () => drawStorageCharts());

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", drawStorageCharts);
} else {
  drawStorageCharts();
}
