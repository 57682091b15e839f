// mailgate admin page: message tracking (search with paging, a readable trace) and the dashboard's charts.
// Reads /api/tracking/*; uses app.js's api(), el(), show() and Chart.js (vendored, static/chart.min.js).
"use strict";
const PAGE = 50;
let trackOffset = 0;
const charts = {};

function localTime(ms) { return ms ? new Date(ms).toLocaleString() : "-"; }

function openTracking(view) {
  show(view);
  document.querySelectorAll("#nav button[data-tracking-view]").forEach((b) => b.classList.toggle("active", b.dataset.trackingView === view));
  if (view === "dashboard") loadDashboard();
}
document.querySelectorAll("#nav button[data-tracking-view]").forEach((b) => b.addEventListener("click", () => openTracking(b.dataset.trackingView)));
document.querySelectorAll("#nav button[data-view]").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll("#nav button[data-tracking-view]").forEach((t) => t.classList.remove("active"));
}));

// ---- search ----
function trackQuery() {
  const q = new URLSearchParams();
  const fields = {sender: "track-sender", recipient: "track-recipient", domain: "track-domain", since: "track-since",
                  until: "track-until", state: "track-state", client: "track-client", gateway: "track-gateway",
                  message_id_header: "track-hid"};
  for (const [k, id] of Object.entries(fields)) { const v = $(id).value.trim(); if (v) q.set(k, v); }
  q.set("limit", PAGE); q.set("offset", trackOffset);
  return q;
}

// A partial delivery names each recipient's own state ("bob@x (delivered), carol@x (bounced)").
function recipientsInWords(m) {
  const rs = m.recipient_states || [];
  if (new Set(rs.map((r) => r.state)).size < 2) return m.recipients || "";
  return rs.map((r) => `${r.recipient} (${r.state})`).join(", ");
}
const stateInWords = (s) => s === "partial" ? "partially delivered" : s;

async function runSearch() {
  const r = await api("GET", "/api/tracking/messages?" + trackQuery());
  const rows = $("track-rows"); rows.replaceChildren();
  if (r.status !== 200) { $("track-error").textContent = r.data.error || "search failed"; $("track-table").hidden = true; return; }
  $("track-error").textContent = "";
  const d = r.data;
  $("track-summary").textContent = d.total === 0 ? "No messages match." :
    `Messages ${d.offset + 1}–${d.offset + d.messages.length} of ${d.total}, newest first.`;
  $("track-table").hidden = d.messages.length === 0;
  for (const m of d.messages) {
    const open = el("button", {type: "button", class: "open-trace", "data-message": m.message_id, onclick: () => openTrace(m.message_id)}, "Trace");
    rows.append(el("tr", {class: "state-" + m.state, "data-message": m.message_id},
      el("td", {}, localTime(m.received_at)), el("td", {}, m.mail_from ? `<${m.mail_from}>` : "<>"),
      el("td", {}, recipientsInWords(m)), el("td", {}, m.subject || ""), el("td", {class: "state"}, stateInWords(m.state)),
      el("td", {}, m.inbound_gateway || m.outbound_gateway || ""), el("td", {}, open)));
  }
  $("track-prev").disabled = d.offset === 0;
  $("track-next").disabled = d.offset + d.messages.length >= d.total;
}

$("track-form").addEventListener("submit", (ev) => { ev.preventDefault(); trackOffset = 0; $("track-detail").hidden = true; runSearch(); });
$("track-prev").addEventListener("click", () => { trackOffset = Math.max(0, trackOffset - PAGE); runSearch(); });
$("track-next").addEventListener("click", () => { trackOffset += PAGE; runSearch(); });

// ---- readable trace ----
function routeInWords(m) {
  if (!m.destination) return "not routed yet";
  return m.route_kind === "primary" ? `the primary server of inbound gateway ${m.destination}` : `outbound gateway ${m.destination}`;
}

function spamInWords(m) {
  if (!m.spam_level) return "not scanned";
  const level = m.spam_level === "none" ? "not spam" : `level ${m.spam_level}`;
  const scores = (m.spam_scores || []).map((s) => s.error ? `${s.scorer}: no answer` : `${s.scorer} ${Number(s.score).toFixed(1)}`);
  return `${level}, score ${Number(m.spam_score).toFixed(1)}` + (scores.length ? ` (${scores.join(", ")})` : "") +
    (m.spam_actions ? `; actions: ${m.spam_actions.replaceAll(",", ", ")}` : "");
}

async function openTrace(mid) {
  const r = await api("GET", "/api/tracking/messages/" + encodeURIComponent(mid));
  const box = $("track-detail"); box.replaceChildren(); box.hidden = false;
  if (r.status !== 200) { box.append(el("p", {class: "form-error"}, r.data.error || "trace failed")); return; }
  const m = r.data.message;
  const facts = [["Message", m.message_id], ["State", stateInWords(m.state)], ["From", `<${m.mail_from || ""}>`],
    ["Received", `${localTime(m.received_at)} from ${m.client_address || "-"}` + (m.inbound_gateway ? ` through inbound gateway ${m.inbound_gateway}` : "")],
    ["Route", routeInWords(m) + (m.outbound_gateway ? `; delivered through outbound gateway ${m.outbound_gateway}` : "")],
    ["Spam", spamInWords(m)], ["Attempts", String(m.attempts)], ["Last reply", m.last_reply || m.last_reason || "-"]];
  if (m.subject) facts.splice(3, 0, ["Subject", m.subject]);
  const dl = el("dl", {class: "facts", id: "trace-facts"});
  for (const [k, v] of facts) dl.append(el("dt", {}, k), el("dd", {}, v));
  const rcpts = el("table", {id: "trace-recipients"}, el("thead", {}, el("tr", {}, el("th", {}, "Recipient"), el("th", {}, "State"), el("th", {}, "Last reply"))));
  const body = el("tbody");
  for (const x of m.recipient_states) body.append(el("tr", {}, el("td", {}, x.recipient), el("td", {}, x.state), el("td", {}, x.reply || "")));
  rcpts.append(body);
  const list = el("ol", {class: "timeline", id: "trace-timeline"});
  for (const e of r.data.events) {
    const details = el("ul", {class: "details"}); for (const line of e.details) details.append(el("li", {}, line));
    list.append(el("li", {"data-type": e.type}, el("span", {class: "when"}, localTime(e.occurred_at)),
      el("span", {class: "title"}, e.title), el("span", {class: "hint"}, ` (${e.node})`), details));
  }
  box.append(el("h3", {}, "Message " + m.message_id), dl, rcpts, el("h3", {}, "Timeline (your local time)"), list);
  box.scrollIntoView();
}

// ---- dashboard ----
function chart(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({animation: false, responsive: true, maintainAspectRatio: false}, config.options || {});
  charts[id] = new Chart($(id), config);
  $(id).dataset.points = String(config.data.datasets.reduce((n, ds) => n + ds.data.filter((v) => v).length, 0));
}

async function loadDashboard() {
  const r = await api("GET", "/api/tracking/dashboard?minutes=" + $("dash-minutes").value);
  if (r.status !== 200) { $("dash-error").textContent = r.data.error || "dashboard failed"; return; }
  $("dash-error").textContent = "";
  const d = r.data;
  const labels = d.minutes.map((t) => new Date(t).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}));
  const line = (label, data, color) => ({label, data, borderColor: color, backgroundColor: color, pointRadius: 2, tension: .2});
  chart("chart-flow", {type: "line", data: {labels, datasets: [line("accepted", d.accepted, "#1f6feb"),
    line("delivered", d.delivered, "#2e7d32"), line("deferred", d.deferred, "#f9a825"), line("bounced", d.bounced, "#c62828")]}});
  chart("chart-queue", {type: "bar", data: {labels: d.queue.map((q) => q.destination),
    datasets: [{label: "messages waiting", data: d.queue.map((q) => q.messages), backgroundColor: "#1f6feb"}]}});
  const levels = ["none", "low", "medium", "high"];
  chart("chart-spam", {type: "bar", data: {labels: ["not spam", "low", "medium", "high"],
    datasets: [{label: "messages", data: levels.map((l) => d.spam_levels[l]), backgroundColor: ["#2e7d32", "#f9a825", "#ef6c00", "#c62828"]}]}});
  chart("chart-latency", {type: "line", data: {labels, datasets: [line("p50", d.latency_s.p50, "#2e7d32"),
    line("p90", d.latency_s.p90, "#f9a825"), line("p99", d.latency_s.p99, "#c62828")]}, options: {spanGaps: true}});
  const o = d.latency_overall_s;
  $("latency-summary").textContent = d.delivered_count ? `${d.delivered_count} delivered: p50 ${o.p50.toFixed(2)} s, p90 ${o.p90.toFixed(2)} s, p99 ${o.p99.toFixed(2)} s` : "nothing delivered in this window";
}
$("dash-refresh").addEventListener("click", loadDashboard);
$("dash-minutes").addEventListener("change", loadDashboard);
