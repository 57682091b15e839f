// Queue control on the admin page: buttons on the message view (hold, release, delete, bounce, flush this message)
// and on the queue view (the same for every message of a row, after showing the count; suspend, resume and flush a
// destination). Each shows what was done: how many messages and which egress replicas applied it.
"use strict";

function qcResult(target, r) {
  const d = r.data;
  if (r.status !== 200) { target.textContent = d.error; return; }
  if (d.applied === false) { target.textContent = `${d.matched} message(s) match`; return; }
  const what = d.count !== undefined ? `${d.command || d.action}: ${d.count} ${d.kind ? "destination" : "message(s)"}` : "";
  const missing = (d.not_applied_by || []).length ? `; NOT applied by ${d.not_applied_by.join(", ")}` : "";
  target.textContent = `${what}, applied by ${(d.applied_by || []).length} egress replica(s) in ${d.seconds}s${missing}`;
}

function qcReason(id) {
  const reason = $(id).value.trim();
  if (!reason) { $(id).classList.add("invalid"); $(id).focus(); }
  else $(id).classList.remove("invalid");
  return reason;
}

// ---- message view ----
for (const b of document.querySelectorAll("#trace-actions button[data-command]")) {
  b.addEventListener("click", async () => {
    const mid = $("trace-id").value.trim(), reason = qcReason("trace-reason");
    if (!mid || !reason) return;
    if (["delete", "bounce"].includes(b.dataset.command) && !confirm(`${b.dataset.command} ${mid}?`)) return;
    const r = await api("POST", "/api/queue/commands", {command: b.dataset.command, message_ids: [mid], reason});
    qcResult($("trace-action-result"), r);
    if (r.status === 200) trace(mid);
  });
}

// ---- queue view: one row's messages, and its destination ----
function queueRowActions(row) {
  const cell = el("td", {class: "queue-actions"});
  const byRow = (command) => async () => {
    const reason = qcReason("queue-reason");
    if (!reason) return;
    const filter = {destination: row.destination, tier: row.tier};
    const count = await api("POST", "/api/queue/commands", {command, filter, reason, confirm: false});
    if (count.status !== 200) { qcResult($("queue-action-result"), count); return; }
    if (!confirm(`${command} ${count.data.matched} message(s) to ${row.destination} in ${row.tier}?`)) return;
    qcResult($("queue-action-result"), await api("POST", "/api/queue/commands", {command, filter, reason, confirm: true}));
    loadQueue();
  };
  for (const c of ["hold", "release", "flush", "bounce", "delete"]) {
    cell.append(el("button", {type: "button", class: c === "delete" || c === "bounce" ? "danger" : "", onclick: byRow(c)}, c), " ");
  }
  return cell;
}

async function qcDestination(kind, name, action) {
  const reason = qcReason("queue-reason");
  if (!reason) return;
  const r = await api("POST", `/api/destinations/${kind}/${encodeURIComponent(name)}/${action}`, {reason});
  qcResult($("queue-action-result"), r);
  loadDestinations();
}

async function loadDestinations() {
  const r = await api("GET", "/api/destinations");
  const rows = $("destination-rows"); rows.replaceChildren();
  for (const s of r.data.suspended || []) {
    rows.append(el("tr", {}, el("td", {}, s.kind), el("td", {}, s.name), el("td", {class: "mono"}, s.until ? when(s.until) : "until resumed"),
      el("td", {}, `${s.operator}: ${s.reason}`),
      el("td", {}, el("button", {type: "button", onclick: () => qcDestination(s.kind, s.name, "resume")}, "resume"))));
  }
}

$("destination-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  qcDestination($("destination-kind").value, $("destination-name").value.trim(), ev.submitter ? ev.submitter.value : "suspend");
});
$("nav-queue").addEventListener("click", loadDestinations);
$("queue-refresh").addEventListener("click", loadDestinations);
