# Two commands a fresh machine needs: `make demo` and `make test`.
# torch==2.13.0 is installed first, alone: an unpinned torch would pull the CUDA build (several GB).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-numerics lint bench bench-kerasrs clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[tf,dev]"
	# tensorflow-ranking (the listwise tutorial's losses and NDCG, the reference for torchrs's) pins tensorflow<2.16
	# for its estimator code; its Keras losses / metrics run on today's TF. parity._tf.import_tfr loads just those.
	$(PY) -m pip install --quiet --no-deps tensorflow-ranking==0.5.5
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m parity.demo --report reports/demo
	$(PY) -m parity validate reports/demo/export/tf_index reports/demo/export/torchrs_index --report reports/validate
	$(PY) -m parity run basic_retrieval --report reports/parity
	@echo "Demo report:       $(CURDIR)/reports/demo/report.md"
	@echo "Validation report: $(CURDIR)/reports/validate/report.md"
	@echo "Parity report:     $(CURDIR)/reports/parity/report.md"

test: $(STAMP)
	$(PY) -m pytest

# The tests marked `numerics` (BLAS / oneDNN / reduction results held to a stated tolerance) once more on
# other CPU code paths, so that an assertion tied to one CPU's rounding fails here and not on a user's machine:
# MKL's COMPATIBLE branch (no AVX kernels, other blocking), ATen's AVX2 kernels where the CPU has AVX-512,
# and TensorFlow's Eigen kernels instead of oneDNN. `.ci/run` runs it after `make test`: 339 tests, 60 s on the
# 2-core AMD EPYC at load average ~2 (4 min 38 s while other work loaded it to ~10).
NUMERICS_ENV := MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=avx2 TF_ENABLE_ONEDNN_OPTS=0
test-numerics: $(STAMP)
	$(NUMERICS_ENV) $(PY) -m pytest -m numerics -p no:cacheprovider

KR_VENV := .venv-kerasrs
KR_STAMP := $(KR_VENV)/.installed

# Keras RS (Keras 3, torch backend), the benchmarks' third column, cannot share a process with tf-keras/TFRS:
# its own venv, torch==2.13.0 first and alone so that keras / keras-rs never pull another torch.
$(KR_STAMP):
	$(PYTHON) -m venv $(KR_VENV)
	$(KR_VENV)/bin/pip install --quiet --upgrade pip
	$(KR_VENV)/bin/pip install --quiet torch==2.13.0
	$(KR_VENV)/bin/pip install --quiet keras keras-rs numpy
	KERAS_BACKEND=torch $(KR_VENV)/bin/python -c "import keras_rs, keras; assert keras.backend.backend() == 'torch'"
	touch $(KR_STAMP)

bench-kerasrs: $(KR_STAMP)

bench: $(STAMP) $(KR_STAMP)
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json
	$(PY) benchmarks/render.py
	@echo "Benchmark table: $(CURDIR)/benchmarks/results/RESULTS.md"

lint: $(STAMP)
	$(VENV)/bin/ruff check torchrs converters parity tests benchmarks
	$(VENV)/bin/ruff format --check torchrs converters parity tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(KR_VENV) reports .pytest_cache
