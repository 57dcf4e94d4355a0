"""A small Go template renderer: enough of Go's text/template to render Ollama chat templates the way
Ollama does, so that an exported Modelfile can be checked against the training template here.

Supported: {{ value }}, if / else if / else, range (with `$i, $m :=`), the functions and, or, not, eq,
ne, len, lt, le, gt, ge, slice, json, variables (declared with `:=`, assigned with `=`), fields, string and
number literals, and the `{{-` / `-}}` whitespace trimming. A map or list prints as Go's encoding/json writes
it, as Ollama's tool types (api.Tool, the tool-call arguments) print themselves.
"""

from __future__ import annotations

import json
import re

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+')
_ASSIGN = re.compile(r"(\$\w*)\s*(:=|=)\s*(.+)", re.S)


def go_json(value) -> str:
    """`value` as Go's json.Marshal writes it: compact, with <, > and & escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_FUNCS = {
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
    "not": lambda x: not _truth(x),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "len": len,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "slice": lambda x, i=0, j=None: x[i:j],
    "json": go_json,
}


class GoTemplateError(ValueError):
    """A Go template this renderer cannot read; the message names the construct."""


def _truth(value) -> bool:
    return bool(value)


def _lex(template: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        parts.append(("text", text))
        parts.append(("action", m.group(2).strip()))
        pos = m.end()
        if m.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
    parts.append(("text", template[pos:]))
    return [p for p in parts if p != ("text", "")]


def _parse(parts: list[tuple[str, str]], i: int = 0, stop: tuple[str, ...] = ()) -> tuple[list, int, str]:
    nodes: list = []
    while i < len(parts):
        kind, body = parts[i]
        i += 1
        if kind == "text":
            nodes.append(("text", body))
            continue
        word = body.split(None, 1)[0] if body else ""
        if word in ("end", "else"):
            if word not in stop:
                raise GoTemplateError(f"{{{{ {body} }}}} without an opening if or range.")
            return nodes, i, body
        if word == "if":
            branches, else_body = [], []
            cond = body[2:].strip()
            while True:
                inner, i, ended = _parse(parts, i, ("end", "else"))
                branches.append((cond, inner))
                if ended.startswith("else if"):
                    cond = ended[len("else if"):].strip()
                    continue
                if ended == "else":
                    else_body, i, ended = _parse(parts, i, ("end",))
                break
            nodes.append(("if", branches, else_body))
        elif word == "range":
            spec = body[5:].strip()
            names: list[str] = []
            if ":=" in spec:
                decl, spec = spec.split(":=", 1)
                names = [n.strip() for n in decl.split(",")]
            inner, i, _ = _parse(parts, i, ("end",))
            nodes.append(("range", names, spec.strip(), inner))
        elif assign := _ASSIGN.fullmatch(body):
            nodes.append(("assign", *assign.groups()))
        else:
            nodes.append(("value", body))
    if stop:
        raise GoTemplateError(f"A Go template block is not closed with {{{{ end }}}} (looking for {stop}).")
    return nodes, i, ""


def _eval(expr: str, scope: dict):
    tokens = _TOKEN.findall(expr)
    value, rest = _command(tokens, scope)
    if rest:
        raise GoTemplateError(f"Unexpected {' '.join(rest)!r} in {{{{ {expr} }}}}.")
    return value


def _command(tokens: list[str], scope: dict):
    args = []
    while tokens and tokens[0] != ")":
        tok = tokens.pop(0)
        if tok == "(":
            value, tokens = _command(tokens, scope)
            if not tokens or tokens.pop(0) != ")":
                raise GoTemplateError("Unbalanced parentheses in a Go template.")
            args.append(value)
        else:
            args.append(_operand(tok, scope))
    if args and callable(args[0]):
        return args[0](*args[1:]), tokens
    if len(args) != 1:
        raise GoTemplateError(f"Cannot evaluate {args!r} in a Go template.")
    return args[0], tokens


def _operand(tok: str, scope: dict):
    if tok in _FUNCS:
        return _FUNCS[tok]
    if tok.startswith('"'):
        return json.loads(tok)
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    if tok.startswith("$"):
        name, _, path = tok.partition(".")
        value = _frame(scope, name)[name]
    elif tok.startswith("."):
        value, path = scope["dot"], tok[1:]
    else:
        raise GoTemplateError(f"Unknown function or value {tok!r} in a Go template.")
    for field in filter(None, path.split(".")):
        # A struct that prints as its JSON (Ollama's api.Tool) is held as that JSON: its field Function is "function".
        json_name = field[:1].lower() + field[1:]
        if isinstance(value, dict) and field not in value and json_name in value:
            field = json_name
        if not isinstance(value, dict) or field not in value:
            raise GoTemplateError(f"No field {field!r} in {tok!r}.")
        value = value[field]
    return value


def _frame(scope: dict, name: str) -> dict:
    """The innermost block's variables that hold `name` (a block sees those of the blocks around it)."""
    frame = next((f for f in reversed(scope["vars"]) if name in f), None)
    if frame is None:
        raise GoTemplateError(f"Undefined variable {name} in a Go template.")
    return frame


def _block(scope: dict, dot, **variables) -> dict:
    return {"dot": dot, "vars": [*scope["vars"], variables]}


def _run(nodes: list, scope: dict, out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "value":
            value = _eval(node[1], scope)
            out.append("" if value is None else go_json(value) if isinstance(value, (dict, list)) else str(value))
        elif node[0] == "assign":
            _, name, op, expr = node
            (scope["vars"][-1] if op == ":=" else _frame(scope, name))[name] = _eval(expr, scope)
        elif node[0] == "if":
            for cond, body in node[1]:
                if _truth(_eval(cond, scope)):
                    _run(body, _block(scope, scope["dot"]), out)
                    break
            else:
                _run(node[2], _block(scope, scope["dot"]), out)
        else:
            _, names, expr, body = node
            for index, item in enumerate(_eval(expr, scope) or []):
                variables = {names[0]: index, names[1]: item} if len(names) == 2 else {names[0]: item} if names else {}
                _run(body, _block(scope, item, **variables), out)


def render_go(template: str, data: dict) -> str:
    nodes, _, _ = _parse(_lex(template))
    out: list[str] = []
    _run(nodes, {"dot": data, "vars": [{"$": data}]}, out)
    return "".join(out)
