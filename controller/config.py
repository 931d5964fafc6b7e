"""The declarative network config file (YAML) → validated domain objects.

Rules:
- Nothing is applied unless the whole file is valid. Every problem is reported
  with the file, the line, the field path (``sites[2].links[0].to``), what is
  wrong and the fix.
- Entities may be nested where that reads naturally: nodes, resources and links
  under their site; resources under their node (scope defaults to that node);
  links under routers; users under their tenant. The nesting supplies the
  implied field (``site``, link end ``a``, ``tenant``), which must then not be
  given again.
- Other packages add top-level sections (``dns:``, ``bgp:`` …) with
  ``register_section``; unknown top-level keys are errors.
- The YAML itself is loaded by ``controller.yamlsafe``: bounded in size, depth and
  alias expansion, UTF-8 only, duplicate keys refused — each refusal names the line.
- Applying a config is declarative and remembers what it applied (as
  ``kubectl apply`` does): objects the previous config declared and the new one
  does not are deleted; objects created through the API are left alone;
  re-applying an unchanged file changes nothing. A deletion that would leave an
  object created through the API referring to nothing (a user of a dropped tenant)
  refuses the whole apply, naming both objects — the API's own rule (#15).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import Field

from controller import integrity, yamlsafe
from controller.errors import (
    ConflictError,
    Issue,
    ValidationError,
    issues_from_pydantic,
    join_path,
)
from controller.models import (
    ComputeInstance,
    ComputeNode,
    ComputeResource,
    Entity,
    Link,
    Model,
    Role,
    Router,
    Service,
    Site,
    Tenant,
    User,
)
from controller.writer import referrers_after

Path_ = tuple[str | int, ...]


# --------------------------------------------------------------------------- sections
class ApiTls(Model):
    """``controller.api_tls`` — serve REST over HTTPS: ``cert`` (PEM chain) and ``key``
    (PEM private key) file paths. Clients then use ``https://`` (``cpn --api
    https://HOST:PORT``, ``$CPN_CA`` for a private CA)."""

    cert: str = Field(min_length=1)
    key: str = Field(min_length=1)


class ControllerSection(Model):
    """``controller:`` — where the controller listens and keeps state.
    ``api`` and ``dns`` are HOST:PORT; ``state`` a directory; ``log_level``;
    ``api_tls`` (cert/key: REST over HTTPS — needed beyond loopback);
    ``store`` where objects and journal live (unset: the SQLite file in ``state``;
    ``etcd://HOST:PORT,HOST:PORT[/prefix]`` for a cluster of controllers, issue 16);
    ``member`` this controller's name in the cluster (default: host name + API port);
    ``store_sync`` the SQLite file's durability: ``full`` (default: the commits are
    fsynced before a REST or NETCONF answer acknowledges them, one fsync for all since
    the last, so a power loss loses nothing acknowledged), ``commit`` (every commit
    fsynced) or ``normal`` (no fsync before answers: a power loss or kernel crash can
    roll back the last ~0.5 s of commits); docs/operations.md."""

    api: str = "127.0.0.1:8080"
    dns: str = "127.0.0.1:5353"
    state: str = "./var"
    log_level: str = Field(default="info", pattern="^(debug|info|key|warning|error)$")
    api_tls: ApiTls | None = None
    store: str | None = Field(default=None, pattern=r"^(etcd|sqlite)://.+$")
    member: str = Field(default="", pattern=r"^[A-Za-z0-9_.:-]{0,63}$")
    store_sync: Literal["full", "commit", "normal"] = "full"


class TokenSpec(Model):
    """A bearer token given in the config: ``name``, ``role``, ``tenant`` and either
    ``token`` (plaintext; fine for labs) or ``token_sha256`` (hex digest)."""

    name: str = Field(min_length=1, max_length=64)
    role: Role
    tenant: str | None = None
    token: str | None = Field(default=None, min_length=16)
    token_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")

    def digest(self) -> str:
        if self.token_sha256:
            return self.token_sha256
        assert self.token is not None
        return hashlib.sha256(self.token.encode()).hexdigest()


class AuthSection(Model):
    """``auth:`` — ``tokens`` accepted by the REST API besides those made with
    ``cpn token create``."""

    tokens: list[TokenSpec] = Field(default_factory=list)


_SECTIONS: dict[str, type[Model]] = {"controller": ControllerSection, "auth": AuthSection}
#: Sections always present (with defaults); plugin sections appear only when given.
CORE_SECTIONS = frozenset(_SECTIONS)


def register_section(name: str, model: type[Model]) -> None:
    """Let a package own a top-level config section validated by ``model``."""
    if name in _SECTIONS and _SECTIONS[name] is not model:
        raise ValueError(f"config section {name!r} is already registered")
    _SECTIONS[name] = model


ENTITY_KEYS = ("sites", "routers", "services", "tenants", "instances")
TOP_KEYS = ("zone", *ENTITY_KEYS)

#: Kinds a config file manages (deleted when dropped from the file).
MANAGED_KINDS: tuple[type[Entity], ...] = (
    Site, Router, ComputeNode, ComputeResource, Link, Service, Tenant, User, ComputeInstance,
)


@dataclass
class NetworkConfig:
    """A validated config: entities by kind plus the parsed sections."""

    source: str
    zone: str
    entities: list[Entity]
    sections: dict[str, Model]
    digest: str
    tokens: list[TokenSpec] = field(default_factory=list)

    def of(self, kind: type[Entity]) -> list[Entity]:
        return [e for e in self.entities if isinstance(e, kind)]

    def section(self, name: str) -> Model:
        return self.sections[name]

    @property
    def controller(self) -> ControllerSection:
        sec = self.sections["controller"]
        assert isinstance(sec, ControllerSection)
        return sec


class _Lines:
    """Maps a field path to a line in the YAML source (for error messages)."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def line(self, path: Path_) -> int | None:
        node = self.root
        best = node.start_mark.line + 1 if node is not None else None
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                nxt = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and \
                    0 <= part < len(node.value):
                nxt = node.value[part]
            else:
                nxt = None
            if nxt is None:
                break
            node = nxt
            best = node.start_mark.line + 1
        return best


def _parse_path(path: str) -> Path_:
    parts: list[str | int] = []
    for dotted in path.split("."):
        name, *idx = dotted.replace("]", "").split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in idx if i.isdigit())
    return tuple(parts)


# --------------------------------------------------------------------------- loading
class _Builder:
    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.entities: list[tuple[Path_, Entity, dict[str, str]]] = []

    def build(self, cls: type[Entity], raw: Any, path: Path_, implied: dict[str, Any],
              strip: Iterable[str] = (), rename: dict[str, str] | None = None) -> Entity | None:
        if not isinstance(raw, dict):
            self.issues.append(Issue(join_path(path), f"expected a mapping for a {cls.KIND}",
                                     "write it as 'key: value' lines"))
            return None
        data = {k: v for k, v in raw.items() if k not in set(strip)}
        for src, dst in (rename or {}).items():
            if src in data:
                data[dst] = data.pop(src)
        for key, value in implied.items():
            if key in data:
                self.issues.append(Issue(join_path((*path, key)),
                                         f"'{key}' is implied by where this {cls.KIND} is "
                                         "nested", "remove it"))
                return None
            data[key] = value
        try:
            obj = cls.model_validate(data)
        except pydantic.ValidationError as exc:
            back = {v: k for k, v in (rename or {}).items()}
            for issue in issues_from_pydantic(exc, path):
                for dst, src in back.items():
                    head = join_path((*path, dst))
                    if issue.path == head or issue.path.startswith(head + "."):
                        issue = Issue(join_path((*path, src)) + issue.path[len(head):],
                                      issue.message, issue.fix)
                self.issues.append(issue)
            return None
        self.entities.append((path, obj, {v: k for k, v in (rename or {}).items()}))
        return obj

    def seq(self, raw: dict[str, Any], key: str, path: Path_) -> list[tuple[Path_, Any]]:
        value = raw.get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            self.issues.append(Issue(join_path((*path, key)), "expected a list",
                                     "write each item on its own '- ' line"))
            return []
        return [((*path, key, i), item) for i, item in enumerate(value)]


def _walk(doc: dict[str, Any], b: _Builder) -> None:
    for path, raw in b.seq(doc, "sites", ()):
        site = b.build(Site, raw, path, {}, strip=("nodes", "links", "resources"))
        if site is None or not isinstance(raw, dict):
            continue
        for npath, nraw in b.seq(raw, "nodes", path):
            node = b.build(ComputeNode, nraw, npath, {"site": site.key}, strip=("resources",))
            if node is None or not isinstance(nraw, dict):
                continue
            for rpath, rraw in b.seq(nraw, "resources", npath):
                implied: dict[str, Any] = {"site": site.key}
                if isinstance(rraw, dict) and "scope" not in rraw:
                    implied["scope"] = [node.key.split("/", 1)[1]]
                b.build(ComputeResource, rraw, rpath, implied)
        for rpath, rraw in b.seq(raw, "resources", path):
            b.build(ComputeResource, rraw, rpath, {"site": site.key})
        for lpath, lraw in b.seq(raw, "links", path):
            b.build(Link, lraw, lpath, {"a": site.key}, rename={"to": "b"})
    for path, raw in b.seq(doc, "routers", ()):
        router = b.build(Router, raw, path, {}, strip=("links",))
        if router is None or not isinstance(raw, dict):
            continue
        for lpath, lraw in b.seq(raw, "links", path):
            b.build(Link, lraw, lpath, {"a": router.key}, rename={"to": "b"})
    for path, raw in b.seq(doc, "services", ()):
        b.build(Service, raw, path, {})
    for path, raw in b.seq(doc, "tenants", ()):
        tenant = b.build(Tenant, raw, path, {}, strip=("users",))
        if tenant is None or not isinstance(raw, dict):
            continue
        for upath, uraw in b.seq(raw, "users", path):
            b.build(User, uraw, upath, {"tenant": tenant.key})
    for path, raw in b.seq(doc, "instances", ()):
        b.build(ComputeInstance, raw, path, {})


def _cross_checks(b: _Builder) -> None:
    seen: dict[tuple[str, str], Path_] = {}
    for path, obj, _ in b.entities:
        ident = (obj.KIND, obj.key)
        if ident in seen:
            what = "resource name (unique per site)" if obj.KIND == "resource" else obj.KIND
            b.issues.append(Issue(join_path(path), f"duplicate {what} {obj.key!r}, first "
                                  f"defined at {join_path(seen[ident])}",
                                  "rename one of them or remove the duplicate"))
        else:
            seen[ident] = path
    names = {o.key for _, o, _ in b.entities if isinstance(o, Site)}
    for path, obj, _ in b.entities:
        if isinstance(obj, Router) and obj.key in names:
            b.issues.append(Issue(join_path((*path, "name")),
                                  f"router name {obj.key!r} is also a site name",
                                  "topology node names must be unique across sites and routers"))
    view = integrity.View(
        sites=names,
        routers=(o.key for _, o, _ in b.entities if isinstance(o, Router)),
        nodes=(o.key for _, o, _ in b.entities if isinstance(o, ComputeNode)),
        tenants={o.key: o.parent for _, o, _ in b.entities if isinstance(o, Tenant)},
    )
    for path, obj, back in b.entities:
        for issue in integrity.check(obj, view):
            head, _, rest = issue.path.partition(".")
            head = back.get(head, head)
            rel = head + ("." + rest if rest else "")
            b.issues.append(Issue(join_path((*path, *_parse_path(rel))), issue.message,
                                  issue.fix))


def parse_config(text: str, source: str = "<config>") -> NetworkConfig:
    """Validate config ``text``; raise ``ValidationError`` naming every problem."""
    from controller.plugins import load_config_sections

    load_config_sections()
    doc, root = yamlsafe.load(text, source)  # bounded; refusals name the line
    lines = _Lines(root)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValidationError(Issue("", "the config must be a mapping of sections",
                                    "start with 'sites:', 'services:' …"), source)
    b = _Builder()
    known = set(TOP_KEYS) | set(_SECTIONS)
    for key in doc:
        if key not in known:
            b.issues.append(Issue(str(key), "unknown top-level key",
                                  f"use one of: {', '.join(sorted(known))}"))
    zone = doc.get("zone", "cpn.example")
    if not isinstance(zone, str) or not zone.strip(".") or " " in zone:
        b.issues.append(Issue("zone", f"not a DNS zone name: {zone!r}", "e.g. 'cpn.example'"))
    sections: dict[str, Model] = {}
    for name, model in _SECTIONS.items():
        if name not in doc and name not in CORE_SECTIONS:
            continue  # a plugin's section is optional: absent means "not used"
        try:
            sections[name] = model.model_validate(doc.get(name) or {})
        except pydantic.ValidationError as exc:
            b.issues.extend(issues_from_pydantic(exc, (name,)))
    _walk(doc, b)
    _cross_checks(b)
    auth_sec = sections.get("auth")
    if isinstance(auth_sec, AuthSection):  # a token's tenant must exist (issue #15)
        tenants = {e.key for _, e, _ in b.entities if isinstance(e, Tenant)}
        for i, tok in enumerate(auth_sec.tokens):
            if tok.tenant is not None and tok.tenant not in tenants:
                b.issues.append(Issue(f"auth.tokens[{i}].tenant",
                                      f"unknown tenant {tok.tenant!r}",
                                      "declare it under 'tenants:' in this file"))
            elif tok.role is Role.TENANT and tok.tenant is None:
                b.issues.append(Issue(f"auth.tokens[{i}].tenant",
                                      "a token of role tenant needs its tenant",
                                      "add 'tenant: NAME'"))
    if b.issues:
        located = []
        for issue in b.issues:
            line = lines.line(_parse_path(issue.path)) if issue.path else None
            suffix = f" (line {line})" if line else ""
            located.append(Issue(issue.path + suffix, issue.message, issue.fix))
        raise ValidationError(located, source)
    auth = sections["auth"]
    assert isinstance(auth, AuthSection)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return NetworkConfig(source=source, zone=str(zone).strip("."),
                         entities=[o for _, o, _ in b.entities], sections=sections,
                         digest=digest, tokens=auth.tokens)


def load_config(path: str | Path) -> NetworkConfig:
    p = Path(path)
    try:
        with p.open("rb") as fh:  # never more than the size limit in memory
            data = fh.read(yamlsafe.MAX_BYTES + 1)
    except OSError as exc:
        raise ValidationError(Issue("", f"cannot read config: {exc.strerror}",
                                    "check the path given to --config"), str(p)) from exc
    if len(data) > yamlsafe.MAX_BYTES:
        raise yamlsafe.too_big(p.stat().st_size, str(p))
    return parse_config(yamlsafe.decode(data, str(p)), str(p))


# --------------------------------------------------------------------------- applying
APPLIED_META = "config.applied"


@dataclass
class ApplyResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: bool = False


def apply_config(store: Any, cfg: NetworkConfig, actor: str = "config") -> ApplyResult:
    """Make the store match ``cfg`` (declaratively, in one transaction)."""
    prev_raw = store.get_meta(APPLIED_META)
    prev: dict[str, Any] = json.loads(prev_raw) if prev_raw else {}
    if prev.get("digest") == cfg.digest:
        return ApplyResult(unchanged=True)
    now = {(e.KIND, e.key) for e in cfg.entities}
    before = {(k, key) for k, key in (tuple(x) for x in prev.get("objects", []))}
    result = ApplyResult()
    kinds = {cls.KIND: cls for cls in MANAGED_KINDS}
    from controller.store.base import Action

    with store.transaction(actor, f"apply {cfg.source}") as txn:
        for e in cfg.entities:
            txn.put(e)
        dropped = []
        for kind, key in sorted(before - now):
            if kind in kinds and txn.get(kinds[kind], key) is not None:
                txn.delete(kinds[kind], key)
                dropped.append((kind, key))
        # the API's rule: nothing is deleted while something else still refers to it
        # (objects created through REST or NETCONF may refer to file-declared ones)
        refused = [Issue(f"{kind} {key}", f"{kind} {key!r} was removed from the file but "
                         f"{ref} still refers to it",
                         f"delete or change {ref} first, or keep {kind} {key!r} in the file")
                   for kind, key in dropped
                   for ref in referrers_after(txn, store, kind, key)]
        if refused:
            raise ConflictError(ValidationError(refused, cfg.source).render()
                                + "\nnothing applied; the previous state is kept")
        for ch in txn.changes():
            if ch.action is Action.CREATE:
                result.created += 1
            elif ch.action is Action.UPDATE:
                result.updated += 1
            else:
                result.deleted += 1
    # Recorded only after the transaction committed: a failed apply is retried next time.
    store.set_meta(APPLIED_META, json.dumps(
        {"digest": cfg.digest, "source": cfg.source, "objects": sorted(now)}))
    return result
