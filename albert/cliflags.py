"""Flags generated from config dataclasses, for the ``albert`` command (albert/cli.py).

Each config field becomes a flag with its comment as help (albert/fields.py: field_help), its choices or range, and
its default; a YAML ``--config`` overrides the defaults and flags override the YAML. Required fields may come from
the YAML instead of a flag, so ``config_from_args`` checks them after merging and reports a missing one as argparse
does. Hub flags (--revision, --cache-dir, --local-files-only, --token) are added where a hub id may be named.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from albert.errors import AlbertError
from albert.fields import AT_LEAST_1, FieldError, OneOf, Range, field_help


# ----------------------------------------------------------------------------------------------------------------
# Flags generated from a config dataclass; a YAML --config overrides the defaults, flags override the YAML.
# ----------------------------------------------------------------------------------------------------------------
def add_dataclass_flags(
    parser: argparse.ArgumentParser, cls: type, required: tuple[str, ...] = (), skip: tuple[str, ...] = ()
) -> None:
    hints = typing.get_type_hints(cls)
    limits = getattr(cls, "LIMITS", {})
    explained = field_help(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        args = typing.get_args(kind)
        options = [a for a in args if a is not type(None)]
        if isinstance(kind, types.UnionType) and len(options) > 1:  # "float | str": coerce_fields picks the type
            kind = str
        elif isinstance(kind, types.UnionType) and type(None) in args:  # "int | None" → int
            kind = options[0]
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = explained.get(field.name, field.name.replace("_", " "))
        if "(required" in help_text or "(default" in help_text:
            pass  # the field's own comment says it, in its own words: once is enough
        elif field.name in required:
            help_text += " (required)"
        elif default is not None:  # None is "not set": the comment says what happens then
            help_text += f" (default: {default})"
        help_text = help_text.replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, nargs="+", default=argparse.SUPPRESS, help=help_text)
        elif isinstance(limits.get(field.name), OneOf):
            choices = limits[field.name].choices
            parser.add_argument(flag, choices=choices, default=argparse.SUPPRESS, help=help_text)
        else:
            limit = limits.get(field.name)
            help_text += f"; {limit.describe()}" if limit is not None else ""
            metavar = {int: "N", float: "X"}.get(kind, "VALUE" if kind is not str else None)
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=help_text, metavar=metavar)
    parser.add_argument("--config", help="YAML file of field: value overrides (configs/)")
    # Required fields may come from the YAML instead of a flag, so argparse cannot enforce them; config_from_args
    # checks them after merging and reports a missing one as argparse does.
    parser.set_defaults(_required=required, _parser=parser)


def config_from_args(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None):
    values: dict[str, Any] = dict(base or {})
    from_yaml: dict[str, Any] = {}
    if getattr(args, "config", None):
        import yaml

        path = Path(args.config)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise AlbertError(f"{path}: cannot read the YAML config ({err})") from None
        if not isinstance(loaded, dict):
            raise AlbertError(f"{path}: expected a mapping of field: value")
        values.update(loaded)
        from_yaml = loaded
    names = {f.name for f in dataclasses.fields(cls)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"{args.config}: " if set(unknown) & set(from_yaml) else ""
        raise AlbertError(f"{where}unknown {cls.__name__} field(s): {', '.join(unknown)}")
    missing = [name for name in getattr(args, "_required", ()) if values.get(name) in (None, "", [])]
    if missing:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing)
        args._parser.error(f"the following arguments are required: {flags} (as flags or in --config)")
    try:
        return cls(**values)
    except FieldError as err:  # named as the user wrote it: the flag, or the field of the YAML file
        flag = "--" + err.field.replace("_", "-")
        if err.field in vars(args) or err.field not in from_yaml:
            args._parser.error(f"argument {flag}: must be {err.expected}, found {err.value!r}")
        raise AlbertError(f"{args.config}: field '{err.field}' must be {err.expected}, found {err.value!r}") from None


def bounded(kind: type, limit: Range):
    """An argparse ``type`` that converts to ``kind`` and checks ``limit`` (for flags that are not config fields)."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not limit.allows(value):
            raise argparse.ArgumentTypeError(f"must be {limit.describe()}, found {value!r}")
        return value

    convert.__name__ = kind.__name__
    return convert


COUNT = bounded(int, AT_LEAST_1)
SEQUENCE_LENGTH = bounded(int, Range(4))


def add_hub_flags(parser: argparse.ArgumentParser, config_fields: bool = False) -> None:
    """--token everywhere a hub id may be named; --revision/--cache-dir/--local-files-only unless the command's
    config dataclass already has them as fields."""
    if not config_fields:
        parser.add_argument("--revision", help="hub: branch, tag or commit (default: main)")
        parser.add_argument("--cache-dir", help="hub: cache folder (default: HF_HUB_CACHE, shared with transformers)")
        parser.add_argument("--local-files-only", action="store_true", help="hub: use the cache only, no network")
    parser.add_argument("--token", help="hub: access token for private or gated repositories (default: HF_TOKEN)")


def hub_options(args: argparse.Namespace):
    from albert.hub import HubOptions

    return HubOptions(args.revision, args.cache_dir, args.token, args.local_files_only)
