"""Renderer: SR policy model → per-node kernel state (GBA-6.4.3c)."""

from __future__ import annotations

import pytest

from controller.errors import ValidationError
from labs.srv6lab import PATH_A, desired, local_sids, policy
from srv6.dataplane import Seg6LocalRoute, Seg6Route
from srv6.dataplane.render import render


def test_headend_gets_active_path_and_nodes_get_their_sids() -> None:
    state = desired(PATH_A)
    (steer,) = list(state["r1"])
    assert isinstance(steer, Seg6Route)
    assert steer.segments == ("fc00:2::1", "fc00:3::1", "fc00:5::d4")
    (dx4,) = list(state["r5"])
    assert isinstance(dx4, Seg6LocalRoute) and (dx4.action, dx4.nh4, dx4.dev) == (
        "End.DX4", "10.2.0.2", "ehost")
    assert len(state["r4"]) == 0  # not on the path: nothing installed


def test_higher_preference_candidate_path_wins() -> None:
    low, high = policy(("r4", "r5"), 50), policy(("r2", "r3", "r5"), 200)
    both = low.model_copy(update={"candidate_paths": [
        low.candidate_paths[0],
        high.candidate_paths[0].model_copy(update={"discriminator": 1})]})
    out = render([both], [], {both.key: ["10.2.0.0/24"]}, {"r1": "r2"})
    (steer,) = list(out["r1"])
    assert isinstance(steer, Seg6Route) and steer.segments[0] == "fc00:2::1"


def test_bad_input_names_the_policy() -> None:
    pol = policy(PATH_A)
    with pytest.raises(ValidationError, match="no destination prefix"):
        render([pol], local_sids(), {}, {"r1": "r2", "r2": "r3", "r3": "r5", "r4": "r5",
                                         "r5": "ehost"})
    with pytest.raises(ValidationError, match="no device known on 'r1'"):
        render([pol], [], {pol.key: ["10.2.0.0/24"]}, {})
