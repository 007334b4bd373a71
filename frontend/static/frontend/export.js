// Export page: shows only the options the chosen format takes, shows the download URL the form
// builds, and freezes a snapshot with the same format, options and filters (snapshots API).
import { postJSON } from "./http.js";

const config = JSON.parse(document.getElementById("export-config").textContent);
const form = document.getElementById("export-form");
const $ = (id) => document.getElementById(id);
const OPTION_KEYS = ["style", "ties", "include_margin"];
const FILTER_KEYS = ["date_from", "date_to", "annotators", "exclude_gold", "min_agreement", "split", "source"];

function syncOptions() {
  const allowed = config.formatOptions[form.elements.format.value] || {};
  for (const box of document.querySelectorAll("[data-option]")) {
    const key = box.dataset.option;
    const select = form.elements[key];
    const values = allowed[key];
    box.hidden = !values;
    select.disabled = !values; // a disabled control is left out of the query string
    if (!values) continue;
    for (const option of select.options) option.disabled = !values.includes(option.value);
    if (!values.includes(select.value)) select.value = values[0];
  }
}

function params() {
  const out = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (String(value).trim() !== "") out.append(key, String(value).trim());
  }
  return out;
}

function showUrl() {
  $("export-url").textContent = `${new URL(config.export, location.origin)}?${params()}`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault(); // empty fields stay out of the download URL
  location.assign(`${config.export}?${params()}`);
});
form.addEventListener("input", showUrl);
form.addEventListener("change", () => {
  syncOptions();
  showUrl();
});
syncOptions();
showUrl();

$("snapshot-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("snapshot-status");
  const p = params();
  const body = { format: p.get("format"), name: $("snapshot-name").value.trim(), options: {}, filters: {} };
  for (const key of OPTION_KEYS) if (p.has(key)) body.options[key] = p.get(key);
  for (const key of FILTER_KEYS) if (p.has(key)) body.filters[key] = p.get(key);
  status.textContent = "Creating the snapshot…";
  try {
    const { res, data } = await postJSON(config.snapshots, body);
    if (res.ok) {
      status.textContent = `Snapshot v${data.version} created (${data.row_count} rows).`;
      setTimeout(() => location.reload(), 1000);
    } else {
      status.textContent = `Could not create the snapshot: ${(data && data.message) || `HTTP ${res.status}`}`;
    }
  } catch (err) {
    status.textContent = `Could not create the snapshot: ${err.message}`;
  }
});
