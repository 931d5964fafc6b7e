"""OpenAPI conformance of the live app, fuzzed by schemathesis (issue #15).

The app is the real one (``create_app`` on ``examples/gba.yaml``, every plugin's
router), called in process over ASGI with an operator token. For every operation in
``/openapi.json`` schemathesis generates valid and invalid requests and its checks
say whether the app answered 500, answered a status code, content type or body the
document does not list, or accepted invalid input. Long-poll and streaming
operations (``/changes``, ``/changes/stream``) are left out: their waits are the point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from controller.api.app import create_app
from tests.conftest import example_runtime

TOKEN = "fuzz-operator-0123456789"
EXAMPLES = 6


#: Checks left out, and why: ``positive_data_acceptance`` — a body valid by its schema
#: may still be refused, rightly, for what no JSON schema says (an unknown site it
#: references, a duplicate, a quota); ``not_a_server_error`` — replaced below so a
#: documented 502/503 (a component or device this test does not run) is not a failure,
#: while any 500 is.
EXCLUDED = [schemathesis.checks.positive_data_acceptance,
            schemathesis.checks.not_a_server_error]


def _fuzz(op: Any, calls: list[int]) -> list[str]:
    failures: list[str] = []

    @given(op.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        try:
            resp = case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                                          excluded_checks=EXCLUDED)
            calls.append(resp.status_code)
            if resp.status_code == 500 or resp.status_code > 503:
                failures.append(f"{op.label}: {resp.status_code} {resp.text[:500]}")
        except BaseException as exc:  # collect (FailureGroup): report every operation
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            failures.append(f"{op.label}: {str(exc).strip()[:1500]}")

    run()
    return failures[:1]


def test_api_conforms_to_its_openapi(tmp_path: Path) -> None:
    with example_runtime(tmp_path, "gba.yaml", (TOKEN, "fuzz", "operator", None)) as rt:
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(rt))
        failures: list[str] = []
        calls: list[int] = []
        ops = 0
        for result in schema.exclude(path_regex=r"/changes(/stream)?$").get_all_operations():
            op = result.ok()
            ops += 1
            failures += _fuzz(op, calls)
    # every operation was called, and both accepted and refused requests were made
    assert ops > 50 and len(calls) >= 2 * ops
    assert any(c < 300 for c in calls) and any(400 <= c < 500 for c in calls)
    assert not failures, f"{len(failures)} operations fail:\n\n" + "\n\n".join(failures)
