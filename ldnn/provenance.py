"""Code provenance of a workflow rule: the source files its script runs, hashed.

A rule's code is its script plus every ldnn module the script can reach by import, found
statically (module-level and function-level imports alike). Two refinements keep the set
tight enough that a change of the claims does not disown the meta-learning:
- ldnn.stages is taken function by function: only the stage functions the script calls,
  the helpers they name, its module-level statements and the imports of those;
- a package whose __init__ imports by name at run time (importlib) brings all its modules.
Non-Python files of the package that a module names (the compiled kernel's source) count
as that module's. Everything is read from a checkout's files; nothing is imported.
"""
from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "ldnn"
STAGES = "ldnn.stages"
_RULE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
_SCRIPT = re.compile(r"^\s+script:\s*\n\s+[\"']([^\"']+)[\"']", re.M)


@dataclass(frozen=True)
class RuleCode:
    """A rule's code: `files` maps each source path (relative to the checkout) to the sha256
    of the part that counts."""
    files: dict[str, str]

    def changed_since(self, recorded: dict[str, str]) -> list[str]:
        """Paths of this code whose hash the `recorded` code's files lack or differ from.
        A file the recorded code counted and this one does not cannot change its results
        (this is how an archive made by an earlier, coarser analysis stays usable)."""
        return sorted(p for p, h in self.files.items() if recorded.get(p) != h)


def rule_scripts(checkout: str | Path) -> dict[str, str]:
    """{rule: its script's path relative to the checkout} for every script rule."""
    checkout = Path(checkout)
    scripts = {}
    for smk in [checkout / "Snakefile", *sorted((checkout / "workflow/rules").glob("*.smk"))]:
        text = smk.read_text()
        starts = [(m.start(), m.group(1)) for m in _RULE.finditer(text)] + [(len(text), "")]
        for (start, rule), (end, _) in zip(starts, starts[1:]):
            script = _SCRIPT.search(text, start, end)
            if script:
                scripts[rule] = str((smk.parent / script.group(1)).resolve()
                                    .relative_to(checkout.resolve()))
    return scripts


def rule_code(checkout: str | Path) -> dict[str, RuleCode]:
    """{rule: RuleCode} for every script rule of the checkout's workflow."""
    graph = _ImportGraph(Path(checkout))
    return {rule: graph.code_of_script(script)
            for rule, script in rule_scripts(checkout).items()}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The names an import statement binds."""
    return {(a.asname or a.name).split(".")[0] for a in node.names}


def _sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


class _ImportGraph:
    def __init__(self, checkout: Path):
        self.checkout = checkout
        self.trees: dict[str, ast.Module] = {}

    def path(self, module: str) -> Path | None:
        base = self.checkout / Path(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def tree(self, module: str) -> ast.Module:
        if module not in self.trees:
            self.trees[module] = ast.parse(self.path(module).read_text())
        return self.trees[module]

    def imported(self, node: ast.AST, importer: str) -> set[str]:
        """ldnn modules (with their packages) that the imports under `node` load; all of a
        package's modules where `importer` is a package that imports by name (importlib)."""
        found = set()
        for stmt in ast.walk(node):
            names = []
            if isinstance(stmt, ast.Import):
                names = [a.name for a in stmt.names]
            elif isinstance(stmt, ast.ImportFrom) and stmt.module:
                names = [stmt.module] + [f"{stmt.module}.{a.name}" for a in stmt.names]
            for parts in (n.split(".") for n in names if n.split(".")[0] == PACKAGE):
                found.update(m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                             if self.path(m))
        path = self.path(importer) if importer else None
        if path and path.name == "__init__.py" and "importlib" in found | _names(node):
            found.update(f"{importer}.{p.stem}" for p in path.parent.glob("*.py")
                         if p.stem != "__init__")
        return found

    def code_of_script(self, script: str) -> RuleCode:
        tree = ast.parse((self.checkout / script).read_text())
        files = {script: _sha256((self.checkout / script).read_bytes())}
        modules = self.imported(tree, "")
        if STAGES in modules:
            modules.discard(STAGES)
            called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                      and isinstance(n.value, ast.Name) and n.value.id == "stages"}
            digest, reached = self.stage_functions(called)
            files[self.relative(STAGES)] = digest
            modules |= reached
        for module in self.closure(modules):
            path = self.path(module)
            files[self.relative(module)] = _sha256(path.read_bytes())
            for extra in self.named_files(module):
                files[str(extra.relative_to(self.checkout))] = _sha256(extra.read_bytes())
        return RuleCode(files)

    def stage_functions(self, called: set[str]) -> tuple[str, set[str]]:
        """Hash of the parts of ldnn.stages that `called` needs, and the modules they import."""
        tree = self.tree(STAGES)
        defs = {n.name: n for n in tree.body
                if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef,
                                                           ast.AsyncFunctionDef))]
        imports = [n for n in top if isinstance(n, (ast.Import, ast.ImportFrom))]
        others = [n for n in top if n not in imports]
        needed, queue = set(), [c for c in called if c in defs]
        for stmt in others:
            queue += [n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id in defs]
        while queue:
            name = queue.pop()
            if name not in needed:
                needed.add(name)
                queue += [n.id for n in ast.walk(defs[name])
                          if isinstance(n, ast.Name) and n.id in defs]
        source = self.path(STAGES).read_text()
        parts = [ast.get_source_segment(source, n) for n in top + [defs[n] for n in sorted(needed)]]
        # A module-level import reaches its module only where what counts uses a name it binds.
        used = set().union(*(_names(n) for n in others), *(_names(defs[n]) for n in needed))
        modules = set().union(*(self.imported(n, STAGES) for n in imports if _bound(n) & used),
                              *(self.imported(defs[n], STAGES) for n in needed))
        return _sha256("\n".join(parts)), modules - {STAGES} | {PACKAGE}

    def closure(self, modules: set[str]) -> set[str]:
        seen, queue = set(), list(modules)
        while queue:
            module = queue.pop()
            if module not in seen:
                seen.add(module)
                queue += self.imported(self.tree(module), module) - {STAGES}
        return seen

    def named_files(self, module: str) -> list[Path]:
        """Non-Python files of the package whose names occur as strings in the module."""
        strings = {n.value for n in ast.walk(self.tree(module))
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        return sorted(p for p in (self.checkout / PACKAGE).rglob("*")
                      if p.is_file() and p.suffix not in (".py", ".pyc") and p.name in strings)

    def relative(self, module: str) -> str:
        return str(self.path(module).relative_to(self.checkout))
