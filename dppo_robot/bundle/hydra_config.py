"""Load a Hydra YAML config of the reference DPPO implementation, safely, as plain data.

The reference configs (and the `.hydra/config.yaml` a Hydra run saves) keep their
interpolations unresolved: `${obs_dim}`, `${env.max_episode_steps}`, and resolvers the
reference launcher registers, most notably `${eval:'${obs_dim} * ${cond_steps}'}`, which
the reference evaluates with Python's `eval`. Here:

- `eval` is a safe arithmetic evaluator: numbers, + - * / // % **, unary +/-, parentheses,
  list/tuple literals, and the calls int, float, round, min, max, abs, len. It walks the
  parsed `ast`; names, attribute access, other calls, lambdas, comprehensions, strings and
  everything else are refused with an error naming the file and the expression. Nothing in
  the file is ever executed.
- `round_up` / `round_down` (math.ceil / floor, as the reference launcher registers them).
- `now` returns a fixed timestamp (1970-01-01 00:00:00) in the requested format, so
  `${now:%Y-%m-%d}` in log-directory names loads deterministically.
- `oc.env` does not read the environment: it returns a placeholder `<env:NAME>` (or the
  given default). The values it builds (log and data directories) are not needed to import
  a policy, and reading them would copy this machine's environment into bundle provenance.
- Any other resolver is an error naming the file and the resolver.

Composition is not supported: a `defaults:` list is ignored (only `_self_` is meaningful for
the flat reference configs and saved run configs), and the top-level `hydra:` section
(Hydra's own run settings) is dropped. Pass the saved, flat config of a run (its
`.hydra/config.yaml`) or a reference config file that does not compose others.

Resolution is bounded in size and time: one `eval` result holds at most MAX_LIST_ITEMS values
counted with nesting expanded (`[[0]*100000]*100000` is 10^10, refused), all `eval` results of
one config at most MAX_EVAL_TOTAL_ITEMS, and a resolution past MAX_RESOLVE_S seconds stops at
the next resolver call. Before resolving, the config's size with every `${node}` reference
expanded is estimated (references to references multiply) and a config past MAX_EXPANDED_SIZE
values and characters is refused; YAML aliases are refused for the same reason. Each refusal
is a one-line HydraConfigError naming the file.

The resolvers are registered only while a config resolves (under a lock) and the previous
registry entries are restored afterwards, so nothing leaks into the process's OmegaConf.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class HydraConfigError(ValueError):
    """A reference config that cannot be loaded; the message names the file and the problem."""


FIXED_NOW = dt.datetime(1970, 1, 1, 0, 0, 0)
MAX_EXPRESSION_CHARS = 1000
MAX_AST_NODES = 200
MAX_INT_BITS = 4096
MAX_LIST_ITEMS = 100_000  # values in one eval result, nesting expanded
MAX_EVAL_TOTAL_ITEMS = 1_000_000  # values in all eval results of one config
MAX_RESOLVE_S = 20.0  # wall time of one config's resolution
MAX_EXPANDED_SIZE = 200_000  # values + characters of the config with every ${node} reference expanded

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARYOPS: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CALLS: dict[str, Callable[..., Any]] = {
    "int": int,
    "float": float,
    "round": round,
    "min": min,
    "max": max,
    "abs": abs,
    "len": len,
}


class _RefusedError(Exception):
    """Raised inside the evaluator; turned into a HydraConfigError naming file and expression."""


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def expanded_items(v: Any, memo: dict[int, int] | None = None) -> int:
    """Values in v with nesting expanded (a list repeated by reference counts every repeat)."""
    if not isinstance(v, list | tuple):
        return 1
    memo = {} if memo is None else memo
    key = id(v)
    if key not in memo:
        memo[key] = 1 + sum(expanded_items(x, memo) for x in v)
    return memo[key]


def _check_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        raise _RefusedError(f"result {v} is not a finite number")
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > MAX_INT_BITS:
        raise _RefusedError(f"integer result exceeds {MAX_INT_BITS} bits")
    if isinstance(v, list | tuple):
        if len(v) > MAX_LIST_ITEMS:
            raise _RefusedError(f"list result exceeds {MAX_LIST_ITEMS} items")
        if expanded_items(v) > MAX_LIST_ITEMS + 1:
            raise _RefusedError(f"nested list result exceeds {MAX_LIST_ITEMS} values in total")
    return v


def _eval_node(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant):
        if _is_number(node.value):
            return node.value
        raise _RefusedError(f"constant {node.value!r} is not a number")
    if isinstance(node, ast.List | ast.Tuple):
        items = [_eval_node(e) for e in node.elts]
        return _check_value(items if isinstance(node, ast.List) else tuple(items))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARYOPS:
        v = _eval_node(node.operand)
        if not _is_number(v):
            raise _RefusedError("unary operator on a non-number")
        return _UNARYOPS[type(node.op)](v)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _eval_node(node.left), _eval_node(node.right)
        op = type(node.op)
        if op is ast.Pow:
            if not (_is_number(a) and _is_number(b)):
                raise _RefusedError("** needs numbers")
            big = isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 0
            if big and (b > MAX_INT_BITS or a.bit_length() * b > MAX_INT_BITS):
                raise _RefusedError(f"integer power exceeds {MAX_INT_BITS} bits")
        elif op is ast.Mult and isinstance(a, list | tuple) != isinstance(b, list | tuple):
            seq, n = (a, b) if isinstance(a, list | tuple) else (b, a)
            if not isinstance(n, int) or isinstance(n, bool):
                raise _RefusedError("a list can only be repeated by an integer")
            if len(seq) * max(n, 0) > MAX_LIST_ITEMS:
                raise _RefusedError(f"list result exceeds {MAX_LIST_ITEMS} items")
        elif op is ast.Add and isinstance(a, list | tuple) and isinstance(b, list | tuple):
            pass
        elif not (_is_number(a) and _is_number(b)):
            raise _RefusedError(f"operator {op.__name__} needs numbers")
        try:
            return _check_value(_BINOPS[op](a, b))
        except (ArithmeticError, TypeError, ValueError) as e:
            raise _RefusedError(f"{type(e).__name__}: {e}") from None
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _CALLS:
            raise _RefusedError(
                f"call of {ast.unparse(node.func)!r} is not allowed (allowed: {', '.join(sorted(_CALLS))})"
            )
        if node.keywords:
            raise _RefusedError("keyword arguments are not allowed")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _RefusedError("starred arguments are not allowed")
        args = [_eval_node(a) for a in node.args]
        name = node.func.id
        if name == "len":
            if len(args) != 1 or not isinstance(args[0], list | tuple):
                raise _RefusedError("len() takes one list")
        elif name in ("min", "max"):
            flat = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
            if not flat or not all(_is_number(v) for v in flat):
                raise _RefusedError(f"{name}() needs numbers")
        elif name == "round":
            if not 1 <= len(args) <= 2 or not _is_number(args[0]) or (len(args) == 2 and not isinstance(args[1], int)):
                raise _RefusedError("round() takes a number and optionally an integer")
        elif len(args) != 1 or not _is_number(args[0]):
            raise _RefusedError(f"{name}() takes one number")
        try:
            return _check_value(_CALLS[name](*args))
        except (ArithmeticError, TypeError, ValueError) as e:
            raise _RefusedError(f"{type(e).__name__}: {e}") from None
    if isinstance(node, ast.Name):
        raise _RefusedError(f"name {node.id!r} is not allowed")
    if isinstance(node, ast.Attribute):
        raise _RefusedError("attribute access is not allowed")
    raise _RefusedError(f"{type(node).__name__} is not allowed")


def safe_eval(expression: str) -> int | float | list | tuple:
    """Evaluate an arithmetic expression without executing code; raises ValueError when refused."""
    if not isinstance(expression, str):
        raise ValueError(f"expected an expression string, got {type(expression).__name__}")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not a valid expression ({e.msg})") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_AST_NODES:
        raise ValueError(f"expression has more than {MAX_AST_NODES} syntax nodes")
    try:
        return _eval_node(tree)
    except _RefusedError as e:
        raise ValueError(str(e)) from None
    except RecursionError:
        raise ValueError("expression nests too deeply") from None


# ----------------------------------------------------------------------------- resolvers
def _resolvers(source: str) -> dict[str, Callable[..., Any]]:
    deadline = time.monotonic() + MAX_RESOLVE_S
    spent = [0]  # values produced by eval so far

    def in_time(name: str) -> None:
        if time.monotonic() > deadline:
            raise HydraConfigError(f"{source}: resolving the config took over {MAX_RESOLVE_S:g} s (at ${{{name}:...}})")

    def eval_resolver(*args: Any) -> Any:
        in_time("eval")
        if len(args) != 1:
            raise HydraConfigError(f"{source}: ${{eval:...}} takes one quoted expression, got {len(args)} arguments")
        expr = args[0]
        if _is_number(expr):
            return expr
        try:
            value = safe_eval(expr)
        except ValueError as e:
            raise HydraConfigError(f"{source}: refused ${{eval:...}} expression {_short(expr)}: {e}") from None
        spent[0] += expanded_items(value)
        if spent[0] > MAX_EVAL_TOTAL_ITEMS:
            raise HydraConfigError(
                f"{source}: ${{eval:...}} results exceed {MAX_EVAL_TOTAL_ITEMS} values in total (at {_short(expr)})"
            )
        return value

    def rounding(fn: Callable[[float], int], name: str) -> Callable[[Any], int]:
        def resolver(value: Any) -> int:
            in_time(name)
            try:
                num = value if _is_number(value) else float(value)
            except (TypeError, ValueError):
                raise HydraConfigError(f"{source}: ${{{name}:...}} needs a number, got {value!r}") from None
            return fn(num)

        return resolver

    def now_resolver(pattern: str = "%Y-%m-%d_%H-%M-%S") -> str:
        return FIXED_NOW.strftime(str(pattern))

    def env_resolver(key: str, default: Any = None) -> Any:
        return default if default is not None else f"<env:{key}>"

    return {
        "eval": eval_resolver,
        "round_up": rounding(math.ceil, "round_up"),
        "round_down": rounding(math.floor, "round_down"),
        "now": now_resolver,
        "oc.env": env_resolver,
    }


_LOCK = threading.Lock()
_MISSING = object()


def _registry() -> dict | None:
    try:
        from omegaconf.basecontainer import BaseContainer

        reg = BaseContainer._resolvers
    except (ImportError, AttributeError):
        return None
    return reg if isinstance(reg, dict) else None


def _register(name: str, fn: Callable[..., Any]) -> None:
    register = getattr(OmegaConf, "register_resolver", None)
    if register is not None:  # omegaconf >= 2.4
        register(name, fn, replace=True, use_cache=False, annotation_validation="off")
    else:
        OmegaConf.register_new_resolver(name, fn, replace=True, use_cache=False)


@contextmanager
def private_resolvers(source: str) -> Iterator[None]:
    """Register the safe resolvers for one resolution; restore the registry afterwards."""
    with _LOCK:
        reg = _registry()
        mine = _resolvers(source)
        if reg is None:
            # Without access to the registry a replaced resolver could not be put back: leave
            # already-registered ones (e.g. the built-in oc.env) alone rather than destroy them.
            mine = {name: fn for name, fn in mine.items() if not OmegaConf.has_resolver(name)}
        saved = {name: reg.get(name, _MISSING) for name in mine} if reg is not None else {}
        try:
            for name, fn in mine.items():
                _register(name, fn)
            yield
        finally:
            for name in mine:
                prev = saved.get(name, _MISSING)
                if reg is not None and prev is not _MISSING:
                    reg[name] = prev
                elif OmegaConf.has_resolver(name):
                    OmegaConf.clear_resolver(name)


# ----------------------------------------------------------------------------- loading
def _short(text: Any, n: int = 300) -> str:
    r = repr(text)
    return r if len(r) <= n else r[: n - 3] + "..."


_REF = re.compile(r"\$\{([^${}:'\"\s]+)\}")  # a ${node} reference (not a resolver call)


def expanded_size(data: Any) -> tuple[int, str]:
    """Values + characters of plain config data with every ${node} reference expanded, and the largest key.

    References are memoised by target, so the estimate itself is linear in the file; it follows
    OmegaConf's absolute (`a.b`, `a[0]`) and relative (`.x`, `..x`) references.
    """
    memo: dict[str, int] = {}

    def lookup(tokens: list[str]) -> Any:
        node = data
        for t in tokens:
            if isinstance(node, dict):
                hit = [v for k, v in node.items() if str(k) == t]
                if not hit:
                    return None
                node = hit[0]
            elif isinstance(node, list) and t.isdigit() and int(t) < len(node):
                node = node[int(t)]
            else:
                return None
        return node

    def ref_size(ref: str, here: list[str]) -> int:
        dots = len(ref) - len(ref.lstrip("."))
        tokens = re.findall(r"[^.\[\]]+", ref)
        if dots:
            tokens = here[: max(len(here) - dots, 0)] + tokens
        key = ".".join(tokens)
        if key not in memo:
            memo[key] = 1  # a cycle counts once (OmegaConf refuses it when resolving)
            memo[key] = size(lookup(tokens), tokens)
        return memo[key]

    def size(v: Any, here: list[str]) -> int:
        if isinstance(v, dict):
            return 1 + sum(size(x, [*here, str(k)]) for k, x in v.items())
        if isinstance(v, list):
            return 1 + sum(size(x, [*here, str(i)]) for i, x in enumerate(v))
        if isinstance(v, str):
            return 1 + len(v) + sum(ref_size(r, here) for r in _REF.findall(v))
        return 1

    top = data if isinstance(data, dict) else {}
    sizes = {str(k): size(v, [str(k)]) for k, v in top.items()}
    worst = max(sizes, key=sizes.get) if sizes else ""
    return 1 + sum(sizes.values()), worst


def _refuse_aliases(text: str, source: str) -> None:
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise HydraConfigError(
                    f"{source}: YAML aliases (*{event.anchor}, line {line}) are not accepted; write the value out"
                )
    except yaml.YAMLError:
        return  # OmegaConf.load reports the syntax error


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def load_hydra_config(path: str | Path, notes: list[str] | None = None) -> dict[str, Any]:
    """Read, resolve and return a reference Hydra config as a plain dict.

    notes, when given, receives one line per thing ignored (a `defaults` list that names
    more than `_self_`, the `hydra` section).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise HydraConfigError(f"{source}: config file not found")
    try:
        _refuse_aliases(path.read_text(encoding="utf-8"), source)
        raw = OmegaConf.load(path)
    except HydraConfigError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise HydraConfigError(f"{source}: cannot read config ({getattr(e, 'strerror', None) or e})") from None
    except Exception as e:  # yaml and omegaconf grammar errors come in several types
        raise HydraConfigError(f"{source}: invalid YAML config: {_first_line(e)}") from None
    if not isinstance(raw, DictConfig):
        raise HydraConfigError(f"{source}: expected a mapping at the top level, got a list")
    try:  # read without resolving: `defaults: ${x}` must not resolve here
        defaults = OmegaConf.to_container(raw, resolve=False).get("defaults")
    except OmegaConfBaseException as e:
        raise HydraConfigError(f"{source}: cannot read config: {_first_line(e)}") from None
    if defaults is not None:
        items = OmegaConf.to_container(defaults, resolve=False) if OmegaConf.is_config(defaults) else defaults
        others = [d for d in (items if isinstance(items, list) else [items]) if d != "_self_"]
        if others and notes is not None:
            notes.append(
                f"{source}: defaults list {others} ignored (Hydra composition is not supported; "
                "pass the saved flat config of the run, .hydra/config.yaml)"
            )
        del raw["defaults"]
    if "hydra" in raw:
        del raw["hydra"]
    try:
        plain = OmegaConf.to_container(raw, resolve=False)
    except OmegaConfBaseException as e:
        raise HydraConfigError(f"{source}: cannot read config: {_first_line(e)}") from None
    total, worst = expanded_size(plain)
    if total > MAX_EXPANDED_SIZE:
        raise HydraConfigError(
            f"{source}: config expands to ~{total:.2g} values and characters through ${{...}} references "
            f"(most under key '{worst}'); at most {MAX_EXPANDED_SIZE} are resolved"
        )
    with private_resolvers(source):
        try:
            data = OmegaConf.to_container(raw, resolve=True, throw_on_missing=False)
        except HydraConfigError:
            raise
        except OmegaConfBaseException as e:
            key = getattr(e, "full_key", None)
            where = f" (key {str(key)!r})" if key else ""
            msg = _first_line(e)
            # our resolvers' messages already name the file
            msg = msg.split(f"{source}: ", 1)[1] if f"{source}: " in msg else msg
            raise HydraConfigError(f"{source}: cannot resolve config{where}: {msg}") from None
    if not isinstance(data, dict):
        raise HydraConfigError(f"{source}: expected a mapping at the top level")
    bad = _non_finite(data)
    if bad is not None:
        raise HydraConfigError(f"{source}: key {bad!r} is not a finite number (NaN/inf values are refused)")
    return data


def _non_finite(v: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN/inf float in plain data ("" = the top), or None."""
    if isinstance(v, float):
        return None if math.isfinite(v) else path
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list | tuple) else ()
    for k, x in items:
        found = _non_finite(x, f"{path}.{k}" if path else str(k))
        if found is not None:
            return found
    return None
