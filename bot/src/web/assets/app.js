// taskgate web console: a small single-page app over the JSON API (bot/openapi.json).
// Pages: #/tasks, #/tasks/<id>, #/approvals, #/chat. Live updates arrive as SSE hints
// (/api/stream) and the page re-fetches what it shows; nothing polls.
"use strict";

const view = document.getElementById("view");
let current = null; // the page shown: { hint(h), dispose() }
let stream = null;

// ---- helpers --------------------------------------------------------------------------

/** Builds an element; text is always set as text, never parsed as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {}, ...options };
  if (options.body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) throw new Unauthorized();
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error((data && data.error) || res.statusText);
  return data;
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function when(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
}

const badge = (text, cls) => h("span", { class: `badge ${cls || text}` }, String(text).replace(/_/g, " "));

/** Runs `fn` at most once per `ms`, trailing: bursts of hints become one re-fetch. */
function debounce(fn, ms = 150) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}

function showError(e) {
  if (e instanceof Unauthorized) return showLogin();
  console.error(e);
  view.prepend(h("p", { class: "error" }, String(e.message || e)));
}

// ---- login and live stream ------------------------------------------------------------

function showLogin() {
  closeStream();
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  current = null;
  view.replaceChildren(document.getElementById("login-template").content.cloneNode(true));
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = document.getElementById("login-error");
    try {
      await api("/api/login", { method: "POST", body: { token: document.getElementById("token").value } });
      start();
    } catch (e) {
      error.textContent = e instanceof Unauthorized ? "That token is not right." : String(e.message || e);
      error.hidden = false;
    }
  });
  document.getElementById("token").focus();
}

function openStream() {
  closeStream();
  const live = document.getElementById("live");
  stream = new EventSource("/api/stream");
  stream.addEventListener("hello", () => { live.textContent = "live"; live.classList.add("on"); });
  stream.onerror = () => { live.textContent = "reconnecting"; live.classList.remove("on"); };
  for (const type of ["task", "approvals", "chat", "resync"]) {
    stream.addEventListener(type, (ev) => {
      const hint = JSON.parse(ev.data);
      refreshApprovalCount();
      if (current && current.hint) current.hint(hint);
    });
  }
}

function closeStream() {
  if (stream) stream.close();
  stream = null;
}

const refreshApprovalCount = debounce(async () => {
  try {
    const pending = await api("/api/approvals");
    const count = document.getElementById("approval-count");
    count.textContent = pending.length;
    count.hidden = pending.length === 0;
  } catch (_) { /* the page shows errors; the badge stays as it was */ }
}, 300);

async function start() {
  try {
    await api("/api/session");
  } catch (e) {
    return showError(e);
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  openStream();
  refreshApprovalCount();
  route();
}

document.getElementById("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" }).catch(() => {});
  showLogin();
});

// ---- routing --------------------------------------------------------------------------

function route() {
  if (document.getElementById("nav").hidden) return;
  const hash = location.hash || "#/tasks";
  let m;
  if (current && current.dispose) current.dispose();
  let page;
  if ((m = hash.match(/^#\/tasks\/(\d+)$/))) page = taskPage(Number(m[1]));
  else if (hash === "#/approvals") page = approvalsPage();
  else if (hash === "#/chat") page = chatPage();
  else page = tasksPage();
  const section = hash.split("/")[1] || "tasks";
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === section);
  current = page;
}

window.addEventListener("hashchange", route);

// ---- tasks list -----------------------------------------------------------------------

function tasksPage() {
  const filters = { project: "", status: "", agent: "" };
  const body = h("tbody");
  const projectSel = h("select", { "aria-label": "Project", onchange: (e) => { filters.project = e.target.value; load(); } }, h("option", { value: "" }, "All projects"));
  const statusSel = h("select", { "aria-label": "Status", onchange: (e) => { filters.status = e.target.value; load(); } },
    h("option", { value: "" }, "Any status"),
    ["running", "waiting_approval", "waiting_input", "idle", "completed", "failed", "cancelled"].map((s) => h("option", { value: s }, s.replace(/_/g, " "))));
  const agentInput = h("input", { placeholder: "Agent (codex, claude…)", "aria-label": "Agent", onchange: (e) => { filters.agent = e.target.value.trim(); load(); } });
  view.replaceChildren(
    h("div", { class: "task-head" }, h("h1", {}, "Tasks"), h("a", { href: "#/chat" }, "Start a task in chat →")),
    h("div", { class: "filters" }, projectSel, statusSel, agentInput),
    h("table", {}, h("thead", {}, h("tr", {}, ["#", "Task", "Status", "Project", "Agents", "Updated"].map((t) => h("th", {}, t)))), body),
  );
  api("/api/projects").then((ps) => ps.forEach((p) => projectSel.append(h("option", { value: p.name }, p.name)))).catch(showError);

  async function load() {
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    let tasks;
    try { tasks = await api(`/api/tasks?${q}`); } catch (e) { return showError(e); }
    body.replaceChildren(...(tasks.length ? tasks.map((t) => h("tr", { class: "row", "data-task": t.id, onclick: () => { location.hash = `#/tasks/${t.id}`; } },
      h("td", { class: "muted" }, t.id),
      h("td", {}, h("a", { href: `#/tasks/${t.id}` }, t.title), t.pending_approvals ? h("span", {}, " ", badge(`${t.pending_approvals} waiting`, "pending")) : null),
      h("td", {}, badge(t.status)),
      h("td", {}, t.project || ""),
      h("td", {}, t.agents.join(", ")),
      h("td", { class: "muted" }, ago(t.updated_at)),
    )) : [h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No tasks yet."))]));
  }
  load();
  return { hint: debounce(load) };
}

// ---- one task -------------------------------------------------------------------------

function taskPage(id) {
  let lastEvent = 0;
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const head = h("div");
  const side = h("aside");
  const execs = h("div", { class: "execs" });
  const pending = h("div");
  const composer = messageComposer(id, "Follow up on this task…");
  view.replaceChildren(
    head,
    h("div", { class: "grid" },
      h("div", {}, pending, h("h2", {}, "Executions"), execs, h("h2", {}, "Timeline"), timeline, composer),
      side),
  );

  async function loadTask() {
    let d;
    try { d = await api(`/api/tasks/${id}`); } catch (e) { return showError(e); }
    const t = d.task;
    head.replaceChildren(
      h("div", { class: "task-head" }, h("h1", {}, `#${t.id} ${t.title}`), h("span", { id: "task-status" }, badge(t.status))),
      h("p", { class: "muted" }, [d.project ? `${d.project.name} · ` : "", d.created_by_name ? `started by ${d.created_by_name} · ` : "", `updated ${ago(t.updated_at)}`].join("")),
    );
    execs.replaceChildren(...(d.executions.length ? d.executions.map(executionCard) : [h("p", { class: "muted" }, "No execution yet.")]));
    const waiting = d.approvals.filter((a) => a.status === "pending");
    pending.replaceChildren(...(waiting.length ? [h("div", { class: "card" }, h("strong", {}, "Waiting for approval"), waiting.map((a) => approvalRow(a, false)))] : []));
    side.replaceChildren(restartNote(t, d.note_entries), approvalsHistory(d.approvals));
  }

  async function loadEvents() {
    let events;
    try { events = await api(`/api/tasks/${id}/events?after=${lastEvent}`); } catch (e) { return showError(e); }
    for (const ev of events) {
      lastEvent = Math.max(lastEvent, ev.id);
      timeline.append(eventItem(ev));
    }
  }

  const refresh = debounce(() => { loadTask(); loadEvents(); }, 100);
  loadTask();
  loadEvents();
  return {
    hint: (hnt) => { if (hnt.type === "resync" || hnt.task === id || hnt.type === "approvals") refresh(); },
  };
}

function executionCard(e) {
  const s = e.session;
  return h("div", { class: "card execution", "data-execution": e.id },
    h("div", { class: "task-head" }, h("strong", {}, `${e.agent}`), h("span", { class: "muted" }, e.role), badge(e.status)),
    h("dl", { class: "kv" },
      h("dt", {}, "execution"), h("dd", {}, `#${e.id}`),
      s ? [h("dt", {}, "session"), h("dd", {}, badge(s.status), " ", s.model || ""),
        h("dt", {}, "provider id"), h("dd", {}, s.provider_session_id || "—")] : [h("dt", {}, "session"), h("dd", {}, "none yet")],
      h("dt", {}, "started"), h("dd", {}, ago(e.created_at))));
}

function restartNote(t, entries) {
  const fields = [["Objective", t.objective], ["Reproduction", t.reproduction], ["Next action", t.next_action]].filter(([, v]) => v);
  return h("div", { class: "card" },
    h("strong", {}, "Restart note"),
    h("dl", { class: "kv" }, h("dt", {}, "Goal"), h("dd", {}, t.goal), fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    entries.length ? h("ul", { class: "timeline", style: null }, entries.map((n) => h("li", { class: "note" },
      h("div", { class: "meta" }, badge(n.kind), (n.stale_because || []).length ? badge("stale") : null, n.author, n.commit ? h("code", {}, n.commit.slice(0, 10)) : null, when(n.at)),
      h("div", { class: "body" }, n.text),
      (n.evidence || []).length ? h("div", { class: "meta" }, "evidence: ", n.evidence.join(", ")) : null,
      (n.stale_because || []).length ? h("div", { class: "meta" }, "changed since: ", n.stale_because.join(", ")) : null)))
      : h("p", { class: "muted" }, "No findings recorded yet."));
}

function approvalsHistory(list) {
  return h("div", { class: "card", style: null },
    h("strong", {}, "Approvals"),
    list.length ? list.map((a) => h("div", { class: "meta", style: null },
      badge(a.status), h("span", {}, a.action),
      a.decided_at ? h("span", {}, `by ${a.decided_by_name || "someone"} via ${a.decided_channel} at ${when(a.decided_at)}`) : null))
      : h("p", { class: "muted" }, "None."));
}

function approvalRow(a, showTask) {
  const status = h("span", { class: "muted" });
  const decide = async (path, body) => {
    try {
      const done = await api(`/api/approvals/${a.id}/${path}`, { method: "POST", body });
      status.replaceChildren(badge(done.status), ` by ${done.decided_by_name || "you"}`);
    } catch (e) {
      status.textContent = String(e.message || e);
    }
    refreshApprovalCount();
  };
  return h("div", { class: "approval-row", "data-approval": a.id },
    h("div", {},
      showTask ? h("div", { class: "meta" }, h("a", { href: `#/tasks/${a.task_id}` }, `#${a.task_id} ${a.task_title || ""}`), when(a.created_at)) : null,
      h("div", {}, a.action)),
    h("div", { class: "actions" },
      h("button", { class: "primary", "data-action": "approve", onclick: () => decide("approve", { scope: "once" }) }, "Approve"),
      h("button", { "data-action": "always", onclick: () => decide("approve", { scope: "always" }) }, "Always"),
      h("button", { class: "danger", "data-action": "deny", onclick: () => decide("deny") }, "Deny"),
      status));
}

/** One timeline entry, shown whole: the web is where the full story lives. */
function eventItem(ev) {
  const b = ev.body || {};
  const meta = h("div", { class: "meta" },
    h("span", { class: "kind" }, ev.kind.replace(/_/g, " ")),
    ev.channel ? badge(ev.channel, "channel") : null,
    ev.actor ? h("span", {}, ev.actor) : null,
    ev.execution_id ? h("span", {}, `execution #${ev.execution_id}`) : null,
    h("span", {}, when(ev.at)));
  let body;
  switch (ev.kind) {
    case "message": body = h("div", { class: "body" }, b.text); break;
    case "decision": body = h("div", { class: "body" }, h("strong", {}, b.intent), b.confidence !== undefined ? ` (${Number(b.confidence).toFixed(2)})` : "", b.reason ? ` — ${b.reason}` : ""); break;
    case "command": body = commandBody(b); break;
    case "file_change": body = h("div", {}, (b.changes || []).map((c) => h("div", {}, h("code", {}, c.path), b.applied === false ? " (not applied)" : "", c.diff ? diffBlock(c.diff) : null))); break;
    case "approval": body = approvalBody(b, ev); break;
    case "result": {
      const status = b.status || (b.outcome && b.outcome.status);
      body = h("div", { class: "body" }, status ? badge(status) : null, " ", b.summary || "");
      break;
    }
    case "runtime": body = runtimeBody(b); break;
    default: body = h("div", { class: "body" }, b.text || b.summary || JSON.stringify(b));
  }
  return h("li", { class: ev.kind, "data-event": ev.id }, meta, body);
}

function commandBody(b) {
  const finished = b.type === "command_finished";
  return h("div", {},
    h("code", {}, `$ ${b.command || ""}`), " ",
    finished ? badge(b.exit_code === 0 || b.status === "completed" ? `exit ${b.exit_code ?? 0}` : `exit ${b.exit_code ?? "?"}`, b.exit_code === 0 ? "completed" : "failed") : badge("started", "running"),
    finished && b.output_tail ? h("pre", {}, b.output_tail) : null);
}

function diffBlock(diff) {
  return h("pre", { class: "diff" }, diff.split("\n").map((line) => {
    const cls = line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : null;
    return h("span", { class: cls }, line + "\n");
  }));
}

function approvalBody(b, ev) {
  if (b.type === "approval_requested") {
    const r = b.request || {};
    return h("div", { class: "body" }, "Requested: ", h("strong", {}, r.action || b.action || ""), r.detail ? h("pre", {}, r.detail) : null);
  }
  if (b.type === "approval_expired") return h("div", { class: "body" }, badge("expired"), ` ${b.action || ""} — ${b.reason || ""}`);
  if (b.status) {
    return h("div", { class: "body" }, badge(b.status), ` ${b.action || ""}`, b.scope === "always" ? " (for the session)" : "",
      ` — by ${ev.actor || "someone"}${ev.channel ? ` via ${ev.channel}` : ""} at ${when(ev.at)}`, b.note ? ` · ${b.note}` : "");
  }
  if (b.type === "approval_resolved") return h("div", { class: "body" }, `Resolved: ${b.decision || "withdrawn"}`);
  return h("div", { class: "body" }, JSON.stringify(b));
}

function runtimeBody(b) {
  switch (b.type) {
    case "agent_text": return h("div", { class: "body" }, b.text);
    case "plan": return h("ul", {}, (b.steps || []).map((s) => h("li", {}, `${s.status === "completed" ? "✓" : s.status === "in_progress" ? "…" : "○"} ${s.text}`)));
    case "session_ready": return h("div", { class: "body muted" }, `Session ${b.resumed ? "resumed" : "started"}: ${b.provider_session_id}`);
    case "turn_started": return h("div", { class: "body muted" }, "Turn started");
    case "question": return h("div", { class: "body" }, "Question: ", h("strong", {}, b.text));
    case "died": return h("div", { class: "body error" }, `Agent process died: ${b.reason}${b.restarting ? " (restarting)" : ""}`);
    default: return h("div", { class: "body muted" }, b.text || JSON.stringify(b));
  }
}

function messageComposer(task, placeholder) {
  const input = h("textarea", { placeholder, rows: 2, id: "composer-text" });
  const send = async () => {
    const text = input.value.trim();
    if (!text) return;
    input.disabled = true;
    try {
      await api("/api/messages", { method: "POST", body: { text, task, client_id: crypto.randomUUID ? crypto.randomUUID() : String(Math.random()) } });
      input.value = "";
    } catch (e) { showError(e); }
    input.disabled = false;
    input.focus();
  };
  input.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); send(); } });
  return h("div", { class: "composer" }, input, h("button", { class: "primary", id: "composer-send", onclick: send }, "Send"));
}

// ---- approvals inbox ------------------------------------------------------------------

function approvalsPage() {
  const list = h("div", { class: "card" });
  view.replaceChildren(h("h1", {}, "Approvals"), h("p", { class: "muted" }, "Agents waiting for a decision, oldest first."), list);
  async function load() {
    let pending;
    try { pending = await api("/api/approvals"); } catch (e) { return showError(e); }
    list.replaceChildren(...(pending.length ? pending.map((a) => approvalRow(a, true)) : [h("div", { class: "empty" }, "Nothing is waiting for you.")]));
  }
  load();
  return { hint: debounce(load) };
}

// ---- web chat -------------------------------------------------------------------------

function chatPage() {
  let task = null; // the task the next message continues, when one was picked
  const messages = h("div", { class: "messages", id: "messages" });
  const target = h("span", { class: "muted" });
  const composer = h("div");
  view.replaceChildren(h("div", { class: "chat" },
    h("div", { class: "task-head" }, h("h1", {}, "Chat"), target),
    h("div", { class: "card messages-card", style: null }, messages),
    composer));
  const setTarget = (t) => {
    task = t;
    target.replaceChildren(t ? h("span", {}, `replying to task #${t} · `, h("button", { class: "link", onclick: () => setTarget(null) }, "new topic")) : "Write what you want done; replies continue the task you pick.");
    composer.replaceChildren(messageComposer(task, task ? `Follow up on task #${task}…` : "Ask an agent to do something… (/link to join your chat accounts)"));
  };
  setTarget(null);

  async function load() {
    let lines;
    try { lines = await api("/api/messages"); } catch (e) { return showError(e); }
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    messages.replaceChildren(...(lines.length ? lines.map((m) => bubble(m, setTarget)) : [h("div", { class: "empty" }, "No messages yet.")]));
    if (atBottom || lines.length) messages.scrollTop = messages.scrollHeight;
  }
  load();
  const reload = debounce(load, 50);
  return { hint: (hnt) => { if (hnt.type === "chat" || hnt.type === "resync" || hnt.type === "approvals") reload(); } };
}

function bubble(m, setTarget) {
  const approval = m.approval;
  const actions = [];
  if (approval) {
    actions.push(approvalButtons(m.approval));
  } else if ((m.buttons || []).length) {
    actions.push(h("div", { class: "actions" }, m.buttons.map((b) => h("button", {
      onclick: () => api(`/api/messages/${m.id}/choose`, { method: "POST", body: { choice: b.choice } }).catch(showError),
    }, b.label))));
  }
  return h("div", { class: `bubble ${m.from}`, "data-message": m.id },
    h("div", {}, m.text),
    actions,
    h("div", { class: "meta" },
      m.from === "you" ? "you" : "taskgate", when(m.at),
      m.task ? h("a", { href: `#/tasks/${m.task}` }, `task #${m.task}`) : null,
      m.task && m.from !== "you" ? h("button", { class: "link", onclick: () => setTarget(m.task) }, "reply") : null));
}

function approvalButtons(id) {
  const status = h("span", { class: "muted" });
  const decide = async (path, body) => {
    try {
      const a = await api(`/api/approvals/${id}/${path}`, { method: "POST", body });
      status.replaceChildren(badge(a.status));
    } catch (e) { status.textContent = String(e.message || e); }
    refreshApprovalCount();
  };
  return h("div", { class: "actions", "data-approval": id },
    h("button", { class: "primary", "data-action": "approve", onclick: () => decide("approve", { scope: "once" }) }, "Approve"),
    h("button", { "data-action": "always", onclick: () => decide("approve", { scope: "always" }) }, "Always"),
    h("button", { class: "danger", "data-action": "deny", onclick: () => decide("deny") }, "Deny"),
    status);
}

start();
