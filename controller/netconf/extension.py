"""What a plugin package adds to the NETCONF northbound — the interface, no plugin names.

Rules:
- A plugin module listed in ``controller.plugins.PLUGINS`` may define
  ``netconf() -> NetconfExtension``; it is called once, when the NETCONF machinery first
  needs it (so the plugin module itself stays cheap to import). The NETCONF code sees
  plugin kinds only through these values: ``controller`` imports no plugin package.
- ``lists``: configurable YANG lists ``/cpn/<container>/<element>`` mapped like the
  core kinds (``ListMap``). ``containers``: configuration containers that are not lists
  (one stored object each, ``ConfigContainer``). ``rules``: cross-object checks run on a
  candidate (``controller.integrity.RuleCheck``). ``state``: builders of ``config
  false`` subtrees of ``/cpn/state``. ``notifications``: per stored kind, the RFC 5277
  notification body for one committed change (None: no notification).
- Two plugins claiming the same container, element or kind are refused at load with
  both names (a silent override would hide one plugin's data).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from controller.integrity import RuleCheck
from controller.models import Entity


@dataclass(frozen=True)
class ListMap:
    """A configurable YANG list: ``/cpn/<container>/<element>`` holding ``cls`` entities
    keyed by the leaves ``keys`` (store key ``v1~v2~…``); ``hidden`` fields are not
    exposed over NETCONF; ``nested_keys``: (field, key leaves) of the nested YANG lists
    inside an entry, so a merge edit merges their entries by key."""

    container: str
    element: str
    cls: type[Entity]
    keys: tuple[str, ...]
    hidden: frozenset[str] = frozenset({"labels", "extended", "params"})
    nested_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()


class ContainerEditError(ValueError):
    """A bad edit of a ``ConfigContainer``: ``tag`` is the rpc-error tag, ``xpath`` the
    error-path (RFC 6241 §4.3)."""

    def __init__(self, tag: str, xpath: str, message: str) -> None:
        self.tag = tag
        self.xpath = xpath
        super().__init__(message)


@dataclass(frozen=True)
class ConfigContainer:
    """A configuration container ``/cpn/<element>`` held in ONE stored entity of ``cls``
    (store key ``key``).

    ``default(cfg)``: its value while none is stored (``cfg`` is the loaded
    ``NetworkConfig`` or None) — commit stores the container only while it differs from
    that. ``to_xml(obj)``: the ``<element>`` subtree. ``apply_edit(obj, el, default_op)``:
    ``obj`` edited by an ``<element>`` (RFC 6241 §7.2; delete / remove of the whole
    container is handled by the datastore: back to the default), pure; raises
    ``ContainerEditError``."""

    element: str
    cls: type[Entity]
    key: str
    default: Callable[[Any], Entity]
    to_xml: Callable[[Entity], ET.Element]
    apply_edit: Callable[[Entity, ET.Element, str], Entity]


#: ``state(rt)`` -> one child element of ``/cpn/state``
StateBuilder = Callable[[Any], ET.Element]
#: ``notify(change)`` -> a notification body, or None (``change``: a store ``Change``)
Notifier = Callable[[Any], ET.Element | None]


@dataclass(frozen=True)
class NetconfExtension:
    """Everything one plugin adds to the NETCONF northbound (see the module rules)."""

    lists: tuple[ListMap, ...] = ()
    containers: tuple[ConfigContainer, ...] = ()
    rules: tuple[RuleCheck, ...] = ()
    state: tuple[StateBuilder, ...] = ()
    notifications: Mapping[str, Notifier] = field(default_factory=dict)


@cache
def extensions() -> tuple[NetconfExtension, ...]:
    """Every plugin's extension, in ``controller.plugins.PLUGINS`` order."""
    from controller import plugins

    out: list[NetconfExtension] = []
    owner: dict[str, str] = {}
    for mod in plugins.modules():
        factory = getattr(mod, "netconf", None)
        if factory is None:
            continue
        ext = factory()
        if not isinstance(ext, NetconfExtension):
            raise TypeError(f"{mod.__name__}.netconf() must return a NetconfExtension, "
                            f"not {type(ext).__name__}")
        names = [f"container {m.container}" for m in ext.lists]
        names += [f"container {c.element}" for c in ext.containers]
        names += [f"kind {m.cls.KIND}" for m in ext.lists]
        names += [f"kind {c.cls.KIND}" for c in ext.containers]
        for name in names:
            if name in owner:
                raise ValueError(f"NETCONF {name} is claimed by both {owner[name]} and "
                                 f"{mod.__name__}; rename one of them")
            owner[name] = mod.__name__
        out.append(ext)
    return tuple(out)


def ext_lists() -> tuple[ListMap, ...]:
    return tuple(m for e in extensions() for m in e.lists)


def containers() -> tuple[ConfigContainer, ...]:
    return tuple(c for e in extensions() for c in e.containers)


def rules() -> tuple[RuleCheck, ...]:
    return tuple(r for e in extensions() for r in e.rules)


def state_builders() -> tuple[StateBuilder, ...]:
    return tuple(s for e in extensions() for s in e.state)


def notifiers() -> dict[str, Notifier]:
    return {k: n for e in extensions() for k, n in e.notifications.items()}
