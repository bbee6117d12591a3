"""Every submodule the code uses is imported by the file that uses it.

`import importlib` followed by `importlib.util.find_spec(...)` works only while some other import
happens to have loaded `importlib.util`; on a clean install nothing did and every console command
crashed. This test finds each dotted use `pkg.sub...` of a module imported in the same file, keeps
those where `pkg.sub` is itself a module the file does not import, and checks in a fresh interpreter
without site hooks (`python -S`, so no .pth file can load it for us) that `import pkg` alone
provides it.
"""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = [ROOT / "src", ROOT / "benchmarks", ROOT / "tests"]


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def implicit_submodules(path: Path) -> set[tuple[str, str]]:
    """(module imported by name, dotted submodule used through it without its own import)."""
    tree = ast.parse(path.read_text(), str(path))
    bound: dict[str, str] = {}   # local name -> module it names
    imported: set[str] = set()    # modules this file imports itself (and their parents)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                imported.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
                bound[alias.asname or parts[0]] = alias.name if alias.asname else parts[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                imported.add(full)
                if _is_module(full):
                    bound[alias.asname or alias.name] = full
    found = set()
    for node in ast.walk(tree):
        chain = _dotted(node) if isinstance(node, ast.Attribute) else None
        if not chain or chain[0] not in bound:
            continue
        module = bound[chain[0]]
        for i in range(1, len(chain)):
            name = ".".join([module, *chain[1:i + 1]])
            if name in imported or not _is_module(name):
                break
            found.add((module, name))
    return found


def test_no_submodule_is_used_without_being_imported():
    uses: dict[str, set[str]] = defaultdict(set)
    where: dict[str, set[str]] = defaultdict(set)
    for folder in CODE:
        for path in folder.rglob("*.py"):
            for module, name in implicit_submodules(path):
                uses[module].add(name)
                where[name].add(str(path.relative_to(ROOT)))
    missing = []
    for module, names in sorted(uses.items()):
        # Only `import module`, then attribute look-ups: what the file really gets at run time.
        code = (f"import sys; sys.path[:0] = {[p for p in sys.path if p]!r}\nimport {module}\n"
                f"for name in {sorted(names)!r}:\n"
                f"    obj = {module}\n"
                f"    for part in name.split('.')[{module.count('.') + 1}:]:\n"
                f"        obj = getattr(obj, part, None)\n"
                f"    if obj is None: print(name)\n")
        proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        missing += proc.stdout.split()
    assert not missing, "used without its own import: " + "; ".join(
        f"{name} in {', '.join(sorted(where[name]))}" for name in missing)


def test_the_checker_sees_the_bug(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import importlib\nimport os\n\ndef f():\n    return importlib.util.find_spec('x'), os.path.join('a')\n")
    assert ("importlib", "importlib.util") in implicit_submodules(bad)
    good = tmp_path / "good.py"
    good.write_text("import importlib.util\n\ndef f():\n    return importlib.util.find_spec('x')\n")
    assert not implicit_submodules(good)
