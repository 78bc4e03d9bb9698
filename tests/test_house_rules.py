"""The house rules, kept true: no class over 250 lines, no function over 60, no module over 600,
in gateway/ and drivers/ (measured as the before-stop hook measures them: a module's newlines, a
node's first to last line).

Rooms not split yet are named in
KNOWN_OFFENDERS with the size they have today. The test fails on any offender not named there,
on a named one that grew, and on a named one that is no longer an offender (so the list shrinks
as the rooms are split, and nobody can hide behind an entry that no longer applies).
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "drivers")
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 600, 250, 60

# (path, what) -> lines today; to be split by their owners, never to grow
KNOWN_OFFENDERS: dict[tuple[str, str], int] = {}


def measure() -> dict[tuple[str, str], int]:
    """Every module, class and function over its limit, with its size in lines."""
    found: dict[tuple[str, str], int] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            text = path.read_text(encoding="utf-8", errors="replace")
            if text.count("\n") > MAX_MODULE:
                found[(relative, "module")] = text.count("\n")
            for node in ast.walk(ast.parse(text)):
                if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if isinstance(node, ast.ClassDef) and size > MAX_CLASS:
                    found[(relative, f"class {node.name}")] = size
                elif not isinstance(node, ast.ClassDef) and size > MAX_FUNCTION:
                    found[(relative, f"function {node.name} (line {node.lineno})")] = size
    return found


def _lines(entries: dict[tuple[str, str], int]) -> str:
    return "\n".join(f"  {path}: {what} of {size} lines" for (path, what), size in sorted(entries.items()))


def test_no_room_outgrows_the_house_rules():
    found = measure()
    new = {key: size for key, size in found.items() if key not in KNOWN_OFFENDERS}
    grown = {key: size for key, size in found.items() if key in KNOWN_OFFENDERS and size > KNOWN_OFFENDERS[key]}
    assert not new and not grown, (
        f"over the limits (class {MAX_CLASS}, function {MAX_FUNCTION}, module {MAX_MODULE} lines):\n"
        f"{_lines({**new, **grown})}\nstill to be split (known):\n{_lines(KNOWN_OFFENDERS)}")


def test_the_known_offenders_are_still_offenders():
    """A room that was split leaves the list: the list says what is left, nothing more."""
    found = measure()
    gone = {key: size for key, size in KNOWN_OFFENDERS.items() if key not in found}
    assert not gone, f"split since (remove from KNOWN_OFFENDERS):\n{_lines(gone)}"


def test_the_measure_finds_an_offender(tmp_path, monkeypatch):
    """The walk is not vacuous: a 61-line function in a scanned package is reported."""
    package = tmp_path / "gateway"
    package.mkdir()
    (package / "big.py").write_text("def long():\n" + "    x = 1\n" * 60)
    (tmp_path / "drivers").mkdir()
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert measure() == {("gateway/big.py", "function long (line 1)"): 61}
