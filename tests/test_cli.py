"""The command line: generated flags, YAML recipes, clear errors instead of tracebacks."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from albert.cli import build_parser, config_from_args, main
from albert.finetune import FinetuneConfig
from albert.pretrain import PretrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


FINETUNE_RECIPES = sorted(CONFIGS.glob("finetune/*.yaml"))


def _recipe_data(task: str, root: Path, lines: list[str]) -> Path:
    """A few real sentences in the format each recipe's task reads."""
    import csv
    import json

    if task == "qa":  # SQuAD 2.0 JSON: one answerable and one unanswerable question
        context = " ".join(lines[:6])
        answer = lines[2].split()[0]
        qas = [
            {
                "id": "a",
                "question": "What comes first?",
                "answers": [{"text": answer, "answer_start": context.index(answer)}],
            },
            {"id": "b", "question": "What is missing?", "answers": [], "is_impossible": True},
        ]
        path = root / "train.json"
        path.write_text(json.dumps({"version": "v2.0", "data": [{"paragraphs": [{"context": context, "qas": qas}]}]}))
        return path
    if task == "multiple_choice":  # RACE JSON
        path = root / "train.json"
        race = {"article": " ".join(lines[:5]), "questions": ["Which?", "What?"], "answers": ["A", "C"]}
        race["options"] = [lines[5:9], lines[9:13]]
        path.write_text(json.dumps(race))
        return path
    path = root / "train.csv"  # GLUE-style pairs; numeric labels read as classes or as regression targets
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "sentence2", "label"])
        writer.writerows([lines[i], lines[i + 1], (i // 2) % 2] for i in range(0, 16, 2))
    return path


@pytest.mark.parametrize("path", FINETUNE_RECIPES, ids=lambda p: p.name)
def test_every_finetune_recipe_runs_an_optimizer_step(path, tmp_path, realdata, brown_tokenizer):
    """The shipped recipes as users run them (YAML numbers such as 1e-05 included), one real step each, with the
    recipe's values typed as declared."""
    import json

    import yaml
    from conftest import write_small_model

    recipe = yaml.safe_load(path.read_text())
    write_small_model(tmp_path / "model.json", vocab_size=8000)
    train = _recipe_data(recipe["task"], tmp_path, realdata.brown_lines()[:40])
    out = tmp_path / "out"
    args = ["finetune", "--config", str(path), "--train", str(train), "--out", str(out)]
    args += ["--init", f"random:{tmp_path / 'model.json'}", "--tokenizer", str(Path(brown_tokenizer.model_file).parent)]
    args += ["--max-steps", "1", "--batch-size", "2", "--max-seq-length", "128", "--no-progress"]
    assert main(args) == 0
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    step = next(r for r in steps if r.get("step") == 1)
    assert isinstance(step["loss"], float) and step["loss"] == step["loss"]  # a number, not NaN
    cfg = config_from_args(FinetuneConfig, argparse.Namespace(config=str(path)))
    assert cfg.learning_rate == float(recipe["learning_rate"]) and isinstance(cfg.learning_rate, float)
    assert cfg.warmup_ratio == float(recipe["warmup_ratio"]) and isinstance(cfg.max_steps, int)


def test_config_values_are_typed_wherever_they_come_from(tmp_path, capsys):
    from albert.errors import ConfigError

    cfg = FinetuneConfig(learning_rate="2e-05", max_steps="10", epochs=2, progress="false", eval="dev.csv")
    assert (cfg.learning_rate, cfg.max_steps, cfg.epochs, cfg.progress) == (2e-5, 10, 2.0, False)
    with pytest.raises(ConfigError, match=r"FinetuneConfig field 'learning_rate' must be > 0 or auto, found 'fast'"):
        FinetuneConfig(learning_rate="fast")
    with pytest.raises(ConfigError, match=r"'max_steps' must be .*int.*found 2.5"):
        FinetuneConfig(max_steps=2.5)
    (tmp_path / "bad.yaml").write_text("batch_size: lots\n")
    assert main(["finetune", "--config", str(tmp_path / "bad.yaml"), "--train", "t", "--init", "i", "--out", "o"]) == 2
    assert "'batch_size' must be an integer, found 'lots'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, flags",
    [
        (["prepare"], "--input, --tokenizer, --out"),
        (["finetune", "--init", "albert-base-v2", "--out", "o"], "--train"),
        (["pretrain", "--data", "d"], "--out"),
        (["serve"], "--model"),
    ],
)
def test_missing_required_flags_are_usage_errors(argv, flags, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and f"the following arguments are required: {flags}" in err
    assert "Traceback" not in err


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
            + ["--train", "t", "--init", "i", "--out", "o"]
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


def test_predict_names_what_a_model_reads_and_refuses_unknown_classes(models, tmp_path, capsys):
    # a multiple-choice model reads records, not bare texts
    assert main(["predict", "--model", str(models["mc"]), "some text"]) == 2
    wanted = "a multiple_choice model reads records: pass --input FILE.jsonl with passage, question, options"
    assert wanted in capsys.readouterr().err
    bad = tmp_path / "q.csv"  # CSV cannot hold a list of options
    bad.write_text("passage,question,options\np,q,a b c\n")
    assert main(["predict", "--model", str(models["mc"]), "--input", str(bad)]) == 2
    assert f"{bad}:2: field 'options' must be a list of strings, found str" in capsys.readouterr().err
    # a class no task predicts with
    config = json.loads((models["clf"] / "config.json").read_text())
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({**config, "architectures": ["AlbertForSomethingElse"]}))
    assert main(["predict", "--model", str(tmp_path / "odd"), "some text"]) == 2
    assert "a AlbertForSomethingElse is no task's model (known: AlbertForExtractive" in capsys.readouterr().err
