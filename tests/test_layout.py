"""The layout rules the project keeps: small modules, small functions, and a core that does not reach into
another module's private names. Compiled (numba) kernels are exempt from the function limit; a function's
docstring does not count towards it."""

import ast

from support.paths import PACKAGE

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def _modules():
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "_version.py"]


def _function_lengths(tree):
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if any("njit" in ast.unparse(d) or "numba" in ast.unparse(d) for d in node.decorator_list):
            continue
        length = node.end_lineno - node.lineno + 1
        doc = node.body[0] if node.body else None
        if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            length -= doc.end_lineno - doc.lineno + 1
        yield node.name, node.lineno, length


def test_modules_and_functions_are_small():
    too_long = []
    for path in _modules():
        text = path.read_text()
        rel = path.relative_to(PACKAGE)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {len(text.splitlines())} lines")
        for name, line, length in _function_lengths(ast.parse(text)):
            if length > MAX_FUNCTION_LINES:
                too_long.append(f"{rel}:{line} {name}: {length} lines")
    assert not too_long, "split these:\n" + "\n".join(too_long)


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            # ``from . import _kernels`` imports a private module of the package, which is fine.
            if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module is not None:
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    offenders.append(f"{path.relative_to(PACKAGE)}: from {'.' * node.level}{node.module} import "
                                     + ", ".join(private))
    assert not offenders, "\n".join(offenders)
