// The gateway console: a client of /admin. The admin key lives in sessionStorage only.
"use strict";

const STORE = "gateway.adminKey";
const DAYS = 30;
const $ = sel => document.querySelector(sel);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c === null || c === undefined ? "" : c);
  return el;
}

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.param = err.param || "";
  }
}

async function api(method, path, body) {
  const headers = {Authorization: "Bearer " + sessionStorage.getItem(STORE)};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {method, headers, cache: "no-store",
                               body: body === undefined ? undefined : JSON.stringify(body)});
  if (r.status === 401 && path !== "/admin/keys?probe=1") { signOut("The admin key was refused; sign in again."); }
  const type = r.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// ---- sign in / out --------------------------------------------------------------------
async function signIn(event) {
  event.preventDefault();
  const input = $("#admin-key");
  sessionStorage.setItem(STORE, input.value.trim());
  input.value = "";
  try {
    await api("GET", "/admin/keys?probe=1");
  } catch (e) {
    sessionStorage.removeItem(STORE);
    $("#sign-in-error").textContent = e.status === 404
      ? "The admin API is off on this gateway: set ADMIN_API_KEY and restart it."
      : e.message;
    return;
  }
  start();
}

function signOut(message) {
  sessionStorage.removeItem(STORE);
  $("#tabs").hidden = true;
  document.querySelectorAll(".view").forEach(v => { v.hidden = true; });
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message || "";
}

function start() {
  $("#sign-in").hidden = true;
  $("#sign-in-error").textContent = "";
  $("#tabs").hidden = false;
  show("keys");
}

const loaders = {keys: loadKeys, usage: loadUsage, status: loadStatus};

function show(view) {
  document.querySelectorAll("#tabs [data-view]").forEach(b => {
    b.classList.toggle("active", b.dataset.view === view);
  });
  document.querySelectorAll(".view").forEach(v => { v.hidden = v.id !== "view-" + view; });
  loaders[view]();
}

// ---- keys -------------------------------------------------------------------------------
function fmtTime(iso) { return iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "–"; }
function limitText(k) {
  const rpm = k.requests_per_minute === null ? "default" : k.requests_per_minute;
  const tpm = k.tokens_per_minute === null ? "default" : k.tokens_per_minute;
  return `${rpm} req/min · ${tpm} tok/min`;
}
function keyState(k) {
  if (k.revoked) return "revoked";
  if (k.expires_at && new Date(k.expires_at) <= new Date()) return "expired";
  return "active";
}

async function loadKeys() {
  $("#keys-error").textContent = "";
  let keys;
  try { keys = (await api("GET", "/admin/keys")).data; }
  catch (e) { $("#keys-error").textContent = e.message; return; }
  const body = $("#keys-table tbody");
  body.replaceChildren(...keys.map(keyRow));
  if (!keys.length) body.append(h("tr", {}, h("td", {colspan: 12, class: "hint"}, "No keys yet.")));
}

function keyRow(k) {
  const state = keyState(k);
  const tr = h("tr", {"data-key-id": k.id},
    h("td", {}, k.name || "–"), h("td", {}, h("code", {}, k.id), " ", k.key_hint),
    h("td", {}, k.owner_email || "–"), h("td", {}, k.tier), h("td", {}, limitText(k)),
    h("td", {}, k.allowed_models ? k.allowed_models.join(", ") : "all"),
    h("td", {}, fmtTime(k.created_at)), h("td", {}, fmtTime(k.last_used_at)),
    h("td", {class: "num", "data-field": "request_count"}, String(k.request_count)),
    h("td", {class: "num"}, `${k.prompt_tokens} / ${k.completion_tokens}`),
    h("td", {class: "state-" + state, "data-field": "state"},
      state + (k.expires_at && state === "active" ? ` until ${fmtTime(k.expires_at)}` : "")),
    h("td", {}));
  const actions = tr.lastChild;
  if (state !== "revoked") {
    actions.append(h("button", {type: "button", onclick: () => editRow(tr, k)}, "Edit limits"), " ",
                   h("button", {type: "button", class: "revoke", onclick: () => revoke(k)}, "Revoke"));
  }
  return tr;
}

async function revoke(k) {
  if (!confirm(`Revoke the key "${k.name || k.id}"? Clients using it are refused from now on.`)) return;
  try { await api("POST", `/admin/keys/${encodeURIComponent(k.id)}/revoke`); }
  catch (e) { $("#keys-error").textContent = e.message; }
  loadKeys();
}

function field(label, name, value) {
  return h("label", {}, label, h("input", {name, value: value ?? ""}),
           h("span", {class: "error", "data-error-for": name}));
}

function editRow(tr, k) {
  if (tr.nextSibling && tr.nextSibling.classList && tr.nextSibling.classList.contains("editing")) return;
  const form = h("form", {class: "edit-form"},
    field("Requests/min (empty: default)", "requests_per_minute", k.requests_per_minute),
    field("Tokens/min (empty: default)", "tokens_per_minute", k.tokens_per_minute),
    field("Allowed models (empty: all)", "allowed_models", (k.allowed_models || []).join(", ")),
    field("Tier", "tier", k.tier),
    field("Expires (UTC; empty: never)", "expires_at", k.expires_at || ""),
    h("div", {}, h("button", {type: "submit"}, "Save"), " ",
      h("button", {type: "button", onclick: () => row.remove()}, "Cancel"),
      h("span", {class: "error", "data-error-for": ""})));
  const row = h("tr", {class: "editing"}, h("td", {colspan: 12}, form));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const values = readForm(form);
    try {
      await api("PATCH", `/admin/keys/${encodeURIComponent(k.id)}`, values);
      loadKeys();
    } catch (e) { showError(form, e); }
  });
  tr.after(row);
}

// Form fields -> the admin API's JSON: numbers, lists, null for "use the default".
function readForm(form) {
  const out = {};
  for (const input of form.querySelectorAll("input[name]")) {
    const v = input.value.trim();
    const name = input.name;
    if (name === "requests_per_minute" || name === "tokens_per_minute") {
      out[name] = v === "" ? null : (/^-?\d+$/.test(v) ? Number(v) : v);
    } else if (name === "allowed_models") {
      out[name] = v === "" ? null : v.split(",").map(s => s.trim()).filter(Boolean);
    } else if (name === "expires_at" || name === "owner_email") {
      out[name] = v === "" ? null : v;
    } else if (v !== "" || name === "name") {
      out[name] = v;
    }
  }
  return out;
}

function showError(form, e) {
  form.querySelectorAll("[data-error-for]").forEach(s => { s.textContent = ""; });
  const slot = form.querySelector(`[data-error-for="${CSS.escape(e.param)}"]`)
            || form.querySelector('[data-error-for=""]');
  slot.textContent = e.message;
}

async function createKey(event) {
  event.preventDefault();
  const form = event.target;
  form.querySelectorAll("[data-error-for]").forEach(s => { s.textContent = ""; });
  let created;
  try { created = await api("POST", "/admin/keys", readForm(form)); }
  catch (e) { showError(form, e); return; }
  form.reset();
  $("#new-secret-value").textContent = created.key;  // shown once; never stored
  $("#new-secret").hidden = false;
  loadKeys();
}

async function copySecret() {
  const text = $("#new-secret-value").textContent;
  try { await navigator.clipboard.writeText(text); }
  catch (_) {  // no clipboard permission: select it for Ctrl+C
    const range = document.createRange();
    range.selectNodeContents($("#new-secret-value"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
  $("#copy-secret").textContent = "Copied";
}

function dismissSecret() {
  $("#new-secret-value").textContent = "";
  $("#new-secret").hidden = true;
  $("#copy-secret").textContent = "Copy";
}

// ---- usage ------------------------------------------------------------------------------
function lastDays(n) {
  const out = [];
  const today = new Date();
  for (let i = n - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

function since() { return lastDays(DAYS)[0]; }

const CSV = {
  daily: () => `/admin/usage?since=${since()}&format=csv`,
  latency: () => "/admin/usage/requests?hours=24&order=recent&limit=100000&format=csv",
  slowest: () => "/admin/usage/requests?hours=24&order=slowest&limit=50&format=csv",
  failing: () => "/admin/usage/requests?hours=24&order=failing&limit=50&format=csv",
};

async function download(kind) {
  // fetch + blob: the admin key stays in a header, never in a URL.
  const r = await fetch(CSV[kind](), {headers: {Authorization: "Bearer " + sessionStorage.getItem(STORE)}});
  if (!r.ok) { $("#usage-error").textContent = `CSV export failed: HTTP ${r.status}`; return; }
  const url = URL.createObjectURL(await r.blob());
  const a = h("a", {href: url, download: `${kind}-${new Date().toISOString().slice(0, 10)}.csv`});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function series(rows, days, by, measure, labels) {
  const index = Object.fromEntries(days.map((d, i) => [d, i]));
  const out = {};
  for (const r of rows) {
    const raw = r[by] || (by === "model" ? "(none)" : "(no key)");
    const name = labels[raw] || raw;
    if (!(r.day in index)) continue;
    (out[name] = out[name] || new Array(days.length).fill(0))[index[r.day]] += r[measure];
  }
  return out;
}

function drawChart(fig, days, data, unit) {
  const total = Object.values(data).flat().reduce((a, b) => a + b, 0);
  const caption = fig.querySelector("figcaption");
  caption.querySelector(".actions")?.remove();
  caption.append(h("span", {class: "actions"},
    h("span", {class: "chart-total", "data-total": String(total)}, `${total} ${unit} `),
    h("button", {type: "button", class: "csv", onclick: () => download("daily")}, "CSV")));
  fig.querySelectorAll("svg, .legend").forEach(el => el.remove());
  fig.append(GatewayChart.stackedBars(days, data, unit), GatewayChart.legend(Object.keys(data)));
}

const REQUEST_COLUMNS = ["ts", "request_id", "key_id", "model", "path", "status", "error_code",
                         "duration_ms", "ttft_ms"];

function requestTable(table, rows) {
  table.tHead.replaceChildren(h("tr", {}, ...REQUEST_COLUMNS.map(c => h("th", {}, c))));
  const body = table.tBodies[0];
  body.replaceChildren(...rows.map(r => h("tr", {"data-request-id": r.request_id},
    ...REQUEST_COLUMNS.map(c => h("td", {class: typeof r[c] === "number" ? "num" : ""},
      c === "ts" ? fmtTime(r[c]) : (r[c] ?? "–").toString())))));
  if (!rows.length) body.append(h("tr", {}, h("td", {colspan: REQUEST_COLUMNS.length, class: "hint"}, "None.")));
}

function pct(p) { return p === null || p === undefined ? "–" : p.toFixed(1); }

async function loadUsage() {
  $("#usage-error").textContent = "";
  const days = lastDays(DAYS);
  let daily, latency, slowest, failing, keys;
  try {
    [daily, latency, slowest, failing, keys] = await Promise.all([
      api("GET", `/admin/usage?since=${days[0]}`),
      api("GET", "/admin/usage/latency?hours=24"),
      api("GET", "/admin/usage/requests?hours=24&order=slowest&limit=20"),
      api("GET", "/admin/usage/requests?hours=24&order=failing&limit=20"),
      api("GET", "/admin/keys"),
    ]);
  } catch (e) { $("#usage-error").textContent = e.message; return; }
  const rows = daily.data;
  const labels = Object.fromEntries(keys.data.map(k => [k.id, k.name ? `${k.name} (${k.id})` : k.id]));
  const charts = {
    "requests-by-key": ["key_id", "requests", "requests"],
    "tokens-by-key": ["key_id", "total_tokens", "tokens"],
    "requests-by-model": ["model", "requests", "requests"],
    "tokens-by-model": ["model", "total_tokens", "tokens"],
  };
  for (const [name, [by, measure, unit]] of Object.entries(charts)) {
    drawChart(document.querySelector(`[data-chart="${name}"]`), days, series(rows, days, by, measure, by === "key_id" ? labels : {}), unit);
  }
  const lat = [["all models", latency.overall], ...Object.entries(latency.by_model)];
  $("#latency-table tbody").replaceChildren(...lat.map(([model, s]) => h("tr", {},
    h("td", {}, model || "(none)"), h("td", {class: "num"}, String(s.requests)),
    ...["p50", "p90", "p95", "p99"].map(p => h("td", {class: "num"}, pct(s.duration_ms[p]))),
    ...["p50", "p90", "p95", "p99"].map(p => h("td", {class: "num"}, pct(s.ttft_ms[p]))))));
  requestTable($("#slowest-table"), slowest.data);
  requestTable($("#failing-table"), failing.data);
  $("#usage-updated").textContent = "updated " + new Date().toLocaleTimeString();
}

// ---- status -----------------------------------------------------------------------------
// Cooldowns appear in /readyz's JSON once model routing reports them; show any we find.
function cooldownOf(readiness, name) {
  const backends = readiness.backends || readiness.cooldowns || {};
  const b = backends[name] ?? backends[name.replace(/^provider:/, "")];
  if (b === undefined || b === null) return "–";
  if (typeof b !== "object") return String(b);
  const v = b.cooldown_seconds ?? b.cooldown_remaining_seconds ?? b.cooldown ?? b.cooldown_until;
  return v === undefined || v === null ? "–" : String(v);
}

async function loadStatus() {
  $("#status-error").textContent = "";
  let s;
  try { s = await api("GET", "/admin/status"); }
  catch (e) { $("#status-error").textContent = e.message; return; }
  $("#status-ready").textContent = s.readiness.status || (s.ready ? "ready" : "not ready");
  $("#status-ready").className = s.ready ? "state-active" : "state-revoked";
  $("#status-in-flight").textContent = String(s.in_flight);
  $("#status-refusals").textContent = s.rate_limit_refusals_last_hour === null
    ? "unavailable" : String(s.rate_limit_refusals_last_hour);
  const checks = Object.entries(s.readiness.checks || {});
  $("#checks-table tbody").replaceChildren(...checks.map(([name, state]) => h("tr", {},
    h("td", {}, name), h("td", {class: state === "ok" ? "state-active" : "state-revoked"}, String(state)),
    h("td", {}, cooldownOf(s.readiness, name)))));
}

// ---- wiring -----------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#create-form").addEventListener("submit", createKey);
  $("#copy-secret").addEventListener("click", copySecret);
  $("#dismiss-secret").addEventListener("click", dismissSecret);
  $("#usage-refresh").addEventListener("click", loadUsage);
  $("#status-refresh").addEventListener("click", loadStatus);
  document.querySelectorAll("#tabs [data-view]").forEach(b => b.addEventListener("click", () => show(b.dataset.view)));
  document.querySelectorAll("button[data-csv]").forEach(b => b.addEventListener("click", () => download(b.dataset.csv)));
  if (sessionStorage.getItem(STORE)) start(); else signOut();
});
