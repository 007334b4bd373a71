// The label page. Leases tasks through the JSON API (prefetching while the annotator reads),
// renders them, and sends every verdict through a submission queue persisted in localStorage.
//
// Each submission gets one idempotency key when it is made and keeps it for its whole life, so a
// double press, a reload, a network error or a server restart can neither lose a judgment (the
// queue is re-sent on load and retried with backoff) nor record it twice (the server dedups by key).
//
// Untrusted text is only ever inserted as textContent, or as the `html` the API rendered with
// arbiter.markdown (markdown-it without raw HTML, then the nh3 allow-list sanitizer).
import { postJSON } from "./http.js";
import { bindKeys } from "./keys.js";

const config = JSON.parse(document.getElementById("label-config").textContent);
const opts = config.options;
const KIND = config.taskKind;
const LETTERS = "ABCDEFGH";
const ROLE_LABELS = { system: "System", user: "User", assistant: "Assistant" };
const MIN_VIEW_MS = 300; // a submit sooner than this after a task appears is a bounced double press
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------------------ network

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Insecure contexts (plain http on a LAN host) lack randomUUID; build a v4 UUID by hand.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------------------ the queue

const QUEUE_KEY = `arbiter:queue:v1:${config.userId}`;
let queue = null; // the SubmitQueue, created at start-up

const STALE_SENDING_MS = 30000; // a "sending" entry older than this was left by a closed tab

// Every change is a read-modify-write of localStorage keyed by idempotency key, so two tabs of the
// same annotator never overwrite each other's entries.
class SubmitQueue {
  constructor() {
    this.items = [];
    this.running = false;
    this.again = false;
    this.timer = null;
    // Re-send everything on load: whatever state it was left in, the key makes a resend safe.
    this.mutate((items) => {
      for (const item of items) Object.assign(item, { state: "pending", nextAt: 0 });
    });
    window.addEventListener("online", () => this.retryAll());
    window.addEventListener("storage", (event) => {
      if (event.key === QUEUE_KEY) {
        this.items = this.load();
        renderQueue();
        this.run();
      }
    });
  }

  load() {
    try {
      const items = JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
      return Array.isArray(items) ? items : [];
    } catch {
      return [];
    }
  }

  mutate(change) {
    const items = this.load();
    change(items);
    this.items = items;
    try {
      localStorage.setItem(QUEUE_KEY, JSON.stringify(items));
    } catch {
      flash("This browser refused to store the submission queue; keep this tab open until it says “All saved”.");
    }
    renderQueue();
  }

  update(key, patch) {
    this.mutate((items) => {
      const item = items.find((i) => i.key === key);
      if (item) Object.assign(item, patch);
    });
  }

  add(item) {
    this.mutate((items) => {
      items.push({ ...item, state: "pending", attempts: 0, nextAt: 0, error: "", createdAt: Date.now() });
    });
    this.run();
  }

  remove(key) {
    this.mutate((items) => {
      const at = items.findIndex((i) => i.key === key);
      if (at >= 0) items.splice(at, 1);
    });
  }

  taskIds() {
    return new Set(this.items.filter((i) => i.projectId === config.projectId).map((i) => i.taskId));
  }

  retryAll() {
    this.mutate((items) => {
      for (const item of items) Object.assign(item, { state: "pending", nextAt: 0 });
    });
    this.run();
  }

  retryLater(item, message) {
    const attempts = (item.attempts || 0) + 1;
    const base = Math.min(15000, 1000 * 2 ** (attempts - 1));
    const nextAt = Date.now() + Math.round(base * (0.75 + Math.random() * 0.5));
    this.update(item.key, { state: "pending", attempts, nextAt, error: message });
  }

  due(item, now) {
    if (item.state === "pending") return item.nextAt <= now;
    return item.state === "sending" && now - (item.sendingSince || 0) > STALE_SENDING_MS;
  }

  async run() {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    clearTimeout(this.timer);
    try {
      do {
        this.again = false;
        for (const item of this.load()) {
          if (this.due(item, Date.now())) await this.send(item);
        }
      } while (this.again);
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  schedule() {
    const waits = this.items.filter((i) => i.state === "pending").map((i) => i.nextAt);
    if (!waits.length) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), Math.max(0, Math.min(...waits) - Date.now()) + 20);
  }

  async send(item) {
    this.update(item.key, { state: "sending", sendingSince: Date.now() });
    let res;
    let data;
    try {
      ({ res, data } = await postJSON(item.url, item.body));
    } catch {
      this.retryLater(item, "no connection to the server");
      return;
    }
    if (res.ok) {
      this.remove(item.key);
      return;
    }
    const message = (data && data.message) || `HTTP ${res.status}`;
    if (res.status === 409) {
      // The server will never take this one: say so, drop it, and carry on.
      this.remove(item.key);
      if (data && data.code === "lease_expired") {
        flash(`Your time on ${item.label} ran out and another annotator took it, so that answer was not recorded.`);
      } else {
        flash(`${item.label}: ${message}`);
      }
      return;
    }
    if (res.status === 400 || res.status === 404 || res.status === 413) {
      this.update(item.key, { state: "failed", error: message });
      return;
    }
    // 401/403 (signed out), 408, 429, 5xx: keep it and retry later.
    const hint = res.status === 401 || res.status === 403 ? "signed out? sign in again in another tab" : message;
    this.retryLater(item, hint);
  }
}

// ------------------------------------------------------------------------------ page state

const state = {
  buffer: [],
  current: null,
  seen: new Set(),
  fetching: null,
  fetchError: null,
  sessionDone: 0,
  items: [],
};

const timer = {
  acc: 0,
  since: null,
  start() {
    this.acc = 0;
    this.since = document.hidden ? null : performance.now();
  },
  stop() {
    this.pause();
  },
  pause() {
    if (this.since !== null) {
      this.acc += performance.now() - this.since;
      this.since = null;
    }
  },
  resume() {
    if (this.since === null && state.current && !state.current.submitted) this.since = performance.now();
  },
  elapsed() {
    return Math.round(this.acc + (this.since !== null ? performance.now() - this.since : 0));
  },
};

function formatClock(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

document.addEventListener("visibilitychange", () => (document.hidden ? timer.pause() : timer.resume()));
setInterval(() => {
  $("timer-value").textContent = formatClock(timer.elapsed());
}, 500);

// ------------------------------------------------------------------------------ small UI helpers

let flashTimer = null;
function flash(message) {
  const box = $("flash");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    box.hidden = true;
  }, 12000);
}

function formError(message) {
  $("form-error").textContent = message || "";
}

function renderQueue() {
  const items = queue ? queue.items : [];
  const pending = items.filter((i) => i.state === "pending" || i.state === "sending");
  const failed = items.filter((i) => i.state === "failed");
  const status = $("queue-status");
  status.dataset.pending = String(pending.length);
  status.dataset.failed = String(failed.length);
  status.classList.toggle("is-pending", pending.length > 0);
  status.classList.toggle("is-failed", failed.length > 0);
  const parts = [];
  if (pending.length) {
    const waiting = pending.filter((i) => i.error);
    let text = `${pending.length} pending`;
    if (waiting.length) {
      const next = Math.max(0, Math.min(...waiting.map((i) => i.nextAt)) - Date.now());
      text += ` (${waiting[0].error}; retrying in ${Math.ceil(next / 1000)} s)`;
    } else {
      text += " (saving…)";
    }
    parts.push(text);
  }
  if (failed.length) parts.push(`${failed.length} failed`);
  status.textContent = parts.length ? parts.join(" · ") : "All saved";

  const signature = failed.map((i) => `${i.key}:${i.error}`).join("|");
  if (signature !== renderQueue.signature) {
    renderQueue.signature = signature;
    const list = $("queue-problem-list");
    list.replaceChildren();
    for (const item of failed) list.append(problemRow(item));
  }
  $("queue-problems").hidden = failed.length === 0;
}
setInterval(renderQueue, 1000);

function problemRow(item) {
  const li = document.createElement("li");
  const text = document.createElement("span");
  text.textContent = `${item.label}: ${item.error}`;
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "btn btn-small";
  retry.textContent = "Retry";
  retry.addEventListener("click", () => {
    queue.update(item.key, { state: "pending", nextAt: 0 });
    queue.run();
  });
  const discard = document.createElement("button");
  discard.type = "button";
  discard.className = "btn btn-small btn-quiet";
  discard.textContent = "Discard";
  discard.addEventListener("click", () => {
    queue.remove(item.key);
    state.seen.delete(item.taskId); // the lease is still ours: the task can be served again
  });
  li.append(text, " ", retry, " ", discard);
  return li;
}

function fromTemplate(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

function setRendered(el, html, text) {
  // `html` comes from the server's sanitizing renderer; anything else is shown as plain text.
  if (typeof html === "string") el.innerHTML = html;
  else el.textContent = text || "";
}

// ------------------------------------------------------------------------------ fetching tasks

function fetchTasks() {
  if (state.fetching) return state.fetching;
  const queued = queue.taskIds();
  const count = Math.min(10, config.prefetch + queued.size);
  state.fetching = (async () => {
    try {
      const { res, data } = await postJSON(config.urls.next, { count, render: true });
      if (!res.ok || !data) throw new Error((data && data.message) || `HTTP ${res.status}`);
      for (const task of data.tasks) {
        if (state.seen.has(task.task_id) || queued.has(task.task_id)) continue;
        state.seen.add(task.task_id);
        state.buffer.push(task);
      }
      state.fetchError = null;
    } catch (err) {
      state.fetchError = err;
    } finally {
      state.fetching = null;
    }
  })();
  return state.fetching;
}

async function showNext() {
  timer.stop();
  if (!state.buffer.length) {
    $("task").hidden = true;
    $("actionbar").hidden = true;
    $("empty").hidden = true;
    $("loading").hidden = false;
    $("loading").textContent = "Loading tasks…";
    await fetchTasks();
    for (let attempt = 1; !state.buffer.length && state.fetchError; attempt++) {
      $("loading").textContent = `Cannot reach the server (${state.fetchError.message}); trying again…`;
      await sleep(Math.min(15000, 1000 * 2 ** attempt));
      await fetchTasks();
    }
    $("loading").hidden = true;
  }
  const task = state.buffer.shift();
  if (!task) {
    state.current = null;
    $("task").hidden = true;
    $("actionbar").hidden = true;
    $("empty").hidden = false;
    $("empty").focus();
    return;
  }
  render(task);
  if (state.buffer.length < config.prefetch - 1) fetchTasks(); // prefetch while the annotator reads
}

// ------------------------------------------------------------------------------ rendering

function render(task) {
  state.current = {
    task,
    choice: null,
    allBad: false,
    strength: null,
    tiers: task.completions.map((_, i) => [i]),
    shownAt: performance.now(),
    submitted: false,
  };
  formError("");
  $("task-title").textContent = `Task ${task.task_id}`;
  $("task").dataset.taskId = String(task.task_id);
  renderMessages(task.messages);
  if (KIND === "pairwise") renderPair(task);
  else if (KIND === "ranking") renderRanking(task);
  else renderDemonstration(task);
  const rationale = $("rationale");
  if (rationale) rationale.value = "";
  for (const box of document.querySelectorAll('input[name="flag"]')) box.checked = false;
  for (const btn of document.querySelectorAll("[data-choice], [data-toggle], [data-strength]")) {
    btn.setAttribute("aria-pressed", "false");
  }
  updateStrength();
  $("empty").hidden = true;
  $("loading").hidden = true;
  $("task").hidden = false;
  $("actionbar").hidden = false;
  window.scrollTo({ top: 0 });
  timer.start();
  focusFirst();
}

function focusFirst() {
  let target = null;
  if (KIND === "pairwise") target = document.querySelector("[data-choice]");
  else if (KIND === "ranking") target = document.querySelector("#ranking .rank-item");
  else target = $("demo-text");
  (target || $("task")).focus({ preventScroll: true });
}

function renderMessages(messages) {
  const list = $("messages");
  list.replaceChildren();
  for (const message of messages) {
    const li = fromTemplate("tpl-message");
    const role = Object.hasOwn(ROLE_LABELS, message.role) ? message.role : "user";
    li.classList.add(`message-${role}`);
    li.querySelector(".message-role").textContent = ROLE_LABELS[role];
    setRendered(li.querySelector(".message-body"), message.html, message.content);
    list.append(li);
  }
}

function criteriaControls(container, completion, index) {
  container.replaceChildren();
  for (const criterion of opts.criteria) {
    const label = document.createElement("label");
    label.className = "criterion";
    const name = document.createElement("span");
    name.textContent = criterion.label;
    if (criterion.description) label.title = criterion.description;
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = ` for response ${LETTERS[index]}`;
    const select = document.createElement("select");
    select.dataset.criterion = criterion.name;
    select.dataset.position = String(completion.position);
    const blank = document.createElement("option");
    blank.value = "";
    blank.textContent = "–";
    select.append(blank);
    for (let v = criterion.min; v <= criterion.max; v++) {
      const option = document.createElement("option");
      option.value = String(v);
      option.textContent = String(v);
      select.append(option);
    }
    label.append(name, hidden, select);
    container.append(label);
  }
}

function renderPair(task) {
  const box = $("completions");
  box.replaceChildren();
  task.completions.forEach((completion, i) => {
    const card = fromTemplate("tpl-completion");
    const title = card.querySelector(".completion-title");
    title.id = `completion-title-${i}`;
    title.textContent = `Response ${LETTERS[i]}`;
    card.setAttribute("aria-labelledby", title.id);
    card.dataset.position = String(completion.position);
    setRendered(card.querySelector(".completion-body"), completion.html, completion.text);
    criteriaControls(card.querySelector(".completion-criteria"), completion, i);
    box.append(card);
  });
}

function renderDemonstration(task) {
  const text = $("demo-text");
  text.value = localStorage.getItem(draftKey(task.task_id)) || "";
  preview.now();
}

// ------------------------------------------------------------------------------ ranking

function renderRanking(task) {
  state.items = task.completions.map((completion, i) => {
    const item = fromTemplate("tpl-rank-item");
    item.dataset.index = String(i);
    item.dataset.position = String(completion.position);
    const head = item.querySelector(".rank-head");
    head.id = `rank-head-${i}`;
    item.setAttribute("aria-labelledby", head.id);
    item.querySelector(".rank-title").textContent = `Response ${LETTERS[i]}`;
    setRendered(item.querySelector(".completion-body"), completion.html, completion.text);
    criteriaControls(item.querySelector(".completion-criteria"), completion, i);
    return item;
  });
  layoutRanking(null);
}

function layoutRanking(focusIndex) {
  const list = $("ranking");
  const tiers = state.current.tiers;
  list.replaceChildren();
  tiers.forEach((tier, t) => {
    const li = document.createElement("li");
    li.className = "tier";
    li.classList.toggle("tied", tier.length > 1);
    const head = document.createElement("div");
    head.className = "tier-head";
    head.textContent = tier.length > 1 ? `Rank ${t + 1} · tie of ${tier.length}` : `Rank ${t + 1}`;
    const ul = document.createElement("ul");
    ul.className = "tier-items";
    for (const index of tier) {
      const item = state.items[index];
      item.querySelector(".rank-pos").textContent = tier.length > 1 ? `rank ${t + 1}, tied` : `rank ${t + 1}`;
      ul.append(item);
    }
    li.append(head, ul);
    list.append(li);
  });
  updateStrength();
  if (focusIndex !== null) state.items[focusIndex].focus();
}

function locate(index) {
  const tiers = state.current.tiers;
  for (let t = 0; t < tiers.length; t++) if (tiers[t].includes(index)) return t;
  return -1;
}

function takeOut(index) {
  const tiers = state.current.tiers;
  const t = locate(index);
  tiers[t] = tiers[t].filter((x) => x !== index);
  if (!tiers[t].length) tiers.splice(t, 1);
}

const ranking = {
  up(index) {
    const tiers = state.current.tiers;
    const t = locate(index);
    if (tiers[t].length > 1) {
      tiers[t] = tiers[t].filter((x) => x !== index);
      tiers.splice(t, 0, [index]);
    } else if (t > 0) {
      [tiers[t - 1], tiers[t]] = [tiers[t], tiers[t - 1]];
    } else return false;
    return true;
  },
  down(index) {
    const tiers = state.current.tiers;
    const t = locate(index);
    if (tiers[t].length > 1) {
      tiers[t] = tiers[t].filter((x) => x !== index);
      tiers.splice(t + 1, 0, [index]);
    } else if (t < tiers.length - 1) {
      [tiers[t + 1], tiers[t]] = [tiers[t], tiers[t + 1]];
    } else return false;
    return true;
  },
  tie(index) {
    const tiers = state.current.tiers;
    const t = locate(index);
    if (tiers[t].length > 1) {
      tiers[t] = tiers[t].filter((x) => x !== index);
      tiers.splice(t + 1, 0, [index]);
      return "untied";
    }
    if (t === 0 || !opts.allow_tie) return false;
    tiers[t - 1].push(index);
    tiers.splice(t, 1);
    return "tied";
  },
  place(index, target, where) {
    if (index === target) return false;
    takeOut(index);
    const tiers = state.current.tiers;
    const t = locate(target);
    if (where === "tie") tiers[t].push(index);
    else tiers.splice(where === "before" ? t : t + 1, 0, [index]);
    return true;
  },
};

function announce(index) {
  const t = locate(index);
  const tied = state.current.tiers[t].length > 1 ? ", tied" : "";
  $("ranking-live").textContent = `Response ${LETTERS[index]}: rank ${t + 1}${tied}`;
}

function rankingKeys(event) {
  const item = event.target;
  if (!item.classList || !item.classList.contains("rank-item")) return;
  const index = Number(item.dataset.index);
  const plain = !event.ctrlKey && !event.metaKey && !event.shiftKey;
  if (event.altKey && plain && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    const moved = event.key === "ArrowUp" ? ranking.up(index) : ranking.down(index);
    event.preventDefault();
    event.stopPropagation();
    if (moved) {
      layoutRanking(index);
      announce(index);
    }
  } else if (!event.altKey && plain && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    const order = state.current.tiers.flat();
    const next = order[order.indexOf(index) + (event.key === "ArrowUp" ? -1 : 1)];
    event.preventDefault();
    event.stopPropagation();
    if (next !== undefined) state.items[next].focus();
  } else if (!event.altKey && plain && (event.key === "t" || event.key === "T")) {
    event.preventDefault();
    event.stopPropagation();
    const result = ranking.tie(index);
    if (result) {
      layoutRanking(index);
      announce(index);
    } else {
      $("ranking-live").textContent = opts.allow_tie ? "Nothing above to tie with" : "Ties are not allowed here";
    }
  }
}

function dropZone(event, item) {
  const rect = item.getBoundingClientRect();
  const y = (event.clientY - rect.top) / Math.max(rect.height, 1);
  if (!opts.allow_tie) return y < 0.5 ? "before" : "after";
  if (y < 0.3) return "before";
  if (y > 0.7) return "after";
  return "tie";
}

function clearDropMarks() {
  for (const el of document.querySelectorAll("[data-drop]")) delete el.dataset.drop;
}

function bindRanking() {
  const list = $("ranking");
  list.addEventListener("keydown", rankingKeys);
  list.addEventListener("dragstart", (event) => {
    const item = event.target.closest && event.target.closest(".rank-item");
    if (!item) return;
    state.dragIndex = Number(item.dataset.index);
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.dataset.index);
    item.classList.add("dragging");
  });
  list.addEventListener("dragover", (event) => {
    const item = event.target.closest && event.target.closest(".rank-item");
    if (!item || state.dragIndex === undefined) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    clearDropMarks();
    if (Number(item.dataset.index) !== state.dragIndex) item.dataset.drop = dropZone(event, item);
  });
  list.addEventListener("dragleave", (event) => {
    const item = event.target.closest && event.target.closest(".rank-item");
    if (item && !item.contains(event.relatedTarget)) delete item.dataset.drop;
  });
  list.addEventListener("drop", (event) => {
    const item = event.target.closest && event.target.closest(".rank-item");
    clearDropMarks();
    if (!item || state.dragIndex === undefined) return;
    event.preventDefault();
    const index = state.dragIndex;
    if (ranking.place(index, Number(item.dataset.index), dropZone(event, item))) {
      layoutRanking(index);
      announce(index);
    }
  });
  list.addEventListener("dragend", () => {
    clearDropMarks();
    for (const el of list.querySelectorAll(".dragging")) el.classList.remove("dragging");
    state.dragIndex = undefined;
  });
}

// ------------------------------------------------------------------------------ choices

function pressed(selector, predicate) {
  for (const btn of document.querySelectorAll(selector)) btn.setAttribute("aria-pressed", String(predicate(btn)));
}

function strengthApplies() {
  const c = state.current;
  if (!c || opts.strength_min === null) return false;
  if (KIND === "pairwise") return c.choice === "a" || c.choice === "b";
  return c.tiers.length > 1;
}

function updateStrength() {
  const applies = strengthApplies();
  for (const btn of document.querySelectorAll("[data-strength]")) btn.disabled = !applies;
  if (!applies && state.current) state.current.strength = null;
  pressed("[data-strength]", (btn) => applies && Number(btn.dataset.strength) === state.current.strength);
}

function bindChoices() {
  for (const btn of document.querySelectorAll("[data-choice]")) {
    btn.addEventListener("click", () => {
      if (!state.current) return;
      state.current.choice = btn.dataset.choice;
      pressed("[data-choice]", (b) => b.dataset.choice === state.current.choice);
      formError("");
      updateStrength();
    });
  }
  for (const btn of document.querySelectorAll('[data-toggle="all-bad"]')) {
    btn.addEventListener("click", () => {
      if (!state.current) return;
      state.current.allBad = !state.current.allBad;
      btn.setAttribute("aria-pressed", String(state.current.allBad));
      formError("");
    });
  }
  for (const btn of document.querySelectorAll("[data-strength]")) {
    btn.addEventListener("click", () => {
      if (!state.current || btn.disabled) return;
      state.current.strength = Number(btn.dataset.strength);
      pressed("[data-strength]", (b) => Number(b.dataset.strength) === state.current.strength);
      formError("");
    });
  }
}

// ------------------------------------------------------------------------------ submitting

function collectCommon() {
  const flags = [...document.querySelectorAll('input[name="flag"]:checked')].map((b) => b.value);
  const rationale = $("rationale") ? $("rationale").value.trim() : "";
  return { flags, rationale };
}

function buildJudgment() {
  const c = state.current;
  const positions = c.task.completions.map((x) => x.position);
  let tiers;
  if (KIND === "pairwise") {
    const [a, b] = positions;
    if (c.choice === "a") tiers = [[a], [b]];
    else if (c.choice === "b") tiers = [[b], [a]];
    else if (c.choice === "tie" || (c.allBad && opts.allow_tie)) tiers = [[a, b]];
    else {
      const what = c.allBad ? "Both bad: also say which is less bad (1 or 2)." : "Choose A or B first (1 or 2).";
      return { error: what };
    }
  } else {
    tiers = c.tiers.map((tier) => tier.map((i) => positions[i]).sort((x, y) => x - y));
  }
  let strength = null;
  if (tiers.length > 1 && opts.strength_min !== null) {
    if (c.strength === null) return { error: "Choose the strength of your preference." };
    strength = c.strength;
  }
  const criteria = {};
  let missing = false;
  for (const select of document.querySelectorAll("#task select[data-criterion]")) {
    if (select.value === "") {
      missing = true;
      continue;
    }
    criteria[select.dataset.criterion] = criteria[select.dataset.criterion] || {};
    criteria[select.dataset.criterion][select.dataset.position] = Number(select.value);
  }
  if (opts.criteria_required && missing) return { error: "Score every criterion for every response." };
  const { flags, rationale } = collectCommon();
  if (opts.rationale_required && !rationale) return { error: "Write a short rationale (required here)." };
  return { body: { ranking: tiers, all_bad: c.allBad, strength, criteria, rationale, flags } };
}

function buildDemonstration() {
  const text = $("demo-text").value;
  if (!text.trim()) return { error: "Write a response first." };
  return { body: { text, flags: collectCommon().flags } };
}

function enqueue(action) {
  const c = state.current;
  if (!c || c.submitted) return;
  if (performance.now() - c.shownAt < MIN_VIEW_MS) return;
  let built;
  if (action === "skip") {
    const { flags, rationale } = collectCommon();
    built = { body: { reason: rationale.slice(0, 2000), flags } };
  }
  else built = KIND === "demonstration" ? buildDemonstration() : buildJudgment();
  if (built.error) {
    formError(built.error);
    return;
  }
  c.submitted = true;
  timer.pause();
  const taskId = c.task.task_id;
  const endpoint = action === "skip" ? "skip" : KIND === "demonstration" ? "demonstrations" : "judgments";
  const key = newKey();
  const body = { idempotency_key: key, ...built.body };
  if (action !== "skip") body.time_spent_ms = timer.elapsed();
  queue.add({
    key,
    projectId: config.projectId,
    taskId,
    action,
    label: `task ${taskId}`,
    url: `${config.urls.task}${taskId}/${endpoint}`,
    body,
  });
  if (KIND === "demonstration") localStorage.removeItem(draftKey(taskId));
  if (action !== "skip") {
    state.sessionDone += 1;
    $("session-count").textContent = String(state.sessionDone);
  }
  showNext();
}

// ------------------------------------------------------------------------------ demonstration

const draftKey = (taskId) => `arbiter:draft:${config.userId}:${taskId}`;

const preview = {
  timer: null,
  seq: 0,
  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.now(), 300);
  },
  async now() {
    clearTimeout(this.timer);
    const seq = ++this.seq;
    const text = $("demo-text").value;
    const box = $("demo-preview");
    if (!text.trim()) {
      box.textContent = "The preview appears here as you type.";
      box.classList.add("muted");
      return;
    }
    try {
      const { res, data } = await postJSON(config.urls.render, { text });
      if (seq !== this.seq) return; // a newer request is on its way
      box.classList.remove("muted");
      if (res.ok && data) box.innerHTML = data.html; // sanitized by arbiter.markdown on the server
      else box.textContent = `Preview unavailable: ${(data && data.message) || res.status}`;
    } catch {
      if (seq === this.seq) box.textContent = "Preview unavailable (no connection); your text is kept.";
    }
  },
};

function bindDemonstration() {
  const text = $("demo-text");
  text.addEventListener("input", () => {
    if (state.current) localStorage.setItem(draftKey(state.current.task.task_id), text.value);
    preview.schedule();
  });
}

// ------------------------------------------------------------------------------ start

queue = new SubmitQueue();

bindKeys({ onEscape: () => $("task").focus({ preventScroll: true }) });
bindChoices();
if (KIND === "ranking") bindRanking();
if (KIND === "demonstration") bindDemonstration();
$("submit").addEventListener("click", () => enqueue("submit"));
$("skip").addEventListener("click", () => enqueue("skip"));
$("check-again").addEventListener("click", () => showNext());
renderQueue();
queue.run();
showNext();
