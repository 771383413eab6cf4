"""Code graders cannot be fooled by a program that does not solve the task (issue 22), and honest ones still pass.

Each fooling program passes a naive grader (program + tests run as one script, exit 0 = pass: how assert-based
graders run them); run_code must fail it, for the reason given.
"""

import pytest

from fusechat_utils.graded_asserts import HOST, judge, rewrite
from fusechat_utils.sandbox import run_python
from fusechat_utils.verify import run_code

RIGGED = "class R:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n" \
         "        return False\n    __lt__ = __le__ = __gt__ = __ge__ = __eq__\n    __hash__ = None\n"

# (id, program, tests, the reason contains)
FOOLING = [
    ("__eq__ always true", RIGGED + "def f(x):\n    return R()", "assert f(1) == 2", "not plain: a R"),
    ("__eq__ against a variable", RIGGED + "def f(x):\n    return R()", "expected = [1, 3]\nassert f([3, 1]) == expected",
     "compared a R"),
    ("__eq__ behind abs()", RIGGED + "class N(R):\n    def __sub__(self, o):\n        return self\n"
                                     "    def __abs__(self):\n        return self\ndef f(x):\n    return N()",
     "assert abs(f(0.1) - 0.3) < 1e-9", "compared a N"),
    ("int subclass with rigged ==", "class I(int):\n    def __eq__(self, other):\n        return True\n"
                                    "    __hash__ = int.__hash__\ndef f(x):\n    return I(0)",
     "assert f(1) == 2", "not plain: a I"),
    ("list subclass with rigged ==", "class L(list):\n    def __eq__(self, other):\n        return True\n"
                                     "def f(x):\n    return L()", "assert sorted(f([3, 1])) == [1, 3] or f([3, 1]) == [1, 3]",
     "compared a L"),
    ("__bool__ that flips", "class B:\n    n = 0\n    def __bool__(self):\n        B.n += 1\n"
                            "        return B.n == 1\ndef is_prime(x):\n    return B()",
     "assert is_prime(7)\nassert not is_prime(8)", "compared a B"),
    ("patched isinstance", "import builtins\nbuiltins.isinstance = lambda *a: True\ndef f(x):\n    return x",
     "assert isinstance(f(1), str)", "AssertionError"),
    ("patches abs during a test call", "import builtins\ndef f(x):\n    builtins.abs = lambda v: 0\n    return x",
     "assert abs(f(1) - 1) < 1e-9\nassert abs(f(1) - 2) < 1e-9", "AssertionError"),
    ("patched math.isclose", "import math\nmath.isclose = lambda *a, **k: True\ndef f(x):\n    return x",
     "import math\nassert math.isclose(f(1), 2)", "AssertionError"),
    ("rewrites the test's globals", "import sys\ndef f(x):\n    sys._getframe(1).f_globals['expected'] = x\n"
                                    "    return x", "expected = 2\nassert f(1) == expected", "AssertionError"),
    ("reads the expected value from the caller's frame",
     "import sys\ndef f(x):\n    frame, seen = sys._getframe(1), []\n    while frame:\n"
     "        seen += [c for c in frame.f_code.co_consts if type(c) is int and c != x]\n        frame = frame.f_back\n"
     "    return max(seen, default=None)", "assert f(1) == 2", "the value differs"),
    ("reads the expected value from the test script",
     "import re, sys\ndef f(x):\n    found = re.findall(r'f\\(1\\) == (\\d+)', open(sys.argv[0]).read())\n"
     "    return int(found[-1]) if found else None", "assert f(1) == 2", "the value differs"),
]

# (id, program, tests): honest solutions whose values are equal to the expected ones as Python's == says
HONEST = [
    ("int where a float is expected", "def f(x):\n    return x // 2", "assert f(4) == 2.0\nassert f(5) != 3"),
    ("float where an int is expected", "def f(x):\n    return x / 2", "assert f(4) == 2"),
    ("True for 1", "def f():\n    return True", "assert f() == 1\nassert f()"),
    ("dict in another order", "def f():\n    return {'a': 1, 'b': [2, (3, None)]}", "assert f() == {'b': [2, (3, None)], 'a': 1}"),
    ("set from a list", "def f(xs):\n    return set(xs)", "assert f([3, 1, 2, 1]) == {1, 2, 3}"),
    ("Counter, defaultdict, OrderedDict as dicts",
     "from collections import Counter, OrderedDict, defaultdict\ndef f(s):\n    return Counter(s)\n"
     "def g():\n    d = defaultdict(int)\n    d['x'] += 1\n    return d\ndef h():\n    return OrderedDict(b=2, a=1)",
     "assert f('aab') == {'a': 2, 'b': 1}\nassert g() == {'x': 1}\nassert h() == {'a': 1, 'b': 2}"),
    ("namedtuple as a tuple", "from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef f():\n"
                              "    return P(1, 2)", "assert f() == (1, 2)\nassert f().x == 1"),
    ("the program's own class equality", "class P:\n    def __init__(self, v):\n        self.v = v\n"
                                         "    def __eq__(self, o):\n        return isinstance(o, P) and o.v == self.v",
     "assert P(1) == P(1)\nassert P(1) != P(2)\nassert isinstance(P(1), P)"),
    ("tolerances, membership, types", "import math\ndef f(x):\n    return x + 0.2",
     "import math\nassert abs(f(0.1) - 0.3) < 1e-9\nassert math.isclose(f(0.1), 0.3)\nassert f(0.0) in [0.2, 1]\n"
     "assert type(f(1)) is float and type(f(1)) == float\nassert not f(-0.2), 'zero is falsy'"),
    ("a check(candidate) with a loop", "def add(a, b):\n    return a + b",
     "def check(candidate):\n    assert candidate(1, 2) == 3\n    for i in range(3):\n        assert candidate(i, i) == 2 * i\n"
     "check(add)"),
    ("recursion, big ints and bytes", "import sys\nsys.setrecursionlimit(5000)\ndef f(n):\n    return 1 if n == 0 else n * f(n - 1)\n"
                                      "def g():\n    return b'ab'", "assert f(1000) == f(999) * 1000\nassert f(30) == 265252859812191058636308480000000\n"
                                                                    "assert g() == b'ab'"),
    ("a deque against a deque", "from collections import deque\ndef f():\n    return deque([1, 2])",
     "from collections import deque\nassert f() == deque([1, 2])"),
]


@pytest.mark.parametrize("program, tests, reason", [f[1:] for f in FOOLING], ids=[f[0] for f in FOOLING])
def test_a_program_that_fools_a_naive_grader_fails(program, tests, reason):
    naive = run_python(f"{program}\n\n{tests}\n", timeout_s=20)
    assert naive.returncode == 0 and not naive.timed_out, naive.stderr  # the attack is real
    result = run_code(program, tests, timeout_s=20)
    assert not result.passed and reason in result.reason, result.reason


@pytest.mark.parametrize("program, tests", [h[1:] for h in HONEST], ids=[h[0] for h in HONEST])
def test_an_honest_solution_still_passes(program, tests):
    result = run_code(program, tests, timeout_s=20)
    assert result.passed, result.reason


def test_an_honest_wrong_answer_names_its_assert():
    result = run_code("def f(x):\n    return x", "assert f(1) == 1\nassert f(2) == 3, 'two'")
    assert not result.passed and result.reason == "AssertionError: assert f(2) == 3, 'two' (the value differs)"


def test_literal_expectations_leave_the_tests_and_are_judged_here():
    source, expected = rewrite("assert f(1) == [2, 3]\nif x:\n    assert f(4) == 555\nassert 666 == g()")
    assert "[2, 3]" not in source and "666" not in source  # never in the sandbox: judged here, from a digest
    assert "555" in source  # under an `if` it may not run: it stays a comparison there, on plain values
    assert [e["text"] for e in expected] == ["assert f(1) == [2, 3]", "assert 666 == g()"]
    digest = HOST["digest"]
    assert digest([2, 3]) == expected[0]["digest"] == digest([2.0, True + 2])  # Python's ==
    assert digest((2, 3)) != expected[0]["digest"]  # a tuple is not equal to a list
    assert judge(expected, {"0": [digest([2, 3])], "1": [digest(666)]}) is None
    assert "not checked" in judge(expected, {"0": [digest([2, 3])]})  # a skipped assert fails
    assert "the value differs" in judge(expected, {"0": [digest([2, 3]), digest([3])], "1": [digest(666)]})


def test_plain_values_are_rebuilt_through_the_builtin_slots():
    plain = HOST["plain"]

    class Lying(tuple):  # keeps tuple's comparisons (as a namedtuple does) but lies when iterated
        def __iter__(self):
            return iter((9, 9))

    assert plain(Lying((1, 2))) == (1, 2) and type(plain(Lying((1, 2)))) is tuple
    with pytest.raises(Exception, match="a Rigged \\(its comparisons are the program's\\)"):
        plain({"k": [1, type("Rigged", (int,), {"__eq__": lambda s, o: True})(3)]})
