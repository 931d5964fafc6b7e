"""``labs.gobgp``: the GoBGP API subset compiles and loads in any process."""

from __future__ import annotations

import subprocess
import sys


def test_regression_api_loads_in_a_process_that_holds_ortools() -> None:
    """grpcio-tools' protoc extension, imported where OR-Tools' protobuf runtime was
    already loaded, aborted the interpreter (the whole test run died); protoc now runs
    in a child process."""
    code = ("import ortools.sat.python.cp_model\n"
            "from labs.gobgp import api\n"
            "pb = api()\n"
            "n = pb.SRPolicyNLRI(color=7)\n"
            "assert pb.SRPolicyNLRI.FromString(n.SerializeToString()).color == 7\n"
            "print('loaded')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "loaded" in res.stdout, res.stderr[-2000:]
