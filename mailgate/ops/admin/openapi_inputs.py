"""The admin API's request schemas, as tight as its handlers: what the OpenAPI description calls valid is accepted,
and what it calls invalid is refused with a 4xx (tests/integration/test_admin_api_properties.py checks both).

Reads: the JSON Schemas pydantic makes of the gateway models (mailgate/core/config/). Emits: schema dicts for
openapi.py. The pydantic schemas miss what the models check in code; this module adds it: a secret is exactly one of
a string, {env}, {file} or {value}; the AUTH user name needs a password; specific_domains needs sender domains;
listed domains are domain names; primary addresses are IP addresses or CIDR blocks; a spam action has what it needs
to be applied; every object is closed.
Where the API takes more than is described here (a sealed secret, an address range, `{"configured": true}` to keep a
stored password), the description is the smaller set, on purpose: those need the server's key or stored state.
"""
from __future__ import annotations

import copy

NO_CR_LF = r"^[^\r\n\x00]*$"
HEADER_NAME = r"^[!-9;-~]+$"  # printable ASCII but ':' (RFC 5322 ftext), as mail/headers.py checks
ENV_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 128}
PATH = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"^[^\x00]+$"}
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
ADDRESS_SPEC = {"type": "string", "pattern": rf"^{IPV4}(/(3[0-2]|[12]?[0-9]))?$",
                "description": "An IPv4 address or CIDR block (the API also takes IPv6 and a-b ranges)."}
_DATE = r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
_TIME = r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?"
TIME_SPEC = {"type": "string", "pattern": rf"^({_DATE}({_TIME})?|[0-9]{{1,4}}(\.[0-9]{{1,2}})?[smhd])$",
             "description": "ISO 8601 (naive = UTC; the API takes any ISO 8601 date, these are the ones described) "
                            "or an age like 10m, 2h, 1.5d"}
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
DOMAIN = {"type": "string", "maxLength": 253, "pattern": rf"^{_LABEL}(\.{_LABEL})*\.?$",
          "description": "A domain name (ASCII; an IDN in its xn-- form), as config.gateways.domain_names takes it."}
REASON = {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": r"[^\s]",
          "description": "Why (goes into the audit log); not blank."}


def secret() -> dict:
    """A secret as a request gives it (write-only): exactly one form."""
    def only(name: str, schema: dict) -> dict:
        return {"type": "object", "required": [name], "properties": {name: schema}, "additionalProperties": False}
    return {"description": "A secret: an inline string, or {env: NAME}, {file: PATH} or {value: TEXT}. Never "
                           "returned (responses carry {configured: true}). The API also takes {sealed: TOKEN} "
                           "sealed with this server's key, and {configured: true} to keep the stored one.",
            "writeOnly": True,
            "oneOf": [{"type": "string", "minLength": 1}, only("env", ENV_NAME), only("file", PATH),
                      only("value", {"type": "string"})]}


def stored_secret() -> dict:
    """A secret as a response shows it."""
    return {"type": "object", "required": ["configured"], "additionalProperties": False,
            "properties": {"configured": {"const": True}, "env": {"type": "string"}}}


def _nullable(prop: dict, schema: dict) -> None:
    """Replace the non-null branch of pydantic's `anyOf: [X, null]` (or the whole property) with `schema`."""
    if "anyOf" in prop:
        prop["anyOf"] = [b if b.get("type") == "null" else schema for b in prop["anyOf"]]
    else:
        for k in [k for k in prop if k not in ("description", "default", "title")]:
            del prop[k]
        prop.update(schema)


def _spam_action(schema: dict) -> dict:
    s = copy.deepcopy(schema)
    for name in ("text", "header_name", "header_value"):
        s["properties"][name]["pattern"] = NO_CR_LF
    s["allOf"] = [
        {"if": {"properties": {"action": {"const": "add_header"}}, "required": ["action"]},
         "then": {"required": ["header_name"], "properties": {"header_name": {"pattern": HEADER_NAME}}}},
        {"if": {"properties": {"action": {"const": "prefix_subject"}}, "required": ["action"]},
         "then": {"required": ["text"], "properties": {"text": {"minLength": 1}}}}]
    return s


def _outbound(schema: dict) -> dict:
    s = copy.deepcopy(schema)
    p = s["properties"]
    _nullable(p["auth_password"], {"$ref": "#/components/schemas/Secret"})
    _nullable(p["ca_file"], PATH)
    p["sender_domains"]["items"] = DOMAIN
    s["allOf"] = [
        {"if": {"properties": {"auth_username": {"type": "string", "minLength": 1}}, "required": ["auth_username"]},
         "then": {"required": ["auth_password"], "properties": {"auth_password": {"$ref": "#/components/schemas/"
                                                                                          "Secret"}}},
         "description": "a user name needs a password"},
        {"if": {"properties": {"mode": {"const": "specific_domains"}}, "required": ["mode"]},
         "then": {"required": ["sender_domains"], "properties": {"sender_domains": {"minItems": 1}}},
         "description": "specific_domains needs sender_domains"}]
    return s


def _inbound(schema: dict) -> dict:
    s = copy.deepcopy(schema)
    s["properties"]["primary_addresses"]["items"] = ADDRESS_SPEC
    return s


def _smartermail(schema: dict) -> dict:
    s = copy.deepcopy(schema)
    _nullable(s["properties"]["password"], {"$ref": "#/components/schemas/Secret"})
    return s


def _with_kind(ref: str, kind: str, schema: dict) -> dict:
    """`schema` (a closed gateway object) with a required `kind` of `kind`."""
    s = copy.deepcopy(schema)
    s["properties"] = {"kind": {"const": kind}, **s["properties"]}
    s["required"] = ["kind", *s.get("required", [])]
    s["title"] = f"{ref} document"
    return s


def tighten(schemas: dict) -> dict:
    """The component schemas, request bodies tightened (see the module doc), plus the documents with `kind`."""
    out = dict(schemas)
    out["Secret"] = secret()
    out["StoredSecret"] = stored_secret()
    out["SpamAction"] = _spam_action(schemas["SpamAction"])
    out["DomainVerification"] = copy.deepcopy(schemas["DomainVerification"])
    out["DomainVerification"]["properties"]["domains"]["items"] = DOMAIN
    out["DomainVerification"]["properties"]["excluded_domains"]["items"] = DOMAIN
    out["SmarterMailConfig"] = _smartermail(schemas["SmarterMailConfig"])
    out["OutboundGateway"] = _outbound(schemas["OutboundGateway"])
    out["InboundGateway"] = _inbound(schemas["InboundGateway"])
    out["OutboundGatewayDocument"] = _with_kind("OutboundGateway", "outbound", out["OutboundGateway"])
    out["InboundGatewayDocument"] = _with_kind("InboundGateway", "inbound", out["InboundGateway"])
    out["GatewayDocument"] = {
        "description": "A gateway and its kind. Passwords are write-only: responses carry {configured: true}; an "
                       "update that leaves a password out keeps the stored one; null clears it.",
        "oneOf": [{"$ref": "#/components/schemas/OutboundGatewayDocument"},
                  {"$ref": "#/components/schemas/InboundGatewayDocument"}]}
    out["GatewayView"] = {
        "type": "object", "required": ["kind", "name"], "description": "A gateway as the API returns it: the "
        "document's fields, each secret as {configured: true} (StoredSecret).",
        "properties": {"kind": {"enum": ["outbound", "inbound"]}, "name": {"type": "string"}}}
    return out


__all__ = ["ADDRESS_SPEC", "REASON", "TIME_SPEC", "secret", "stored_secret", "tighten"]
