// mailgate admin page: login, gateways (list, form with mode-dependent cards), trace, events, queue, quarantine.
// Plain DOM code, no build step. Every state-changing request carries the session's CSRF token.
"use strict";
const $ = (id) => document.getElementById(id);
let csrf = null;
let editing = null; // {kind, name, virus} when the form edits an existing gateway (virus: its stored settings)
const MODES = {round_robin: ["outbound", "Round Robin"], specific_domains: ["outbound", "Specific Domains"],
               backup_mx: ["inbound", "Backup MX"], domain_forward: ["inbound", "Domain Forward"]};
const LEVELS = [["low", "Low"], ["medium", "Medium"], ["high", "High"], ["none", "Not spam"]];
const ACTIONS = [["none", "No action"], ["delete", "Delete message"], ["prefix_subject", "Prefix subject with"],
                 ["add_header", "Add header"], ["quarantine", "Quarantine"]];

async function api(method, path, body) {
  const opts = {method, headers: {}, credentials: "same-origin"};
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf || "";
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  let data = {};
  try { data = await r.json(); } catch (e) { data = {error: r.statusText}; }
  if (r.status === 401 && path !== "/api/login") { showLogin(); }
  const version = r.headers.get("X-Mailgate-Config-Version");
  if (version) $("config-version").textContent = `Saved: configuration version ${version}; running stages apply it without a restart (each shows the version it applies on /metrics).`;
  return {status: r.status, data};
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function show(view) {
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "view-" + view; });
  document.querySelectorAll("#nav button[data-view]").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
}

function showLogin() { csrf = null; $("nav").hidden = true; show("login"); $("login-username").focus(); }

async function start() {
  const r = await api("GET", "/api/session");
  if (r.status === 200) { loggedIn(r.data); } else { showLogin(); }
}

function loggedIn(s) {
  csrf = s.csrf_token; $("who").textContent = s.username; $("nav").hidden = false; openGateways();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await api("POST", "/api/login", {username: $("login-username").value, password: $("login-password").value});
  $("login-password").value = "";
  if (r.status === 200) { $("login-error").textContent = ""; loggedIn(r.data); }
  else { $("login-error").textContent = r.data.error || "login failed"; }
});
$("logout").addEventListener("click", async () => { await api("POST", "/api/logout"); showLogin(); });
document.querySelectorAll("#nav button[data-view]").forEach((b) => b.addEventListener("click", () => {
  ({gateways: openGateways, trace: () => show("trace"), events: () => show("events"), queue: loadQueue,
    quarantine: loadQuarantine})[b.dataset.view]();
}));

// ---- gateways list ----
async function openGateways() {
  show("gateways");
  const r = await api("GET", "/api/gateways");
  const rows = $("gateway-rows"); rows.replaceChildren();
  $("gateways-error").textContent = r.status === 200 ? "" : (r.data.error || "could not load gateways");
  const list = r.data.gateways || [];
  $("gateway-table").hidden = list.length === 0;
  for (const g of list) {
    const target = g.kind === "outbound" ? `${g.address}:${g.port} (${g.encryption})` : `${g.primary_addresses.join(", ")}:${g.primary_port}`;
    const extra = g.kind === "outbound" ? (g.sender_domains || []).join(", ")
      : [g.description, g.mode === "domain_forward" ? `${g.domain_verification.mode === "specified_domains" ? "" : "all but "}${g.domain_verification.domains.join(", ")}` : ""].filter(Boolean).join(" — ");
    const sw = el("input", {type: "checkbox", "data-gateway": `${g.kind}/${g.name}`, class: "status-switch"});
    sw.checked = g.status === "enabled";
    const text = el("span", {class: "status-text"}, g.status === "enabled" ? "Enabled" : "Disabled");
    sw.addEventListener("change", async () => {
      const status = sw.checked ? "enabled" : "disabled";
      const res = await api("POST", `/api/gateways/${g.kind}/${encodeURIComponent(g.name)}/status`, {status});
      if (res.status === 200) { text.textContent = sw.checked ? "Enabled" : "Disabled"; }
      else { sw.checked = !sw.checked; $("gateways-error").textContent = res.data.error; }
    });
    rows.append(el("tr", {"data-name": g.name, "data-kind": g.kind},
      el("td", {}, el("strong", {}, g.name)), el("td", {}, MODES[g.mode][1]), el("td", {class: "mono"}, target),
      el("td", {}, extra), el("td", {}, el("label", {class: "switch", title: "Enable / disable"}, sw, el("span")), text),
      el("td", {}, el("button", {type: "button", class: "edit", onclick: () => openForm(g)}, "Edit"), " ",
        el("button", {type: "button", class: "danger delete", onclick: () => removeGateway(g)}, "Delete"))));
  }
}

async function removeGateway(g) {
  if (!confirm(`Delete the ${MODES[g.mode][1]} gateway ${g.name}?`)) return;
  const r = await api("DELETE", `/api/gateways/${g.kind}/${encodeURIComponent(g.name)}`);
  if (r.status !== 200) $("gateways-error").textContent = r.data.error; else openGateways();
}

// ---- gateway form ----
function spamRows() {
  const tb = $("spam-rows"); tb.replaceChildren();
  for (const [lvl, label] of LEVELS) {
    const sel = el("select", {id: `f-spam-${lvl}`, "data-field": `spam_actions.${lvl}.0.action`});
    for (const [v, t] of ACTIONS) sel.append(el("option", {value: v}, t));
    tb.append(el("tr", {}, el("td", {}, label), el("td", {}, sel),
      el("td", {}, el("input", {id: `f-spam-${lvl}-text`, "data-field": `spam_actions.${lvl}.0.text`})),
      el("td", {}, el("input", {id: `f-spam-${lvl}-value`, "data-field": `spam_actions.${lvl}.0.header_value`}))));
  }
}

function applyMode() {
  const mode = $("f-mode").value, kind = MODES[mode][0];
  document.querySelectorAll(".outbound-only").forEach((e) => { e.hidden = kind !== "outbound"; });
  document.querySelectorAll(".inbound-only").forEach((e) => { e.hidden = kind !== "inbound"; });
  document.querySelectorAll(".forward-only").forEach((e) => { e.hidden = mode !== "domain_forward"; });
  document.querySelectorAll(".specific-only").forEach((e) => { e.hidden = mode !== "specific_domains"; });
  $("auth-fields").hidden = !$("f-auth-enabled").checked;
  // Domain verification by web service only in SmarterMail gateway mode, as in the product's gateway page.
  const sm = $("f-sm-enabled").checked, ws = $("f-domain-mode-ws");
  ws.hidden = ws.disabled = !sm;
  if (!sm && $("f-domain-mode").value === "web_service") $("f-domain-mode").value = "specified_domains";
  document.querySelectorAll(".ws-only").forEach((e) => { e.hidden = $("f-domain-mode").value !== "web_service"; });
}
$("f-mode").addEventListener("change", applyMode);
$("f-sm-enabled").addEventListener("change", applyMode);
$("f-domain-mode").addEventListener("change", applyMode);
$("f-auth-enabled").addEventListener("change", applyMode);

const lines = (id) => $(id).value.split("\n").map((s) => s.trim()).filter(Boolean);

function collect() {
  const mode = $("f-mode").value, kind = MODES[mode][0];
  const doc = {kind, name: $("f-name").value.trim(), mode, status: $("f-status").value};
  if (kind === "outbound") {
    Object.assign(doc, {address: $("f-address").value.trim(), port: $("f-port").value.trim(),
      encryption: $("f-encryption").value, verify_before_save: $("f-verify").checked,
      sender_domains: mode === "specific_domains" ? lines("f-sender-domains") : []});
    if ($("f-auth-enabled").checked) {
      doc.auth_username = $("f-auth-username").value;
      if ($("f-auth-password").value) doc.auth_password = $("f-auth-password").value; // left out: keep the stored one
    } else { doc.auth_username = null; doc.auth_password = null; }
  } else {
    Object.assign(doc, {primary_addresses: lines("f-primary-addresses"), primary_port: $("f-primary-port").value.trim(),
      description: $("f-description").value, smtp_user_verification: mode === "domain_forward" && $("f-smtp-user-verification").checked});
    if (mode === "domain_forward") {
      const dmode = $("f-domain-mode").value;
      doc.domain_verification = {mode: dmode, domains: lines("f-domains"),
        excluded_domains: dmode === "web_service" ? lines("f-excluded-domains") : [],
        when_never_fetched: $("f-never-fetched").value};
    }
    doc.smartermail = {enabled: $("f-sm-enabled").checked, url: $("f-sm-url").value.trim(),
      username: $("f-sm-username").value, user_verification: $("f-sm-user-verification").value};
    if ($("f-sm-password").value) doc.smartermail.password = $("f-sm-password").value;
    doc.spam_actions = {};
    for (const [lvl] of LEVELS) {
      const action = $(`f-spam-${lvl}`).value, text = $(`f-spam-${lvl}-text`).value, value = $(`f-spam-${lvl}-value`).value;
      if (action === "none") { doc.spam_actions[lvl] = []; continue; }
      const a = {action};
      if (action === "prefix_subject") a.text = text;
      if (action === "add_header") { a.header_name = text; a.header_value = value; }
      doc.spam_actions[lvl] = [a];
    }
    // the form shows the main virus settings; the rest (tag header, own attachment rules) is kept as stored
    const stored = (editing && editing.virus) || {};
    const dangerous = $("f-virus-dangerous").value;
    doc.virus = {...stored, infected: $("f-virus-infected").value, unscannable: $("f-virus-unscannable").value,
      scan_at_data: $("f-virus-at-data").checked,
      attachments: {...(stored.attachments || {}), dangerous_files: dangerous !== "off",
        dangerous_action: dangerous === "off" ? ((stored.attachments || {}).dangerous_action || "quarantine") : dangerous}};
  }
  return doc;
}

function clearErrors() {
  document.querySelectorAll("#gateway-form .field-error").forEach((e) => e.remove());
  document.querySelectorAll("#gateway-form .invalid").forEach((e) => e.classList.remove("invalid"));
  $("form-error").textContent = ""; $("verify-result").hidden = true;
}

function showErrors(fields) {
  const general = [];
  for (const [path, msg] of Object.entries(fields || {})) {
    let p = path, input = null;
    while (p && !(input = document.querySelector(`#gateway-form [data-field="${p}"]`))) p = p.split(".").slice(0, -1).join(".");
    if (!input || input.closest("[hidden]")) { general.push((path ? path + ": " : "") + msg); continue; }
    input.classList.add("invalid");
    const holder = input.closest("label") || input.parentElement;
    holder.after(el("div", {class: "field-error", "data-error-for": path}, msg));
  }
  if (general.length) $("form-error").textContent = general.join("; ");
}

function showVerify(v) {
  const box = $("verify-result"); box.hidden = false;
  box.className = "verify-result " + (v.ok ? "ok" : "failed");
  box.textContent = v.ok ? `Connection verified: ${v.message}` : `Verify connection failed at step "${v.step}": ${v.message}`;
}

function openForm(g) {
  editing = g ? {kind: g.kind, name: g.name, virus: g.virus} : null;
  $("gateway-form").reset(); spamRows(); clearErrors();
  $("form-title").textContent = g ? `Edit Gateway ${g.name}` : "New Gateway";
  $("f-name").readOnly = !!g;
  document.querySelectorAll("#f-mode option").forEach((o) => { o.disabled = !!g && MODES[o.value][0] !== g.kind; });
  for (const e of ["f-auth-password", "f-sm-password"]) $(e).placeholder = "";
  if (g) {
    $("f-mode").value = g.mode; $("f-name").value = g.name; $("f-status").value = g.status;
    if (g.kind === "outbound") {
      $("f-address").value = g.address; $("f-port").value = g.port; $("f-encryption").value = g.encryption;
      $("f-sender-domains").value = (g.sender_domains || []).join("\n"); $("f-verify").checked = g.verify_before_save;
      $("f-auth-enabled").checked = !!g.auth_username; $("f-auth-username").value = g.auth_username || "";
      if (g.auth_password) $("f-auth-password").placeholder = "unchanged (stored)";
    } else {
      $("f-primary-addresses").value = g.primary_addresses.join("\n"); $("f-primary-port").value = g.primary_port;
      $("f-description").value = g.description; $("f-smtp-user-verification").checked = g.smtp_user_verification;
      $("f-domain-mode").value = g.domain_verification.mode; $("f-domains").value = g.domain_verification.domains.join("\n");
      $("f-excluded-domains").value = (g.domain_verification.excluded_domains || []).join("\n");
      $("f-never-fetched").value = g.domain_verification.when_never_fetched || "tempfail";
      const sm = g.smartermail;
      $("f-sm-enabled").checked = sm.enabled; $("f-sm-url").value = sm.url; $("f-sm-username").value = sm.username;
      $("f-sm-user-verification").value = sm.user_verification;
      if (sm.password) $("f-sm-password").placeholder = "unchanged (stored)";
      for (const [lvl] of LEVELS) {
        const a = (g.spam_actions[lvl] || [])[0];
        if (!a) continue;
        $(`f-spam-${lvl}`).value = a.action;
        $(`f-spam-${lvl}-text`).value = a.action === "add_header" ? a.header_name : a.text;
        $(`f-spam-${lvl}-value`).value = a.header_value;
      }
      const v = g.virus || {}, att = v.attachments || {};
      $("f-virus-infected").value = v.infected || "quarantine"; $("f-virus-unscannable").value = v.unscannable || "quarantine";
      $("f-virus-dangerous").value = att.dangerous_files === false ? "off" : (att.dangerous_action || "quarantine");
      $("f-virus-at-data").checked = !!v.scan_at_data;
    }
  }
  applyMode(); show("gateway-form");
}
$("new-gateway").addEventListener("click", () => openForm(null));
$("form-cancel").addEventListener("click", openGateways);

$("gateway-form").addEventListener("submit", async (ev) => {
  ev.preventDefault(); clearErrors();
  const doc = collect();
  $("form-save").disabled = true;
  const r = editing ? await api("PUT", `/api/gateways/${editing.kind}/${encodeURIComponent(editing.name)}`, doc)
                    : await api("POST", "/api/gateways", doc);
  $("form-save").disabled = false;
  if (r.status === 200 || r.status === 201) { openGateways(); return; }
  if (r.data.verify) showVerify(r.data.verify);
  else if (r.data.fields) showErrors(r.data.fields);
  else $("form-error").textContent = r.data.error || `failed (${r.status})`;
});

$("verify-now").addEventListener("click", async () => {
  clearErrors();
  const doc = collect(); delete doc.kind;
  const r = await api("POST", "/api/gateways/verify", doc);
  if (r.status === 200) showVerify(r.data); else if (r.data.fields) showErrors(r.data.fields);
  else $("form-error").textContent = r.data.error;
});

// ---- trace, events, queue, quarantine ----
const when = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 23);

// The trace and queue tabs read the tracking store; without one (503) they scan mail.events, and say so.
async function fromStore(storePath, logPath) {
  const r = await api("GET", storePath);
  if (r.status !== 503) return {r, note: ""};
  return {r: await api("GET", logPath), note: `No tracking store (${r.data.error}): scanned mail.events instead. `};
}

async function trace(mid) {
  show("trace"); $("trace-id").value = mid;
  const id = encodeURIComponent(mid);
  const {r, note} = await fromStore(`/api/tracking/trace/${id}`, `/api/messages/${id}`);
  const rows = $("trace-rows"); rows.replaceChildren();
  $("trace-error").textContent = note + (r.status === 200 ? "" : r.data.error);
  $("trace-table").hidden = r.status !== 200;
  for (const e of r.data.events || []) {
    const details = e.summary.split("] ").slice(1).join("] ");
    rows.append(el("tr", {class: "trace-event"}, el("td", {class: "mono"}, when(e.occurred_at || e.timestamp)),
      el("td", {}, e.type), el("td", {}, e.node || ""), el("td", {}, details)));
  }
}
$("trace-form").addEventListener("submit", (ev) => { ev.preventDefault(); trace($("trace-id").value.trim()); });

$("events-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams();
  if ($("events-since").value) q.set("since", $("events-since").value);
  if ($("events-type").value) q.set("type", $("events-type").value);
  if ($("events-mid").value) q.set("message_id", $("events-mid").value);
  const r = await api("GET", "/api/events?" + q);
  const rows = $("events-rows"); rows.replaceChildren();
  $("events-error").textContent = r.status === 200 ? "" : r.data.error;
  for (const e of (r.data.events || []).slice().reverse()) {
    const mid = e.message_id ? el("a", {href: "#", onclick: (x) => { x.preventDefault(); trace(e.message_id); }}, e.message_id) : "";
    rows.append(el("tr", {}, el("td", {class: "mono"}, when(e.occurred_at || e.timestamp)), el("td", {}, e.type),
      el("td", {class: "mono"}, mid), el("td", {}, e.summary.split("] ").slice(1).join("] "))));
  }
});

async function loadQueue() {
  show("queue");
  const {r, note} = await fromStore("/api/tracking/queue", "/api/queue");
  const rows = $("queue-rows"); rows.replaceChildren();
  $("queue-summary").textContent = note + (r.status === 200 ? `${r.data.messages} message(s), ${r.data.recipients} recipient(s) waiting` : r.data.error);
  for (const q of r.data.rows || []) {
    rows.append(el("tr", {}, el("td", {}, q.destination), el("td", {}, q.tier), el("td", {}, String(q.messages)),
      el("td", {}, String(q.recipients)), el("td", {}, String(q.oldest_age_s)), el("td", {class: "mono"}, `${q.oldest_message_id} ${q.last_reason}`),
      typeof queueRowActions === "function" ? queueRowActions(q) : el("td", {})));
  }
}
$("queue-refresh").addEventListener("click", loadQueue);

async function loadQuarantine() {
  show("quarantine");
  const r = await api("GET", "/api/quarantine");
  const rows = $("quarantine-rows"); rows.replaceChildren();
  const list = r.data.messages || [];
  $("quarantine-summary").textContent = r.status === 200 ? `${list.length} message(s) in quarantine` : r.data.error;
  for (const m of list) {
    const act = (method, path) => async () => {
      const res = await api(method, path);
      if (res.status !== 200) $("quarantine-summary").textContent = res.data.error; else loadQuarantine();
    };
    const id = encodeURIComponent(m.message_id);
    const malware = m.level === "virus" || m.level === "unscannable"; // held by the virus scan: release needs a yes
    const release = malware ? async () => {
      if (!window.confirm(`${m.message_id} was held by the virus scan (${m.level}). Deliver it anyway?`)) return;
      await act("POST", `/api/quarantine/${id}/release?confirm_malware=true`)();
    } : act("POST", `/api/quarantine/${id}/release`);
    rows.append(el("tr", {"data-message-id": m.message_id}, el("td", {class: "mono"}, m.message_id), el("td", {}, when(m.quarantined_at)),
      el("td", {}, m.level), el("td", {}, m.score.toFixed(1)), el("td", {}, m.from), el("td", {}, m.subject),
      el("td", {}, el("button", {type: "button", class: "release", onclick: release}, "Release"), " ",
        el("button", {type: "button", class: "danger", onclick: act("DELETE", `/api/quarantine/${id}`)}, "Delete"))));
  }
}
$("quarantine-refresh").addEventListener("click", loadQuarantine);

start();
