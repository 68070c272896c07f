"""Typed config fields: every run config converts its values to the declared types, wherever they came from.

argparse types flags, but YAML reads ``1e-05`` as a string (YAML 1.1 wants a dot in a float) and Python callers pass
what they like; without this, ``lr='1e-05'`` reached AdamW as a traceback. ``coerce_fields(config)`` (called from each
run config's ``__post_init__``) converts lossless cases (a numeric string, an integral float, "true"/"false", a single
string where a list belongs) and raises a ConfigError naming the field, the expected type and the value otherwise.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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


def coerce_fields(config: Any) -> None:
    """Convert every field of the dataclass instance ``config`` to its declared type, in place."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        try:
            setattr(config, field.name, _convert(hints[field.name], value))
        except (ValueError, TypeError, OverflowError):
            raise ConfigError(
                f"{type(config).__name__} field '{field.name}' must be {_describe(hints[field.name])}, found {value!r}"
            ) from None
