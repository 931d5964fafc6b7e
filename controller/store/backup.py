"""Backup files of the state store (GBA-6.8): a consistent online snapshot, checksummed.

Rules:
- One JSON document: ``format`` ("cpn-backup"), ``version``, ``created``, ``source``
  (backend and URL it came from), ``counts``, ``sha256`` (of the canonical JSON of
  ``body``) and ``body`` (``Store.dump()``: objects, journal, meta, tokens, quarantine).
- Quarantined rows (rows the store refused to load, #15) are in the backup verbatim
  and come back *as quarantined* (never as objects: they do not validate), so a
  restore loses nothing; the header counts them and ``cpn backup`` says so. Version 1
  files (written before quarantine was kept) are still read.
- Written to a temp file in the same directory, fsynced, then renamed: a crash never
  leaves a half-written backup under the final name. Mode 0600 (token hashes inside).
- ``read_backup`` refuses, naming what is wrong and the fix: a file that is not JSON
  (corrupt or truncated), a foreign document, a newer version, a checksum mismatch,
  a body that is not a store dump, or an object that no longer validates against its
  model (nothing is restored then).
- Restore goes only into an empty store (``Store.load_dump`` refuses otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic

from controller.errors import Issue, ValidationError
from controller.models.base import ENTITY_KINDS
from controller.store.base import Store, StoreDump

FORMAT = "cpn-backup"
VERSION = 2
#: versions this controller restores (1: no ``quarantine`` in the body)
READABLE = (1, 2)
_QROW = (("id", int), ("kind", str), ("key", str), ("value", str), ("error", str),
         ("ts", str))


def _canonical(body: StoreDump) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def write_backup(store: Store, path: Path) -> dict[str, Any]:
    """Snapshot ``store`` into ``path``; returns the header (without the body)."""
    body = store.dump()
    header: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "created": datetime.now(UTC).isoformat(),
        "source": {"backend": store.backend, "url": store.url},
        "counts": {"objects": len(body["objects"]), "journal": len(body["journal"]),
                   "meta": len(body["meta"]), "tokens": len(body["tokens"]),
                   "quarantined": len(body.get("quarantine", []))},
        "last_seq": body["journal"][-1]["seq"] if body["journal"] else 0,
        "sha256": hashlib.sha256(_canonical(body)).hexdigest(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps({**header, "body": body}, separators=(",", ":")).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return header


def _refuse(path: Path, message: str, fix: str) -> ValidationError:
    return ValidationError([Issue(str(path), message, fix)], "backup")


def read_backup(path: Path) -> tuple[dict[str, Any], StoreDump]:
    """(header, body) of a backup file, checked; ``ValidationError`` when refused."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _refuse(path, f"cannot read: {exc.strerror or exc}",
                      "give the path of a file written by 'cpn backup'") from exc
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _refuse(path, f"not a CPN backup: not valid JSON ({exc}); the file is "
                      "corrupt or truncated", "use an intact copy of the backup") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _refuse(path, "not a CPN backup (no 'format: cpn-backup' header)",
                      "give a file written by 'cpn backup FILE'")
    if doc.get("version") not in READABLE:
        raise _refuse(path, f"backup format version {doc.get('version')!r} is not "
                      f"supported (this controller reads versions {', '.join(map(str, READABLE))})",
                      "restore with the controller version that wrote it")
    body = doc.get("body")
    if not isinstance(body, dict) or not all(
            isinstance(body.get(k), t) for k, t in
            (("objects", list), ("journal", list), ("meta", dict), ("tokens", list))):
        raise _refuse(path, "backup body is not a store dump (objects, journal, meta, "
                      "tokens)", "use an intact copy of the backup")
    digest = hashlib.sha256(_canonical(body)).hexdigest()
    if digest != doc.get("sha256"):
        raise _refuse(path, f"checksum mismatch: body hashes to {digest[:16]}…, header "
                      f"says {str(doc.get('sha256'))[:16]}…; the file was altered or "
                      "damaged", "use an intact copy of the backup")
    issues: list[Issue] = []
    for i, row in enumerate(body["objects"]):
        if not (isinstance(row, list) and len(row) == 3):
            issues.append(Issue(f"body.objects[{i}]", "not [kind, key, json]",
                                "use an intact copy of the backup"))
            continue
        kind, key, value = row
        cls = ENTITY_KINDS.get(kind)
        if cls is None:
            issues.append(Issue(f"body.objects[{i}]", f"unknown kind {kind!r}",
                                "restore with a controller that has the plug-in of "
                                "this kind installed"))
            continue
        try:
            obj = cls.model_validate_json(value)
        except pydantic.ValidationError as exc:
            issues.append(Issue(f"body.objects[{i}]", f"{kind} {key!r} does not validate: "
                                f"{str(exc).splitlines()[0]}",
                                "fix or remove that object in the source and back up "
                                "again"))
            continue
        if obj.key != key:
            issues.append(Issue(f"body.objects[{i}]", f"{kind} stored under {key!r} has "
                                f"key {obj.key!r}", "use an intact copy of the backup"))
    quarantine = body.get("quarantine", [])
    if not isinstance(quarantine, list):
        issues.append(Issue("body.quarantine", "not a list of quarantined rows",
                            "use an intact copy of the backup"))
        quarantine = []
    for i, q in enumerate(quarantine):
        if not (isinstance(q, dict) and all(isinstance(q.get(f), t) for f, t in _QROW)):
            issues.append(Issue(f"body.quarantine[{i}]", "not a quarantined row (id, kind, "
                                "key, value, error, ts)", "use an intact copy of the backup"))
    ids = [q["id"] for q in quarantine if isinstance(q, dict) and isinstance(q.get("id"), int)]
    if len(ids) != len(set(ids)):
        issues.append(Issue("body.quarantine", "quarantined row ids repeat",
                            "use an intact copy of the backup"))
    seqs: list[int] = [e["seq"] for e in body["journal"]
                       if isinstance(e, dict) and isinstance(e.get("seq"), int)]
    if len(seqs) != len(body["journal"]) or seqs != sorted(set(seqs)):
        issues.append(Issue("body.journal", "journal sequence numbers are not increasing",
                            "use an intact copy of the backup"))
    if issues:
        raise ValidationError(issues[:20], "backup")
    header = {k: v for k, v in doc.items() if k != "body"}
    return header, body


def restore_backup(store: Store, path: Path) -> dict[str, Any]:
    """Check ``path`` and bring it into the empty ``store``; returns the header."""
    header, body = read_backup(path)
    store.load_dump(body)
    return header
