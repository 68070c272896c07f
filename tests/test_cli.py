"""The command line: generated flags, YAML recipes, clear errors instead of tracebacks."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from albert.cli import build_parser, config_from_args, main
from albert.finetune import FinetuneConfig
from albert.pretrain import PretrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recipe_is_a_valid_config(path):
    cls = PretrainConfig if path.parent.name == "pretrain" else FinetuneConfig
    cfg = config_from_args(cls, argparse.Namespace(config=str(path)))
    assert isinstance(cfg, cls)


def test_flags_override_yaml_and_yaml_overrides_defaults():
    args = build_parser().parse_args(
        [
            "pretrain",
            "--config",
            str(CONFIGS / "pretrain" / "tiny.yaml"),
            "--data",
            "d",
            "--out",
            "o",
            "--max-steps",
            "7",
            "--no-bf16",
        ]
    )
    cfg = config_from_args(PretrainConfig, args)
    assert (cfg.max_steps, cfg.model, cfg.bf16, cfg.batch_size, cfg.seed) == (7, "albert-tiny", False, 32, 12345)
    ft = config_from_args(
        FinetuneConfig,
        build_parser().parse_args(
            ["finetune", "--config", str(CONFIGS / "finetune" / "rte.yaml"), "--learning-rate", "1e-5"]
        ),
    )
    assert (ft.learning_rate, ft.batch_size, ft.max_steps, ft.dropout, ft.pair_column) == (
        1e-5,
        32,
        800,
        0.1,
        "sentence2",
    )


def test_unknown_yaml_field_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("max_stepz: 3\n")
    assert main(["pretrain", "--config", str(tmp_path / "bad.yaml"), "--data", "d", "--out", "o"]) == 2
    assert "unknown PretrainConfig field(s): max_stepz" in capsys.readouterr().err


def test_console_script_presets_and_errors():
    out = subprocess.run([sys.executable, "-m", "albert", "presets"], capture_output=True, text=True, check=True).stdout
    assert "albert-base-v2" in out and "11,683,584" in out and "222,595,584" in out
    bad = subprocess.run(
        [sys.executable, "-m", "albert", "predict", "--model", "/nonexistent", "x"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "/nonexistent" in bad.stderr


def test_predict_on_a_model_without_a_predict_command(tmp_path, capsys):
    from conftest import tiny_config

    from albert.heads import AlbertForMultipleChoice

    AlbertForMultipleChoice(tiny_config()).save_pretrained(tmp_path)
    assert main(["predict", "--model", str(tmp_path), "some text"]) == 2
    assert "holds a AlbertForMultipleChoice; prediction serves AlbertForMaskedLM" in capsys.readouterr().err
