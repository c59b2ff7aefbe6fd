"""PAL (program-aided language models): the model writes a program; a sandbox computes its answer.

The sandbox never calls ``eval``/``exec`` on the generated code. It parses it with ``ast`` and
accepts only straight-line arithmetic: an optional ``def solution():`` wrapper with a docstring,
assignments of arithmetic expressions to names, and ``return``. Each expression is checked node by
node (numbers, known names, + - * / // % **, unary minus, and numexpr's math functions) and then
evaluated by numexpr with only the program's own variables in scope. Imports, attribute access,
subscripts, other calls, strings, loops and lambdas are refused, so no file, network or
interpreter access is reachable from generated code.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable

from ..errors import UsageError

# The few-shot prompt of the PAL paper (GSM8K), as the book uses it through langchain's PALChain.
PAL_PROMPT = '''Q: Olivia has $23. She bought five bagels for $3 each. How much money does she have left?

# solution in Python:


def solution():
    """Olivia has $23. She bought five bagels for $3 each. How much money does she have left?"""
    money_initial = 23
    bagels = 5
    bagel_cost = 3
    money_spent = bagels * bagel_cost
    money_left = money_initial - money_spent
    result = money_left
    return result


Q: Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?

# solution in Python:


def solution():
    """Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?"""
    golf_balls_initial = 58
    golf_balls_lost_tuesday = 23
    golf_balls_lost_wednesday = 2
    golf_balls_left = golf_balls_initial - golf_balls_lost_tuesday - golf_balls_lost_wednesday
    result = golf_balls_left
    return result


Q: {question}

# solution in Python:
'''

FUNCTIONS = frozenset(
    {
        "sqrt",
        "abs",
        "exp",
        "expm1",
        "log",
        "log10",
        "log1p",
        "sin",
        "cos",
        "tan",
        "arcsin",
        "arccos",
        "arctan",
        "arctan2",
        "sinh",
        "cosh",
        "tanh",
        "ceil",
        "floor",
    }
)
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd)
MAX_STATEMENTS = 200
MAX_EXPONENT = 1000


class SandboxError(UsageError):
    """Generated code that the sandbox refuses to run, with the reason."""


def extract_program(completion: str) -> str:
    """The code of a completion: a fenced block if there is one, else the text up to the next question."""
    fenced = re.search(r"```(?:python)?\n(.*?)```", completion, re.DOTALL)
    code = fenced.group(1) if fenced else completion.split("\nQ:")[0]
    return code.strip("\n")


def _check_expression(node: ast.AST, known: set[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise SandboxError(f"only numbers are allowed, not {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id not in known:
            raise SandboxError(f"name {node.id!r} is used before it is assigned")
    elif isinstance(node, ast.BinOp):
        if not isinstance(node.op, _OPERATORS):
            raise SandboxError(f"operator {type(node.op).__name__} is not arithmetic")
        if (
            isinstance(node.op, ast.Pow)
            and isinstance(node.right, ast.Constant)
            and isinstance(node.right.value, int | float)
            and abs(node.right.value) > MAX_EXPONENT
        ):
            raise SandboxError(f"exponent {node.right.value} is too large")
        _check_expression(node.left, known)
        _check_expression(node.right, known)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, _OPERATORS):
            raise SandboxError(f"operator {type(node.op).__name__} is not arithmetic")
        _check_expression(node.operand, known)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            name = ast.unparse(node.func)
            raise SandboxError(f"call to {name}() is not allowed; only {', '.join(sorted(FUNCTIONS))}")
        for argument in node.args:
            _check_expression(argument, known)
    elif isinstance(node, ast.Attribute):
        raise SandboxError(f"attribute access ({ast.unparse(node)}) is not allowed")
    elif isinstance(node, ast.Subscript):
        raise SandboxError(f"subscripts ({ast.unparse(node)}) are not allowed")
    else:
        raise SandboxError(f"{type(node).__name__} is not arithmetic")


def _evaluate(node: ast.expr, variables: dict[str, float]) -> float:
    import numexpr
    import numpy

    try:
        with numpy.errstate(all="ignore"):  # overflow shows as inf, refused below
            value = numexpr.evaluate(ast.unparse(node), local_dict=dict(variables), global_dict={})
    except (ArithmeticError, ValueError, TypeError, KeyError) as error:
        raise SandboxError(f"{ast.unparse(node)} cannot be computed: {error}") from None
    number = value.item()
    if isinstance(number, float) and not math.isfinite(number):
        raise SandboxError(f"{ast.unparse(node)} is not a finite number")
    return number


def run_program(code: str) -> float | int:
    """The value the program returns (or its ``result``/``answer``, or its last assignment)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise SandboxError(f"the program does not parse: {error.msg} (line {error.lineno})") from None
    body = tree.body
    if len(body) == 1 and isinstance(body[0], ast.FunctionDef):
        function = body[0]
        if function.args.args or function.args.vararg or function.args.kwarg or function.decorator_list:
            raise SandboxError("def solution() must take no arguments and have no decorators")
        body = function.body
    if len(body) > MAX_STATEMENTS:
        raise SandboxError(f"the program has {len(body)} statements; the limit is {MAX_STATEMENTS}")
    variables: dict[str, float] = {}
    last = None
    for statement in body:
        if (
            isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ):
            continue  # a docstring
        if isinstance(statement, ast.Assign):
            if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
                raise SandboxError(f"line {statement.lineno}: assign to one plain name")
            _check_expression(statement.value, set(variables))
            last = variables[statement.targets[0].id] = _evaluate(statement.value, variables)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            expression = ast.BinOp(
                left=ast.Name(statement.target.id, ast.Load()), op=statement.op, right=statement.value
            )
            _check_expression(expression, set(variables))
            last = variables[statement.target.id] = _evaluate(expression, variables)
        elif isinstance(statement, ast.Return) and statement.value is not None:
            _check_expression(statement.value, set(variables))
            return _evaluate(statement.value, variables)
        else:
            raise SandboxError(
                f"line {statement.lineno}: {type(statement).__name__} is not allowed; "
                "only assignments of arithmetic and return"
            )
    for name in ("result", "answer"):
        if name in variables:
            return variables[name]
    if last is None:
        raise SandboxError("the program computes nothing")
    return last


def pal(question: str, llm: Callable[[str], str]) -> tuple[float | int, str]:
    """Ask ``llm`` for a program answering ``question`` and run it; returns (answer, program)."""
    if not question.strip():
        raise UsageError("question is empty")
    program = extract_program(llm(PAL_PROMPT.format(question=question)))
    return run_program(program), program
