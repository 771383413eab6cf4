"""Tests a program under test cannot fool: literal expectations judged outside its process, other comparisons
on plain values, and the test code's checks out of the program's reach.

Usage (verify.run_code does this for every code grader of 03 and 07):
    source, expected = rewrite("assert add(1, 2) == 3\\nassert add(0, 0) < 1")
    ... run `source` in the sandbox under verify.HARNESS, which reports {assert index: [digests]} ...
    failure = judge(expected, reported)   # None: every literal expectation held

Why hand-written: EvalPlus, LiveCodeBench and HumanEval's `check()` compare in the candidate's own process
(`out == exp`), so a returned object whose `__eq__` always says True, a builtin subclass with rigged comparisons,
a patched `isinstance`/`abs`, or a function reading the expected value from its caller's frame passes. No library
separates an assert's expected value from the process that computes the actual one.

- `assert EXPR == LITERAL` (or LITERAL == EXPR), not under an `if`/`while`/`try`: becomes `expect(i, EXPR)`.
  The sandbox sends back only a digest of EXPR's canonical encoding (`encode`: Python's `==` on plain values:
  1 == 1.0 == True, dict and set order ignored, a Counter/OrderedDict/namedtuple as its dict/tuple); the literal
  never enters the program's process, so no frame, file or gc read finds it. The host compares digests
  (`judge`); an expectation never reported (skipped by a tracer, an exit, a rebound name) fails.
- Every other comparison (`==`, `<`, `in`, ...) becomes `compare(ops, *operands)` and every other assert's test
  `truth(x)`: operands are first checked to be plain values (`plain`: exact builtin types all the way down, read
  through the builtin types' own slots), else the assert fails naming the type. Two program-defined objects
  still compare by their own `__eq__` (a test of a class's equality needs it). `is`/`is not` are untouched.
- The test code runs as the body of a function whose parameters are these checks, so they are closure cells,
  not names the program can rebind; the checks close over builtins captured before the program ran.
Not stopped: a program that writes frames' locals through ctypes, or reads the in-process expected values of
EvalPlus's and LiveCodeBench's checkers (they pass `plain` outputs to their own comparison); the sandbox bounds
what such a program can do.
"""

from __future__ import annotations

import ast
import inspect

# The tests function and its parameters, in order: make_checks()'s entries of these names, passed by the harness
# (verify.HARNESS); the rewritten tests call them as `_fusechat_<name>`.
TESTS_FUNCTION = "_fusechat_tests"
CHECKS = ("expect", "compare", "truth", "plain")


def check_name(check: str) -> str:
    return f"_fusechat_{check}"


OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in",
       ast.NotIn: "not in"}
CONDITIONAL = (ast.If, ast.While, ast.Try, ast.IfExp, ast.BoolOp, ast.Lambda, ast.ListComp, ast.SetComp,
               ast.DictComp, ast.GeneratorExp, ast.Match) + ((ast.TryStar,) if hasattr(ast, "TryStar") else ())


def make_checks():
    """The sandbox's checks, closing over the builtins as they are now (the harness calls it before the program).
    Runs on the host too: `encode` there gives the literal's digest. Only the standard library."""
    import collections
    import hashlib as _hashlib
    import json as _json
    import operator

    _type, _len, _range, _sorted, _list_iter, _isinstance = type, len, range, sorted, list.__iter__, isinstance
    _dict_items, _tuple_getitem, _tuple_len, _set_iter = dict.items, tuple.__getitem__, tuple.__len__, set.__iter__
    _frozenset_iter, _float_is_integer, _float_hex, _int_format = frozenset.__iter__, float.is_integer, float.hex, \
        int.__format__
    _dumps, _sha256, _exception = _json.dumps, _hashlib.sha256, AssertionError
    scalars = (int, float, complex, str, bytes, bool, _type(None))
    dicts = (dict, collections.OrderedDict, collections.defaultdict, collections.Counter)
    operators = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
                 ">=": operator.ge, "in": lambda a, b: operator.contains(b, a),
                 "not in": lambda a, b: not operator.contains(b, a)}
    tuple_eq, tuple_ne, type_getattr = tuple.__eq__, tuple.__ne__, type.__getattribute__

    class NotPlain(Exception):
        pass

    def is_plain_tuple(t):
        """A tuple or a tuple subclass (a namedtuple) that keeps tuple's comparisons, under no other metaclass."""
        return t is tuple or (_type(t) is type and issubclass(t, tuple) and type_getattr(t, "__eq__") is tuple_eq
                              and type_getattr(t, "__ne__") is tuple_ne)

    def plain(x, depth=0):
        """x as exact builtin values (containers rebuilt through the base types' slots), or NotPlain."""
        if depth > 200:
            raise NotPlain("a value nested deeper than 200")
        t = _type(x)
        if t in scalars:
            return x
        if t is list:
            return [plain(v, depth + 1) for v in _list_iter(x)]
        if is_plain_tuple(t):
            return tuple(plain(_tuple_getitem(x, i), depth + 1) for i in _range(_tuple_len(x)))
        if t is set:
            return {plain(v, depth + 1) for v in _set_iter(x)}
        if t is frozenset:
            return frozenset(plain(v, depth + 1) for v in _frozenset_iter(x))
        if t in dicts:
            return {plain(k, depth + 1): plain(v, depth + 1) for k, v in _dict_items(x)}
        if t is collections.deque or t is _range or t is type:
            return x  # C types the program cannot patch; classes compare by identity
        raise NotPlain(f"a {t.__name__!s:.60} (its comparisons are the program's)")

    def encode(x):
        """A JSON-able canonical form: equal plain values (Python's ==) encode the same."""
        x = plain(x)
        return _encode(x)

    def _encode(x):
        t = _type(x)
        if t is bool or t is int:
            return ["n", _int_format(int(x), "x")]  # hex: no int-to-str digit limit
        if t is float:
            return ["n", _int_format(int(x), "x")] if _float_is_integer(x) else ["f", _float_hex(x)]
        if t is complex:
            return _encode(x.real) if x.imag == 0 else ["c", _encode(x.real), _encode(x.imag)]
        if t is str:
            return ["s", x]
        if t is bytes:
            return ["b", x.hex()]
        if x is None:
            return ["N"]
        if t is list:
            return ["l", [_encode(v) for v in x]]
        if t is tuple:
            return ["t", [_encode(v) for v in x]]
        if t is set or t is frozenset:
            return ["S", _sorted((_encode(v) for v in x), key=_dumps)]
        if t is dict:
            return ["d", _sorted(([_encode(k), _encode(v)] for k, v in x.items()), key=_dumps)]
        return ["x", t.__name__]  # a deque, a range, a class: never equal to a literal

    def digest(x):
        try:
            return _sha256(_dumps(encode(x), separators=(",", ":")).encode()).hexdigest()
        except NotPlain as why:
            return f"not plain: {why}"
        except (TypeError, ValueError, RecursionError) as err:  # e.g. sorting a set of mixed types
            return f"not encodable: {_type(err).__name__}"

    reported = {}

    def expect(i, value):
        seen = reported.setdefault(i, [])
        d = digest(value)
        if d not in seen and _len(seen) < 2:  # a second distinct digest already fails; keep the report small
            seen.append(d)

    def checked(x):
        try:
            return plain(x)
        except NotPlain as why:
            raise _exception(f"compared {why}") from None

    def compare(ops, *operands):
        values, why = [], None
        for v in operands:
            try:
                values.append(plain(v))
            except NotPlain as err:
                values.append(None)
                why = why or err
        if why is not None:
            if _len(operands) > 1 and all(_type(v) not in scalars for v in operands) and \
                    not any(_isinstance(v, (list, tuple, set, frozenset, dict)) for v in operands):
                values = list(operands)  # program objects on every side: their own comparison is the test
            else:
                raise _exception(f"compared {why} with a plain value")
        return all(operators[op](a, b) for op, a, b in zip(ops, values, values[1:]))

    def truth(x):
        return bool(checked(x))

    return {"expect": expect, "compare": compare, "truth": truth, "plain": plain, "encode": encode,
            "digest": digest, "reported": reported}


HOST = make_checks()


class _Rewriter(ast.NodeTransformer):
    def __init__(self, source: str):
        self.source, self.expected, self.depth = source, [], 0

    def generic_visit(self, node):
        conditional = isinstance(node, CONDITIONAL)
        self.depth += conditional
        try:
            return super().generic_visit(node)
        finally:
            self.depth -= conditional

    def visit_Assert(self, node):
        literal = self.depth == 0 and _literal_side(node.test)
        if literal:
            value, other = literal
            i = len(self.expected)
            self.expected.append({"digest": HOST["digest"](value), "text": ast.get_source_segment(self.source, node)})
            call = ast.Call(ast.Name(check_name("expect"), ast.Load()), [ast.Constant(i), self.visit(other)], [])
            return ast.copy_location(ast.Expr(call), node)
        node = self.generic_visit(node)
        node.test = _truthy(node.test)
        return node

    def visit_Compare(self, node):
        node = self.generic_visit(node)
        if not all(type(op) in OPS for op in node.ops):
            return node  # `is`, `is not`: identity cannot be rigged
        ops = ast.Tuple([ast.Constant(OPS[type(op)]) for op in node.ops], ast.Load())
        return ast.Call(ast.Name(check_name("compare"), ast.Load()), [ops, node.left, *node.comparators], [])


def _truthy(node: ast.expr) -> ast.expr:
    """An assert's test with each value whose truth decides it passed through truth(): through `not`, `and`,
    `or` (a returned object's own __bool__ must not decide)."""
    if isinstance(node, ast.BoolOp):
        return ast.BoolOp(node.op, [_truthy(v) for v in node.values])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ast.UnaryOp(ast.Not(), _truthy(node.operand))
    return ast.Call(ast.Name(check_name("truth"), ast.Load()), [node], [])


def _literal_side(test: ast.expr):
    """(literal value, the other side) of `a == b` where exactly one side is a literal, else None."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    sides = [test.left, test.comparators[0]]
    values = []
    for side in sides:
        try:
            values.append((True, ast.literal_eval(side)))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            values.append((False, None))
    if values[0][0] == values[1][0]:
        return None
    k = 0 if values[0][0] else 1
    return values[k][1], sides[1 - k]


def rewrite(tests: str) -> tuple[str, list[dict]]:
    """(source, expected): the tests as the body of `TESTS_FUNCTION(<checks>)`, and each literal expectation's
    digest and assert text. Tests that do not parse, or cannot be a function body (`from m import *`), come back
    as they are, with no expectations (the sandbox then reports their own error)."""
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return tests, []
    rewriter = _Rewriter(tests)
    body = [rewriter.visit(stmt) for stmt in tree.body] or [ast.Pass()]
    args = ast.arguments(posonlyargs=[], args=[ast.arg(check_name(c)) for c in CHECKS], kwonlyargs=[], kw_defaults=[],
                         defaults=[])
    func = ast.FunctionDef(TESTS_FUNCTION, args, body, [], None, type_params=[]) \
        if "type_params" in ast.FunctionDef._fields else ast.FunctionDef(TESTS_FUNCTION, args, body, [], None)
    module = ast.fix_missing_locations(ast.Module([func], []))
    source = ast.unparse(module)
    try:
        compile(source, "<tests>", "exec")
    except SyntaxError:
        return tests, []
    return source, rewriter.expected


def judge(expected: list[dict], reported: dict) -> str | None:
    """None when every literal expectation was reported and held; else what failed (the first assert)."""
    for i, want in enumerate(expected):
        got = reported.get(str(i), reported.get(i))
        if not got:
            return f"not checked: {want['text'][:200]} (the test never reported it)"
        wrong = [d for d in got if d != want["digest"]]
        if wrong:
            why = wrong[0] if wrong[0].startswith("not ") else "the value differs"
            return f"AssertionError: {want['text'][:200]} ({why})"
    return None


def sandbox_source() -> str:
    """make_checks' source, for the harness to define and call before the program."""
    return inspect.getsource(make_checks)

