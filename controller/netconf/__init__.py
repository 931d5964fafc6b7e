"""NETCONF northbound (RFC 6241/6242) over SSH: the operator's other way in.

Layers (sans-I/O first): ``framing`` (bytes ⇄ messages, base:1.0 end-of-message and
base:1.1 chunked), ``xmlmap`` (domain objects ⇄ the ``cpn`` YANG data tree),
``datastore`` (running/candidate, edit-config operations, commit, confirmed-commit,
locks), ``session`` (one NETCONF session: hello, RPC dispatch, rpc-errors, NACM),
``server`` (the asyncssh adapter and controller component).
"""
