"""The ``albert`` command: a thin argparse layer in which each subcommand calls one library function."""

from __future__ import annotations

import argparse
import sys

import albert


def cmd_presets(args: argparse.Namespace) -> int:
    """Print every preset with its shape and encoder+pooler parameter count (counted on the meta device)."""
    import torch

    print(f"{'preset':<20} {'layers':>6} {'hidden':>6} {'E':>4} {'heads':>5} {'ffn':>6} {'vocab':>6} {'act':<9} params")
    for name in sorted(albert.PRESETS):
        cfg = albert.AlbertConfig.from_name(name)
        with torch.device("meta"):
            count = albert.AlbertModel(cfg).num_parameters()
        print(
            f"{name:<20} {cfg.num_hidden_layers:>6} {cfg.hidden_size:>6} {cfg.embedding_size:>4} "
            f"{cfg.num_attention_heads:>5} {cfg.intermediate_size:>6} {cfg.vocab_size:>6} {cfg.hidden_act:<9} {count:,}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="albert", description="ALBERT toolkit: pretrain, fine-tune, convert, serve.")
    parser.add_argument("--version", action="version", version=f"albert-lite {albert.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help=cmd_presets.__doc__).set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except albert.AlbertError as err:  # bad input: one clear line, no traceback
        print(f"albert: error: {err}", file=sys.stderr)
        return 2
