"""Which YANG modules the NETCONF server implements, and how a client learns them.

Rules:
- ``cpn`` is YANG 1.1, so it is not advertised in the hello (RFC 7950 §5.6.4): the
  hello carries the yang-library capability with the module set's id, and the library
  itself is served under ``get`` — ``/yang-library`` (RFC 8525) and, for clients of
  RFC 7895 such as yangson, the ``/modules-state`` subtree RFC 8525 keeps.
- ``ietf-netconf-monitoring`` (RFC 6022): ``/netconf-state`` lists the capabilities,
  datastores (with their locks) and schemas; ``<get-schema>`` returns any listed
  module's text. Every listed module's source ships with the product (the IETF ones
  verbatim in ``controller/yang/ietf/``), so a client can always build the schema.
- The module-set id (= content-id) is a digest of the list: it changes exactly when a
  module, revision or feature changes, so clients may cache.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

YANG_DIR = Path(__file__).resolve().parent.parent / "yang"
YANGLIB_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NCM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
DS_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
YANGLIB_REVISION = "2019-01-04"
MODULE_SET = "cpn-modules"
SCHEMA = "cpn-schema"
#: ietf-netconf features this server supports (RFC 6241 capabilities)
NETCONF_FEATURES = ("candidate", "confirmed-commit", "rollback-on-error", "validate")

ET.register_namespace("yanglib", YANGLIB_NS)
ET.register_namespace("ncm", NCM_NS)
ET.register_namespace("ds", DS_NS)


@dataclass(frozen=True)
class Module:
    """One module: ``name``, ``revision``, ``namespace``, ``path`` of its source,
    ``implemented`` (False: import-only), ``features`` it implements."""

    name: str
    revision: str
    namespace: str
    path: Path
    implemented: bool
    features: tuple[str, ...] = ()

    @property
    def yang_version(self) -> str:
        return "1.1" if re.search(r"yang-version\s+\"?1\.1", self.text) else "1.0"

    @property
    def text(self) -> str:
        return _source(self.path)


@cache
def _source(path: Path) -> str:
    return path.read_text()


def _read(path: Path, implemented: bool, features: tuple[str, ...] = ()) -> Module:
    text = path.read_text()
    name = re.search(r"^\s*module\s+([\w.-]+)", text, re.M)
    ns = re.search(r"^\s*namespace\s+\"?([^\";\s]+)", text, re.M)
    rev = re.search(r"^\s*revision\s+\"?(\d{4}-\d{2}-\d{2})", text, re.M)
    if name is None or ns is None or rev is None:
        raise ValueError(f"{path}: not a YANG module with a namespace and a revision")
    return Module(name.group(1), rev.group(1), ns.group(1), path, implemented, features)


@cache
def modules() -> tuple[Module, ...]:
    """Every module of the schema: implemented ones first, then import-only ones."""
    ietf = YANG_DIR / "ietf"
    return (
        _read(YANG_DIR / "cpn.yang", True),
        _read(ietf / "ietf-netconf.yang", True, NETCONF_FEATURES),
        _read(ietf / "ietf-netconf-monitoring.yang", True),
        _read(ietf / "ietf-yang-library.yang", True),
        _read(ietf / "ietf-datastores.yang", True),
        _read(ietf / "ietf-inet-types.yang", False),
        _read(ietf / "ietf-yang-types.yang", False),
        _read(ietf / "ietf-netconf-acm.yang", False),
    )


@cache
def module_set_id() -> str:
    h = hashlib.sha256()
    for m in modules():
        h.update(f"{m.name}@{m.revision}:{m.implemented}:{','.join(m.features)};".encode())
    return h.hexdigest()[:16]


def capabilities() -> list[str]:
    """Hello capabilities for the modules: the yang-library one (RFC 7950 §5.6.4) and
    each implemented YANG 1.0 module (1.1 modules are learned from the library)."""
    out = [f"urn:ietf:params:netconf:capability:yang-library:1.0?revision={YANGLIB_REVISION}"
           f"&module-set-id={module_set_id()}"]
    for m in modules():
        if m.implemented and m.yang_version == "1.0" and m.name != "ietf-netconf":
            out.append(f"{m.namespace}?module={m.name}&revision={m.revision}")
    return out


def _sub(parent: ET.Element, ns: str, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = text
    return el


def yang_library_xml() -> ET.Element:
    """``/yang-library`` (RFC 8525 §3): one module set, one schema, the datastores."""
    q = YANGLIB_NS
    root = ET.Element(f"{{{q}}}yang-library")
    ms = _sub(root, q, "module-set")
    _sub(ms, q, "name", MODULE_SET)
    for m in modules():
        e = _sub(ms, q, "module" if m.implemented else "import-only-module")
        _sub(e, q, "name", m.name)
        _sub(e, q, "revision", m.revision)
        _sub(e, q, "namespace", m.namespace)
        for f in m.features:
            _sub(e, q, "feature", f)
    sch = _sub(root, q, "schema")
    _sub(sch, q, "name", SCHEMA)
    _sub(sch, q, "module-set", MODULE_SET)
    for ds in ("running", "candidate"):
        d = _sub(root, q, "datastore")
        # an identityref value: its prefix must be declared where it is used
        _sub(d, q, "name", f"ds:{ds}").set("xmlns:ds", DS_NS)
        _sub(d, q, "schema", SCHEMA)
    _sub(root, q, "content-id", module_set_id())
    return root


def modules_state_xml() -> ET.Element:
    """``/modules-state`` (RFC 7895, kept by RFC 8525 for older clients)."""
    q = YANGLIB_NS
    root = ET.Element(f"{{{q}}}modules-state")
    _sub(root, q, "module-set-id", module_set_id())
    for m in modules():
        e = _sub(root, q, "module")
        _sub(e, q, "name", m.name)
        _sub(e, q, "revision", m.revision)
        _sub(e, q, "namespace", m.namespace)
        for f in m.features:
            _sub(e, q, "feature", f)
        _sub(e, q, "conformance-type", "implement" if m.implemented else "import")
    return root


def netconf_state_xml(caps: list[str], locks: dict[str, tuple[int, str] | None]
                      ) -> ET.Element:
    """``/netconf-state`` (RFC 6022 §2): capabilities, datastores and their locks,
    schemas (every module, format yang, retrievable with get-schema)."""
    q = NCM_NS
    root = ET.Element(f"{{{q}}}netconf-state")
    c = _sub(root, q, "capabilities")
    for cap in caps:
        _sub(c, q, "capability", cap)
    dss = _sub(root, q, "datastores")
    for name, held in locks.items():
        d = _sub(dss, q, "datastore")
        _sub(d, q, "name", name)
        if held is not None:
            lk = _sub(_sub(d, q, "locks"), q, "global-lock")
            _sub(lk, q, "locked-by-session", str(held[0]))
            _sub(lk, q, "locked-time", held[1])
    schemas = _sub(root, q, "schemas")
    for m in modules():
        s = _sub(schemas, q, "schema")
        _sub(s, q, "identifier", m.name)
        _sub(s, q, "version", m.revision)
        _sub(s, q, "format", "ncm:yang").set("xmlns:ncm", NCM_NS)
        _sub(s, q, "namespace", m.namespace)
        _sub(s, q, "location", "NETCONF")
    return root


class SchemaError(LookupError):
    """get-schema cannot answer: ``tag`` and ``app_tag`` of the rpc-error (RFC 6022
    §3.1)."""

    def __init__(self, tag: str, message: str, app_tag: str | None = None) -> None:
        self.tag = tag
        self.app_tag = app_tag
        super().__init__(message)


def get_schema(identifier: str, version: str | None, fmt: str | None) -> str:
    """The source of a listed module (RFC 6022 §3.1)."""
    if fmt is not None and fmt.split(":")[-1] != "yang":
        raise SchemaError("invalid-value", f"format {fmt!r} is not served; ask for yang")
    found = [m for m in modules() if m.name == identifier and version in (None, "",
                                                                          m.revision)]
    if not found:
        known = ", ".join(f"{m.name}@{m.revision}" for m in modules())
        raise SchemaError("invalid-value", f"no schema {identifier!r}"
                          + (f" version {version!r}" if version else "")
                          + f"; this server has: {known}")
    if len(found) > 1:
        raise SchemaError("operation-failed", f"several versions of {identifier!r}; give "
                          "the version", "data-not-unique")
    return found[0].text
