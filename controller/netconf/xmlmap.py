"""Domain objects ⇄ the ``cpn`` YANG data tree (``controller/yang/cpn.yang``).

Rules:
- Leaf names are the model's field names with ``_`` → ``-``; a ``list[...]`` field is a
  leaf-list or list (repeated element); a nested model is a container; booleans are
  ``true``/``false``; fields holding free-form maps (``labels``, ``extended``) are not
  exposed over NETCONF (REST has them).
- Each configurable kind sits in ``/cpn/<container>/<element>`` keyed by the leaves in
  ``ListMap.keys``; an entity whose key has several leaves (SR policy intents:
  headend, color, endpoint) has the store key ``v1~v2~v3`` in that order. ``Link`` is
  keyed by ``name`` (its ``id``, or ``a~b``).
- Plugin packages add their own lists (SR policy intents, slices, SD-WAN policies from
  ``srv6``) and non-list containers (the scheduler configuration) through
  ``controller.netconf.extension``; they map exactly like the core kinds.
- Parsing is strict: an unknown element is an error with its path, like pydantic's
  unknown-key error.
"""

from __future__ import annotations

import types
import typing
import xml.etree.ElementTree as ET
from typing import Any

from pydantic import BaseModel

from controller.models import Entity, Link, Router, Service, Site, Tenant
from controller.netconf.extension import ListMap, containers, ext_lists

NS = "urn:cpn:yang:cpn"
BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
Q = f"{{{NS}}}"
ET.register_namespace("cpn", NS)


#: the foundation kinds' lists; plugins add theirs (``lists()``)
CORE_LISTS: tuple[ListMap, ...] = (
    ListMap("sites", "site", Site, ("name",)),
    ListMap("routers", "router", Router, ("name",)),
    ListMap("links", "link", Link, ("name",), frozenset({"id"})),
    ListMap("services", "service", Service, ("name",),
            nested_keys=(("instances", ("site", "address")),)),
    ListMap("tenants", "tenant", Tenant, ("name",)),
)


def lists() -> tuple[ListMap, ...]:
    """Every configurable list: the core ones, then each plugin's."""
    return CORE_LISTS + ext_lists()


def by_container() -> dict[str, ListMap]:
    return {m.container: m for m in lists()}


def by_kind() -> dict[str, ListMap]:
    return {m.cls.KIND: m for m in lists()}

def yname(field: str) -> str:
    return field.replace("_", "-")


def fname(tag: str) -> str:
    return tag.split("}", 1)[-1].replace("-", "_")


# ----------------------------------------------------------------------------- to XML
def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


def _emit(parent: ET.Element, name: str, value: Any, model: type[BaseModel] | None) -> None:
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            _emit(parent, name, item, model)
        return
    el = ET.SubElement(parent, Q + yname(name))
    if isinstance(value, dict):
        for k, v in value.items():
            _emit(el, k, v, None)
    else:
        el.text = _scalar(value)


def entity_xml(obj: Entity, m: ListMap) -> ET.Element:
    el = ET.Element(Q + m.element)
    data = obj.model_dump(mode="json", exclude=set(m.hidden))
    if isinstance(obj, Link):
        ET.SubElement(el, Q + "name").text = obj.key
    for field, value in data.items():
        _emit(el, field, value, None)
    return el


def config_tree(objects: dict[str, dict[str, Entity]]) -> ET.Element:
    """``<cpn>`` with every configurable list and container, for get-config."""
    root = ET.Element(Q + "cpn")
    for m in lists():
        cont = ET.SubElement(root, Q + m.container)
        for key in sorted(objects.get(m.cls.KIND, {})):
            cont.append(entity_xml(objects[m.cls.KIND][key], m))
    for c in containers():
        for obj in objects.get(c.cls.KIND, {}).values():
            root.append(c.to_xml(obj))
    return root


# --------------------------------------------------------------------------- from XML
class XmlDataError(ValueError):
    """Bad data in an edit: ``path`` is the field path inside the entry."""

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        self.path = path
        super().__init__(message)


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def _field_shape(model: type[BaseModel], name: str) -> tuple[str, Any]:
    """('list' | 'model' | 'scalar', inner type) of ``model.name``."""
    ann = _unwrap(model.model_fields[name].annotation)
    if typing.get_origin(ann) is list:
        inner = _unwrap(typing.get_args(ann)[0])
        return "list", inner
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "model", ann
    return "scalar", ann


def element_dict(el: ET.Element, model: type[BaseModel], hidden: frozenset[str],
                 path: tuple[str, ...] = ()) -> dict[str, Any]:
    """XML element → dict ready for ``model.model_validate`` (strict on unknown tags)."""
    out: dict[str, Any] = {}
    for child in el:
        if not isinstance(child.tag, str):
            continue
        if not child.tag.startswith(Q):
            raise XmlDataError((*path, child.tag), f"element {child.tag!r} is not in the "
                               f"cpn namespace {NS}")
        name = fname(child.tag)
        if name not in model.model_fields or name in hidden:
            raise XmlDataError((*path, yname(name)), f"unknown element {yname(name)!r}")
        shape, inner = _field_shape(model, name)
        if shape == "model":
            out[name] = element_dict(child, inner, frozenset(), (*path, yname(name)))
        elif shape == "list":
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                item: Any = element_dict(child, inner, frozenset(), (*path, yname(name)))
            else:
                item = (child.text or "").strip()
            out.setdefault(name, []).append(item)
        else:
            if len(child):
                raise XmlDataError((*path, yname(name)), f"{yname(name)} is a leaf, not a "
                                   "container")
            out[name] = (child.text or "").strip()
    return out


def entry_from_xml(el: ET.Element, m: ListMap) -> tuple[dict[str, Any], str | None]:
    """(field dict, operation attribute) of a list entry element."""
    op = el.get(f"{{{BASE_NS}}}operation")
    name_el = None
    if m.cls is Link:
        name_el = el.find(Q + "name")
        if name_el is not None:
            el.remove(name_el)
    data = element_dict(el, m.cls, m.hidden)
    if name_el is not None:
        name = (name_el.text or "").strip()
        data["_name"] = name
    return data, op


def key_of(data: dict[str, Any], m: ListMap) -> str | None:
    if m.cls is Link:
        name = data.get("_name")
        if name:
            return str(name)
        if "a" in data and "b" in data:
            return f"{data['a']}~{data['b']}"
        return None
    values = [data.get(k) for k in m.keys]
    if any(v is None for v in values):
        return None
    return "~".join(str(v) for v in values)


def finish_link(data: dict[str, Any]) -> dict[str, Any]:
    name = data.pop("_name", None)
    if name and name != f"{data.get('a')}~{data.get('b')}":
        data["id"] = name
    return data


def _pred(leaf: str, value: Any) -> str:
    text = _scalar(value)
    quoted = f"'{text}'" if "'" not in text else f'"{text}"'
    return f"[{leaf}={quoted}]"


def entry_path(m: ListMap, key: str) -> str:
    """The instance path of a list entry: ``/cpn:cpn/cpn:sites/cpn:site[cpn:name='A']``."""
    parts = key.split("~", len(m.keys) - 1) if len(m.keys) > 1 else [key]
    preds = "".join(_pred(f"cpn:{leaf}", value)
                    for leaf, value in zip(m.keys, parts, strict=False))
    return f"/cpn:cpn/cpn:{m.container}/cpn:{m.element}{preds}"


def instance_path(m: ListMap, key: str, data: dict[str, Any],
                  loc: tuple[str | int, ...] = ()) -> str:
    """An RFC 6241 error-path for a node inside an entry: a valid instance path, with
    nested list entries named by their key leaves and leaf-list entries by value
    (``[.='x']``) — never by position. ``loc`` is a field path such as pydantic's error
    location (positions as ints; parts that are no field of the model, like union
    member tags or validator names, are skipped); ``data`` is the entry's field dict,
    where the positions are looked up. A position whose entry cannot be named ends the
    path at the list."""
    path = entry_path(m, key)
    nested = dict(m.nested_keys)
    model: type[BaseModel] = m.cls
    cur: Any = data
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if not isinstance(part, str) or part not in model.model_fields or \
                (model is m.cls and part in m.hidden):
            continue
        path += f"/cpn:{yname(part)}"
        shape, inner = _field_shape(model, part)
        value = cur.get(part) if isinstance(cur, dict) else None
        if shape == "model":
            model, cur = inner, value
            continue
        if shape != "list" or not parts or not isinstance(parts[0], int):
            break
        idx = parts.pop(0)
        assert isinstance(idx, int)
        item = value[idx] if isinstance(value, list) and 0 <= idx < len(value) else None
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys = nested.get(part)
            if not keys or not isinstance(item, dict) or any(item.get(k) is None
                                                             for k in keys):
                break
            path += "".join(_pred(f"cpn:{yname(k)}", item[k]) for k in keys)
            model, cur = inner, item
            continue
        if item is not None:
            path += _pred(".", item)
        break
    return path


def unknown_element_path(m: ListMap, entry: ET.Element, parts: tuple[str, ...]) -> str:
    """error-path for an unknown element at ``parts`` (element names) inside ``entry``:
    the innermost enclosing node that exists — the entry (by its keys) and the
    containers below it; ``bad-element`` names the unknown one (RFC 6241 App. A)."""
    def text(leaf: str) -> str | None:
        found = entry.find(Q + yname(leaf))
        return (found.text or "").strip() if found is not None else None

    if m.cls is Link:
        name = text("name")
        a, b = text("a"), text("b")
        key = name or (f"{a}~{b}" if a and b else None)
    else:
        values = [text(k) for k in m.keys]
        key = "~".join(v for v in values if v) if all(values) else None
    if key is None:
        return f"/cpn:cpn/cpn:{m.container}/cpn:{m.element}"
    path = entry_path(m, key)
    model: type[BaseModel] = m.cls
    for part in parts[:-1]:
        field = part.replace("-", "_")
        if field not in model.model_fields:
            break
        shape, inner = _field_shape(model, field)
        if shape != "model":
            break
        path += f"/cpn:{part}"
        model = inner
    return path
