"""Hostile config files (issue #15 "Config files"): each refused with a clear error
naming the line — no traceback, no memory blow-up — in ``config check`` and ``cpn run``
alike."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from controller import yamlsafe
from controller.cli.main import app
from controller.config import load_config, parse_config
from controller.errors import ValidationError

runner = CliRunner()

SITE = "sites:\n  - {name: A, kind: mec, region: r}\n"
#: a billion laughs inside a resource's free-form ``extended:`` (10⁹ leaves)
LAUGHS = (SITE.replace("}\n", ",\n     resources: [{name: r1, value: 1, unit: x, scope: ['*'],"
                       "\n       extended: {bomb: *i}}]}\n")).replace(
    "sites:", "lol:\n" + "".join(
        f"  - &{c} [{', '.join(['*' + p] * 10)}]\n" if p else f"  - &{c} [lol, lol]\n"
        for c, p in zip("abcdefghi", ["", *"abcdefgh"], strict=True)) + "sites:")


def _refused(text: str, match: str) -> ValidationError:
    with pytest.raises(ValidationError, match=match) as info:
        parse_config(text, "net.yaml")
    return info.value


def test_deep_nesting_is_refused_naming_the_line_not_recursion_error() -> None:
    err = _refused(SITE + "services: " + "[" * 500 + "]" * 500 + "\n",
                   "nesting deeper than 64 levels")
    assert err.source == "net.yaml:3:74"
    # far deeper: the parser itself stops it, the same clear way
    err = _refused(SITE + "services: " + "[" * 100_000 + "]" * 100_000 + "\n", "nesting")
    assert err.source.startswith("net.yaml:3:")
    block = "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x: 1\n"
    assert _refused(block, "nesting deeper").source.startswith("net.yaml:65:")


def test_five_thousand_digit_integer_is_refused_naming_the_line() -> None:
    err = _refused(SITE + "zone: x\nfoo: " + "9" * 5000 + "\n", "integer of 5000 digits")
    assert err.source == "net.yaml:4:6"


def test_non_utf8_bytes_are_refused_naming_the_line(tmp_path: Path) -> None:
    f = tmp_path / "net.yaml"
    f.write_bytes(SITE.encode() + b"zone: caf\xe9\n")
    with pytest.raises(ValidationError, match="byte 0xe9 is not UTF-8") as info:
        load_config(f)
    assert info.value.source == f"{f}:3:10"


def test_duplicate_keys_are_refused_naming_both_lines() -> None:
    err = _refused("zone: a.example\n" + SITE + "zone: b.example\n",
                   r"duplicate key 'zone' \(first at line 1\)")
    assert err.source == "net.yaml:4:1"
    _refused("sites:\n  - {name: A, kind: mec, region: r, kind: dc}\n", "duplicate key 'kind'")
    # a merge key still overrides, as YAML intends
    ok = parse_config("sites:\n  - &s {name: A, kind: mec, region: r}\n"
                      "  - {<<: *s, name: B}\n")
    assert [e.key for e in ok.entities] == ["A", "B"]


def test_billion_laughs_in_extended_is_refused_by_check_and_run(tmp_path: Path) -> None:
    _refused(LAUGHS, "aliases expand to more than 100,000 nodes")
    f = tmp_path / "laughs.yaml"
    f.write_text(LAUGHS)
    check = runner.invoke(app, ["config", "check", str(f)])
    assert check.exit_code == 1 and "aliases expand" in check.output
    run = runner.invoke(app, ["run", "--config", str(f), "--state", str(tmp_path / "s")])
    assert run.exit_code == 1 and "aliases expand" in run.output
    assert "nothing applied" in run.output and not (tmp_path / "s" / "state.db").exists()


def test_fifty_megabyte_file_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    with f.open("w") as fh:
        fh.write(SITE)
        line = "# " + "x" * 1021 + "\n"
        for _ in range(50 * 1024):
            fh.write(line)
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError, match=r"file is 50\.\d MiB; the limit is 4 MiB"):
            load_config(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * yamlsafe.MAX_BYTES


def test_ordinary_anchors_and_aliases_still_work() -> None:
    cfg = parse_config("sites:\n  - {name: A, kind: mec, region: &r east}\n"
                       "  - {name: B, kind: mec, region: *r}\n")
    assert [getattr(e, "region", None) for e in cfg.entities] == ["east", "east"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_a_config_or_a_validation_error(data: bytes) -> None:
    try:
        parse_config(yamlsafe.decode(data, "fuzz.yaml"), "fuzz.yaml")
    except ValidationError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="{}[]&*:- ,\n!|>'\"#%@`ab01<", max_size=200))
def test_yaml_punctuation_soup_gives_a_config_or_a_validation_error(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml")
    except ValidationError:
        pass
