"""Finds SQL built by string interpolation in our sources (used by test_sql_parameterised).

A call whose name says it runs SQL (`execute`, `executemany`, `executescript`, `sql`, `query`,
`read_sql`, `read_sql_query`, and any function of ours that passes one of its parameters on to
such a call) is checked on its SQL argument. A literal is fine. An f-string, `%` formatting,
`.format()` or `+` concatenation is fine only when every interpolated expression is an
identifier source: a module-level ALL_CAPS constant whose value is itself built only from
literals and such constants (e.g. `SCHEMA`, `CACHE_TABLE`), or an entry of the explicit
allow-list, reviewed with its reason. A variable passed as the SQL is followed to its
assignments in the same function. Anything else is reported as `path:line: why`.
"""

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SQL_CALLS = {
    "execute": 0,
    "executemany": 0,
    "executescript": 0,
    "sql": 0,
    "query": 0,
    "read_sql": 0,
    "read_sql_query": 0,
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.why}"


def _is_placeholders(node: ast.expr) -> bool:
    """`", ".join("?" for _ in xs)`: only parameter marks, however many."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and isinstance(node.func.value, ast.Constant)
        and len(node.args) == 1
        and isinstance(node.args[0], ast.GeneratorExp | ast.ListComp)
        and isinstance(node.args[0].elt, ast.Constant)
        and node.args[0].elt.value in ("?", "%s")
    )


def _is_static(node: ast.expr, constants: set[str]) -> bool:
    """Built only from literals, already-known static constants and parameter marks."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str | int)
    if isinstance(node, ast.Name):
        return node.id in constants
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_is_static(e, constants) for e in node.elts)
    if isinstance(node, ast.JoinedStr):
        return all(
            _is_static(v.value if isinstance(v, ast.FormattedValue) else v, constants)
            for v in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_static(node.left, constants) and _is_static(node.right, constants)
    if (  # CONSTANT.split(";") and the like
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("split", "strip", "upper", "lower")
        and _is_static(node.func.value, constants)
        and all(_is_static(a, constants) for a in node.args)
    ):
        return True
    return _is_placeholders(node)


def static_constants(trees: Iterable[ast.Module]) -> set[str]:
    """ALL_CAPS module-level names bound to static strings, to a fixed point across modules."""
    assigns = [
        (target.id, node.value)
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id.isupper()
    ]
    known: set[str] = set()
    while True:
        grown = {name for name, value in assigns if _is_static(value, known)}
        unstable = {name for name, value in assigns if not _is_static(value, known | grown)}
        grown -= unstable  # a name also bound to something dynamic is not a constant
        if grown <= known:
            return known
        known |= grown


def _parents(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _function_of(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node
    return None


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _sql_argument(call: ast.Call, index: int) -> ast.expr | None:
    if len(call.args) > index:
        return call.args[index]
    for keyword in call.keywords:
        if keyword.arg in ("sql", "query", "statement", "sql_script"):
            return keyword.value
    return None


def _interpolations(node: ast.expr) -> tuple[str, list[ast.expr]] | None:
    """How `node` builds a string from expressions, and those expressions; None if literal."""
    if isinstance(node, ast.JoinedStr):
        return "f-string", [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        right = node.right
        parts = list(right.elts) if isinstance(right, ast.Tuple) else [right]
        return "%-formatting", parts
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        found: list[ast.expr] = []
        for side in (node.left, node.right):
            inner = _interpolations(side)
            if inner is not None:
                found += inner[1]
            elif not isinstance(side, ast.Constant):
                found.append(side)
        return ("concatenation", found) if found else None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return ".format()", [*node.args, *(k.value for k in node.keywords)]
    return None


class Auditor:
    """Audits a set of source files against an allow-list {(path, expression): reason}."""

    def __init__(self, root: Path, files: list[Path], allowed: dict[tuple[str, str], str]):
        self.root = root
        self.trees = {f: ast.parse(f.read_text(), filename=str(f)) for f in files}
        self.constants = static_constants(self.trees.values())
        self.allowed = allowed
        self.calls = dict(SQL_CALLS)
        self.sites: list[tuple[str, int]] = []  # every SQL call site checked
        self.used: set[tuple[str, str]] = set()  # allow-list entries that matched

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _find_wrappers(self) -> None:
        """Functions that hand one of their parameters to an SQL call are SQL calls too."""
        changed = True
        while changed:
            changed = False
            for tree in self.trees.values():
                parents = _parents(tree)
                for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                    index = self.calls.get(_call_name(call) or "")
                    arg = None if index is None else _sql_argument(call, index)
                    func = _function_of(call, parents)
                    if not isinstance(arg, ast.Name) or func is None:
                        continue
                    params = [a.arg for a in func.args.args if a.arg not in ("self", "cls")]
                    if arg.id in params and func.name not in self.calls:
                        self.calls[func.name] = params.index(arg.id)
                        changed = True

    def _check_expr(
        self, rel: str, line: int, expr: ast.expr, func: ast.AST | None, top: bool, depth: int = 0
    ) -> Iterator[Finding]:
        """Findings for `expr`, which becomes (part of) the SQL text of the call at `line`."""
        if _is_static(expr, self.constants):
            return
        text = ast.unparse(expr)
        if (rel, text) in self.allowed:
            self.used.add((rel, text))
            return
        if isinstance(expr, ast.Name) and depth < 4:
            if self._loops_over_static(func, expr.id):
                return
            values = self._assigned(func, expr.id)
            params = (
                [a.arg for a in func.args.args]
                if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
                else []
            )
            if top and expr.id in params and not values:
                return  # a wrapper: its own call sites are checked
            if not values:
                yield Finding(rel, line, f"{text!r} goes into SQL and is not a known identifier")
            for value in values:
                yield from self._check_expr(rel, line, value, func, top, depth + 1)
            return
        how = _interpolations(expr)
        if how is None:
            yield Finding(rel, line, f"SQL from {text!r} cannot be verified")
            return
        kind, parts = how
        for part in parts:
            for finding in self._check_expr(rel, line, part, func, False, depth + 1):
                yield Finding(rel, line, f"{kind}: {finding.why}")

    def _loops_over_static(self, func: ast.AST | None, name: str) -> bool:
        """`name` is only ever bound as the variable of loops over static sequences."""
        if func is None:
            return False
        loops = [
            n
            for n in ast.walk(func)
            if isinstance(n, ast.For | ast.comprehension)
            and isinstance(n.target, ast.Name)
            and n.target.id == name
        ]
        return bool(loops) and all(_is_static(n.iter, self.constants) for n in loops)

    @staticmethod
    def _assigned(func: ast.AST | None, name: str) -> list[ast.expr]:
        if func is None:
            return []
        values: list[ast.expr] = []
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            ) or (
                isinstance(node, ast.AnnAssign | ast.AugAssign)
                and (isinstance(node.target, ast.Name) and node.target.id == name and node.value)
            ):
                values.append(node.value)
        return values

    def findings(self) -> list[Finding]:
        self._find_wrappers()
        out: list[Finding] = []
        for path, tree in self.trees.items():
            rel = self._rel(path)
            parents = _parents(tree)
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                index = self.calls.get(_call_name(call) or "")
                arg = None if index is None else _sql_argument(call, index)
                if arg is None:
                    continue
                self.sites.append((rel, call.lineno))
                out += self._check_expr(rel, call.lineno, arg, _function_of(call, parents), True)
        return out
