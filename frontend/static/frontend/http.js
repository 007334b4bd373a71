// Shared by the page modules: the CSRF token and a JSON POST that never throws on a non-JSON body.

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : document.querySelector('meta[name="csrf-token"]').content;
}

// POST `body` as JSON; resolves to { res, data } where data is the parsed JSON body or null.
// Network errors reject, as fetch does.
export async function postJSON(url, body) {
  const res = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  return { res, data };
}
