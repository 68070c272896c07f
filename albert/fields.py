"""Typed config fields: every run config converts its values to the declared types, wherever they came from.

argparse types flags, but YAML reads ``1e-05`` as a string (YAML 1.1 wants a dot in a float) and Python callers pass
what they like; without this, ``lr='1e-05'`` reached AdamW as a traceback. ``coerce_fields(config)`` (called from each
run config's ``__post_init__``) converts lossless cases (a numeric string, an integral float, "true"/"false", a single
string where a list belongs) and raises a ConfigError naming the field, the expected type and the value otherwise.
It then checks the class's ``LIMITS`` (field name → Range or OneOf): a zero batch size, a warmup ratio above 1 or an
unknown optimizer is refused where the config is built, whatever built it, instead of failing deep inside torch or
being accepted silently. The CLI turns these errors into argparse errors naming the flag.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from albert.errors import ConfigError

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _convert(kind: Any, value: Any) -> Any:
    """``value`` as ``kind`` (int, float, bool, str, list[X], or X | None); ValueError when it is not one."""
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value)
            except ValueError:
                continue
        raise ValueError
    if typing.get_origin(kind) is list:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError
        return [_convert(args[0], item) for item in items] if args else list(items)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError
    if kind is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        number = float(value) if isinstance(value, (str, float)) else None
        if number is None or not number.is_integer():
            raise ValueError
        return int(number)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        return float(value)
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    return value  # dicts and other structured fields are checked by their owners


def _describe(kind: Any) -> str:
    text = str(kind).replace("typing.", "")
    return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(
        getattr(kind, "__name__", text), text
    )


@dataclass(frozen=True)
class Range:
    """A number's valid interval; None = unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False

    def allows(self, value: Any) -> bool:
        if isinstance(value, float) and value != value:  # NaN is in no interval
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class OneOf:
    """A string from a fixed set."""

    choices: tuple[str, ...]

    def allows(self, value: Any) -> bool:
        return value in self.choices

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)


@dataclass(frozen=True)
class DeviceName:
    """auto, cpu, mps, cuda or cuda:N (whether that device exists is checked when it is chosen: devices.choose)."""

    def allows(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value) is not None

    def describe(self) -> str:
        return "auto, cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class RateOrAuto:
    """A learning rate: a number > 0, or "auto" (chosen by a range test)."""

    def allows(self, value: Any) -> bool:
        return value == "auto" or (isinstance(value, float) and value > 0 and value != float("inf"))

    def describe(self) -> str:
        return "> 0 or auto"


POSITIVE = Range(0, low_open=True)  # > 0
AT_LEAST_1 = Range(1)  # counts: steps, sizes, intervals
NON_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1)
DROPOUT = Range(0, 1, high_open=True)  # 1 would drop everything
PORT = Range(0, 65535)
# CPU threads: more than the machine has only slows the model down, and a huge count crashes torch (rc 139)
THREADS = Range(1, os.cpu_count() or 1)


class FieldError(ConfigError):
    """A config field with a value of the wrong type or out of its range; ``field`` names it."""

    def __init__(self, owner: str, field: str, expected: str, value: Any):
        self.field, self.expected, self.value = field, expected, value
        super().__init__(f"{owner} field '{field}' must be {expected}, found {value!r}")


def coerce_fields(config: Any) -> None:
    """Convert every field of the dataclass instance ``config`` to its declared type, in place, then check the
    class's LIMITS (None, the 'not set' of optional fields, is always allowed)."""
    owner = type(config).__name__
    hints = typing.get_type_hints(type(config))
    limits = getattr(type(config), "LIMITS", {})
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        try:
            value = _convert(hints[field.name], value)
        except (ValueError, TypeError, OverflowError):
            raise FieldError(owner, field.name, _describe(hints[field.name]), value) from None
        setattr(config, field.name, value)
        limit = limits.get(field.name)
        if limit is not None and value is not None and not limit.allows(value):
            raise FieldError(owner, field.name, limit.describe(), value)


def field_help(cls: type) -> dict[str, str]:
    """Each field's trailing comment in the class source (``batch_size: int = 32  # sequences per step``): the one
    place a field is explained serves readers of the code and ``--help`` alike."""
    import inspect
    import io
    import tokenize

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source (a frozen install): flags still work, without help text
        return {}
    helps: dict[str, str] = {}
    current, at_line_start, previous = None, True, None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.NEWLINE, tokenize.DEDENT, tokenize.INDENT):
            current, at_line_start = None, True
            continue
        if token.type == tokenize.NL:
            continue
        if token.type == tokenize.COMMENT:
            if current is not None:
                helps[current] = (helps.get(current, "") + " " + token.string.lstrip("#").strip()).strip()
            continue
        if at_line_start:
            previous, at_line_start = token, False
            continue
        if current is None and previous is not None and previous.type == tokenize.NAME and token.string == ":":
            current = previous.string
        previous = None
    names = {f.name for f in dataclasses.fields(cls)}
    return {name: text for name, text in helps.items() if name in names}
