"""The one codec every stage uses: typed event records <-> Avro single-object encoding.

Reads: the `*.avsc` files beside this module (one schema per event, the only contract between stages) and every
released writer schema kept in `released/<Name>/<fingerprint>.avsc` (written by `scripts/snapshot-schemas`).
A record names its writer schema by fingerprint; it is read with that writer schema and resolved to the current
(reader) schema by Avro schema resolution, so a record written by any earlier release decodes to today's record
class (fields added since then take their defaults). A fingerprint no kept schema has (a record from a newer
release) raises `UnknownSchemaVersion`, naming the fingerprint.
Emits: a frozen dataclass per event (nested records too), and bytes in Avro single-object encoding
(`C3 01`, the schema's 8-byte CRC-64-AVRO fingerprint little-endian, then the Avro binary body), so every record
names its own schema. `decode` of bytes that are not such a record raises `UndecodableRecord`, never anything else.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro

MAGIC = b"\xc3\x01"
SCHEMA_DIR = Path(__file__).parent
RELEASED_DIR = SCHEMA_DIR / "released"
_EMPTY64 = 0xC15D213AA4D7A795


class UndecodableRecord(Exception):
    """Bytes that are not a mailgate event this codec knows (reason in the message)."""


class UnknownSchemaVersion(UndecodableRecord):
    """A single-object record whose writer-schema fingerprint no release this code knows has (a newer release wrote
    it, or it is not ours). `fingerprint` is the 16-hex-digit CRC-64-AVRO fingerprint as Avro tools print it."""

    def __init__(self, fingerprint: str) -> None:
        super().__init__(f"unknown schema fingerprint {fingerprint} (written by a newer release, or not a "
                         f"mailgate schema: no kept writer schema has it)")
        self.fingerprint = fingerprint


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc64_table()


def fingerprint64(canonical: str) -> int:
    """CRC-64-AVRO (Rabin) fingerprint of a schema's parsing canonical form, as the Avro spec defines it."""
    fp = _EMPTY64
    for b in canonical.encode():
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp


def _strip_logical(node: Any) -> Any:
    """The schema as the wire sees it: logical types are left to the application (timestamps stay int ms)."""
    if isinstance(node, dict):
        return {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


@dataclasses.dataclass(frozen=True)
class EventType:
    """One event schema: its record class, parsed schema and fingerprint."""

    name: str
    cls: type
    parsed: Any
    header: bytes
    raw: dict
    fast: Any = None
    """The same schema parsed once with fastavro's "already parsed" mark: reads and writes with it skip
    fastavro's per-call parse (about 50 us per 5 KB record each way)."""
    convert: Any = None
    """Avro data of this schema → the typed record (`_converter`, built once)."""


@dataclasses.dataclass(frozen=True)
class WriterSchema:
    """A schema some release wrote records with: the current event type it resolves to, and the parsed writer
    schema (None when it is the current schema itself: no resolution needed)."""

    event: EventType
    writer: Any
    fast_writer: Any = None
    """`writer` parsed once with fastavro's "already parsed" mark (None for the current schema)."""


def header_of(raw: dict) -> bytes:
    """The 10-byte single-object header (marker + fingerprint) of a schema given as JSON data."""
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    return MAGIC + struct.pack("<Q", fingerprint64(canonical))


def _parse(raw: dict) -> Any:
    return fastavro.parse_schema(_strip_logical(copy.deepcopy(raw)), _write_hint=False)


def _parse_once(raw: dict) -> Any:
    """Parsed and marked as parsed: fastavro's readers and writers take it as it is, without parsing it again."""
    return fastavro.parse_schema(_strip_logical(copy.deepcopy(raw)))


class _Registry:
    def __init__(self, directory: Path, released: Path) -> None:
        self.by_name: dict[str, EventType] = {}
        self.by_header: dict[bytes, WriterSchema] = {}
        self.classes: dict[str, type] = {}
        for path in sorted(directory.glob("*.avsc")):
            raw = json.loads(path.read_text())
            header = header_of(raw)
            parsed = _parse(raw)
            et = EventType(raw["name"], self._record_class(raw), parsed, header, raw, _parse_once(raw),
                           _converter(parsed, self.classes))
            self.by_name[et.name] = et
            self.by_header[header] = WriterSchema(et, None)
        for path in sorted(released.glob("*/*.avsc")):
            self.add_writer(json.loads(path.read_text()))

    def add_writer(self, raw: dict) -> None:
        """Keep a released writer schema: records it wrote resolve to the current schema of the same name."""
        header = header_of(raw)
        et = self.by_name.get(raw["name"])
        if et is None or header in self.by_header:
            return  # an event no longer in the contract, or the current schema itself
        self.by_header[header] = WriterSchema(et, _parse(raw), _parse_once(raw))

    def _record_class(self, schema: dict) -> type:
        name = schema["name"]
        if name in self.classes:
            return self.classes[name]
        fields: list[tuple] = []
        for fld in schema["fields"]:
            self._visit_nested(fld["type"])
            if "default" not in fld:
                fields.append((fld["name"], Any))
            elif isinstance(fld["default"], (list, dict)):
                fields.append((fld["name"], Any, dataclasses.field(
                    default_factory=functools.partial(copy.copy, fld["default"]))))
            else:
                fields.append((fld["name"], Any, dataclasses.field(default=fld["default"])))
        # Fields without defaults must precede those with: Avro order is kept otherwise.
        required: list[tuple] = [f for f in fields if len(f) == 2]
        optional = [f for f in fields if len(f) == 3]
        cls = dataclasses.make_dataclass(name, required + optional, frozen=True, slots=True,
                                         namespace={"__doc__": schema.get("doc", name), "SCHEMA_NAME": name})
        cls.__module__ = "schemas"
        self.classes[name] = cls
        return cls

    def _visit_nested(self, t: Any) -> None:
        if isinstance(t, list):
            for u in t:
                self._visit_nested(u)
        elif isinstance(t, dict):
            if t.get("type") == "record":
                self._record_class(t)
            elif t.get("type") == "array":
                self._visit_nested(t["items"])


_PLAIN = frozenset({str, bytes, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _to_avro(value: Any) -> Any:
    """A typed record (nested records and lists too) → Avro data; plain values as they are."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None:
        if dataclasses.is_dataclass(value):
            names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
        elif isinstance(value, (list, tuple)):
            return [_to_avro(v) for v in value]
        else:
            return value
    return {n: _to_avro(getattr(value, n)) for n in names}


def _converter(schema: Any, classes: dict[str, type]) -> Any:
    """A function turning Avro data of `schema` into typed records (nested records and lists of them), decided once per
    schema instead of per value; None where values stay as they are."""
    if isinstance(schema, dict):
        t = schema.get("type")
        if t == "record":
            cls = classes[schema["name"].rsplit(".", 1)[-1]]
            convs = [(f["name"], c) for f in schema["fields"]
                     if (c := _converter(f["type"], classes)) is not None]

            def record(value: dict) -> Any:
                for name, conv in convs:
                    value[name] = conv(value[name])
                return cls(**value)
            return record
        if t == "array":
            item = _converter(schema["items"], classes)
            return None if item is None else (lambda value: [item(v) for v in value])
    elif isinstance(schema, list):
        records = [s for s in schema if isinstance(s, dict) and s.get("type") in ("record", "array")]
        if records:
            inner = _converter(records[0], classes)
            if inner is not None:
                return lambda value: inner(value) if isinstance(value, (dict, list)) else value
    return None


REGISTRY = _Registry(SCHEMA_DIR, RELEASED_DIR)


def encode(record: Any) -> bytes:
    """A typed event record → single-object-encoded bytes."""
    et = REGISTRY.by_name[type(record).__name__]
    buf = io.BytesIO()
    buf.write(et.header)
    fastavro.schemaless_writer(buf, et.fast, _to_avro(record))
    return buf.getvalue()


def decode(data: bytes | None) -> Any:
    """Single-object-encoded bytes → the typed event record; UndecodableRecord for anything else."""
    if not data or len(data) < 10 or data[:2] != MAGIC:
        raise UndecodableRecord("not an Avro single-object record (no C3 01 marker)")
    ws = REGISTRY.by_header.get(bytes(data[:10]))
    if ws is None:
        raise UnknownSchemaVersion(data[2:10][::-1].hex())
    et = ws.event
    try:
        if ws.writer is None:
            value = fastavro.schemaless_reader(io.BytesIO(data[10:]), et.fast, None)
        else:
            value = fastavro.schemaless_reader(io.BytesIO(data[10:]), ws.fast_writer, et.fast)
    except fastavro.read.SchemaResolutionError as err:
        raise UndecodableRecord(f"{et.name} record written with schema {data[2:10][::-1].hex()} cannot be "
                                f"resolved to the current schema: {err}") from None
    except Exception as err:  # fastavro raises many types on corrupt input
        raise UndecodableRecord(f"corrupt {et.name} record: {type(err).__name__}") from None
    return et.convert(value)


def decode_fields(data: bytes | None) -> tuple[str, dict]:
    """Bytes → (event name, its fields as plain dicts and lists), skipping the typed records: for readers that fold
    millions of events (the tracking projection). Same checks and errors as `decode`."""
    if not data or len(data) < 10 or data[:2] != MAGIC:
        raise UndecodableRecord("not an Avro single-object record (no C3 01 marker)")
    header = bytes(data[:10])
    ws = REGISTRY.by_header.get(header)
    if ws is None:
        raise UnknownSchemaVersion(data[2:10][::-1].hex())
    et = ws.event
    try:
        if ws.writer is None:
            fields = fastavro.schemaless_reader(io.BytesIO(data[10:]), et.fast, None)
        else:
            fields = fastavro.schemaless_reader(io.BytesIO(data[10:]), ws.fast_writer, et.fast)
        return et.name, fields  # type: ignore[return-value]  # a record schema reads as a dict
    except fastavro.read.SchemaResolutionError as err:
        raise UndecodableRecord(f"{et.name} record written with schema {data[2:10][::-1].hex()} cannot be "
                                f"resolved to the current schema: {err}") from None
    except Exception as err:  # fastavro raises many types on corrupt input
        raise UndecodableRecord(f"corrupt {et.name} record: {type(err).__name__}") from None


def event_name(record: Any) -> str:
    return type(record).__name__


def to_json_dict(record: Any) -> dict:
    """A record as JSON-ready data (bytes shown by size, for people and tools)."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, (bytes, bytearray)):
            return f"<{len(v)} bytes>"
        return v
    return {"type": event_name(record), **conv(record)}
