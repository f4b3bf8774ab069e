// taskgate web console: a small single-page app over the JSON API (/api/openapi.json).
// Pages: #/tasks, #/tasks/<id>, #/approvals, #/chat. Live updates arrive as SSE hints
// (/api/stream) and the page re-fetches what it shows; nothing polls.
//
// Safety: every piece of text from the server (messages, agent output, diffs) becomes DOM text
// nodes. Markdown and diffs are parsed here into elements; nothing is ever assigned to
// innerHTML, and only http(s)/mailto links are made clickable.
"use strict";

const view = document.getElementById("view");
let current = null; // the page shown: { hint(h), dispose() }
let stream = null;
let me = null; // GET /api/session: who is logged in, the agents a task can be given

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
  append(el, children);
  return el;
}

function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
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
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!res.ok) throw new Error((data && data.error) || res.statusText || `HTTP ${res.status}`);
  return data;
}

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

/** "14:03" today, "Yesterday 14:03", "Mar 3, 14:03", "Mar 3, 2024, 14:03". */
function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (sameDay(d, now)) return time;
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(d, yesterday)) return `Yesterday ${time}`;
  const opts = { month: "short", day: "numeric" };
  if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
  return `${d.toLocaleDateString([], opts)}, ${time}`;
}

function timeEl(iso) {
  return iso ? h("time", { datetime: iso, title: new Date(iso).toLocaleString() }, fmtTime(iso)) : null;
}

/** "just now", "5 min ago", "3 h ago", then the date and time. */
function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 6 * 3600) return `${Math.floor(s / 3600)} h ago`;
  return fmtTime(iso);
}

const STATUS = {
  waiting_approval: "needs approval", waiting_input: "needs an answer", running: "running", idle: "idle",
  completed: "completed", failed: "failed", cancelled: "cancelled",
};
const statusLabel = (s) => STATUS[s] || String(s || "").replace(/_/g, " ");
const badge = (text, cls) => h("span", { class: `badge ${cls || text}` }, String(text).replace(/_/g, " "));
const statusBadge = (s) => h("span", { class: `badge ${s}` }, statusLabel(s));
const CHANNELS = { web: "the web", telegram: "Telegram", feishu: "Feishu" };
const fromChannel = (c) => (c ? `from ${CHANNELS[c] || c}` : "");
const plural = (n, one, many) => `${n} ${n === 1 ? one : many || `${one}s`}`;

/** Runs `fn` once after a burst of calls has settled for `ms`. */
function debounce(fn, ms = 150) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

function showError(e) {
  if (e instanceof Unauthorized) return showLogin();
  console.error(e);
  const old = view.querySelector(":scope > p.error.page-error");
  if (old) old.remove();
  view.prepend(h("p", { class: "error page-error" }, String(e.message || e)));
}

const nearBottom = () => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 120;
const scrollToEnd = () => window.scrollTo(0, document.documentElement.scrollHeight);

/** The "jump to latest" button of the chat and task pages: shown while scrolled up. */
const jumper = (() => {
  const button = h("button", { class: "jump", id: "jump", type: "button", hidden: true, onclick: () => { scrollToEnd(); hide(); } }, "↓ Latest");
  document.body.append(button);
  let active = false;
  let unseen = 0;
  const hide = () => { unseen = 0; button.hidden = true; };
  const update = () => {
    if (!active || nearBottom()) return hide();
    button.textContent = unseen ? `↓ ${unseen} new` : "↓ Latest";
    button.hidden = false;
  };
  window.addEventListener("scroll", debounce(update, 60), { passive: true });
  return {
    attach() { active = true; hide(); },
    detach() { active = false; hide(); },
    arrived(n) { unseen += n; update(); },
    update,
  };
})();

// ---- Markdown (a safe subset, built as elements) ---------------------------------------

const SAFE_URL = /^(https?:\/\/|mailto:|#\/)/i;
const INLINE = new RegExp([
  "(`+)([\\s\\S]*?[^`])\\1(?!`)", // 1, 2: code
  "\\[([^\\]\\n]+)\\]\\(([^()\\s]+)\\)", // 3, 4: link
  "\\*\\*(\\S(?:[\\s\\S]*?\\S)?)\\*\\*", // 5: bold
  "(?<![\\w])__(\\S(?:[\\s\\S]*?\\S)?)__(?![\\w])", // 6: bold
  "(?<![\\w*])\\*(\\S(?:[^*]*?\\S)?)\\*(?![\\w*])", // 7: emphasis
  "(?<![\\w])_(\\S(?:[^_]*?\\S)?)_(?![\\w])", // 8: emphasis
  "~~(\\S(?:[\\s\\S]*?\\S)?)~~", // 9: strikethrough
  "(https?:\\/\\/[^\\s<>()]*[^\\s<>().,;:!?'\"\\]])", // 10: bare URL
].join("|"), "g");

/** Inline Markdown (code, links, bold, emphasis, strikethrough) as nodes. */
function inline(text) {
  const s = String(text ?? "");
  const out = [];
  let last = 0;
  for (const m of s.matchAll(INLINE)) {
    if (m.index > last) out.push(s.slice(last, m.index));
    if (m[1]) out.push(h("code", {}, m[2].length > 2 && m[2].startsWith(" ") && m[2].endsWith(" ") ? m[2].slice(1, -1) : m[2]));
    else if (m[3]) out.push(SAFE_URL.test(m[4]) ? link(m[4], inline(m[3])) : m[0]);
    else if (m[5] || m[6]) out.push(h("strong", {}, inline(m[5] || m[6])));
    else if (m[7] || m[8]) out.push(h("em", {}, inline(m[7] || m[8])));
    else if (m[9]) out.push(h("del", {}, inline(m[9])));
    else if (m[10]) out.push(link(m[10], m[10]));
    last = m.index + m[0].length;
  }
  if (last < s.length) out.push(s.slice(last));
  return out;
}

function link(url, content) {
  const local = url.startsWith("#/");
  return h("a", { href: url, target: local ? null : "_blank", rel: local ? null : "noopener noreferrer" }, content);
}

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^\s{0,3}>/;
const ITEM = /^(\s{0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_ROW = /^\s*\|.*\|\s*$/;
const TABLE_SEP = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
const blank = (l) => /^\s*$/.test(l);
const startsBlock = (l) => FENCE.test(l) || HEADING.test(l) || RULE.test(l) || QUOTE.test(l) || ITEM.test(l);

/** Markdown (paragraphs, headings, lists, quotes, fenced code, tables, rules) as a `div.md`. */
function md(text, cls = "md") {
  const root = h("div", { class: cls });
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (blank(line)) { i++; continue; }
    if ((m = line.match(FENCE))) {
      const close = m[1][0].repeat(m[1].length);
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(close)) body.push(lines[i++]);
      i++;
      root.append(h("pre", {}, h("code", {}, highlight(body.join("\n"), m[2]))));
      continue;
    }
    if ((m = line.match(HEADING))) { root.append(h(`h${m[1].length}`, {}, inline(m[2]))); i++; continue; }
    if (RULE.test(line)) { root.append(h("hr")); i++; continue; }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(lines[i++].replace(/^\s{0,3}>\s?/, ""));
      root.append(h("blockquote", {}, Array.from(md(body.join("\n"), "").childNodes)));
      continue;
    }
    if (ITEM.test(line)) {
      const ordered = /\d/.test(line.match(ITEM)[2][0]);
      const items = [];
      while (i < lines.length) {
        const l = lines[i];
        const im = l.match(ITEM);
        if (im && /\d/.test(im[2][0]) === ordered && im[1].length < 2) { items.push([im[3]]); i++; continue; }
        if (items.length && !blank(l) && (/^\s{2,}\S/.test(l) || (!startsBlock(l) && !im))) { items[items.length - 1].push(l.replace(/^\s{2,4}/, "")); i++; continue; }
        if (items.length && blank(l) && i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1])) { items[items.length - 1].push(""); i++; continue; }
        break;
      }
      const start = ordered ? parseInt(line.match(ITEM)[2], 10) : null;
      root.append(h(ordered ? "ol" : "ul", { start: ordered && start !== 1 ? start : null }, items.map(([first, ...rest]) => {
        const task = first.match(/^\[([ xX])\]\s+(.*)$/);
        const head = task ? [task[1] === " " ? "☐ " : "☑ ", inline(task[2])] : inline(first);
        const nested = rest.length ? Array.from(md(rest.join("\n"), "").childNodes) : [];
        return h("li", {}, head, nested);
      })));
      continue;
    }
    if (TABLE_ROW.test(line) && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
      const cells = (l) => l.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
      const head = cells(line);
      i += 2;
      const rows = [];
      while (i < lines.length && TABLE_ROW.test(lines[i])) rows.push(cells(lines[i++]));
      root.append(h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, inline(c))))),
        h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, inline(c)))))))));
      continue;
    }
    const para = [line];
    i++;
    while (i < lines.length && !blank(lines[i]) && !startsBlock(lines[i]) && !(TABLE_ROW.test(lines[i]) && TABLE_SEP.test(lines[i + 1] || ""))) para.push(lines[i++]);
    root.append(h("p", {}, para.map((l, n) => [n ? h("br") : null, inline(l)])));
  }
  return root;
}

// ---- syntax colouring and diffs -----------------------------------------------------------

const KEYWORDS = new Set(("as async await break case catch class const continue def default defer del do elif else enum " +
  "except export extends false final finally fn for from func function go if impl import in interface is lambda let loop " +
  "match mod mut new nil None null or package pass pub raise return self Self static struct super switch this throw " +
  "trait true True False try type typeof use var void where while with yield").split(" "));
const EXT = {
  rs: "c", js: "c", mjs: "c", cjs: "c", ts: "c", tsx: "c", jsx: "c", go: "c", c: "c", h: "c", cc: "c", cpp: "c", hpp: "c",
  java: "c", kt: "c", swift: "c", cs: "c", scala: "c", css: "c", scss: "c", dart: "c", php: "c", json: "c",
  py: "hash", sh: "hash", bash: "hash", zsh: "hash", rb: "hash", yaml: "hash", yml: "hash", toml: "hash", r: "hash",
  pl: "hash", ex: "hash", exs: "hash", dockerfile: "hash", makefile: "hash", mk: "hash", nix: "hash", conf: "hash", ini: "hash",
  sql: "dash", lua: "dash", hs: "dash",
};
const LANG_ALIAS = { rust: "rs", javascript: "js", typescript: "ts", python: "py", shell: "sh", console: "sh", golang: "go", "c++": "cpp" };
const TOKENS = {
  c: /(\/\/.*$|\/\*.*?(?:\*\/|$))|("(?:[^"\\]|\\.)*"?|`(?:[^`\\]|\\.)*`?)|\b(\d[\w.]*)\b|\b([A-Za-z_]\w*)\b/g,
  hash: /(#.*$)|("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)|\b(\d[\w.]*)\b|\b([A-Za-z_]\w*)\b/g,
  dash: /(--.*$)|("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)|\b(\d[\w.]*)\b|\b([A-Za-z_]\w*)\b/g,
};

function langOf(name) {
  const n = String(name || "").toLowerCase();
  const base = n.split("/").pop();
  if (base === "dockerfile" || base === "makefile") return EXT[base];
  const ext = LANG_ALIAS[n] || (base.includes(".") ? base.split(".").pop() : n);
  return EXT[LANG_ALIAS[ext] || ext] || null;
}

/** One line (or block) of code as coloured spans; plain text when the language is unknown. */
function highlight(code, lang) {
  const style = lang && (TOKENS[lang] ? lang : langOf(lang));
  if (!style) return [code];
  const out = [];
  for (const [n, line] of code.split("\n").entries()) {
    if (n) out.push("\n");
    let last = 0;
    const re = new RegExp(TOKENS[style].source, "g");
    for (const m of line.matchAll(re)) {
      const cls = m[1] ? "tk-c" : m[2] ? "tk-s" : m[3] ? "tk-n" : KEYWORDS.has(m[4]) ? "tk-k" : null;
      if (!cls) continue;
      if (m.index > last) out.push(line.slice(last, m.index));
      out.push(h("span", { class: cls }, m[0]));
      last = m.index + m[0].length;
    }
    if (last < line.length) out.push(line.slice(last));
  }
  return out;
}

let projectRoot = ""; // the task page's project directory: paths are shown relative to it

function shortPath(p) {
  let s = String(p || "").trim().replace(/^[ab]\//, "");
  if (projectRoot && s.startsWith(`${projectRoot}/`)) s = s.slice(projectRoot.length + 1);
  return s;
}

/** "edit /srv/web/src/a.rs" as "edit src/a.rs" inside the project's directory. */
const relative = (text) => (projectRoot ? String(text || "").split(`${projectRoot}/`).join("") : String(text || ""));

/** Where a command runs: "the project's directory", or its path inside (or outside) it. */
function directory(cwd) {
  const dir = String(cwd || "").replace(/\/+$/, "");
  if (projectRoot && dir === projectRoot) return "the project's directory";
  return h("code", {}, relative(dir));
}

/** Runs `fn` with paths shown relative to `root` (an approval's own project). */
function withRoot(root, fn) {
  const saved = projectRoot;
  if (root) projectRoot = String(root).replace(/\/+$/, "");
  try { return fn(); } finally { projectRoot = saved; }
}

/**
 * A diff as files of lines. Understands unified diffs (git's or plain `---`/`+++`/`@@`), and an
 * agent's "--- <path>" followed by a new file's content (every line added).
 */
function parseDiff(text, fallbackPath) {
  const lines = String(text || "").replace(/\r\n?/g, "\n").replace(/\n$/, "").split("\n");
  const files = [];
  let f = null;
  let oldLeft = 0;
  let newLeft = 0;
  const start = (path) => { f = { path: shortPath(path || fallbackPath || "file"), lines: [], hunks: 0, added: 0, removed: 0, raw: false }; files.push(f); };
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (oldLeft > 0 || newLeft > 0) {
      const c = l[0];
      if (c === "+") { f.lines.push({ t: "add", s: l.slice(1) }); f.added++; newLeft--; }
      else if (c === "-") { f.lines.push({ t: "del", s: l.slice(1) }); f.removed++; oldLeft--; }
      else if (c === "\\") f.lines.push({ t: "meta", s: l });
      else { f.lines.push({ t: "ctx", s: l.slice(1) }); oldLeft--; newLeft--; }
      continue;
    }
    if (l.startsWith("diff --git ")) { start((l.match(/ b\/(.*)$/) || [])[1] || l.slice(11)); f.git = true; continue; }
    if (f && f.git && !f.lines.length && /^(index |new file mode|deleted file mode|old mode|new mode|similarity |rename |Binary )/.test(l)) continue;
    if (l.startsWith("--- ") && (lines[i + 1] || "").startsWith("+++ ")) {
      const a = l.slice(4).replace(/\t.*$/, "").trim();
      const b = lines[i + 1].slice(4).replace(/\t.*$/, "").trim();
      const path = b === "/dev/null" ? a : b;
      if (f && f.git && !f.lines.length) f.path = shortPath(path); else start(path);
      f.git = false;
      i++;
      continue;
    }
    if (l.startsWith("--- ") || (l.startsWith("+++ ") && (!f || f.lines.length))) { start(l.slice(4).trim()); continue; }
    if (l.startsWith("@@")) {
      const m = l.match(/^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/);
      if (!f) start(fallbackPath);
      f.hunks++;
      oldLeft = m ? Number(m[1] ?? 1) : 0;
      newLeft = m ? Number(m[2] ?? 1) : 0;
      f.lines.push({ t: "hunk", s: l });
      continue;
    }
    if (!f) start(fallbackPath);
    if (f.hunks === 0) { f.raw = true; f.lines.push({ t: "add", s: l }); f.added++; } else f.lines.push({ t: "meta", s: l });
  }
  // "+line" bodies without a hunk header: a diff after all.
  for (const file of files) {
    if (file.raw && file.lines.length && file.lines.every((x) => /^[+\- ]/.test(x.s) || x.s === "")) {
      file.added = 0;
      file.lines = file.lines.map((x) => {
        const t = x.s[0] === "+" ? "add" : x.s[0] === "-" ? "del" : "ctx";
        if (t === "add") file.added++; else if (t === "del") file.removed++;
        return { t, s: x.s.slice(1) };
      });
      file.removed = file.lines.filter((x) => x.t === "del").length;
      file.raw = false;
    }
  }
  return files;
}

const SIGNS = { add: "+", del: "−", ctx: " ", hunk: "", meta: "" };

/** One file of a diff, collapsible; its lines are built the first time it is opened. */
function diffFile(file, key, open) {
  const lang = langOf(file.path);
  const body = h("div", { class: "diff-lines" });
  const fill = () => {
    if (body.childElementCount) return;
    append(body, file.lines.map((line) => h("div", { class: line.t },
      h("span", { class: "sign" }, SIGNS[line.t]),
      line.t === "hunk" || line.t === "meta" ? line.s : highlight(line.s, lang))));
  };
  const el = fold(key, [h("span", { class: "path" }, file.path), file.raw ? h("span", { class: "muted" }, "new file") : null,
    h("span", { class: "plus" }, `+${file.added}`), h("span", { class: "minus" }, `−${file.removed}`)], body, open && file.lines.length <= 120, "diff");
  el.dataset.path = file.path;
  if (el.open) fill();
  el.addEventListener("toggle", () => { if (el.open) fill(); });
  return el;
}

function diffView(text, fallbackPath, key, open) {
  return parseDiff(text, fallbackPath).map((f, n) => diffFile(f, `${key}/${n}`, open));
}

// Open/closed state of collapsible parts, kept across re-renders of a page (by key).
let folds = new Map();

/** A `<details>` whose open state survives re-rendering. */
function fold(key, summary, content, open, cls = "fold") {
  const state = folds.has(key) ? folds.get(key) : open;
  const el = h("details", { class: cls, open: state ? true : null, "data-fold": key }, h("summary", {}, summary), content);
  el.addEventListener("toggle", () => folds.set(key, el.open));
  return el;
}

/** Long text cut to a few lines with "Show all". */
function clamp(node, key, long) {
  if (!long) return node;
  if (folds.get(key)) return node;
  const wrap = h("div", { class: "clamped" }, node);
  const more = h("button", { class: "link", type: "button", onclick: () => { folds.set(key, true); wrap.classList.remove("clamped"); more.remove(); } }, "Show all");
  return h("div", {}, wrap, more);
}

// ---- login, live stream, notifications ----------------------------------------------

function showLogin() {
  closeStream();
  me = null;
  for (const id of ["nav", "logout", "notify"]) document.getElementById(id).hidden = true;
  if (current && current.dispose) current.dispose();
  current = null;
  jumper.detach();
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

function setLive(on, text) {
  const live = document.getElementById("live");
  live.classList.toggle("on", on);
  live.querySelector(".live-text").textContent = text;
}

function openStream() {
  closeStream();
  stream = new EventSource("/api/stream");
  stream.addEventListener("hello", () => setLive(true, "live"));
  stream.onerror = () => {
    setLive(false, "reconnecting");
    // A stream refused because the session ended: find out, and show the login form.
    api("/api/session").catch((e) => { if (e instanceof Unauthorized) showLogin(); });
  };
  for (const type of ["task", "approvals", "chat", "resync"]) {
    stream.addEventListener(type, (ev) => {
      const hint = JSON.parse(ev.data);
      if (type !== "chat") refreshApprovals();
      if (current && current.hint) current.hint(hint);
    });
  }
}

function closeStream() {
  if (stream) stream.close();
  stream = null;
  setLive(false, "offline");
}

let knownPending = null; // approval ids seen pending (null until the first look)

/** The pending count in the navigation and the title; a notification for each new one. */
const refreshApprovals = debounce(async () => {
  let pending;
  try { pending = await api("/api/approvals"); } catch (_) { return; }
  const count = document.getElementById("approval-count");
  count.textContent = pending.length;
  count.hidden = pending.length === 0;
  document.title = pending.length ? `(${pending.length}) taskgate` : "taskgate";
  const ids = new Set(pending.map((a) => a.id));
  if (knownPending) for (const a of pending) if (!knownPending.has(a.id)) notifyApproval(a);
  knownPending = ids;
}, 250);

const notifyButton = document.getElementById("notify");

function setupNotifications() {
  if (!("Notification" in window)) return;
  notifyButton.hidden = false;
  showNotifyState();
  if (Notification.permission === "granted") registerWorker();
}

function showNotifyState() {
  const p = Notification.permission;
  notifyButton.classList.toggle("on", p === "granted");
  notifyButton.title = p === "granted" ? "Notifications on: you hear of new approvals while the console is open"
    : p === "denied" ? "Notifications are blocked for this site in the browser's settings"
      : "Notify me when an approval arrives";
  notifyButton.setAttribute("aria-label", notifyButton.title);
}

// Permission is asked only here, on a press, never when the page loads.
notifyButton.addEventListener("click", async () => {
  if (!("Notification" in window)) return;
  if (Notification.permission === "default") {
    try { await Notification.requestPermission(); } catch (_) { /* an old browser's callback form */ }
  }
  showNotifyState();
  if (Notification.permission === "granted") {
    await registerWorker();
    showNotification("Notifications are on", { body: "You will hear of approvals while the console is open.", tag: "taskgate-on" });
  }
});

async function registerWorker() {
  if (!("serviceWorker" in navigator)) return null;
  try { return await navigator.serviceWorker.register("/sw.js"); } catch (_) { return null; }
}

async function showNotification(title, options) {
  const opts = { icon: "/icon-192.png", badge: "/icon-192.png", ...options };
  try {
    const reg = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration() : null;
    if (reg) return await reg.showNotification(title, opts);
  } catch (_) { /* fall back to a page notification */ }
  try {
    const n = new Notification(title, opts);
    n.onclick = () => { window.focus(); location.hash = (opts.data && opts.data.url || "#/approvals").replace(/^\//, ""); n.close(); };
  } catch (_) { /* phones need the worker; nothing more to try */ }
}

function notifyApproval(a) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible" && document.hasFocus() && location.hash === "#/approvals") return;
  const who = (a.request && a.request.agent) || "An agent";
  showNotification(`${who} is waiting for approval`, {
    body: `${a.action}\n#${a.task_id} ${a.task_title || ""}`,
    tag: `approval-${a.id}`,
    data: { url: "/#/approvals" },
  });
}

async function start() {
  try {
    me = await api("/api/session");
  } catch (e) {
    return showError(e);
  }
  for (const id of ["nav", "logout"]) document.getElementById(id).hidden = false;
  setupNotifications();
  openStream();
  knownPending = null;
  refreshApprovals();
  route();
}

document.getElementById("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" }).catch(() => {});
  showLogin();
});

// ---- routing --------------------------------------------------------------------------

function route() {
  if (!me) return;
  const hash = location.hash || "#/tasks";
  let m;
  if (current && current.dispose) current.dispose();
  folds = new Map();
  projectRoot = "";
  jumper.detach();
  window.scrollTo(0, 0);
  let page;
  if ((m = hash.match(/^#\/tasks\/(\d+)$/))) page = taskPage(Number(m[1]));
  else if (hash === "#/approvals") page = approvalsPage();
  else if (hash === "#/chat") page = chatPage();
  else if (hash === "#/undelivered") page = undeliveredPage();
  else page = tasksPage();
  const section = hash.split("/")[1] || "tasks";
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === section);
  current = page;
}

window.addEventListener("hashchange", route);

// ---- tasks list -----------------------------------------------------------------------

function tasksPage() {
  const filters = { q: "", project: "", status: "", agent: "" };
  const list = h("ul", { class: "task-list", id: "task-list" });
  const search = h("input", {
    type: "search", id: "task-search", placeholder: "Search titles and what was said…", "aria-label": "Search tasks",
    oninput: debounce((e) => { filters.q = e.target.value.trim(); load(); }, 250),
  });
  const select = (label, key, options) => h("select", { "aria-label": label, onchange: (e) => { filters[key] = e.target.value; load(); } }, options);
  const projectSel = select("Project", "project", [h("option", { value: "" }, "Project")]);
  const statusSel = select("Status", "status", [h("option", { value: "" }, "Status"),
    Object.keys(STATUS).map((s) => h("option", { value: s }, statusLabel(s)))]);
  const agentSel = select("Agent", "agent", [h("option", { value: "" }, "Agent"), (me.agents || []).map((a) => h("option", { value: a }, a))]);
  const undelivered = h("p", { class: "notice", id: "undelivered-notice", hidden: true });
  view.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Tasks"), h("a", { class: "button primary", href: "#/chat" }, "New task")),
    undelivered,
    h("div", { class: "filters" }, search, projectSel, statusSel, agentSel),
    list,
  );
  api("/api/undelivered").then((u) => {
    const n = u.messages.length + u.updates.length;
    if (!n) return;
    undelivered.replaceChildren(h("a", { href: "#/undelivered" }, `${n} ${n === 1 ? "message" : "messages"} could not be delivered`));
    undelivered.hidden = false;
  }).catch(() => {});
  api("/api/projects").then((ps) => ps.forEach((p) => projectSel.append(h("option", { value: p.name }, p.name)))).catch(showError);

  const highlightWords = (text) => {
    const words = filters.q.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return [text];
    const re = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "gi");
    return text.split(re).map((part, n) => (n % 2 ? h("mark", {}, part) : part));
  };

  async function load() {
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    let tasks;
    try { tasks = await api(`/api/tasks?${q}`); } catch (e) { return showError(e); }
    list.replaceChildren(...(tasks.length ? tasks.map((t) => h("li", { class: `task-row${t.pending_approvals ? " has-pending" : ""}`, "data-task": t.id },
      h("a", { href: `#/tasks/${t.id}` },
        h("div", { class: "task-line" }, h("span", { class: "task-title" }, filters.q ? highlightWords(t.title) : inline(t.title)), h("span", { class: "task-id" }, `#${t.id}`)),
        h("div", { class: "task-meta" },
          statusBadge(t.status),
          t.pending_approvals ? badge(`${t.pending_approvals} waiting`, "pending") : null,
          t.project ? h("span", {}, t.project) : null,
          t.agents.length ? h("span", {}, t.agents.join(", ")) : null,
          h("span", { title: new Date(t.last_activity).toLocaleString() }, ago(t.last_activity))),
        t.matched ? h("div", { class: "task-match" }, "“", highlightWords(t.matched), "”") : null)))
      : [h("li", { class: "empty" }, filters.q || filters.project || filters.status || filters.agent ? "No task matches." : "No tasks yet: start one in Chat.")]));
  }
  load();
  return { hint: debounce(load, 200) };
}

// ---- one task -------------------------------------------------------------------------

const SHOW_DETAILS = "taskgate.details";

function taskPage(id) {
  let events = [];
  let detail = null;
  let lastEvent = 0;
  let details = localStorage.getItem(SHOW_DETAILS) === "1";
  let shown = 0; // entries on screen, to count what arrived while scrolled up

  const title = h("h1", { id: "task-title" });
  const sub = h("div", { class: "task-sub" });
  const status = h("div", { class: "control-status muted", id: "control-status", "aria-live": "polite" });
  const say = (text, error) => { status.textContent = text; status.classList.toggle("error", !!error); };
  const control = async (path, body, doing) => {
    say(doing);
    try {
      const r = await api(`/api/tasks/${id}/${path}`, { method: "POST", body: body || {} });
      say(r && r.done ? r.done : "Done.");
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin();
      say(String(e.message || e), true);
    }
    refresh();
  };

  const stopButton = h("button", { class: "danger solid", id: "task-stop", type: "button", hidden: true, onclick: () => control("stop", {}, "Stopping…") }, "■ Stop");
  let confirmNew = null;
  const newButton = h("button", {
    id: "task-new-session", type: "button", title: "The agents start over from the task's restart note",
    onclick: () => {
      if (!confirmNew) {
        newButton.textContent = "Start over?";
        newButton.classList.add("primary");
        confirmNew = setTimeout(() => { confirmNew = null; newButton.textContent = "New session"; newButton.classList.remove("primary"); }, 4000);
        return;
      }
      clearTimeout(confirmNew);
      confirmNew = null;
      newButton.textContent = "New session";
      newButton.classList.remove("primary");
      control("new-session", {}, "Starting a new session…");
    },
  }, "New session");

  const renameInput = h("input", { type: "text", id: "rename-input", "aria-label": "New title", maxlength: 200 });
  const renameForm = h("form", {
    class: "inline-form", id: "rename-form", hidden: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      const t = renameInput.value.trim();
      if (!t) return;
      say("Renaming…");
      try { await api(`/api/tasks/${id}/rename`, { method: "POST", body: { title: t } }); say("Renamed."); renameForm.hidden = true; } catch (e) { say(String(e.message || e), true); }
      refresh();
    },
  }, renameInput, h("button", { class: "primary", type: "submit" }, "Save"), h("button", { type: "button", onclick: () => { renameForm.hidden = true; } }, "Cancel"));
  renameInput.addEventListener("keydown", (e) => { if (e.key === "Escape") renameForm.hidden = true; });
  const renameButton = h("button", {
    class: "link", type: "button", id: "task-rename", title: "Rename", "aria-label": "Rename the task",
    onclick: () => { renameForm.hidden = !renameForm.hidden; renameInput.value = detail ? detail.task.title : ""; if (!renameForm.hidden) renameInput.focus(); },
  }, "✎");

  const agentSel = h("select", { id: "spawn-agent", "aria-label": "Agent" }, (me.agents || []).map((a) => h("option", { value: a }, a)));
  const roleSel = h("select", { id: "spawn-role", "aria-label": "Role" }, (me.roles || ["reviewer"]).map((r) => h("option", { value: r, selected: r === "reviewer" ? true : null }, `as ${r}`)));
  const spawnForm = h("form", {
    class: "inline-form", id: "spawn-form", hidden: true,
    onsubmit: (ev) => { ev.preventDefault(); spawnForm.hidden = true; control("agents", { agent: agentSel.value, role: roleSel.value }, `Asking ${agentSel.value} to join…`); },
  }, agentSel, roleSel, h("button", { class: "primary", type: "submit" }, "Start"), h("button", { type: "button", onclick: () => { spawnForm.hidden = true; } }, "Cancel"));
  const spawnButton = h("button", { type: "button", id: "task-spawn", onclick: () => { spawnForm.hidden = !spawnForm.hidden; } }, "+ Agent");

  const detailsBox = h("input", { type: "checkbox", id: "show-details", checked: details ? true : null, onchange: (e) => { details = e.target.checked; localStorage.setItem(SHOW_DETAILS, details ? "1" : "0"); render(); } });
  const toolbar = h("div", { class: "toolbar" }, stopButton, newButton, spawnButton,
    h("label", { class: "details-toggle", title: "Show internals: classifier decisions, sessions, turn starts, ids" }, detailsBox, "Details"));

  const side = h("aside", { class: "task-side" });
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const pending = h("div", { class: "approvals", id: "pending" });
  const composer = messageComposer(id, "Follow up on this task…");
  view.replaceChildren(
    h("div", { class: "task-top" }, h("div", { class: "title-row" }, title, renameButton), sub, toolbar, renameForm, spawnForm, status),
    h("div", { class: "task-grid" }, side, h("div", { class: "task-main" }, timeline, pending)),
    h("div", { class: "composer-bar" }, composer),
  );

  function render() {
    if (!detail) return;
    const t = detail.task;
    projectRoot = detail.project ? String(detail.project.path || "").replace(/\/+$/, "") : "";
    title.replaceChildren(h("span", { class: "muted" }, `#${t.id} `), ...inline(t.title));
    document.title = `#${t.id} ${t.title} · taskgate`;
    const lastAt = events.length ? events[events.length - 1].at : t.updated_at;
    sub.replaceChildren(h("span", { id: "task-status" }, statusBadge(t.status)),
      detail.project ? h("span", {}, detail.project.name) : null,
      detail.created_by_name ? h("span", {}, `started by ${detail.created_by_name}`) : null,
      h("span", {}, "last activity ", timeEl(lastAt)));
    stopButton.hidden = !["running", "waiting_approval", "waiting_input"].includes(t.status);

    const waiting = detail.approvals.filter((a) => a.status === "pending");
    const ctx = { details, approvals: new Map(detail.approvals.map((a) => [a.id, a])) };
    const entries = buildEntries(events, ctx);
    // A waiting approval's entry is its card below the timeline, with the buttons.
    const waitingIds = new Set(waiting.map((a) => a.id));
    const visible = entries.filter((e) => (details || !e.internal) && !(e.kind === "approval" && waitingIds.has(e.approval) && !e.decided && !e.expired));
    timeline.replaceChildren(...(visible.length ? visible.map((e) => renderEntry(e, ctx)) : [h("li", { class: "empty" }, "Nothing happened yet.")]));
    pending.replaceChildren(...waiting.map((a) => approvalCard(a, false, refresh)));
    side.replaceChildren(changedFiles(events, waiting), agentsPanel(detail.executions, details), restartNote(t, detail.note_entries, detail.note_captured));
    const grew = visible.length - shown;
    shown = visible.length;
    return grew;
  }

  async function loadTask() {
    detail = await api(`/api/tasks/${id}`);
  }

  async function loadEvents() {
    const more = await api(`/api/tasks/${id}/events?after=${lastEvent}`);
    for (const ev of more) {
      lastEvent = Math.max(lastEvent, ev.id);
      events.push(ev);
    }
  }

  let first = true;
  async function reload() {
    const stick = first || nearBottom();
    try { await Promise.all([loadTask(), loadEvents()]); } catch (e) { return showError(e); }
    const grew = render();
    if (stick) scrollToEnd();
    else if (grew > 0) jumper.arrived(grew);
    if (first) jumper.attach();
    first = false;
  }
  const refresh = debounce(reload, 100);
  reload();
  return {
    hint: (hnt) => { if (hnt.type === "resync" || hnt.task === id || hnt.type === "approvals") refresh(); },
    dispose: () => { document.title = "taskgate"; },
  };
}

/**
 * The timeline as people read it: one entry per thing that happened. An approval's request,
 * decision and the agent's acknowledgement are one entry; a command's start and finish are
 * one; the message and classifier decision behind a typed "/approve" fold into the approval.
 * Internals (decisions, session starts, turn starts, unknown rows) are marked `internal` and
 * shown only with Details on.
 */
function buildEntries(events, ctx) {
  const out = [];
  const groups = new Map();
  const requests = new Map(); // "<execution>:<request id>" → approval group key
  const group = (key, kind, ev, fill, move) => {
    let g = groups.get(key);
    if (!g) {
      g = { key, kind, events: [], internal: false };
      groups.set(key, g);
      out.push(g);
    } else if (move) {
      out.splice(out.indexOf(g), 1);
      out.push(g);
    }
    g.events.push(ev);
    g.at = ev.at;
    fill(g);
    return g;
  };
  const single = (ev, kind, internal) => out.push({ key: `e${ev.id}`, kind, events: [ev], ev, at: ev.at, internal });
  let textSinceTurn = new Map(); // execution → agent text seen since its last turn ended
  for (let i = 0; i < events.length; i++) {
    const ev = events[i];
    const b = ev.body || {};
    switch (b.type) {
      case "approval_requested":
        requests.set(`${ev.execution_id}:${b.request_id}`, `a${b.approval}`);
        group(`a${b.approval}`, "approval", ev, (g) => { g.requested = ev; g.approval = b.approval; });
        break;
      case "approval_decided":
        group(`a${b.approval}`, "approval", ev, (g) => { g.decided = ev; g.approval = b.approval; }, true);
        break;
      case "approval_expired":
        group(`a${b.approval}`, "approval", ev, (g) => { g.expired = ev; g.approval = b.approval; }, true);
        break;
      case "approval_resolved": {
        const key = requests.get(`${ev.execution_id}:${b.request_id}`);
        if (key) group(key, "approval", ev, (g) => { g.resolved = ev; });
        else single(ev, "approval", true);
        break;
      }
      case "command_started":
        group(`c${ev.execution_id}:${b.id}`, "command", ev, (g) => { g.started = ev; });
        break;
      case "command_finished":
        group(`c${ev.execution_id}:${b.id}`, "command", ev, (g) => { g.finished = ev; }, true);
        break;
      case "message": {
        // A typed "/approve" is told by the approval's entry; "/cancel", "/new" (the Stop and
        // New session buttons too) by a one-line entry saying what was asked.
        const next = events[i + 1];
        const intent = next && next.body && next.body.type === "decision" ? next.body.intent : null;
        if (intent === "approve" || intent === "deny") single(ev, "message", true);
        else if ((intent === "cancel" || intent === "new_session") && /^\//.test(b.text || "")) out.push({ key: `e${ev.id}`, kind: "asked", events: [ev], ev, at: ev.at, internal: false, intent });
        else single(ev, "message", false);
        break;
      }
      case "attachment":
        single(ev, "attachment", false);
        break;
      case "agent_text":
        textSinceTurn.set(ev.execution_id, true);
        single(ev, "agent", false);
        break;
      case "turn_finished": {
        const e = { key: `e${ev.id}`, kind: "result", events: [ev], ev, at: ev.at, internal: false, hadText: !!textSinceTurn.get(ev.execution_id) };
        textSinceTurn.set(ev.execution_id, false);
        out.push(e);
        break;
      }
      case "decision": case "session_ready": case "turn_started":
        single(ev, "internal", true);
        break;
      case "plan": case "question": case "question_answered": case "file_changed": case "died": case "turn_handed_over":
      case "answer_undelivered": case "answer_queued": case "decision_undelivered": case "note_entry": case "note_field":
        single(ev, b.type, false);
        break;
      default:
        single(ev, "internal", true);
    }
  }
  return out;
}

function entryHead(who, channel, at, extra) {
  return h("div", { class: "entry-head" }, who ? h("span", { class: "who" }, who) : null,
    channel ? badge(channel, "channel") : null, extra, timeEl(at));
}

/** What only Details shows about an entry: its events' kinds and ids, and their internals. */
function internals(entry) {
  return h("div", { class: "internals" }, entry.events.map((ev) => {
    const b = ev.body || {};
    const bits = [`#${ev.id} ${b.type || ev.kind}`];
    if (ev.execution_id) bits.push(`execution ${ev.execution_id}`);
    if (b.type === "decision") bits.push(`${b.intent} (${Number(b.confidence).toFixed(2)})`, b.reason);
    if (b.type === "session_ready") bits.push(`${b.resumed ? "resumed" : "new"} session ${b.provider_session_id}`);
    if (b.type === "turn_started" && b.turn_id) bits.push(`turn ${b.turn_id}`);
    if (b.type === "approval_resolved") bits.push(`agent told: ${b.decision || "withdrawn"}`);
    if (b.type === "approval_requested") bits.push(`request ${b.request_id}`);
    if (b.type === "turn_finished") {
      bits.push(`turn ${b.turn}`);
      const u = b.usage || {};
      if (u.input_tokens || u.output_tokens) bits.push(`${u.input_tokens || 0} in / ${u.output_tokens || 0} out tokens`);
      if (u.cost_usd) bits.push(`$${Number(u.cost_usd).toFixed(4)}`);
    }
    if (!b.type) bits.push(JSON.stringify(b));
    return h("div", {}, bits.filter(Boolean).join(" · "));
  }));
}

function renderEntry(e, ctx) {
  const li = h("li", { class: `entry ${e.kind}${e.internal ? " internal" : ""}`, "data-entry": e.key, "data-event": e.events[e.events.length - 1].id });
  const ev = e.ev || e.events[0];
  const b = ev.body || {};
  const body = (...c) => h("div", { class: "entry-body" }, c);
  switch (e.kind) {
    case "approval": append(li, approvalEntry(e, ctx)); break;
    case "command": append(li, commandEntry(e)); break;
    case "message":
      append(li, entryHead(ev.actor || "someone", ev.channel, ev.at), h("div", { class: "entry-body plain" }, b.text));
      break;
    case "attachment":
      append(li, entryHead(ev.actor || "someone", ev.channel, ev.at), body(fileView(b)));
      break;
    case "agent": {
      const long = (b.text || "").length > 1500 || (b.text || "").split("\n").length > 24;
      append(li, entryHead(ev.actor, null, ev.at), body(clamp(md(b.text), `${e.key}/more`, long)));
      break;
    }
    case "result": {
      const o = b.outcome || {};
      const ev2 = b.evidence || {};
      const n = [(ev2.commands || []).length ? plural(ev2.commands.length, "command") : null, (ev2.files || []).length ? plural(ev2.files.length, "file") + " changed" : null].filter(Boolean).join(" · ");
      const what = o.status === "completed" ? "Finished the turn" : o.status === "interrupted" ? "Stopped"
        : o.status === "timed_out" ? `Timed out after ${Math.round((o.limit_secs || 0) / 60)} min` : o.status === "failed" ? "Failed" : "Turn ended";
      li.classList.toggle("bad", o.status === "failed" || o.status === "timed_out");
      append(li, entryHead(ev.actor, null, ev.at),
        body(h("div", { class: "entry-line" }, h("strong", {}, what), n ? h("span", { class: "muted" }, n) : null)),
        o.status === "failed" && o.message ? body(h("span", { class: "error" }, o.message)) : null,
        !e.hadText && o.status === "completed" && b.summary ? body(md(b.summary)) : null);
      break;
    }
    case "asked":
      append(li, entryHead(ev.actor || "someone", ev.channel, ev.at, h("span", {}, e.intent === "cancel" ? "asked to stop the turn" : "started a new session")));
      li.classList.add("message");
      break;
    case "plan":
      append(li, entryHead(ev.actor, null, ev.at, h("span", {}, "plan")), h("ul", { class: "plan" }, (b.steps || []).map((s) => h("li", { class: s.status }, s.text || s.step || ""))));
      break;
    case "question":
      append(li, entryHead(ev.actor, null, ev.at, h("span", {}, "asks")), body(md(b.text)));
      break;
    case "question_answered":
      append(li, entryHead(ev.actor, ev.channel, ev.at, h("span", {}, "answered")), h("div", { class: "entry-body plain" }, b.text));
      break;
    case "file_changed": {
      const changes = b.changes || [];
      append(li, entryHead(ev.actor, null, ev.at),
        body(h("div", { class: "entry-line" }, h("strong", {}, b.applied === false ? "Proposed a change (not applied)" : `Changed ${plural(changes.length, "file")}`))),
        changes.map((c, n) => (c.diff ? diffView(c.diff, c.path, `${e.key}/${n}`, true) : h("div", { class: "diff" }, h("summary", {}, h("span", { class: "path" }, shortPath(c.path)))))));
      li.className = `entry file_change${e.internal ? " internal" : ""}`;
      break;
    }
    case "died":
      li.classList.add("problem");
      append(li, entryHead(ev.actor, null, ev.at), body(`The agent's process stopped: ${b.reason}${b.restarting ? " (restarting it)" : ""}`));
      break;
    case "turn_handed_over":
      li.classList.add("problem");
      append(li, entryHead(ev.actor || "taskgate", null, ev.at), body(`The turn was interrupted (${b.reason}); it runs again.`));
      break;
    case "answer_undelivered": case "answer_queued": case "decision_undelivered":
      li.classList.add("problem");
      append(li, entryHead(ev.actor || "taskgate", null, ev.at), body(b.type === "answer_queued" ? `The answer waits for the next turn: ${b.error}` : `Could not reach the agent: ${b.error}`));
      break;
    case "note_entry":
      append(li, entryHead(noteAuthor(ev.actor), null, ev.at, badge(b.kind || "note")), body(md(b.text)),
        (b.evidence || []).length ? h("div", { class: "internals" }, "evidence: ", b.evidence.join(", ")) : null);
      break;
    case "note_field":
      append(li, entryHead(noteAuthor(ev.actor), ev.channel, ev.at),
        b.field === "title"
          ? body("Renamed the task to “", h("strong", {}, b.value), "”", b.previous ? h("span", { class: "muted" }, ` (was “${b.previous}”)`) : null)
          : body(`Set the ${String(b.field).replace(/_/g, " ")}: `, inline(b.value)));
      break;
    default:
      append(li, entryHead(ev.actor, ev.channel, ev.at, h("span", {}, (b.type || ev.kind || "").replace(/_/g, " "))), b.text ? body(b.text) : null);
  }
  if (ctx.details) li.append(internals(e));
  return li;
}

const noteAuthor = (actor) => (actor || "").replace(/^execution:(\d+)$/, "agent (execution $1)").replace(/^person:\d+$/, "someone").replace(/^gateway$/, "taskgate");

function approvalEntry(e, ctx) {
  const req = e.requested ? e.requested.body : null;
  const row = ctx.approvals.get(e.approval);
  const action = relative((req && req.action) || (e.decided && e.decided.body.action) || (e.expired && e.expired.body.action) || (row && row.action) || "");
  const agent = (e.requested && e.requested.actor) || "The agent";
  const at = e.at;
  const parts = [];
  if (e.decided) {
    const d = e.decided.body;
    const scope = d.scope === "always" ? " for this session" : d.scope === "project" ? " always in this project" : "";
    const verb = d.status === "approved" ? "Approved" : d.status === "denied" ? "Denied" : statusLabel(d.status);
    const by = d.decided_by === null && d.rule ? `by standing rule #${d.rule}` : `by ${e.decided.actor || "someone"}${e.decided.channel ? ` ${fromChannel(e.decided.channel)}` : ""}`;
    parts.push(h("div", { class: "entry-line" }, badge(d.status), h("strong", {}, `${verb}${scope} ${by}`), h("span", {}, "· ", inline(action))));
    if (d.note) parts.push(h("div", { class: "muted small" }, d.note));
  } else if (e.expired) {
    parts.push(h("div", { class: "entry-line" }, badge("expired"), h("strong", {}, "Expired"), h("span", {}, "· ", inline(action))),
      h("div", { class: "muted small" }, e.expired.body.reason));
  } else if (row && row.status !== "pending") {
    parts.push(h("div", { class: "entry-line" }, badge(row.status), h("strong", {}, `${statusLabel(row.status)[0].toUpperCase()}${statusLabel(row.status).slice(1)} by ${row.decided_by_name || "someone"} ${fromChannel(row.decided_channel)}`), h("span", {}, "· ", inline(action))));
  } else {
    parts.push(h("div", { class: "entry-line" }, badge("waiting", "pending"), h("strong", {}, `${agent} asks to `), inline(action)),
      h("div", { class: "muted small" }, "Decide below."));
  }
  if (req) {
    const where = [req.cwd ? ["in ", directory(req.cwd)] : null, req.reason ? ` · ${req.reason}` : null].filter(Boolean);
    if (where.length) parts.push(h("div", { class: "muted small" }, where));
    if (req.detail) parts.push(fold(`${e.key}/detail`, req.kind === "file_change" ? "The change" : "Details", requestDetail(req, `${e.key}/diff`, true), false));
  }
  return [entryHead(e.requested ? agent : null, null, at), h("div", { class: "entry-body" }, parts)];
}

function commandEntry(e) {
  const s = (e.started || e.finished).body;
  const f = e.finished ? e.finished.body : null;
  const agent = (e.started || e.finished).actor;
  let state;
  if (!f) state = badge("running…", "running");
  else if (f.status === "declined") state = badge("declined", "cancelled");
  else state = badge(f.exit_code === null || f.exit_code === undefined ? f.status : `exit ${f.exit_code}`, f.status === "succeeded" || f.exit_code === 0 ? "ok" : "bad");
  const out = f && f.output_tail ? f.output_tail.replace(/\n$/, "") : "";
  const lines = out ? out.split("\n").length : 0;
  const output = !out ? null : lines > 8 ? fold(`${e.key}/out`, `Output (${plural(lines, "line")}, last ones)`, h("pre", {}, out), false) : h("pre", {}, out);
  return [entryHead(agent, null, e.at),
    h("div", { class: "entry-body" }, h("div", { class: "entry-line" }, h("code", {}, `$ ${s.command || ""}`), state), output)];
}

/** What an approval would do in full: a diff, or a tool's input. */
function requestDetail(req, key, open) {
  if (!req || !req.detail) return null;
  if (req.kind === "file_change" || /^(diff --git |--- |@@ )/m.test(req.detail)) return diffView(req.detail, null, key, open);
  let text = req.detail;
  try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON: as it is */ }
  return h("pre", {}, text);
}

/** The files a task changed (or an approval would change), with their line counts. */
function changedFiles(events, waiting) {
  const files = new Map();
  const add = (path, state, diff) => {
    const p = shortPath(path);
    const f = files.get(p) || { path: p, added: 0, removed: 0, state };
    for (const part of diff ? parseDiff(diff, p) : []) { f.added += part.added; f.removed += part.removed; }
    f.state = state;
    files.set(p, f);
  };
  for (const ev of events) {
    const b = ev.body || {};
    if (b.type === "file_changed") for (const c of b.changes || []) add(c.path, b.applied === false ? "not applied" : "changed", c.diff);
  }
  for (const a of waiting) {
    if (a.request && a.request.kind === "file_change" && a.request.detail) {
      for (const part of parseDiff(a.request.detail, null)) {
        const f = files.get(part.path) || { path: part.path, added: 0, removed: 0 };
        files.set(part.path, { ...f, added: f.added + part.added, removed: f.removed + part.removed, state: "waiting for approval" });
      }
    }
  }
  const list = [...files.values()];
  return fold("panel/files", `Changed files (${list.length})`, list.length
    ? h("ul", { class: "files", id: "changed-files" }, list.map((f) => h("li", {},
      h("span", { class: "path" }, f.path), h("span", { class: "plus" }, `+${f.added}`), h("span", { class: "minus" }, `−${f.removed}`),
      f.state !== "changed" ? badge(f.state, f.state === "not applied" ? "cancelled" : "pending") : null)))
    : h("p", { class: "muted small" }, "No file changed yet."), list.length > 0, "panel");
}

function agentsPanel(executions, details) {
  return fold("panel/agents", `Agents (${executions.length})`, executions.length ? h("div", { class: "agents" }, executions.map((e) => h("div", { class: "agent", "data-execution": e.id },
    h("div", { class: "agent-line" }, h("strong", {}, e.agent), h("span", { class: "muted" }, e.role), statusBadge(e.status), h("span", { class: "muted small" }, `since ${fmtTime(e.created_at)}`)),
    details ? h("dl", { class: "kv" },
      h("dt", {}, "execution"), h("dd", {}, `#${e.id}`),
      e.session ? [h("dt", {}, "session"), h("dd", {}, `${e.session.status}${e.session.model ? ` · ${e.session.model}` : ""}`),
        h("dt", {}, "provider id"), h("dd", {}, e.session.provider_session_id || "—")] : [h("dt", {}, "session"), h("dd", {}, "none yet")]) : null,
    executionDiff(e))))
    : h("p", { class: "muted small" }, "No agent yet."), false, "panel");
}

// One execution's changes (its worktree branch against its base, or the project's uncommitted
// changes), loaded on demand and drawn like every other diff.
function executionDiff(e) {
  const out = h("div", { class: "diff", "data-diff": e.id });
  const button = h("button", { class: "link", type: "button", onclick: async () => {
    button.disabled = true;
    try {
      const d = await api(`/api/executions/${e.id}/diff`);
      if (!d) { out.replaceChildren(h("p", { class: "muted small" }, "Not a git repository.")); return; }
      const size = d.disk_bytes ? ` · ${(d.disk_bytes / 1048576).toFixed(1)} MB on disk` : "";
      out.replaceChildren(
        h("div", { class: "muted small" }, d.branch ? `branch ${d.branch}${size}` : `in ${d.cwd} (uncommitted changes)`),
        d.diff ? h("div", {}, diffView(d.diff, null, `execution/${e.id}`, false)) : h("p", { class: "muted small" }, "No changes."));
    } catch (err) {
      out.replaceChildren(h("p", { class: "muted small" }, `No diff: ${err.message || err}`));
    } finally {
      button.disabled = false;
    }
  } }, "Show diff");
  return h("div", {}, button, out);
}

const CAPTURED_SECTIONS = [["instruction", "Instructions"], ["rejected", "Rejected"], ["evidence", "Evidence"], ["outcome", "Outcomes"], ["open", "Open"]];

/** The note's sections: the agents' entries on top, then what taskgate captured from the timeline. */
function restartNote(t, entries, captured) {
  const seen = (captured && captured.entries) || [];
  const next = t.next_action || (captured && captured.next_action);
  const fields = [["Goal", t.goal], ["Objective", t.objective], ["Reproduction", t.reproduction], ["Next action", next]].filter(([, v]) => v);
  const count = entries.length + seen.length;
  const sections = CAPTURED_SECTIONS.map(([key, title]) => [title, seen.filter((c) => c.section === key)]).filter(([, list]) => list.length);
  return fold("panel/note", `Restart note${count ? ` (${count})` : ""}`, [
    h("dl", { class: "kv" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    entries.length ? h("ul", { class: "notes" }, entries.map((n) => h("li", { class: "note" },
      h("div", { class: "entry-head" }, badge(n.kind), (n.stale_because || []).length ? badge("stale") : null, h("span", {}, noteAuthor(n.author)), timeEl(n.at)),
      md(n.text),
      (n.evidence || []).length ? h("div", { class: "internals" }, "evidence: ", n.evidence.join(", ")) : null,
      (n.stale_because || []).length ? h("div", { class: "internals" }, "changed since: ", n.stale_because.join(", ")) : null)))
      : (seen.length ? null : h("p", { class: "muted small" }, "No findings recorded yet.")),
    sections.map(([title, list]) => [
      h("div", { class: "muted small" }, `${title} (captured by taskgate)`),
      h("ul", { class: "notes" }, list.map((c) => h("li", { class: "note", "data-captured-event": c.event },
        h("div", { class: "entry-head" }, c.stale_because.length ? badge("stale") : null, timeEl(c.at),
          h("a", { href: `#ev-${c.event}`, onclick: (ev) => { ev.preventDefault(); const el = document.querySelector(`[data-event="${c.event}"]`); if (el) el.scrollIntoView({ block: "center" }); } }, "timeline")),
        h("div", {}, c.text),
        c.branch ? h("div", { class: "internals" }, "branch: ", c.branch) : null,
        c.stale_because.length ? h("div", { class: "internals" }, "changed since: ", c.stale_because.join(", ")) : null))),
    ]),
  ], false, "panel");
}

/** A pending approval in full (command and directory, or the diff), then the four answers. */
function approvalCard(a, showTask, after) {
  return withRoot(a.project_path, () => approvalCardIn(a, showTask, after));
}

function approvalCardIn(a, showTask, after) {
  const r = a.request || {};
  const who = r.agent || "The agent";
  const status = h("span", { class: "muted small", "aria-live": "polite" });
  const buttons = [];
  const decide = async (path, body) => {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const done = await api(`/api/approvals/${a.id}/${path}`, { method: "POST", body });
      status.replaceChildren(badge(done.status), ` by ${done.decided_by_name || "you"}`);
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin();
      status.textContent = String(e.message || e);
    }
    refreshApprovals();
    if (after) after();
  };
  const button = (action, label, cls, title, fn) => {
    const b = h("button", { class: cls, type: "button", "data-action": action, title, onclick: fn }, label);
    buttons.push(b);
    return b;
  };
  return h("div", { class: "card approval-card", "data-approval": a.id },
    showTask ? h("div", { class: "entry-head" }, h("a", { href: `#/tasks/${a.task_id}` }, `#${a.task_id} ${a.task_title || ""}`), timeEl(a.created_at)) : null,
    h("div", { class: "asks" }, `${who} asks to `, inline(relative(a.action))),
    r.cwd ? h("div", { class: "where" }, "in ", directory(r.cwd)) : null,
    r.reason ? h("div", { class: "where" }, "Why: ", r.reason) : null,
    requestDetail(r, `approval/${a.id}`, true),
    h("div", { class: "actions" },
      button("approve", "Approve", "primary", "Allow this once", () => decide("approve", { scope: "once" })),
      button("always", "This session", "", "Allow this for the rest of the agent's session", () => decide("approve", { scope: "always" })),
      button("project", "Always here", "", "Always allow this in this project (a standing rule)", () => decide("approve", { scope: "project" })),
      button("deny", "Deny", "danger", "Refuse it; the agent goes on without it", () => decide("deny")),
      status));
}

/** "48 MB", "512 KB", "12 bytes", as the gateway says sizes. */
function sizeText(n) {
  if (n >= 1048576) return `${Math.ceil(n / 1048576)} MB`;
  if (n >= 1024) return `${Math.ceil(n / 1024)} KB`;
  return `${n} bytes`;
}

/** A stored file: an image as a thumbnail that opens it, anything else as a download link. */
function fileView(f) {
  const url = `/api/files/${encodeURIComponent(f.sha256)}`;
  const label = `${f.name}${f.size ? ` (${sizeText(f.size)})` : ""}`;
  if (f.kind === "image" || /^image\/(png|jpeg|gif|webp)$/.test(f.mime || "")) {
    return h("a", { class: "file-thumb", href: url, target: "_blank", rel: "noopener", title: label },
      h("img", { src: url, alt: f.name, loading: "lazy" }));
  }
  return h("a", { class: "file-link", href: url, download: f.name }, `📎 ${label}`);
}

/** Uploads one file (POST /api/files); what a message sends for it. */
async function upload(file) {
  const res = await fetch(`/api/files?name=${encodeURIComponent(file.name || "pasted.png")}`, {
    method: "POST", credentials: "same-origin", headers: { "content-type": file.type || "application/octet-stream" }, body: file,
  });
  if (res.status === 401) throw new Unauthorized();
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error((data && data.error) || `HTTP ${res.status}`);
  return data;
}

function messageComposer(task, placeholder) {
  const input = h("textarea", { placeholder, rows: 1, id: "composer-text", "aria-label": "Message" });
  const grow = () => { input.style.height = "auto"; input.style.height = `${Math.min(input.scrollHeight + 2, window.innerHeight * 0.4)}px`; };
  // Files picked, taken with the camera, pasted or dropped: sent with the next message.
  let pending = [];
  const chips = h("div", { class: "composer-files" });
  const showPending = () => chips.replaceChildren(...pending.map((f, i) => h("span", { class: "chip" }, f.name || "pasted image",
    h("button", { class: "link", type: "button", "aria-label": `Remove ${f.name}`, onclick: () => { pending.splice(i, 1); showPending(); } }, "×"))));
  const add = (files) => { for (const f of files || []) pending.push(f); showPending(); };
  const picker = h("input", { type: "file", multiple: true, hidden: true, onchange: (ev) => { add(ev.target.files); ev.target.value = ""; } });
  const camera = h("input", { type: "file", accept: "image/*", capture: "environment", hidden: true, onchange: (ev) => { add(ev.target.files); ev.target.value = ""; } });
  const send = async () => {
    const text = input.value.trim();
    if (!text && !pending.length) return;
    input.disabled = true;
    try {
      const files = [];
      for (const f of pending) files.push(await upload(f));
      await api("/api/messages", { method: "POST", body: { text, task, files, client_id: crypto.randomUUID ? crypto.randomUUID() : String(Math.random()) } });
      input.value = "";
      pending = [];
      showPending();
      grow();
      scrollToEnd();
    } catch (e) { showError(e); }
    input.disabled = false;
    input.focus();
  };
  input.addEventListener("input", grow);
  input.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); } });
  input.addEventListener("paste", (ev) => { const files = ev.clipboardData && ev.clipboardData.files; if (files && files.length) { ev.preventDefault(); add(files); } });
  const box = h("div", { class: "composer" },
    h("button", { class: "attach", type: "button", title: "Attach files", "aria-label": "Attach files", onclick: () => picker.click() }, "📎"),
    h("button", { class: "attach", type: "button", title: "Take a photo", "aria-label": "Take a photo", onclick: () => camera.click() }, "📷"),
    input, picker, camera, h("button", { class: "primary", id: "composer-send", type: "button", onclick: send }, "Send"));
  box.addEventListener("dragover", (ev) => { ev.preventDefault(); box.classList.add("dropping"); });
  box.addEventListener("dragleave", () => box.classList.remove("dropping"));
  box.addEventListener("drop", (ev) => { ev.preventDefault(); box.classList.remove("dropping"); add(ev.dataTransfer && ev.dataTransfer.files); });
  return h("div", { class: "composer-wrap" }, chips, box);
}

// ---- approvals inbox ------------------------------------------------------------------

function approvalsPage() {
  const list = h("div", { class: "approvals", id: "approvals" });
  const hint = "Notification" in window && Notification.permission !== "granted"
    ? h("p", { class: "muted small" }, "Tap the bell at the top to be notified of new approvals while the console is open.") : null;
  view.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Approvals")),
    h("p", { class: "muted" }, "Agents waiting for a decision, oldest first. Read what would happen, then answer."), hint, list);
  async function load() {
    let pending;
    try { pending = await api("/api/approvals"); } catch (e) { return showError(e); }
    list.replaceChildren(...(pending.length ? pending.map((a) => approvalCard(a, true, null)) : [h("div", { class: "card empty" }, "Nothing is waiting for you.")]));
  }
  load();
  return { hint: debounce(load, 150) };
}

// ---- undelivered ----------------------------------------------------------------------

/** What the gateway gave up on: replies a platform never accepted, updates set aside. */
function undeliveredPage() {
  const messages = h("ul", { class: "undelivered", id: "undelivered-messages" });
  const updates = h("ul", { class: "undelivered", id: "undelivered-updates" });
  view.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Undelivered")),
    h("h2", {}, "Replies the chat never got"), messages,
    h("h2", {}, "Messages set aside unanswered"), updates);
  const row = (r, what) => h("li", { "data-undelivered": r.id },
    h("div", {}, h("strong", {}, r.channel), " ", what, r.at ? h("span", { class: "muted small" }, ` · ${ago(r.at)}`) : null),
    h("div", { class: "muted small" }, r.error || "no error recorded"));
  api("/api/undelivered").then((u) => {
    messages.replaceChildren(...(u.messages.length ? u.messages.map((m) => row(m, [`chat ${m.chat_id}`,
      m.task_id ? [" · ", h("a", { href: `#/tasks/${m.task_id}` }, `task #${m.task_id}`)] : null, h("div", { class: "clamped" }, m.text)]))
      : [h("li", { class: "empty" }, "Every reply was delivered.")]));
    updates.replaceChildren(...(u.updates.length ? u.updates.map((i) => row(i, `update #${i.id}`))
      : [h("li", { class: "empty" }, "Nothing was set aside.")]));
  }).catch(showError);
  return {};
}

// ---- web chat -------------------------------------------------------------------------

function chatPage() {
  let task = null; // the task the next message continues, when one was picked
  let shown = 0;
  const messages = h("div", { class: "messages", id: "messages" });
  const target = h("div", { class: "target" });
  const composerSlot = h("div");
  view.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Chat")), messages,
    h("div", { class: "composer-bar" }, target, composerSlot));
  const setTarget = (t) => {
    task = t;
    target.replaceChildren(...(t ? [h("span", {}, `Replying to task #${t}`), h("button", { class: "link", type: "button", onclick: () => setTarget(null) }, "new topic")]
      : [h("span", {}, "Say what you want done; a reply continues the task you pick.")]));
    composerSlot.replaceChildren(messageComposer(task, task ? `Follow up on task #${task}…` : "Ask an agent to do something…"));
  };
  setTarget(null);

  let first = true;
  const reload = debounce(() => load(), 60);
  async function load() {
    let lines;
    try { lines = await api("/api/messages"); } catch (e) { return showError(e); }
    const stick = first || nearBottom();
    messages.replaceChildren(...(lines.length ? lines.map((m) => bubble(m, setTarget, reload)) : [h("div", { class: "empty" }, "No messages yet.")]));
    if (stick) scrollToEnd();
    else if (lines.length > shown) jumper.arrived(lines.length - shown);
    shown = lines.length;
    if (first) jumper.attach();
    first = false;
  }
  load();
  return { hint: (hnt) => { if (hnt.type === "chat" || hnt.type === "resync" || hnt.type === "approvals") reload(); } };
}

function bubble(m, setTarget, after) {
  const extra = [];
  const a = m.approval_state;
  if (a && a.status === "pending") {
    const r = a.request || {};
    if (r.detail) extra.push(withRoot(a.project_path, () => fold(`chat/${a.id}`, r.kind === "file_change" ? "Show the change" : "Details", requestDetail(r, `chat/${a.id}/diff`, true), false)));
    else if (r.cwd) extra.push(h("div", { class: "muted small" }, "in ", h("code", {}, r.cwd)));
    extra.push(approvalButtons(a.id, after));
  } else if (a) {
    const by = a.status === "expired" ? "" : a.decided_by_name ? `by ${a.decided_by_name} ${fromChannel(a.decided_channel)}` : a.rule_id ? `by standing rule #${a.rule_id}` : "";
    extra.push(h("div", { class: "decided" }, badge(a.status), " ", by));
  } else if ((m.buttons || []).length) {
    extra.push(h("div", { class: "actions" }, m.buttons.map((b) => h("button", {
      type: "button",
      onclick: () => api(`/api/messages/${m.id}/choose`, { method: "POST", body: { choice: b.choice } }).catch(showError),
    }, b.label))));
  }
  const mine = m.from === "you";
  return h("div", { class: `bubble ${m.from}`, "data-message": m.id },
    mine ? h("div", {}, m.text) : a ? withRoot(a.project_path, () => md(relative(m.text))) : md(m.text),
    (m.files || []).length ? h("div", { class: "files" }, m.files.map(fileView)) : null,
    extra,
    h("div", { class: "meta" },
      h("span", {}, mine ? "You" : "taskgate"), timeEl(m.at),
      m.task ? h("a", { href: `#/tasks/${m.task}` }, `task #${m.task}`) : null,
      m.task && !mine ? h("button", { class: "link", type: "button", onclick: () => setTarget(m.task) }, "reply") : null));
}

function approvalButtons(id, after) {
  const status = h("span", { class: "muted small" });
  const buttons = [];
  const decide = async (path, body) => {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const a = await api(`/api/approvals/${id}/${path}`, { method: "POST", body });
      status.replaceChildren(badge(a.status));
    } catch (e) { status.textContent = String(e.message || e); }
    refreshApprovals();
    if (after) after();
  };
  const button = (action, label, cls, fn) => { const b = h("button", { class: cls, type: "button", "data-action": action, onclick: fn }, label); buttons.push(b); return b; };
  return h("div", { class: "actions", "data-approval": id },
    button("approve", "Approve", "primary", () => decide("approve", { scope: "once" })),
    button("always", "This session", "", () => decide("approve", { scope: "always" })),
    button("project", "Always here", "", () => decide("approve", { scope: "project" })),
    button("deny", "Deny", "danger", () => decide("deny")),
    status);
}

start();
