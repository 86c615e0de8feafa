# The README's quick start: `make lacrimosa` and `make test`. Each sets up .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.maia-installed
# Where the CPU wheel of torch comes from: pip's configured index by default (a local wheel on maia's build
# machines); on plain PyPI, which serves the CUDA build, set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
# Two busy cores thrash with OpenMP's spinning threads.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: lacrimosa test lint benchmarks tokenizer clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# Without CUDA, install the CPU wheel of torch first (an unpinned torch pulls a multi-GB CUDA build).
	@if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)); fi
	$(PY) -m pip install --quiet -e ".[dev,demo]"
	@# DeepSpeed is optional (the recipes' ZeRO launchers); its test skips where it does not install.
	DS_BUILD_OPS=0 $(PY) -m pip install --quiet "deepspeed>=0.16" || echo "make: deepspeed did not install; its test will skip"
	@touch $(STAMP)

lacrimosa: $(STAMP)
	$(VENV)/bin/maia lacrimosa --out lacrimosa

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check maia_hf tests benchmarks recipes
	$(VENV)/bin/ruff format --check maia_hf tests benchmarks recipes

benchmarks: $(STAMP)
	$(PY) benchmarks/bench_codec.py

clean-venv:
	rm -rf $(VENV)

# Rewrite the saved default tokenizer (tests check that tokenizer/ equals what the code writes).
tokenizer: $(STAMP)
	$(PY) -c "from maia_hf.tokenization_maia import save_default_tokenizer; save_default_tokenizer('tokenizer')"
