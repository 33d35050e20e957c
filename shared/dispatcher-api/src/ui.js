// Progressive enhancement, the pages' only script: a filter box above each table or list
// marked `data-filter`, hiding the rows that do not contain the typed text. Without
// JavaScript the pages work the same, only without the box.
"use strict";
document.querySelectorAll("[data-filter]").forEach((list) => {
  const rows = list.tBodies ? list.tBodies[0].rows : list.children;
  const label = document.createElement("label");
  label.className = "filter";
  label.textContent = "Filter " + list.dataset.filter + " ";
  const input = document.createElement("input");
  input.type = "search";
  input.autocomplete = "off";
  label.append(input);
  const scroll = list.closest(".scroll");
  (scroll || list).before(label);
  input.addEventListener("input", () => {
    const text = input.value.trim().toLowerCase();
    for (const row of rows) {
      row.hidden = text !== "" && !row.textContent.toLowerCase().includes(text);
    }
  });
});
