"""The tables the edit search's operators (dsl/mutate.py) draw their replacements from: the
operator groups an operator is swapped within (and each one's usual mistakes, tried first), the
call families a builtin or method is swapped within, the standard-library modules and names a
missing import may bring in, and the public attributes of the builtin types an attribute typo is
matched against.
"""
from __future__ import annotations

import ast

BINOP_GROUPS = [{ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
                 ast.Pow: "**"},
                {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}]
BINOP_TEXT = {k: v for g in BINOP_GROUPS for k, v in g.items()}
COMPARE_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
NEGATED = {ast.Is: ("is", "is not"), ast.IsNot: ("is not", "is"), ast.In: ("in", "not in"), ast.NotIn: ("not in", "in")}
# PIT's standard mutators (MATH, CONDITIONALS_BOUNDARY, NEGATE_CONDITIONALS): each operator's usual
# mistake is tried before the rest of its group
FIRST = {"+": ["-"], "-": ["+"], "*": ["/", "//"], "/": ["*", "//"], "//": ["/", "%"], "%": ["//", "*"], "**": ["*"],
         "&": ["|", "and"], "|": ["&"], "^": ["&", "|"], "<<": [">>"], ">>": ["<<"],
         "<": ["<=", ">="], "<=": ["<", ">"], ">": [">=", "<="], ">=": [">", "<"], "==": ["!="], "!=": ["=="]}
NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift, ast.Add)
FAMILIES = [("min", "max"), ("any", "all"), ("append", "extend"), ("sorted", "reversed"), ("int", "float", "round"),
            ("lower", "upper"), ("isupper", "islower"), ("startswith", "endswith"), ("find", "rfind"),
            ("index", "rindex"), ("keys", "values", "items"), ("sum", "len"), ("remove", "discard"),
            ("isdigit", "isalpha", "isalnum"), ("strip", "lstrip", "rstrip"), ("split", "rsplit"),
            ("floor", "ceil"), ("heappush", "heappop"), ("insert", "append"), ("pop", "popleft"),
            ("union", "intersection", "difference"), ("add", "update")]
# what a call whose name holds no function most often meant (error_edits.py, `not_callable`)
CALLABLE_BUILTINS = ("len", "str", "int", "list", "sorted", "sum", "max", "min", "abs", "set", "tuple", "bin", "float",
                     "round", "reversed", "ord", "chr", "hex", "oct", "dict", "bool", "repr", "any", "all")
STDLIB_MODULES = ("re", "math", "heapq", "collections", "itertools", "functools", "operator", "bisect", "string",
                  "sys", "copy", "random", "statistics", "datetime", "cmath", "array", "fractions", "decimal")
# names a missing `from M import name` most often brought into an MBPP-style program
STDLIB_NAMES = {"Counter": "collections", "defaultdict": "collections", "deque": "collections",
                "OrderedDict": "collections", "namedtuple": "collections", "reduce": "functools",
                "lru_cache": "functools", "cmp_to_key": "functools", "combinations": "itertools",
                "permutations": "itertools", "product": "itertools", "groupby": "itertools", "chain": "itertools",
                "accumulate": "itertools", "combinations_with_replacement": "itertools", "heappush": "heapq",
                "heappop": "heapq", "heapify": "heapq", "nlargest": "heapq", "nsmallest": "heapq",
                "bisect_left": "bisect", "bisect_right": "bisect", "sqrt": "math", "floor": "math", "ceil": "math",
                "gcd": "math", "pi": "math", "log": "math", "factorial": "math", "itemgetter": "operator",
                "ascii_lowercase": "string", "ascii_uppercase": "string", "maxsize": "sys", "inf": "math"}
TYPE_ATTRS = {t.__name__: [a for a in dir(t) if not a.startswith("_")] for t in (str, list, dict, set, tuple, int, float)}


def alternatives(old: str, group) -> list[str]:
    """The other operators of `old`'s group, its usual mistakes (FIRST) first."""
    rest = [o for o in group if o != old]
    return [o for o in FIRST.get(old, []) if o in rest] + [o for o in rest if o not in FIRST.get(old, [])]
