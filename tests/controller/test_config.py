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


@pytest.mark.parametrize("literal", ["1.0e+999", ".inf", "-.Inf", ".nan"])
def test_non_finite_number_in_a_config_is_refused_with_its_line(literal: str) -> None:
    """#15: ``1.0e+999`` in a config was applied (stored as null) and the next start
    refused the state directory."""
    found = problems(BASE.replace("value: 8", f"value: {literal}"))
    assert len(found) == 1
    assert found[0].startswith("sites[0].nodes[0].resources[0].value (line 9)")
    assert "finite number" in found[0] and "infinity cannot be stored" in found[0]
    found = problems(BASE + f"tenants:\n  - name: t\n    quota: {{gpu: {literal}}}\n")
    assert found[0].startswith("tenants[0].quota.gpu")


def test_config_apply_orphaned_an_api_created_user_now_refused_naming_both(
        tmp_path: Path) -> None:
    """#15: dropping a tenant from the file deleted it although a user created through
    the API still referred to it (the API refuses that delete). The apply is refused
    as a whole, naming both objects, and the previous state is kept."""
    from controller.errors import ConflictError
    from controller.models import Tenant, User
    from controller.writer import StateWriter

    with_tenants = BASE + "tenants:\n  - name: noc\n  - name: lab\n"
    store = SqliteStore(tmp_path / "s.db")
    try:
        apply_config(store, parse_config(with_tenants, "a.yaml"))
        StateWriter(store).put(User(name="eve", tenant="noc"), "api:ops")
        seq = store.last_seq()
        with pytest.raises(ConflictError) as info:
            apply_config(store, parse_config(BASE + "tenants:\n  - name: lab\n", "a.yaml"))
        msg = str(info.value)
        assert "tenant 'noc' was removed from the file but user eve still refers to it" in msg
        assert "delete or change user eve first" in msg and "nothing applied" in msg
        assert store.get(Tenant, "noc") is not None and store.last_seq() == seq
        # dropping a tenant nobody refers to still works, and so does a later retry
        res = apply_config(store, parse_config(BASE + "tenants:\n  - name: noc\n", "a.yaml"))
        assert res.deleted == 1 and store.get(Tenant, "lab") is None
        # once the user moved, dropping noc is fine (file objects referring to each
        # other go together)
        StateWriter(store).delete(User, "eve", "api:ops")
        assert apply_config(store, parse_config(BASE, "a.yaml")).deleted == 1
    finally:
        store.close()


def test_config_apply_cannot_orphan_api_objects_of_a_dropped_site(tmp_path: Path) -> None:
    from controller.errors import ConflictError
    from controller.models import ComputeNode
    from controller.writer import StateWriter

    store = SqliteStore(tmp_path / "s.db")
    try:
        apply_config(store, parse_config(BASE, "a.yaml"))
        StateWriter(store).put(ComputeNode(site="B", name="api-node"), "api:ops")
        with pytest.raises(ConflictError, match="site 'B' was removed from the file but "
                           "node B/api-node still refers to it"):
            apply_config(store, parse_config(BASE.split("  - name: B")[0], "a.yaml"))
        assert store.get(Site, "B") is not None
    finally:
        store.close()


def test_config_apply_cannot_drop_a_node_an_api_resource_is_scoped_to(tmp_path: Path) -> None:
    """The resource would keep naming a node that no longer exists and could no longer
    be updated (the REST delete of that node is refused the same way)."""
    from controller.errors import ConflictError
    from controller.models import ComputeNode
    from controller.writer import StateWriter

    with_n2 = BASE.replace("    nodes:\n", "    nodes:\n      - name: n2\n", 1)
    store = SqliteStore(tmp_path / "s.db")
    try:
        apply_config(store, parse_config(with_n2, "a.yaml"))
        StateWriter(store).put(ComputeResource(site="A", name="gpu", description="cards",
                                               value=2, scope=["n2"]), "api:ops")
        with pytest.raises(ConflictError, match="node 'A/n2' was removed from the file but "
                           "resource A/gpu still refers to it"):
            apply_config(store, parse_config(BASE, "a.yaml"))
        assert store.get(ComputeNode, "A/n2") is not None
        with pytest.raises(ConflictError, match="still referred to by resource A/gpu"):
            StateWriter(store).delete(ComputeNode, "A/n2", "api:ops")
    finally:
        store.close()
