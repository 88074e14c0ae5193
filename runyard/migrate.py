"""``runyard migrate``: port Azure ML v1 scripts and notebooks by rewriting their ``azureml`` imports, nothing else.

    from azureml.core import Workspace, Experiment      →  from runyard import Workspace, Experiment
    from azureml.core.compute import AmlCompute          →  from runyard.compute import AmlCompute
    from azureml.train.dnn import TensorFlow             →  from runyard.train.dnn import TensorFlow
    import azureml.core                                  →  from runyard import azureml   (azureml.core.VERSION works)
    import azureml.core as aml                           →  import runyard as aml

Only the module part of an import statement changes, in place: every other line, and every other character of an
import line, stays byte for byte. A notebook's code cells are rewritten the same way and the file is written back in
the formatting it had (when that formatting cannot be reproduced exactly, the notebook is left alone and reported).
What cannot be mapped — a module runyard has no counterpart for (``azureml.pipeline…``), a name its counterpart lacks,
an import split over backslash-continued lines — is reported with its line and left as it was.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from runyard.azureml import MODULES, has_name

_MAGIC = re.compile(r"^\s*(?:[%!]|\w+\s*=\s*!)")
_AZURE_INSTALL = re.compile(r"^\s*[%!]\s*pip\s+install\b.*\bazureml", re.IGNORECASE)
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", ".ipynb_checkpoints", "node_modules", ".runyard"}


@dataclass
class Report:
    """What migrating one file did: the new text (None: unchanged), the changed lines, what could not be mapped."""

    path: str
    old_text: str
    new_text: str | None = None
    changed: list[tuple[str, int, str, str]] = field(default_factory=list)  # (where, line, old, new)
    problems: list[tuple[str, int, str]] = field(default_factory=list)  # (where, line, message)

    def diff(self) -> str:
        if self.new_text is None:
            return ""
        return "".join(difflib.unified_diff(self.old_text.splitlines(True), self.new_text.splitlines(True),
                                            f"a/{self.path}", f"b/{self.path}"))


# -- Python source ---------------------------------------------------------------------------------------------
def migrate_source(source: str) -> tuple[str, list[tuple[int, str, str]], list[tuple[int, str]]]:
    """(new source, changed lines as (line number, old, new), problems as (line number, message))."""
    lines = split_lines(source)
    problems: list[tuple[int, str]] = []
    masked = []
    for i, line in enumerate(lines, 1):
        if _AZURE_INSTALL.match(line):
            problems.append((i, "installs Azure ML's SDK, which runyard does not need (left as it is)"))
        # IPython magics and shell escapes are not Python: blank them so the rest parses (line numbers stay).
        masked.append("\n" if _MAGIC.match(line) else line)
    try:
        tree = ast.parse("".join(masked))
    except SyntaxError as exc:
        if any("azureml" in line for line in lines):
            problems.append((exc.lineno or 0, f"not valid Python ({exc.msg}): its imports were not rewritten"))
        return source, [], problems
    changed: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_azure(node.module):
            _rewrite_from(node, lines, changed, problems)
        elif isinstance(node, ast.Import) and any(_is_azure(a.name) for a in node.names):
            _rewrite_import(node, lines, changed, problems)
    changed.sort()
    problems.sort()
    return "".join(lines), changed, problems


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split the way Python's parser counts them (``\n``, ``\r\n``, ``\r`` only)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def _column(line: str, byte_offset: int) -> int:
    """ast's offsets count UTF-8 bytes; strings index characters."""
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", "replace"))


def _is_azure(module: str | None) -> bool:
    return bool(module) and (module == "azureml" or module.startswith("azureml."))


def _rewrite_from(node: ast.ImportFrom, lines: list[str], changed: list, problems: list) -> None:
    module = node.module or ""
    target = MODULES.get(module)
    if target is None:
        problems.append((node.lineno, f"{module}: runyard has no counterpart (left as it is)"))
        return
    missing = [a.name for a in node.names if a.name != "*" and not has_name(target, a.name)]
    if missing:
        problems.append((node.lineno, f"{', '.join(missing)} from {module}: {target} has no such name "
                                      "(left as it is)"))
        return
    index = node.lineno - 1
    line = lines[index]
    pattern = re.compile(r"(from\s+)" + re.escape(module) + r"(?=\s+import\b)")
    m = pattern.match(line, _column(line, node.col_offset))
    if m is None:
        problems.append((node.lineno, f"import of {module} is split over lines: rewrite it by hand (left as it is)"))
        return
    new = line[: m.start()] + m.group(1) + target + line[m.end():]
    changed.append((node.lineno, line, new))
    lines[index] = new


def _rewrite_import(node: ast.Import, lines: list[str], changed: list, problems: list) -> None:
    if len(node.names) != 1 or node.lineno != node.end_lineno:
        problems.append((node.lineno, "an `import` of azureml together with other modules: split it, then migrate "
                                      "(left as it is)"))
        return
    alias = node.names[0]
    index = node.lineno - 1
    line = lines[index]
    start, end = _column(line, node.col_offset), _column(line, node.end_col_offset or 0)
    statement = line[start:end]
    if alias.asname:  # import azureml.core as aml → import runyard as aml
        target = MODULES.get(alias.name)
        if target is None:
            problems.append((node.lineno, f"{alias.name}: runyard has no counterpart (left as it is)"))
            return
        replacement = f"import {target} as {alias.asname}"
    else:  # import azureml.core → from runyard import azureml (the name `azureml` and its attribute chains)
        if alias.name not in MODULES and not any(m.startswith(alias.name + ".") for m in MODULES):
            problems.append((node.lineno, f"{alias.name}: runyard has no counterpart (left as it is)"))
            return
        replacement = "from runyard import azureml"
    new = line[:start] + replacement + line[end:]
    if statement == replacement:
        return
    changed.append((node.lineno, line, new))
    lines[index] = new


# -- notebooks ----------------------------------------------------------------------------------------------------
def _json_styles() -> Iterator[dict]:
    for indent in (1, 2, 4, None):
        for ensure_ascii in (False, True):
            for sort_keys in (True, False):
                yield {"indent": indent, "ensure_ascii": ensure_ascii, "sort_keys": sort_keys}


def _dump(nb: dict, style: dict, newline: str) -> str:
    return json.dumps(nb, **style, separators=(",", ": ") if style["indent"] is not None else (", ", ": ")) + newline


def migrate_notebook(text: str, path: str = "notebook") -> Report:
    report = Report(path, text)
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(("", 0, f"not a Jupyter notebook ({exc})"))
        return report
    newline = "\n" if text.endswith("\n") else ""
    style = next((s for s in _json_styles() if _dump(nb, s, newline) == text), None)
    any_change = False
    for number, cell in enumerate(cells, 1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        joined = "".join(source) if isinstance(source, list) else str(source)
        new, changed, problems = migrate_source(joined)
        where = f"cell {number}"
        report.changed += [(where, n, o, w) for n, o, w in changed]
        report.problems += [(where, n, m) for n, m in problems]
        if changed:
            any_change = True
            cell["source"] = split_lines(new) if isinstance(source, list) else new
    if not any_change:
        return report
    if style is None:
        report.problems.append(("", 0, "the notebook's JSON formatting could not be reproduced exactly, so it was not "
                                       "rewritten — save it once in Jupyter and migrate again"))
        report.changed = []
        return report
    report.new_text = _dump(nb, style, newline)
    return report


# -- files ----------------------------------------------------------------------------------------------------
def migrate_file(path: str | os.PathLike) -> Report:
    p = Path(path)
    with open(p, encoding="utf-8", newline="") as f:  # line endings as they are
        text = f.read()
    if p.suffix == ".ipynb":
        return migrate_notebook(text, str(p))
    new, changed, problems = migrate_source(text)
    return Report(str(p), text, new if changed else None, [("", n, o, w) for n, o, w in changed],
                  [("", n, m) for n, m in problems])


def files_under(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """The .py and .ipynb files named, or found below the folders named (tool and cache folders skipped)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
                for name in sorted(files):
                    if name.endswith((".py", ".ipynb")):
                        yield Path(root) / name
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{raw}: no such file or folder")


def write(report: Report) -> None:
    """Write the migrated text over the file (through a temporary file, keeping its permissions)."""
    if report.new_text is None:
        return
    target = Path(report.path)
    tmp = target.with_name(f".{target.name}.runyard-migrate")
    tmp.write_text(report.new_text, encoding="utf-8", newline="")
    os.chmod(tmp, target.stat().st_mode & 0o7777)
    os.replace(tmp, target)


__all__ = ["Report", "files_under", "migrate_file", "migrate_notebook", "migrate_source", "write"]
