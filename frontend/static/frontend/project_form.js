// Project settings page: live preview of the guidelines, rendered on the server by
// arbiter.markdown (the same sanitizing renderer annotators see), debounced while typing.
import { csrfToken } from "./http.js";

function bindPreview(target) {
  const source = document.getElementById(target.dataset.source);
  if (!source) return;
  let timer = null;
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    if (!source.value.trim()) {
      target.textContent = "The preview appears here.";
      return;
    }
    try {
      const res = await fetch(target.dataset.renderUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ text: source.value }),
      });
      const data = await res.json();
      if (mine !== seq) return;
      if (res.ok) target.innerHTML = data.html; // sanitized by the server's renderer
      else target.textContent = `Preview unavailable: ${data.message || res.status}`;
    } catch {
      if (mine === seq) target.textContent = "Preview unavailable (no connection).";
    }
  }
  source.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
  refresh();
}

for (const target of document.querySelectorAll("[data-render-url][data-source]")) bindPreview(target);
