"""Scheduling-policy configuration ⇄ ``/cpn/scheduler`` (sans-I/O), the scheduler's
NETCONF extension (``netconf()``, registered through ``scheduler.registration``).

Rules:
- The container mirrors ``scheduler.profiles.SchedulerConfig``: one leaf per scalar
  field (``queue-sort``, ``percentage-of-nodes``, ``interval-s``, ``cpsat-time-s``,
  ``vectorise``; the YANG test checks every field has one); YANG lists for the maps:
  ``profile`` (key ``name``; ``plugin`` list, ordered-by user, key ``name`` with an
  ``arg`` list; ``weight`` list keyed by ``plugin``), ``queue`` (key ``name``) and
  ``tenant`` (key ``name``; ``lending-limit`` list keyed by ``resource``).
- A plug-in argument's ``value`` is a string holding JSON (``0.8``, ``true``,
  ``["a","b"]``); text that is not JSON is taken as a plain string.
- Edits follow RFC 6241 §7.2 per list entry (merge / replace / create / delete /
  remove); a leaf with ``delete``/``remove`` goes back to its default. The result is
  validated by ``SchedulerConfig`` itself — the same check as ``cpn config check`` —
  and an error names the profile / queue / tenant it is about in ``path``.
- Nothing here touches the store; ``apply_edit`` is pure (config + XML in, config out).
"""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pydantic

from controller.models import Entity
from controller.netconf.extension import ConfigContainer, ContainerEditError, NetconfExtension
from controller.netconf.xmlmap import BASE_NS, Q, fname
from scheduler.plugins import DEFAULT_PLUGINS, DEFAULT_WEIGHTS
from scheduler.profiles import SchedulerConfig
from scheduler.settings import SCHEDULER_KEY, SchedulerSettings, file_config

ROOT_PATH = "/cpn:cpn/cpn:scheduler"
OP = f"{{{BASE_NS}}}operation"
#: every leaf of the section: what is not one of the three maps
_SCALARS = tuple(f for f in SchedulerConfig.model_fields
                 if f not in ("profiles", "queues", "tenants"))
#: YANG list element -> (config map field, key leaf)
_LISTS = {"profile": ("profiles", "name"), "queue": ("queues", "name"),
          "tenant": ("tenants", "name")}


class SchedulerEditError(ContainerEditError):
    """A bad scheduler edit; ``tag`` is the rpc-error tag, ``xpath`` the error-path."""


def _num(value: float) -> str:
    return f"{value:g}"


def _sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, Q + name)
    if text is not None:
        el.text = text
    return el


# ----------------------------------------------------------------------------- to XML
def to_xml(cfg: SchedulerConfig) -> ET.Element:
    root = ET.Element(Q + "scheduler")
    for field in _SCALARS:
        value = getattr(cfg, field)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float | int):
            text = _num(value)
        else:
            text = str(value)
        _sub(root, field.replace("_", "-"), text)
    for name, prof in sorted(cfg.profiles.items()):
        p = _sub(root, "profile")
        _sub(p, "name", name)
        for ref in prof.plugins:
            pl = _sub(p, "plugin")
            if isinstance(ref, str):
                _sub(pl, "name", ref)
                continue
            _sub(pl, "name", ref.name)
            for arg, value in ref.args.items():
                a = _sub(pl, "arg")
                _sub(a, "name", arg)
                _sub(a, "value", json.dumps(value))
        for plugin, weight in sorted(prof.weights.items()):
            w = _sub(p, "weight")
            _sub(w, "plugin", plugin)
            _sub(w, "value", _num(weight))
    for name, q in sorted(cfg.queues.items()):
        e = _sub(root, "queue")
        _sub(e, "name", name)
        _sub(e, "weight", _num(q.weight))
        _sub(e, "profile", q.profile)
    for name, t in sorted(cfg.tenants.items()):
        e = _sub(root, "tenant")
        _sub(e, "name", name)
        if t.profile is not None:
            _sub(e, "profile", t.profile)
        for res, limit in sorted(t.lending_limit.items()):
            lim = _sub(e, "lending-limit")
            _sub(lim, "resource", res)
            _sub(lim, "value", _num(limit))
    return root


# --------------------------------------------------------------------------- from XML
def _text(el: ET.Element) -> str:
    return (el.text or "").strip()


def _children(el: ET.Element, path: str) -> list[tuple[str, ET.Element]]:
    out = []
    for ch in el:
        if not isinstance(ch.tag, str):
            continue
        if not ch.tag.startswith(Q):
            raise SchedulerEditError("unknown-element", f"{path}/{ch.tag}",
                                     f"element {ch.tag!r} is not in the cpn namespace")
        out.append((ch.tag[len(Q):], ch))
    return out


def _key(el: ET.Element, leaf: str, path: str) -> str:
    found = el.find(Q + leaf)
    if found is None or not _text(found):
        raise SchedulerEditError("missing-element", f"{path}/cpn:{leaf}",
                                 f"a {fname(el.tag).replace('_', '-')} entry needs its key "
                                 f"{leaf!r}")
    return _text(found)


def _entry_op(el: ET.Element, inherited: str, path: str) -> str:
    op = el.get(OP) or inherited
    if op not in ("merge", "replace", "create", "delete", "remove", "none"):
        raise SchedulerEditError("bad-attribute", path, f"unknown operation {op!r}")
    return op


def _keyed(table: dict[str, Any], key: str, op: str, fresh: Any, path: str, what: str
           ) -> Any | None:
    """Apply ``op`` to ``table[key]``; returns the entry to fill, or None if removed."""
    if op in ("delete", "remove"):
        if key not in table and op == "delete":
            raise SchedulerEditError("data-missing", path, f"{what} {key!r} does not exist")
        table.pop(key, None)
        return None
    if op == "create" and key in table:
        raise SchedulerEditError("data-exists", path, f"{what} {key!r} already exists")
    if op == "replace" or key not in table:
        table[key] = copy.deepcopy(fresh)
    return table[key]


def _arg_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _profile(el: ET.Element, prof: dict[str, Any], op: str, path: str, fresh: bool) -> None:
    if fresh:  # a new or replaced profile: what it lists, else the defaults (as in YAML)
        if el.find(Q + "plugin") is not None:
            prof["plugins"] = []
        if el.find(Q + "weight") is not None:
            prof["weights"] = {}
    plugins: list[dict[str, Any]] = prof["plugins"]
    weights: dict[str, Any] = prof["weights"]  # text; SchedulerConfig parses it
    for tag, ch in _children(el, path):
        if tag == "name":
            continue
        cop = _entry_op(ch, "merge" if op == "replace" else op, path)
        if tag == "plugin":
            name = _key(ch, "name", f"{path}/cpn:plugin")
            ppath = f"{path}/cpn:plugin[cpn:name='{name}']"
            idx = next((i for i, p in enumerate(plugins) if p["name"] == name), None)
            if cop in ("delete", "remove"):
                if idx is None and cop == "delete":
                    raise SchedulerEditError("data-missing", ppath,
                                             f"plugin {name!r} is not in the profile")
                if idx is not None:
                    plugins.pop(idx)
                continue
            if cop == "create" and idx is not None:
                raise SchedulerEditError("data-exists", ppath, f"plugin {name!r} exists")
            if idx is None or cop == "replace":
                entry: dict[str, Any] = {"name": name, "args": {}}
                if idx is None:
                    plugins.append(entry)
                else:
                    plugins[idx] = entry
            else:
                entry = plugins[idx]
            for atag, a in _children(ch, ppath):
                if atag == "name":
                    continue
                if atag != "arg":
                    raise SchedulerEditError("unknown-element", f"{ppath}/cpn:{atag}",
                                             f"unknown element {atag!r}")
                aname = _key(a, "name", f"{ppath}/cpn:arg")
                if _entry_op(a, "merge", ppath) in ("delete", "remove"):
                    entry["args"].pop(aname, None)
                else:
                    entry["args"][aname] = _arg_value(a.findtext(Q + "value") or "")
        elif tag == "weight":
            plugin = _key(ch, "plugin", f"{path}/cpn:weight")
            if cop in ("delete", "remove"):
                weights.pop(plugin, None)
            else:
                weights[plugin] = (ch.findtext(Q + "value") or "").strip()
        else:
            raise SchedulerEditError("unknown-element", f"{path}/cpn:{tag}",
                                     f"unknown element {tag!r}")


def _simple(el: ET.Element, entry: dict[str, Any], fields: tuple[str, ...], path: str,
            nested: tuple[str, str, str] | None = None) -> None:
    for tag, ch in _children(el, path):
        if tag == "name":
            continue
        field = fname(tag)
        if nested is not None and tag == nested[0]:
            res = _key(ch, nested[1], f"{path}/cpn:{tag}")
            table = entry.setdefault(nested[2], {})
            if _entry_op(ch, "merge", path) in ("delete", "remove"):
                table.pop(res, None)
            else:
                table[res] = (ch.findtext(Q + "value") or "").strip()
        elif field in fields:
            if _entry_op(ch, "merge", path) in ("delete", "remove"):
                entry.pop(field, None)
            else:
                entry[field] = _text(ch)
        else:
            raise SchedulerEditError("unknown-element", f"{path}/cpn:{tag}",
                                     f"unknown element {tag!r}")


def _plain(cfg: SchedulerConfig) -> dict[str, Any]:
    d = cfg.model_dump(mode="json", exclude_unset=False)
    for prof in d["profiles"].values():
        prof["plugins"] = [{"name": p, "args": {}} if isinstance(p, str) else p
                           for p in prof["plugins"]]
    return d


def apply_edit(current: SchedulerConfig, el: ET.Element, default_op: str) -> SchedulerConfig:
    """``current`` edited by a ``<scheduler>`` element (its operation already handled
    for delete/remove by the caller). Raises ``SchedulerEditError``."""
    op = _entry_op(el, default_op, ROOT_PATH)
    d = _plain(SchedulerConfig() if op == "replace" else current)
    fresh_profile = {"plugins": [{"name": p, "args": {}} for p in DEFAULT_PLUGINS],
                     "weights": dict(DEFAULT_WEIGHTS)}
    for tag, ch in _children(el, ROOT_PATH):
        field = fname(tag)
        if field in _SCALARS:
            if _entry_op(ch, "merge", ROOT_PATH) in ("delete", "remove"):
                d.pop(field, None)
            else:
                d[field] = _text(ch)
            continue
        if tag not in _LISTS:
            raise SchedulerEditError("unknown-element", f"{ROOT_PATH}/cpn:{tag}",
                                     f"unknown element {tag!r}")
        table_name, keyleaf = _LISTS[tag]
        key = _key(ch, keyleaf, f"{ROOT_PATH}/cpn:{tag}")
        path = f"{ROOT_PATH}/cpn:{tag}[cpn:{keyleaf}='{key}']"
        cop = _entry_op(ch, "merge" if op == "replace" else op, path)
        fresh: dict[str, Any] = fresh_profile if tag == "profile" else {}
        is_new = cop == "replace" or key not in d[table_name]
        entry = _keyed(d[table_name], key, cop, fresh, path, tag)
        if entry is None:
            continue
        if tag == "profile":
            _profile(ch, entry, cop, path, is_new)
        elif tag == "queue":
            _simple(ch, entry, ("weight", "profile"), path)
        else:
            _simple(ch, entry, ("profile",), path, ("lending-limit", "resource",
                                                    "lending_limit"))
    return validated(d)


_ABOUT = re.compile(r"scheduler (profile|queue|tenant) '([^']*)'")


def validated(d: dict[str, Any]) -> SchedulerConfig:
    for prof in d.get("profiles", {}).values():  # {name, no args} is written as the name
        if isinstance(prof, dict):
            prof["plugins"] = [p["name"] if isinstance(p, dict) and not p.get("args") else p
                               for p in prof.get("plugins", [])]
    try:
        return SchedulerConfig.model_validate(d)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        msg = str(err.get("msg", exc))
        path = ROOT_PATH
        about = _ABOUT.search(msg)
        if loc and loc[0] in ("profiles", "queues", "tenants") and len(loc) > 1:
            tag = loc[0][:-1]
            path += f"/cpn:{tag}[cpn:name='{loc[1]}']"
            rest = [p for p in loc[2:] if not p.isdigit() and p not in ("str", "PluginRef")]
            path += "".join(f"/cpn:{p.replace('_', '-')}" for p in rest[:1])
        elif loc:
            path += f"/cpn:{loc[0].replace('_', '-')}"
        elif about is not None:
            path += f"/cpn:{about.group(1)}[cpn:name='{about.group(2)}']"
        raise SchedulerEditError("invalid-value", path,
                                 msg.removeprefix("Value error, ")) from exc


# ------------------------------------------------------------------- NETCONF extension
def _to_xml(obj: Entity) -> ET.Element:
    assert isinstance(obj, SchedulerSettings)
    return to_xml(obj.config)


def _apply(obj: Entity, el: ET.Element, default_op: str) -> Entity:
    assert isinstance(obj, SchedulerSettings)
    return SchedulerSettings(config=apply_edit(obj.config, el, default_op))


def _default(cfg: Any) -> Entity:
    return SchedulerSettings(config=file_config(cfg))


def netconf() -> NetconfExtension:
    """``/cpn/scheduler``: one ``SchedulerSettings`` (default: the file's section)."""
    return NetconfExtension(containers=(ConfigContainer(
        "scheduler", SchedulerSettings, SCHEDULER_KEY, _default, _to_xml, _apply),))
