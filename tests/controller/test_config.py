from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from controller.config import apply_config, load_config, parse_config
from controller.errors import ValidationError
from controller.models import ComputeResource, Link, Service, Site
from controller.store import SqliteStore
from tests.conftest import ROOT

BASE = """
sites:
  - name: A
    kind: hub
    region: r1
    nodes:
      - name: n1
        resources:
          - {name: cpu, description: cores, value: 8}
  - name: B
    kind: mec
    region: r2
    links:
      - {to: A, delay_ms: 2}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_config(textwrap.dedent(text), "net.yaml")
    assert info.value.source == "net.yaml"
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize("name", ["gba.yaml", "security-video.yaml"])
def test_examples_are_valid(name: str) -> None:
    cfg = load_config(ROOT / "examples" / name)
    assert cfg.of(Site) and cfg.of(Service)


def test_nested_resource_gets_site_and_default_scope() -> None:
    cfg = parse_config(BASE)
    [res] = cfg.of(ComputeResource)
    assert (res.site, res.scope) == ("A", ["n1"])
    [link] = cfg.of(Link)
    assert (link.a, link.b) == ("B", "A")


def test_link_to_unknown_site_names_the_path_line_and_fix() -> None:
    text = BASE + "      - {to: HUB-9}\n"
    [msg] = problems(text)
    assert msg.startswith("sites[1].links[1].to (line 15): unknown site or router 'HUB-9'")
    assert "use one of: A, B" in msg


def test_unknown_key() -> None:
    [msg] = problems(BASE.replace("region: r2", "region: r2\n    colour: red"))
    assert msg.startswith("sites[1].colour") and "unknown key 'colour'" in msg


def test_wrong_type_and_unit() -> None:
    [msg] = problems(BASE.replace("delay_ms: 2", "delay_ms: fast"))
    assert msg.startswith("sites[1].links[0].delay_ms") and "valid number" in msg


def test_duplicate_resource_name() -> None:
    text = BASE.replace("- {name: cpu, description: cores, value: 8}",
                        "- {name: cpu, description: cores, value: 8}\n"
                        "          - {name: cpu, description: more, value: 2}")
    [msg] = problems(text)
    assert "sites[0].nodes[0].resources[1]" in msg and "duplicate resource name" in msg


def test_static_resource_without_value() -> None:
    [msg] = problems(BASE.replace(", value: 8", ""))
    assert msg.startswith("sites[0].nodes[0].resources[0]")
    assert "static resource (dynamic: false) needs a value" in msg


def test_implied_field_given_again() -> None:
    [msg] = problems(BASE.replace("{to: A, delay_ms: 2}", "{to: A, a: B}"))
    assert "sites[1].links[0].a" in msg and "implied" in msg


def test_unknown_top_level_key_and_bad_yaml() -> None:
    [msg] = problems("sitez: []\n")
    assert msg.startswith("sitez") and "unknown top-level key" in msg
    with pytest.raises(ValidationError, match=r"net.yaml:\d+:\d+: not valid YAML"):
        parse_config("sites:\n  - [unclosed\n", "net.yaml")


def test_many_problems_reported_together() -> None:
    text = BASE.replace("kind: hub", "kind: castle").replace("delay_ms: 2", "delay_ms: -1")
    msgs = problems(text)
    assert len(msgs) == 2


def test_apply_is_declarative_and_idempotent(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        cfg = parse_config(BASE, "a.yaml")
        first = apply_config(store, cfg)
        assert first.created == 5 and not first.unchanged  # 2 sites, node, resource, link
        assert apply_config(store, cfg).unchanged
        seq = store.last_seq()
        # an API-created site survives a config change; a dropped config object goes
        with store.transaction("api:ops") as txn:
            txn.put(Site(name="API-SITE", kind="mec", region="x"))
        smaller = parse_config(BASE.split("  - name: B")[0], "a.yaml")
        res = apply_config(store, smaller)
        assert res.deleted == 2  # site B and its link
        assert store.get(Site, "B") is None and store.get(Site, "API-SITE") is not None
        assert store.last_seq() > seq
    finally:
        store.close()


def test_invalid_config_applies_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        with pytest.raises(ValidationError):
            apply_config(store, parse_config(BASE + "      - {to: NOPE}\n"))
        assert store.last_seq() == 0
    finally:
        store.close()
