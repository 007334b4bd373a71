// Import page: upload the file to the import API with upload progress, then (for a background
// job) poll the job and show its progress; a rejected file shows its line-numbered errors.
import { csrfToken } from "./http.js";
const config = JSON.parse(document.getElementById("import-config").textContent);
const $ = (id) => document.getElementById(id);

function progress(phase, value, max, status) {
  $("import-progress").hidden = false;
  $("import-phase").textContent = phase;
  const bar = $("import-bar");
  bar.max = max || 1;
  bar.value = Math.min(value, bar.max);
  if (status !== undefined) $("import-status").textContent = status;
}

function showErrors(errors, truncated) {
  const list = $("import-error-list");
  list.replaceChildren();
  for (const error of errors || []) {
    const li = document.createElement("li");
    li.textContent = error.line ? `Line ${error.line}: ${error.message}` : error.message;
    list.append(li);
  }
  $("import-errors-more").hidden = !truncated;
  $("import-errors").hidden = !(errors && errors.length);
}

function summary(result) {
  const parts = [`Imported ${result.created_tasks} new task${result.created_tasks === 1 ? "" : "s"}`];
  if (result.duplicate_tasks) parts.push(`${result.duplicate_tasks} duplicate${result.duplicate_tasks === 1 ? "" : "s"} skipped`);
  if (result.gold_tasks) parts.push(`${result.gold_tasks} gold`);
  if (result.imported_judgments) parts.push(`${result.imported_judgments} pre-labelled`);
  return `${parts.join(", ")}.`;
}

function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", config.upload);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        progress("Uploading…", event.loaded, event.total, `${Math.round((100 * event.loaded) / event.total)}% uploaded`);
      }
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      resolve({ status: xhr.status, data });
    });
    xhr.addEventListener("error", () => reject(new Error("the upload failed (no connection)")));
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

async function poll(jobId) {
  for (let delay = 500; ; delay = Math.min(delay * 1.5, 3000)) {
    let job;
    try {
      const res = await fetch(`${config.job}${jobId}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      job = await res.json();
      if (!res.ok) throw new Error(job.message || `HTTP ${res.status}`);
    } catch (err) {
      $("import-status").textContent = `Checking the job failed (${err.message}); trying again…`;
      await new Promise((r) => setTimeout(r, 3000));
      continue;
    }
    const lines = `${job.processed_lines.toLocaleString()} of ${job.total_lines.toLocaleString()} lines`;
    if (job.status === "succeeded") {
      progress("Done", 1, 1, `${summary(job)} (${job.total_lines.toLocaleString()} lines)`);
      return;
    }
    if (job.status === "failed") {
      progress("Failed", job.processed_lines, job.total_lines, job.message || "The import failed.");
      showErrors(job.errors, false);
      return;
    }
    progress(job.status === "pending" ? "Waiting for a worker…" : "Importing…", job.processed_lines, job.total_lines, lines);
    await new Promise((r) => setTimeout(r, delay));
  }
}

$("import-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("import-file").files[0];
  if (!file) return;
  showErrors([], false);
  if (file.size > config.maxBytes) {
    progress("Not uploaded", 0, 1, `The file is larger than ${config.maxBytes.toLocaleString()} bytes.`);
    return;
  }
  const button = $("import-submit");
  button.disabled = true;
  try {
    progress("Uploading…", 0, file.size, "");
    const { status, data } = await upload(file);
    if (status === 201) {
      progress("Done", 1, 1, summary(data));
    } else if (status === 202) {
      progress("Waiting for a worker…", 0, data.total_lines, `Job ${data.id} queued`);
      await poll(data.id);
    } else {
      progress("Rejected", 0, 1, (data && data.message) || `The server answered ${status}.`);
      const details = (data && data.details) || {};
      showErrors(details.errors, details.truncated);
    }
  } catch (err) {
    progress("Failed", 0, 1, err.message);
  } finally {
    button.disabled = false;
  }
});
