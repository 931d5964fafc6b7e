"""The one ``PolicyProgrammer`` contract (GBA-6.4.3c). Every backend subclasses
``ProgrammerContract`` and supplies ``make`` (a fresh programmer on a node with devices
``eth0``/``eth1``), ``tamper_delete`` / ``tamper_add`` (change the node behind the
programmer's back) and ``bad_route`` (a route the node will refuse mid-commit). A backend
that cannot program H.Insert (``inline`` mode) sets ``inline = False``: the suite then
programs everything else and checks that an inline route is refused cleanly.

``TestMemory`` runs it against the in-memory backend; ``test_dataplane_netlink`` and
``test_dataplane_agent`` run the same suite against a real kernel in namespaces;
``test_dataplane_bgp_srpolicy`` against GoBGP as a router taking BGP SR Policy.

The routes are a ``Routes`` set (``R``): kernel backends use ``KERNEL`` (seg6 steering
routes and seg6local SIDs); a backend whose nodes hold other route kinds (SR policies)
gives its own set with the same shape — ``a``/``a2`` one key with two values, ``l1``…
``l4`` the routes a commit installs first, ``stale`` one the node never got from CPN,
``bk``/``bk2`` a protection route for ``a`` before and after it moved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from srv6.dataplane import MemoryProgrammer, NodeState, PolicyProgrammer, Seg6LocalRoute, Seg6Route
from srv6.dataplane.state import Route

A = Seg6Route(dst="10.20.0.0/24", segments=("fc00:2::1", "fc00:5::d4"), dev="eth0")
A2 = Seg6Route(dst="10.20.0.0/24", segments=("fc00:4::1", "fc00:5::d4"), dev="eth0")
B = Seg6Route(dst="fd00:20::/64", segments=("fc00:3::1",), dev="eth1")
INL = Seg6Route(dst="fd00:30::/64", segments=("fc00:3::1", "fc00:2::1"), dev="eth1",
                mode="inline")
L1 = Seg6LocalRoute(sid="fc00:1::1", action="End", dev="eth0")
L2 = Seg6LocalRoute(sid="fc00:1::d4", action="End.DX4", nh4="10.0.0.2", dev="eth0")
L3 = Seg6LocalRoute(sid="fc00:1::d6", action="End.DX6", nh6="fd00::2", dev="eth1")
L4 = Seg6LocalRoute(sid="fc00:1::e", action="End.X", nh6="fd00::2", dev="eth1")
FULL = NodeState.of([A, B, INL, L1, L2, L3, L4])
#: a pre-installed protection route for A's prefix (same prefix, higher metric)
BK = Seg6Route(dst="10.20.0.0/24", segments=("fc00:3::1", "fc00:5::d4"), dev="eth1",
               metric=10, backup=True)


@dataclass(frozen=True)
class Routes:
    """The routes the contract programs (see the module docstring)."""

    a: Route
    a2: Route
    b: Route
    inl: Route
    l1: Route
    l2: Route
    l3: Route
    l4: Route
    stale: Route
    bk: Route
    bk2: Route

    @property
    def full(self) -> NodeState:
        return NodeState.of([self.a, self.b, self.inl, self.l1, self.l2, self.l3, self.l4])


KERNEL = Routes(A, A2, B, INL, L1, L2, L3, L4,
                stale=Seg6LocalRoute(sid="fc00:1::99", action="End", dev="eth0"), bk=BK,
                bk2=Seg6Route(dst=BK.dst, segments=("fc00:4::1", "fc00:5::d4"), dev="eth1",
                              metric=10, backup=True))


class ProgrammerContract:
    """Shared suite; subclasses implement the hooks below."""

    #: the backend programs H.Insert (``inline``); else it must refuse it cleanly
    inline = True

    R: Routes = KERNEL

    @property
    def full(self) -> NodeState:
        full = self.R.full
        return full if self.inline else NodeState.of(r for r in full if r != self.R.inl)

    @pytest.fixture
    def prog(self) -> Iterator[PolicyProgrammer]:
        p = self.make()
        try:
            yield p
        finally:
            p.close()

    def make(self) -> PolicyProgrammer:
        raise NotImplementedError

    def tamper_delete(self, prog: PolicyProgrammer, route: Route) -> None:
        raise NotImplementedError

    def tamper_add(self, prog: PolicyProgrammer, route: Route) -> None:
        raise NotImplementedError

    def bad_route(self, prog: PolicyProgrammer) -> Route:
        """A steering route this node refuses (applied after the SIDs of a commit)."""
        raise NotImplementedError

    # -- the contract ----------------------------------------------------------------
    def test_starts_empty_and_commit_programs_everything(self, prog: PolicyProgrammer) -> None:
        assert len(prog.read_actual()) == 0
        prog.load(self.full)
        assert len(prog.diff()) == len(self.full)
        res = prog.commit()
        assert not res.failed, res.error
        assert res.changed and res.ops == len(self.full)
        assert prog.read_actual() == self.full  # read back: segment order, actions, nexthops

    def test_reapply_changes_nothing(self, prog: PolicyProgrammer) -> None:
        prog.load(self.full)
        prog.commit()
        prog.load(self.full)
        assert prog.diff() == []
        res = prog.commit()
        assert not res.changed and not res.failed and res.ops == 0

    def test_changed_segment_list_is_one_replace(self, prog: PolicyProgrammer) -> None:
        r = self.R
        prog.load(NodeState.of([r.a, r.l1]))
        prog.commit()
        prog.load(NodeState.of([r.a2, r.l1]))
        ops = prog.diff()
        assert [(o.kind, o.route) for o in ops] == [("replace", r.a2)]
        assert prog.commit().changed
        assert prog.read_actual() == NodeState.of([r.a2, r.l1])

    def test_reconcile_restores_deleted_and_removes_stale(self, prog: PolicyProgrammer) -> None:
        r = self.R
        prog.load(self.full)
        prog.commit()
        self.tamper_delete(prog, r.l2)
        self.tamper_add(prog, r.stale)
        actual = prog.read_actual()
        assert r.l2 not in actual and r.stale in actual
        prog.load(self.full)
        kinds = sorted((o.kind, o.route.key[2]) for o in prog.diff())
        assert kinds == [("add", r.l2.key[2]), ("delete", r.stale.key[2])]
        assert prog.commit().changed
        assert prog.read_actual() == self.full

    def test_failure_mid_commit_rolls_back(self, prog: PolicyProgrammer) -> None:
        r = self.R
        prog.load(NodeState.of([r.a, r.l1]))
        prog.commit()
        before = prog.read_actual()
        prog.load(NodeState.of([r.a2, r.l1, r.l2, r.l3, self.bad_route(prog)]))
        res = prog.commit()
        assert res.failed and not res.changed
        assert res.error and res.ops >= 2  # SIDs went in before the steering route failed
        assert prog.read_actual() == before  # never half-programmed

    def test_backup_route_lives_beside_its_primary(self, prog: PolicyProgrammer) -> None:
        r = self.R
        prog.load(NodeState.of([r.a, r.bk, r.l1]))
        assert not prog.commit().failed
        assert prog.read_actual() == NodeState.of([r.a, r.bk, r.l1])
        prog.load(NodeState.of([r.a, r.bk2, r.l1]))
        assert [(o.kind, o.route) for o in prog.diff()] == [("replace", r.bk2)]
        prog.commit()
        prog.load(NodeState.of([r.a, r.l1]))
        assert [(o.kind, o.route.key) for o in prog.diff()] == [("delete", r.bk2.key)]
        prog.commit()
        assert prog.read_actual() == NodeState.of([r.a, r.l1])

    def test_rollback_restores_previous_commit(self, prog: PolicyProgrammer) -> None:
        r = self.R
        first = NodeState.of([r.a, r.l1])
        prog.load(first)
        prog.commit()
        prog.load(NodeState.of([r.a2, r.b, r.l2]))
        prog.commit()
        res = prog.rollback()
        assert res.changed and not res.failed
        assert prog.read_actual() == first
        assert not prog.rollback().changed  # nothing more to roll back

    def test_inline_refused_cleanly_where_unsupported(self, prog: PolicyProgrammer) -> None:
        if self.inline:
            return  # covered by the tests above
        r = self.R
        prog.load(NodeState.of([r.a, r.l1]))
        prog.commit()
        prog.load(NodeState.of([r.a, r.l1, r.inl]))
        res = prog.commit()
        assert res.failed and "inline" in res.error and "fix:" in res.error
        assert prog.read_actual() == NodeState.of([r.a, r.l1])


class TestMemory(ProgrammerContract):
    def make(self) -> PolicyProgrammer:
        return MemoryProgrammer("r1")

    def tamper_delete(self, prog: PolicyProgrammer, route: Route) -> None:
        assert isinstance(prog, MemoryProgrammer)
        del prog.kernel[route.key]

    def tamper_add(self, prog: PolicyProgrammer, route: Route) -> None:
        assert isinstance(prog, MemoryProgrammer)
        prog.kernel[route.key] = route

    def bad_route(self, prog: PolicyProgrammer) -> Route:
        assert isinstance(prog, MemoryProgrammer)
        bad = Seg6Route(dst="10.99.0.0/24", segments=("fc00:9::1",), dev="eth0")
        prog.fail_on.add(bad.key)
        return bad
