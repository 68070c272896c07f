"""The CLI explains itself: every flag of every subcommand has help text, every subcommand's help ends with example
invocations, and every example parses (so the examples cannot drift from the flags)."""

from __future__ import annotations

import argparse
import shlex

import pytest

from albert import cli


def _subcommands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from _subcommands(sub, f"{prefix}{name} ")
                else:
                    yield f"{prefix}{name}", sub


SUBCOMMANDS = dict(_subcommands(cli.build_parser()))


def test_every_subcommand_is_covered():
    assert set(SUBCOMMANDS) == set(cli.EXAMPLES)
    assert {"finetune", "predict", "serve", "tokenizer train"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_flag_has_help_and_the_help_ends_with_examples(name):
    parser = SUBCOMMANDS[name]
    silent = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert not silent, f"albert {name}: no help text for {silent}"
    text = parser.format_help()
    assert text.rstrip().splitlines()[-1].strip().startswith(("albert ", "cat ", "echo ", "torchrun ")), text[-300:]
    assert "examples:" in text


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_no_flag_says_the_same_thing_twice(name):
    """A flag's help says "(required)" or its default once, and never "default: None" (unset: its text says what
    happens then); the summary line of `albert --help` names what the command does."""
    for action in SUBCOMMANDS[name]._actions:
        text = " ".join((action.help or "").split())
        said = "/".join(action.option_strings) or action.dest
        assert text.count("(required") <= 1 and text.count("(default") <= 1, f"albert {name} {said}: {text}"
        assert "default: None" not in text, f"albert {name} {said}: {text}"
    assert "Fine-tune a classifier" not in cli.build_parser().format_help()  # finetune trains every task


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_example_parses(name, monkeypatch):
    for example in cli.EXAMPLES[name]:
        words = shlex.split(example.split("|")[-1])
        argv = words[words.index("albert") + 1 :] if "albert" in words else None
        assert argv is not None, example
        args = cli.build_parser().parse_args(argv)  # argparse exits (SystemExit) on a flag that does not exist
        assert args.func is SUBCOMMANDS[name].get_default("func"), example


def test_version_and_defaults_are_shown(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith("albert-lite ")
    text = SUBCOMMANDS["finetune"].format_help()
    assert "(default: 0.1); in [0, 1]" in text  # --warmup-ratio: its default and its range
    assert "> 0 or auto" in text  # --learning-rate: a number or auto (unset: by the model's width, its comment says)
    assert "{classification,multi_label,regression,ner,multiple_choice,qa,summarization,similarity}" in text


def test_help_and_one_command_parse_without_the_heavy_modules():
    """`albert --help` and `albert predict --help` do not import torch (the config modules of other commands do):
    help is instant, and the command itself imports what it needs."""
    import subprocess
    import sys

    code = (
        "import sys; from albert import cli; cli.build_parser(''); cli.build_parser('predict'); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
