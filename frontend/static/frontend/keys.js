// Keyboard shortcuts declared in markup, shared by the pages.
//
// Any visible, enabled element with data-key="x" is clicked when x is pressed (case-insensitive),
// unless the focus is in a text field. data-key="Enter" marks the page's submit control:
//   * Enter submits from anywhere except a textarea (there: Ctrl/Cmd+Enter) and except a focused
//     link, <summary> or ordinary button, which keep their native Enter (buttons marked
//     data-picker, i.e. option pickers like "A is better", submit instead);
//   * Esc in a text field leaves it, so the single-key shortcuts work again.
// The key is also written to aria-keyshortcuts for assistive technology.

const TEXT_INPUT =
  'textarea, select, [contenteditable=""], [contenteditable="true"], ' +
  'input:not([type="checkbox"]):not([type="radio"]):not([type="button"]):not([type="submit"]):not([type="reset"])';

export function isTyping(el) {
  return Boolean(el && el.matches && el.matches(TEXT_INPUT));
}

function usable(el) {
  if (el.disabled || el.closest("[hidden], [inert]")) return false;
  return el.getClientRects().length > 0;
}

export function findKey(root, key) {
  const wanted = key.length === 1 ? key.toLowerCase() : key;
  for (const el of root.querySelectorAll("[data-key]")) {
    const k = el.dataset.key;
    if ((k.length === 1 ? k.toLowerCase() : k) === wanted && usable(el)) return el;
  }
  return null;
}

export function bindKeys({ root = document, onEscape = null } = {}) {
  for (const el of root.querySelectorAll("[data-key]")) {
    const k = el.dataset.key;
    el.setAttribute("aria-keyshortcuts", k.length === 1 ? k.toUpperCase() : k);
  }
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    const target = event.target;
    const typing = isTyping(target);
    if (event.key === "Escape" && typing) {
      target.blur();
      if (onEscape) onEscape(target);
      event.preventDefault();
      return;
    }
    if (event.key === "Enter") {
      if (event.altKey || event.shiftKey) return;
      if (target.matches && target.matches("textarea") && !(event.ctrlKey || event.metaKey)) return;
      if (target.closest && target.closest("a[href], summary, button:not([data-picker])")) return;
    } else if (typing || event.ctrlKey || event.metaKey || event.altKey || event.key.length !== 1) {
      return;
    }
    const el = findKey(root, event.key);
    if (!el) return;
    event.preventDefault();
    el.click();
  });
}
