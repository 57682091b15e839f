// mailgate admin page: SMTP AUTH users (add, change password, remove; passwords write-only) and DKIM signing keys
// (generate, show the DNS TXT record to publish, remove; private keys never shown). Reads/writes /api/auth-users and
// /api/dkim-keys; uses app.js's api(), el(), show(), $().
"use strict";

function openMailAuth() {
  show("mailauth");
  document.querySelectorAll("#nav button").forEach((b) => b.classList.toggle("active", b.id === "nav-mailauth"));
  loadAuthUsers();
  loadDkimKeys();
}
document.querySelectorAll("#nav button[data-mailauth-view]").forEach((b) => b.addEventListener("click", openMailAuth));

function fieldText(r) {
  const f = r.data.fields || {};
  const parts = Object.entries(f).map(([k, v]) => (k ? `${k}: ${v}` : v));
  return parts.length ? parts.join("; ") : (r.data.error || `failed (${r.status})`);
}

function mailAuthSaved(r, what) {  // api() also shows the configuration version on the gateways view
  $("mailauth-status").textContent = `${what}: saved; running stages apply it without a restart.`;
}

// ---- SMTP AUTH users ----
async function loadAuthUsers() {
  const r = await api("GET", "/api/auth-users");
  const rows = $("authuser-rows"); rows.replaceChildren();
  for (const u of r.data.users || []) {
    const pw = el("input", {type: "password", autocomplete: "new-password", placeholder: "new password",
                            "data-user": u.username, class: "au-newpw"});
    const change = el("button", {type: "button", class: "au-change", onclick: async () => {
      if (!pw.value) { pw.classList.add("invalid"); return; }
      const c = await api("PUT", `/api/auth-users/${encodeURIComponent(u.username)}`, {password: pw.value});
      pw.value = "";
      if (c.status === 200) { pw.classList.remove("invalid"); mailAuthSaved(c, `password of ${u.username} changed`); }
      else $("authuser-error").textContent = fieldText(c);
    }}, "Change password");
    const remove = el("button", {type: "button", class: "danger au-remove", onclick: async () => {
      if (!confirm(`Remove the AUTH user ${u.username}?`)) return;
      const d = await api("DELETE", `/api/auth-users/${encodeURIComponent(u.username)}`);
      if (d.status === 200) { mailAuthSaved(d, `${u.username} removed`); loadAuthUsers(); }
      else $("authuser-error").textContent = fieldText(d);
    }}, "Remove");
    rows.append(el("tr", {"data-user": u.username}, el("td", {class: "au-name"}, u.username),
                   el("td", {}, u.allowed_senders.length ? u.allowed_senders.join(", ") : "any"),
                   el("td", {}, u.password && u.password.configured ? "set" : "-"),
                   el("td", {}, pw, " ", change, " ", remove)));
  }
}

$("authuser-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const senders = $("au-senders").value.split("\n").map((s) => s.trim()).filter(Boolean);
  const body = {username: $("au-username").value.trim(), password: $("au-password").value, allowed_senders: senders};
  const r = await api("POST", "/api/auth-users", body);
  $("au-password").value = "";
  if (r.status === 201) {
    $("authuser-error").textContent = ""; $("au-username").value = ""; $("au-senders").value = "";
    mailAuthSaved(r, `${body.username} added`); loadAuthUsers();
  } else { $("authuser-error").textContent = fieldText(r); }
});

// ---- DKIM keys ----
async function loadDkimKeys() {
  const r = await api("GET", "/api/dkim-keys");
  const rows = $("dkim-rows"); rows.replaceChildren();
  for (const k of r.data.keys || []) {
    const record = k.record === null ? el("span", {class: "form-error"}, k.error || "the key cannot be read")
      : el("div", {}, el("div", {class: "dkim-name"}, `TXT at ${k.record_name}`),
           el("code", {class: "dkim-record"}, k.record));
    const remove = el("button", {type: "button", class: "danger dk-remove", onclick: async () => {
      if (!confirm(`Remove the DKIM key of ${k.domain}? Its mail will no longer be signed.`)) return;
      const d = await api("DELETE", `/api/dkim-keys/${encodeURIComponent(k.domain)}/${encodeURIComponent(k.selector)}`);
      if (d.status === 200) { mailAuthSaved(d, `key of ${k.domain} removed`); loadDkimKeys(); }
      else $("dkim-error").textContent = fieldText(d);
    }}, "Remove");
    rows.append(el("tr", {"data-domain": k.domain}, el("td", {}, k.domain), el("td", {}, k.selector),
                   el("td", {class: "mono"}, record), el("td", {}, remove)));
  }
}

$("dkim-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const kind = $("dk-bits").value;
  const body = {domain: $("dk-domain").value.trim(), selector: $("dk-selector").value.trim()};
  if (kind === "ed25519") body.algorithm = "ed25519"; else body.bits = Number(kind);
  $("dk-generate").disabled = true;
  const r = await api("POST", "/api/dkim-keys", body);
  $("dk-generate").disabled = false;
  if (r.status === 201) {
    $("dkim-error").textContent = ""; $("dk-domain").value = ""; $("dk-selector").value = "";
    mailAuthSaved(r, `key for ${body.domain} generated; publish its TXT record`); loadDkimKeys();
  } else { $("dkim-error").textContent = fieldText(r); }
});

document.querySelectorAll("#nav button[data-view], #nav button[data-tracking-view]").forEach((b) =>
  b.addEventListener("click", () => $("nav-mailauth").classList.remove("active")));
