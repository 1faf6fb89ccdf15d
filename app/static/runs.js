// The runs lists' selection: "select every run on this page", the count of selected runs, and the
// bulk form's fields for the chosen action only. A file of its own (the dashboard's CSP runs no
// inline script); listeners on the document, so lists swapped in by HTMX need nothing more.
// Without JavaScript every field shows and the form still posts.
"use strict";

function bulkForm() {
  return document.getElementById("bulk");
}

function rowBoxes() {
  return Array.from(document.querySelectorAll('input[name="job_id"][form="bulk"]'));
}

function refreshSelection() {
  const form = bulkForm();
  if (!form) return;
  const boxes = rowBoxes();
  const picked = boxes.filter((box) => box.checked).length;
  const count = document.getElementById("selected-count");
  if (count) count.textContent = picked ? String(picked) : "none";
  const all = document.getElementById("select-all");
  if (all) {
    all.hidden = boxes.length === 0;
    all.checked = picked > 0 && picked === boxes.length;
    all.indeterminate = picked > 0 && picked < boxes.length;
  }
  form.classList.toggle("has-selection", picked > 0);
  const action = form.querySelector('select[name="action"]');
  for (const part of form.querySelectorAll("[data-for]")) {
    part.hidden = !part.dataset.for.split(" ").includes(action.value);
  }
}

document.addEventListener("change", (event) => {
  const target = event.target;
  if (target.id === "select-all") {
    for (const box of rowBoxes()) box.checked = target.checked;
  }
  refreshSelection();
});

// A log's tail opens scrolled to its end (app/templates/_member_lines.html).
function scrollTails() {
  for (const lines of document.querySelectorAll("pre.lines[data-tail]")) lines.scrollTop = lines.scrollHeight;
}

document.addEventListener("htmx:afterSettle", () => {
  refreshSelection();
  scrollTails();
});

function ready() {
  refreshSelection();
  scrollTails();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", ready);
} else {
  ready();
}
