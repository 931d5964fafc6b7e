"""Loading YAML an operator (or anyone with write access to a file) hands us, safely.

Rules:
- Every refusal is a ``ValidationError`` whose location is ``FILE:LINE:COLUMN`` and
  whose message says what was wrong and the fix — never a traceback, whatever the
  bytes: ``cpn config check`` and ``cpn run`` share this loader, so what one accepts
  the other does too.
- Bounded before anything is built: at most ``MAX_BYTES`` of text, nesting at most
  ``MAX_DEPTH`` deep (deeper input made the composer recurse until ``RecursionError``),
  aliases expanding to at most ``MAX_ALIAS_NODES`` nodes (a "billion laughs" of a few
  hundred bytes expands to 10⁹ nodes — it passed ``config check`` as shared references
  and exhausted memory once the store serialised it). The bounds are checked on the
  parser's event stream (linear, no recursion) before composing.
- UTF-8 only (YAML 1.2 §5.2 allows UTF-16/32 too; our files are UTF-8): other bytes
  are refused naming the line.
- A mapping key given twice is refused naming both lines (PyYAML keeps the last one
  silently); ``<<`` merge keys still override as YAML intends.
- Integers of more than ``MAX_INT_DIGITS`` digits are refused (Python refuses to
  convert more than 4,300 digits, with a traceback; no field of ours needs more).
- The libyaml-backed parser is used when PyYAML has it (≈10× faster), else the pure
  Python one; both behave the same here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from controller.errors import Issue, ValidationError

MAX_BYTES = 4 * 1024 * 1024  # ≈70,000 sites; a file this size validates in ~5 s
MAX_DEPTH = 64
MAX_ALIAS_NODES = 100_000
MAX_INT_DIGITS = 64

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    """Internal: a bound was exceeded at ``mark``."""

    def __init__(self, message: str, fix: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.fix, self.mark = message, fix, mark


class _Loader(_Base):  # type: ignore[misc]
    """Safe loader refusing duplicate keys and over-long integers."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: the base constructor says so
                if first is not None:
                    raise _Refused(
                        f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                        "give each key once; YAML would silently keep only the last",
                        key_node.start_mark)
                seen[key] = key_node
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    def construct_yaml_int(self, node: Node) -> int:
        digits = str(node.value).lstrip("+-").replace("_", "")
        if len(digits) > MAX_INT_DIGITS:
            raise _Refused(f"integer of {len(digits)} digits (at most {MAX_INT_DIGITS})",
                           "write a number of sensible size (or quote it if it is text)",
                           node.start_mark)
        value: int = super().construct_yaml_int(node)
        return value


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def decode(data: bytes, source: str) -> str:
    """Bytes of a YAML file → text; non-UTF-8 and oversized input refused."""
    if len(data) > MAX_BYTES:
        raise too_big(len(data), source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValidationError(Issue(
            "", f"byte 0x{data[exc.start]:02x} is not UTF-8 text",
            "save the file as UTF-8"), f"{source}:{line}:{col}") from None


def too_big(size: int, source: str) -> ValidationError:
    return ValidationError(Issue(
        "", f"file is {size / 1048576:.1f} MiB; the limit is {MAX_BYTES // 1048576} MiB",
        "split it, or check that this is the config file you meant"), source)


def _scan(text: str) -> None:
    """Check depth and alias expansion on the event stream (no recursion, no tree)."""
    sizes: dict[str, int] = {}
    frames: list[list[Any]] = []  # [nodes so far, anchor]
    expanded = 0
    for ev in yaml.parse(text, Loader=_Base):
        if isinstance(ev, yaml.ScalarEvent | yaml.AliasEvent):
            if isinstance(ev, yaml.AliasEvent):
                n = sizes.get(ev.anchor or "", 1)
                expanded += n
                if expanded > MAX_ALIAS_NODES:
                    raise _Refused(
                        f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes "
                        f"(alias *{ev.anchor} here adds {n:,})",
                        "write the repeated part out, or use fewer nested aliases",
                        ev.start_mark)
            else:
                n = 1
                if ev.anchor:
                    sizes[ev.anchor] = 1
            if frames:
                frames[-1][0] += n
        elif isinstance(ev, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if len(frames) >= MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels",
                               "flatten the structure; no config section nests this deep",
                               ev.start_mark)
            frames.append([1, ev.anchor])
        elif isinstance(ev, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            n, anchor = frames.pop()
            if anchor:
                sizes[anchor] = n
            if frames:
                frames[-1][0] += n


def _where(mark: Any, source: str) -> str:
    return source if mark is None else f"{source}:{mark.line + 1}:{mark.column + 1}"


def load(text: str, source: str = "<config>") -> tuple[Any, Node | None]:
    """YAML text → (document, root node for line lookups); ``ValidationError`` naming
    the line for anything refused."""
    if len(text) > MAX_BYTES:
        raise too_big(len(text.encode("utf-8", "replace")), source)
    try:
        _scan(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            doc = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _Refused as exc:
        raise ValidationError(Issue("", exc.message, exc.fix), _where(exc.mark, source)) \
            from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        raise ValidationError(Issue("", f"not valid YAML: {what}",
                                    "fix the YAML syntax at the position shown"),
                              _where(mark, source)) from None
    except yaml.YAMLError as exc:  # reader errors: control characters, bad encoding
        pos = getattr(exc, "position", None)
        line = text.count("\n", 0, pos) + 1 if isinstance(pos, int) else None
        where = f"{source}:{line}" if line else source
        raise ValidationError(Issue("", f"not valid YAML: {exc}",
                                    "remove the character shown"), where) from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        raise ValidationError(Issue("", f"cannot load: {type(exc).__name__}: {exc}",
                                    "simplify the file"), source) from None
    return doc, node


def load_file(path: Path) -> Any:
    """A YAML file → document, with the same bounds and located errors as ``load``."""
    try:
        with path.open("rb") as fh:  # never more than the size limit in memory
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ValidationError(Issue("", f"cannot read: {exc.strerror}",
                                    "check the path"), str(path)) from None
    if len(data) > MAX_BYTES:
        raise too_big(path.stat().st_size, str(path))
    return load(decode(data, str(path)), str(path))[0]
