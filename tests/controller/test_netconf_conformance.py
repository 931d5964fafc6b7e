"""NETCONF conformance: ncclient over the real SSH server, one test per class of rule
(RFC 6241 confirmed commit, locks, copy-config; RFC 7950 error-path and
instance-required; RFC 8525 YANG library; RFC 6022 get-schema). The client learns the
schema the way any client would — yang-library, then get-schema — and judges every
reply against it (pyang and yangson), so a wrong path or element anywhere fails here.
What it covers is listed in docs/netconf.md."""

from __future__ import annotations

import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele
from pyang import context, repository

from controller.models import Service, Site
from tests.controller.test_netconf_server import Controller

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
YLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
TOKEN = {"Authorization": "Bearer op-token-0123456789"}


def cfg(body: str) -> str:
    return (f'<config xmlns="{NC}" xmlns:nc="{NC}"><cpn xmlns="urn:cpn:yang:cpn">{body}'
            "</cpn></config>")


def service(name: str, latency: float | str = 20, extra: str = "") -> str:
    return (f"<services><service><name>{name}</name><requirements><max-latency-ms>{latency}"
            f"</max-latency-ms></requirements>{extra}</service></services>")


def site(name: str) -> str:
    return f"<sites><site><name>{name}</name><kind>mec</kind><region>x</region></site></sites>"


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    c = Controller(tmp_path_factory.mktemp("netconf-conformance"))
    try:
        yield c
    finally:
        c.close()


def rest(ctl: Controller, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"http://127.0.0.1:{ctl.api_port}{path}", headers=TOKEN,
                         json=body, timeout=10)


def netconf(ctl: Controller) -> Any:
    return next(c for c in ctl.rt.started if c.name == "netconf")


def latency(ctl: Controller, name: str = "video") -> float:
    return float(ctl.rest(f"/api/v1/services/{name}")["requirements"]["max_latency_ms"])


def wait_for(cond: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


# ------------------------------------------------------------------ the client's schema
class Schema:
    """What the server says about itself: the YANG library and every module's source
    (fetched with get-schema), compiled by pyang."""

    def __init__(self, ctl: Controller, tmp: Path) -> None:
        with ctl.nc() as m:
            self.caps = set(m.server_capabilities)
            lib = m.get(filter=("subtree", f'<modules-state xmlns="{YLIB}"/>')).data_ele
            self.modules: list[dict[str, Any]] = []
            for mod in lib.iter(f"{{{YLIB}}}module"):
                entry = {t: mod.findtext(f"{{{YLIB}}}{t}") for t in
                         ("name", "revision", "namespace", "conformance-type")}
                entry["feature"] = [f.text for f in mod.findall(f"{{{YLIB}}}feature")]
                self.modules.append(entry)
            self.set_id = lib.findtext(f".//{{{YLIB}}}module-set-id")
            self.library = m.get(filter=("subtree", f'<yang-library xmlns="{YLIB}"/>')
                                 ).data_ele
            self.ncstate = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM}"/>')
                                 ).data_ele
            self.dir = tmp
            for mod in self.modules:
                text = m.get_schema(mod["name"], mod["revision"], "yang").data
                (tmp / f"{mod['name']}@{mod['revision']}.yang").write_text(text)
        ctx = context.Context(repository.FileRepository(str(tmp), use_env=False))
        for mod in self.modules:
            path = tmp / f"{mod['name']}@{mod['revision']}.yang"
            ctx.add_module(str(path), path.read_text())
        ctx.validate()
        errors = [e for e in ctx.errors if e[1] not in ("UNUSED_IMPORT",)]
        assert not errors, errors
        self.ctx = ctx
        self.prefixes = {m.i_prefix: m for m in ctx.modules.values()}

    def check_instance_path(self, path: str) -> None:
        """``path`` is a valid instance path into this schema: each step a data node,
        list entries by exactly their keys, leaf-list entries by value, no positions."""
        assert path.startswith("/"), path
        nodes: list[Any] = [c for m in self.ctx.modules.values()
                            for c in getattr(m, "i_children", [])]
        steps = _steps(path)
        for n, (prefix, name, preds) in enumerate(steps):
            assert prefix in self.prefixes, f"{path}: unknown prefix {prefix!r}"
            node = _find(nodes, name, self.prefixes[prefix])
            assert node is not None, f"{path}: no data node {prefix}:{name} here"
            if node.keyword == "list":
                keys = {k.arg for k in node.i_key}
                got = {k.split(":")[-1] for k, _ in preds}
                last = n == len(steps) - 1
                assert got == keys or (last and not preds), \
                    f"{path}: list {name} needs key predicates {sorted(keys)}, got {preds}"
            elif node.keyword == "leaf-list":
                assert not preds or [k for k, _ in preds] == ["."], f"{path}: {preds}"
            else:
                assert not preds, f"{path}: {name} is a {node.keyword}: no predicates"
            nodes = list(getattr(node, "i_children", []))


def _find(nodes: list[Any], name: str, module: Any) -> Any:
    for node in nodes:
        if node.keyword in ("choice", "case"):
            found = _find(list(node.i_children), name, module)
            if found is not None:
                return found
        elif node.arg == name and node.i_module.i_modulename == module.i_modulename:
            return node
    return None


_PRED = re.compile(r"\[\s*([\w.:-]+|\.)\s*=\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]")


def _steps(path: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    parts, cur, quote = [], "", ""
    for ch in path[1:]:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "/":
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    out = []
    for part in parts:
        head, _, rest = part.partition("[")
        rest = "[" + rest if rest else ""
        assert re.fullmatch(r"[\w.-]+:[\w.-]+", head), f"{path}: bad step {part!r}"
        preds = []
        while rest:
            m = _PRED.match(rest)
            assert m is not None, f"{path}: not a key or value predicate: {rest!r}"
            preds.append((m.group(1), m.group(2) if m.group(2) is not None else m.group(3)))
            rest = rest[m.end():]
        prefix, name = head.split(":")
        out.append((prefix, name, preds))
    return out


@pytest.fixture(scope="module")
def schema(ctl: Controller, tmp_path_factory: pytest.TempPathFactory) -> Schema:
    return Schema(ctl, tmp_path_factory.mktemp("schemas"))


def rejected(m: Any, config: str, *, validate: bool = False) -> RPCError:
    with pytest.raises(RPCError) as info:
        m.edit_config(target="candidate", config=config)
        if validate:
            m.validate(source="candidate")
    m.discard_changes()
    return info.value


# ------------------------------------------------------------------------ RFC 8525/6022
def test_yang_library_names_every_module_and_get_schema_serves_each(schema: Schema) -> None:
    names = {m["name"]: m for m in schema.modules}
    assert {"cpn", "ietf-yang-library", "ietf-netconf-monitoring", "ietf-netconf",
            "ietf-inet-types"} <= set(names)
    assert names["cpn"]["conformance-type"] == "implement"
    assert names["ietf-inet-types"]["conformance-type"] == "import"
    assert set(names["ietf-netconf"]["feature"]) >= {"candidate", "confirmed-commit"}
    # the hello's yang-library capability names the same module set (RFC 7950 §5.6.4)
    cap = next(c for c in schema.caps if ":yang-library:1.0?" in c)
    assert f"module-set-id={schema.set_id}" in cap
    assert not any(c.startswith("urn:cpn:yang:cpn") for c in schema.caps)  # YANG 1.1
    # RFC 8525 /yang-library: same modules, a schema per datastore, content-id
    lib = schema.library
    listed = {e.findtext(f"{{{YLIB}}}name") for e in lib.iter(f"{{{YLIB}}}module")} | {
        e.findtext(f"{{{YLIB}}}name") for e in lib.iter(f"{{{YLIB}}}import-only-module")}
    assert listed == set(names)
    assert lib.findtext(f".//{{{YLIB}}}content-id") == schema.set_id
    assert {d.findtext(f"{{{YLIB}}}name") for d in lib.iter(f"{{{YLIB}}}datastore")} == {
        "ds:running", "ds:candidate"}
    # RFC 6022 /netconf-state/schemas: every module, retrievable over NETCONF
    ids = {s.findtext(f"{{{NCM}}}identifier") for s in schema.ncstate.iter(f"{{{NCM}}}schema")}
    assert ids == set(names)
    caps = {c.text for c in schema.ncstate.iter(f"{{{NCM}}}capability")}
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in caps


def test_get_schema_errors(ctl: Controller) -> None:
    with ctl.nc() as m:
        with pytest.raises(RPCError) as info:
            m.get_schema("no-such-module")
        assert info.value.tag == "invalid-value" and "cpn@" in info.value.message
        with pytest.raises(RPCError) as info:
            m.get_schema("cpn", "1999-01-01")
        assert info.value.tag == "invalid-value"
        assert m.get_schema("cpn").data.lstrip().startswith("module cpn")


def test_served_config_and_state_validate_against_the_served_schema(
        ctl: Controller, schema: Schema) -> None:
    """The client's schema (library + get-schema) accepts what get-config and get
    return — an element or value the module does not allow fails here."""
    from yangson import DataModel  # type: ignore[import-untyped]
    from yangson.enumerations import ContentType  # type: ignore[import-untyped]

    lib = {"ietf-yang-library:modules-state": {
        "module-set-id": schema.set_id,
        "module": [{"name": m["name"], "revision": m["revision"],
                    "namespace": m["namespace"], "conformance-type": m["conformance-type"],
                    **({"feature": m["feature"]} if m["feature"] else {})}
                   for m in schema.modules]}}
    dm = DataModel(json.dumps(lib), [str(schema.dir)])

    def parsed(xml: str) -> ET.Element:
        import io

        # ElementTree drops namespace declarations, which identityref values (ds:running)
        # need: collect them and hand them to yangson as it expects (xmlns:p attributes)
        declared = dict(ns for _, ns in ET.iterparse(io.StringIO(xml), events=("start-ns",)))
        data = ET.fromstring(xml)
        for el in data.iter():
            if not len(el) and el.text is None:  # yangson reads <leaf/> as no value
                el.text = ""
            prefix = (el.text or "").partition(":")[0] if ":" in (el.text or "") else ""
            if prefix in declared:
                el.set(f"xmlns:{prefix}", declared[prefix])
        return data

    with ctl.nc() as m:
        for source in ("running", "candidate"):
            inst = dm.from_xml(parsed(m.get_config(source=source).data_xml))
            inst.validate(ctype=ContentType.config)
        dm.from_xml(parsed(m.get().data_xml)).validate(ctype=ContentType.all)


# ------------------------------------------------------------ error-path (RFC 6241 §4.3)
BAD_EDITS = {
    "leaf in a list entry": service("video", -5),
    "non-finite number": service("video", "INF"),
    "union-typed leaf-list entry": service("video", extra="<anycast>not-an-ip</anycast>"),
    "leaf in a nested list entry": service(
        "video", extra="<instances><site>MEC-GZ1</site><address>10.10.1.10</address>"
                       "<weight>-1</weight></instances>"),
    "nested list key value": service(
        "video", extra="<instances><site>MEC-GZ1</site><address>nope</address></instances>"),
    "unknown element": service("video", extra="<colour>red</colour>"),
    "link leaf": "<links><link><name>HUB-GZ~MEC-GZ1</name><delay-ms>-1</delay-ms></link>"
                 "</links>",
    "tenant quota container": "<tenants><tenant><name>city-ops</name><quota><gpu>-1</gpu>"
                              "</quota></tenant></tenants>",
    "scheduler leaf": "<scheduler><percentage-of-nodes>500</percentage-of-nodes></scheduler>",
    "scheduler profile weight": "<scheduler><profile><name>default</name><weight>"
                                "<plugin>least-loaded</plugin><value>-2</value></weight>"
                                "</profile></scheduler>",
    "slice flow": "<slices><slice><name>s9</name><color>90</color><guaranteed-mbps>1"
                  "</guaranteed-mbps><flows><headend>MEC-GZ1</headend><endpoint>NOWHERE"
                  "</endpoint></flows></slice></slices>",
    "intent leaf-list entry": "<sr-policy-intents><intent><headend>HUB-GZ</headend><color>9"
                              "</color><endpoint>HUB-HK</endpoint><constraints>"
                              "<exclude-nodes>NOWHERE</exclude-nodes></constraints></intent>"
                              "</sr-policy-intents>",
}


@pytest.mark.parametrize("case", sorted(BAD_EDITS))
def test_error_path_is_an_instance_path_with_key_predicates(
        ctl: Controller, schema: Schema, case: str) -> None:
    with ctl.nc() as m:
        err = rejected(m, cfg(BAD_EDITS[case]))
    path = (err.path or "").strip()
    assert path, f"{case}: no error-path ({err.tag}: {err.message})"
    schema.check_instance_path(path)
    assert not re.search(r"\[\d+\]|function|lax|strict|\[None", path), path


MISSING = {
    "service instance site": (service("video", extra="<instances><site>NOWHERE</site>"
                                                     "<address>10.9.9.9</address></instances>"),
                              "/cpn:instances[cpn:site='NOWHERE'][cpn:address='10.9.9.9']"
                              "/cpn:site"),
    "link end": ("<links><link><name>x</name><a>HUB-GZ</a><b>NOWHERE</b><delay-ms>1"
                 "</delay-ms></link></links>", "/cpn:link[cpn:name='x']/cpn:b"),
    "tenant parent": ("<tenants><tenant><name>t9</name><parent>NOBODY</parent></tenant>"
                      "</tenants>", "/cpn:tenant[cpn:name='t9']/cpn:parent"),
    "intent excluded node": (BAD_EDITS["intent leaf-list entry"],
                             "/cpn:exclude-nodes[.='NOWHERE']"),
    "slice flow end": (BAD_EDITS["slice flow"], "/cpn:flows[cpn:headend='MEC-GZ1']"
                       "[cpn:endpoint='NOWHERE']/cpn:endpoint"),
}


@pytest.mark.parametrize("case", sorted(MISSING))
def test_missing_reference_is_data_missing_instance_required(
        ctl: Controller, schema: Schema, case: str) -> None:
    body, tail = MISSING[case]
    with ctl.nc() as m:
        err = rejected(m, cfg(body), validate=True)
    assert (err.tag, err.app_tag) == ("data-missing", "instance-required"), err.message
    assert err.path.strip().endswith(tail), err.path
    schema.check_instance_path(err.path.strip())


# ----------------------------------------------- confirmed commit (RFC 6241 §8.4), locks
def test_confirm_timeout_rollback_reverted_other_writers_now_only_its_own(
        ctl: Controller) -> None:
    """#15: the timeout rollback restored a whole snapshot, so REST writes made while
    the confirmed commit waited were undone (journal: netconf:confirm-timeout delete)."""
    seq = ctl.rest("/api/v1/events?limit=1&newest_first=true")["last_seq"]
    with ctl.nc() as m:
        m.edit_config(target="candidate", config=cfg(service("video", 41) + site("NC-ONLY")))
        m.commit(confirmed=True, timeout="2")
        assert latency(ctl) == 41
        # meanwhile REST creates a site, changes another service and the committed site
        assert rest(ctl, "POST", "/api/v1/sites",
                    {"name": "REST-NEW", "kind": "mec", "region": "r"}).status_code == 201
        render = ctl.rest("/api/v1/services/render")
        render["requirements"]["max_latency_ms"] = 13
        assert rest(ctl, "PUT", "/api/v1/services/render", render).status_code == 200
        ncsite = ctl.rest("/api/v1/sites/NC-ONLY")
        ncsite["region"] = "changed-by-rest"
        assert rest(ctl, "PUT", "/api/v1/sites/NC-ONLY", ncsite).status_code == 200
        wait_for(lambda: latency(ctl) != 41)
    assert latency(ctl) == 20  # its own change reverted
    assert rest(ctl, "GET", "/api/v1/sites/REST-NEW").status_code == 200  # theirs kept
    assert latency(ctl, "render") == 13
    # an object REST changed after the commit is REST's now: kept, named in the log
    assert ctl.rest("/api/v1/sites/NC-ONLY")["region"] == "changed-by-rest"
    events = ctl.rest(f"/api/v1/events?since={seq}&actor=netconf:confirm-timeout")["items"]
    assert [(e["kind"], e["key"]) for e in events] == [("service", "video")]
    kept = netconf(ctl).ds.last_rollback_kept
    assert list(kept) == [("site", "NC-ONLY")] and "another writer" in kept[("site", "NC-ONLY")]
    rest(ctl, "DELETE", "/api/v1/sites/NC-ONLY")
    rest(ctl, "DELETE", "/api/v1/sites/REST-NEW")


def test_rollback_keeps_an_object_a_later_writer_built_on(ctl: Controller) -> None:
    with ctl.nc() as m:
        m.edit_config(target="candidate", config=cfg(site("NC-BASE")))
        m.commit(confirmed=True, timeout="60")
        assert rest(ctl, "POST", "/api/v1/nodes",
                    {"site": "NC-BASE", "name": "n1"}).status_code == 201
        m.cancel_commit()
    # deleting the site would orphan the node REST created on it: the site stays
    assert ctl.rt.store.get(Site, "NC-BASE") is not None
    assert "NC-BASE/n1" in netconf(ctl).ds.last_rollback_kept[("site", "NC-BASE")]
    rest(ctl, "DELETE", "/api/v1/nodes/NC-BASE/n1")
    rest(ctl, "DELETE", "/api/v1/sites/NC-BASE")


def test_confirmed_commit_rolls_back_when_its_session_ends(ctl: Controller) -> None:
    m = ctl.nc()
    m.edit_config(target="candidate", config=cfg(service("video", 42)))
    m.commit(confirmed=True, timeout="600")
    assert latency(ctl) == 42
    m.close_session()
    wait_for(lambda: latency(ctl) == 20)
    # a dropped transport (no close-session) too
    m = ctl.nc()
    m.edit_config(target="candidate", config=cfg(service("video", 43)))
    m.commit(confirmed=True, timeout="600")
    m._session._transport.close()  # the client vanishes without close-session
    wait_for(lambda: latency(ctl) == 20)


def test_only_the_issuing_session_may_confirm(ctl: Controller) -> None:
    with ctl.nc("carol") as a, ctl.nc("erin") as b:
        a.edit_config(target="candidate", config=cfg(service("video", 44)))
        a.commit(confirmed=True, timeout="600")
        with pytest.raises(RPCError) as info:
            b.commit()  # a plain commit elsewhere neither confirms nor sneaks in
        assert info.value.tag == "in-use" and "session" in info.value.message
        with pytest.raises(RPCError):
            b.cancel_commit()
        with pytest.raises(RPCError) as info:
            b.commit(persist_id="guess")
        assert info.value.tag == "invalid-value"
        assert latency(ctl) == 44
        a.commit()  # the issuing session confirms
    time.sleep(0.3)
    assert latency(ctl) == 44
    rest(ctl, "PUT", "/api/v1/services/video",
         {**ctl.rest("/api/v1/services/video"),
          "requirements": {**ctl.rest("/api/v1/services/video")["requirements"],
                           "max_latency_ms": 20}})


def test_persistent_confirmed_commit_outlives_its_session_and_is_confirmed_by_id(
        ctl: Controller) -> None:
    m = ctl.nc()
    m.edit_config(target="candidate", config=cfg(service("video", 45)))
    m.commit(confirmed=True, timeout="600", persist="tok-1")
    m.close_session()
    time.sleep(0.5)
    assert latency(ctl) == 45  # persist: the session's end does not roll back
    with ctl.nc("erin") as b:
        with pytest.raises(RPCError) as info:
            b.commit()
        assert info.value.tag == "in-use" and "persist-id" in info.value.message
        with pytest.raises(RPCError):
            b.commit(persist_id="tok-2")
        b.cancel_commit(persist_id="tok-1")  # any session with the id
    assert latency(ctl) == 20
    with ctl.nc("erin") as b:
        b.edit_config(target="candidate", config=cfg(service("video", 46)))
        b.commit(confirmed=True, timeout="600", persist="tok-3")
    with ctl.nc("carol") as a:
        a.commit(persist_id="tok-3")  # confirmed from another session
    time.sleep(0.3)
    assert latency(ctl) == 46
    with ctl.nc() as a:
        a.edit_config(target="candidate", config=cfg(service("video", 20)))
        a.commit()


def test_confirm_timeout_must_be_whole_seconds(ctl: Controller) -> None:
    with ctl.nc() as m:
        m.edit_config(target="candidate", config=cfg(service("video", 47)))
        for bad in ("nan", "inf", "-1", "0", "1.5"):
            with pytest.raises(RPCError) as info:
                m.commit(confirmed=True, timeout=bad)
            assert info.value.tag == "invalid-value"
        m.discard_changes()
    assert latency(ctl) == 20


def test_unlock_by_the_candidate_lock_holder_discards_its_changes(ctl: Controller) -> None:
    with ctl.nc() as m:
        m.lock("candidate")
        m.edit_config(target="candidate", config=cfg(service("video", 48)))
        assert "48" in m.get_config(source="candidate").data_xml
        m.unlock("candidate")  # RFC 6241 §8.3.5.2
        assert m.get_config(source="candidate").data_xml == \
            m.get_config(source="running").data_xml
        m.lock("candidate")  # possible again: nothing uncommitted
        m.unlock("candidate")
    assert latency(ctl) == 20


def test_candidate_shows_rest_writes_and_commit_keeps_them(ctl: Controller) -> None:
    """A commit writes the candidate's own changes only: a REST write made after the
    candidate was edited is neither hidden from it nor reverted by the commit."""
    with ctl.nc() as m:
        m.edit_config(target="candidate", config=cfg(service("video", 49)))
        assert rest(ctl, "POST", "/api/v1/sites",
                    {"name": "REST-MID", "kind": "mec", "region": "r"}).status_code == 201
        assert "REST-MID" in m.get_config(source="candidate").data_xml
        m.commit()
    assert latency(ctl) == 49 and ctl.rt.store.get(Site, "REST-MID") is not None
    rest(ctl, "DELETE", "/api/v1/sites/REST-MID")
    with ctl.nc() as m:
        m.edit_config(target="candidate", config=cfg(service("video", 20)))
        m.commit()


def test_copy_config(ctl: Controller) -> None:
    with ctl.nc() as m:
        m.edit_config(target="candidate", config=cfg(service("video", 50)))
        m.copy_config(source="running", target="candidate")  # = discard-changes
        assert m.get_config(source="candidate").data_xml == \
            m.get_config(source="running").data_xml
        # an inline config replaces the whole candidate: copy running back in, edited
        running = ET.fromstring(m.get_config(source="running").data_xml)
        cpn = running.find("{urn:cpn:yang:cpn}cpn")
        assert cpn is not None
        for el in cpn.iter("{urn:cpn:yang:cpn}max-latency-ms"):
            el.text = "51" if float(el.text or 0) == 20 else el.text
        source = ET.Element(f"{{{NC}}}source")
        ET.SubElement(source, f"{{{NC}}}config").append(cpn)
        m.copy_config(source=ET.tostring(source).decode(), target="candidate")
        m.commit()
        assert latency(ctl) == 51
        with pytest.raises(RPCError) as info:
            m.copy_config(source="candidate", target="running")
        assert info.value.tag == "operation-not-supported"
        # :validate:1.1 with an inline config: checked whole, nothing changed
        m.validate(source=to_ele(ET.tostring(source[0]).decode()))
        for el in cpn.iter("{urn:cpn:yang:cpn}site"):
            if el.findtext("{urn:cpn:yang:cpn}name") == "MEC-GZ1":
                el.find("{urn:cpn:yang:cpn}name").text = "MEC-RENAMED"  # type: ignore[union-attr]
        with pytest.raises(RPCError) as info:  # instances still name MEC-GZ1
            m.validate(source=to_ele(ET.tostring(source[0]).decode()))
        assert (info.value.tag, info.value.app_tag) == ("data-missing", "instance-required")
        assert latency(ctl) == 51
        m.edit_config(target="candidate", config=cfg(service("video", 20)))
        m.commit()
    assert ctl.rt.store.get(Service, "video") is not None


def test_concurrent_rest_writers_survive_a_confirmed_commit_cycle(ctl: Controller) -> None:
    """Writers hammering REST while a session confirms and rolls back: every REST
    write survives; only the session's own object moves."""
    stop = threading.Event()
    made: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            name = f"W{i}"
            if rest(ctl, "POST", "/api/v1/sites",
                    {"name": name, "kind": "mec", "region": "r"}).status_code == 201:
                made.append(name)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        with ctl.nc() as m:
            for _ in range(3):
                m.edit_config(target="candidate", config=cfg(service("video", 52)))
                m.commit(confirmed=True, timeout="600")
                m.cancel_commit()
    finally:
        stop.set()
        t.join(10)
    assert made and latency(ctl) == 20
    for name in made:
        assert ctl.rt.store.get(Site, name) is not None, name
        rest(ctl, "DELETE", f"/api/v1/sites/{name}")
