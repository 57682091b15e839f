"""`mailgate admin`: the administration web page and its JSON HTTP API.

Reads: the YAML configuration, `mail.config` (gateways), `mail.events` (trace, events, queue) and `mail.quarantine`.
Emits: GatewayConfigured / GatewayRemoved to `mail.config` (running stages follow them) and the quarantine's
release / delete records, each naming the logged-in administrator as operator. Modules: `auth` (password hash,
sessions, CSRF), `gateways` (gateway documents in and out, secrets write-only), `api` (handlers), `openapi` (the
API description served at /api/openapi.json), `server` (the aiohttp application and `run`).
"""
