# Two commands a fresh machine needs: `make demo` and `make test`.
# torch==2.13.0 is installed first, alone: an unpinned torch would pull the CUDA build (several GB).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-numerics lint bench bench-compatible roofline bench-kerasrs bench-serve bench-serve-compile records gpu-deps gpu-check clean torchrec

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[tf,dev,serve]"
	# tensorflow-ranking (the listwise tutorial's losses and NDCG, the reference for torchrs's) pins tensorflow<2.16
	# for its estimator code; its Keras losses / metrics run on today's TF. parity._tf.import_tfr loads just those.
	$(PY) -m pip install --quiet --no-deps tensorflow-ranking==0.5.5
	# tensorflow-serving-api: TF Serving's gRPC protos and stubs for torchrs.serve. It requires tensorflow (the
	# full wheel, beside tensorflow-cpu); --no-deps keeps the TF of the tf extra, and the server never imports TF.
	$(PY) -m pip install --quiet --no-deps tensorflow-serving-api==2.21.0
	$(install_torchrec)
	touch $(STAMP)

# TorchRec + FBGEMM for torchrs.distributed (sharded embedding tables). Not a pyproject extra, pip cannot resolve
# it: torchrec pins torchmetrics==1.0.3 (torchrs needs >= 1.3; it runs with 1.9) and its metadata pulls the CUDA
# fbgemm-gpu wheel (~500 MB) over the CPU one; torchrec 1.9 / fbgemm 1.9 need torch 2.14. So the CPU pair that
# matches torch 2.13 goes in without dependencies, then their pure-Python dependencies, pinned (~40 MB, seconds).
define install_torchrec
	$(PY) -m pip install --quiet --no-deps torchrec==1.8.0 fbgemm-gpu-cpu==1.8.0
	$(PY) -m pip install --quiet tensordict==0.15.3 pyre-extensions==0.0.32
	$(PY) -c "import torchrec, fbgemm_gpu.split_embedding_configs"
endef

# Re-installs the pinned TorchRec pair into an existing venv (`make setup` already does it).
torchrec: $(STAMP)
	$(install_torchrec)

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

# Parity without TensorFlow (parity/record.py, parity/replay.py, parity/gpu_check.py). `make records` runs the TF
# side of the three GPU-check scenarios once, here, on the CPU (full size, 8.7 MB in all), into parity/records,
# which the repository keeps: CI replays them (tests/parity/test_committed_records.py) and fails, saying
# `make records`, once a scenario's configuration, TF-side code or data no longer matches them; rerun it then and
# commit the result. `make gpu-check` replays them and measures throughput with torch alone, e.g. on a GPU machine
# that has PyTorch with CUDA and no TensorFlow: copy the working tree (and reports/gpu-deps, see below) there.
RECORDS ?= parity/records
GPU_DEPS ?= reports/gpu-deps
GPU_PYTHON ?= python3
GPU_DEVICE ?= cuda
GPU_REPORT ?= reports/gpu-check
# Extra options of python -m parity.gpu_check, e.g. "--batch 1024 --corpus 100000" for a CPU run.
GPU_CHECK_ARGS ?=
# The pure-Python (or abi3) packages torchrs needs besides torch and numpy, pinned to this venv's versions, for a
# torch-only machine that has no network: put on PYTHONPATH by gpu-check when present.
GPU_DEP_NAMES := torchmetrics|lightning-utilities|safetensors|tqdm|packaging|typing-extensions|typing_extensions

records: $(STAMP)
	$(PY) -m parity record basic_retrieval basic_ranking dcn --out $(RECORDS)
	@du -sh $(RECORDS)/*

gpu-deps: $(STAMP)
	mkdir -p $(dir $(GPU_DEPS))
	$(PY) -m pip freeze | grep -iE '^($(GPU_DEP_NAMES))==' > $(GPU_DEPS).txt
	$(PY) -m pip install --quiet --no-deps --target $(GPU_DEPS) -r $(GPU_DEPS).txt
	@du -sh $(GPU_DEPS)

# Torch only, no venv needed; sized for under 5 minutes on a GPU. GPU_DEVICE=cpu runs the same script on a CPU.
gpu-check:
	PYTHONPATH=$(CURDIR)$(if $(wildcard $(GPU_DEPS)),:$(CURDIR)/$(GPU_DEPS)) $(GPU_PYTHON) -m parity.gpu_check \
		--records $(RECORDS) --device $(GPU_DEVICE) --report $(GPU_REPORT) $(GPU_CHECK_ARGS)

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
	$(PY) benchmarks/render.py benchmarks/results/latest.json
	@echo "Benchmark table: $(CURDIR)/benchmarks/results/RESULTS.md"

# The same cases under MKL's COMPATIBLE code path (issue 14: the targets hold there too); the Keras RS, ScaNN,
# converter, sharding and load cases do not depend on MKL's branch and are left out. Table in results/compatible/.
bench-compatible: $(STAMP)
	MKL_CBWR=COMPATIBLE $(PY) -m pytest benchmarks/test_training.py benchmarks/test_evaluation.py \
		benchmarks/test_retrieval_index.py benchmarks/test_preprocessing.py -k "not scann" \
		--benchmark-only --benchmark-json=benchmarks/results/compatible.json
	$(PY) benchmarks/render.py benchmarks/results/compatible.json --out benchmarks/results/compatible

# Roofline of the ranking / DCN models: this CPU's fp32 GEMM ceiling (torch and TF, large square products and
# the models' exact shapes), the GEMM FLOPs of a training step, and what TFRS / torchrs achieve in the
# latest `make bench` run. Writes benchmarks/results/roofline.md and roofline.json (about 1 minute).
roofline: $(STAMP)
	$(PY) benchmarks/roofline.py --results benchmarks/results/latest.json --out benchmarks/results

# torchrs.serve vs TF's SavedModel signature behind the same server, REST on 127.0.0.1 (about 3 minutes).
# Loopback load test, torchrs.serve vs TF's signature behind the same server: about 2-3 minutes on 2
# cores; writes benchmarks/results/serving.json and serving.md (the table the README cites).
bench-serve: $(STAMP)
	$(PY) benchmarks/serving.py --clients 8 --seconds 15 --out benchmarks/results/serving.json

# torchrs.serve --compile in process: compile time and per-batch latency, eager vs compiled
# (writes benchmarks/results/serve_compile.json and serve_compile.md).
bench-serve-compile: $(STAMP)
	$(PY) benchmarks/serve_compile.py --seconds 3 --out benchmarks/results/serve_compile.json

lint: $(STAMP)
	$(VENV)/bin/ruff check torchrs converters parity tests benchmarks tools
	$(VENV)/bin/ruff format --check torchrs converters parity tests benchmarks tools
	$(VENV)/bin/mypy
	# No import cycles in converters/ or torchrs/ (function-level imports included), and torchrs never imports
	# converters/ or parity/: grimp's import graph.
	PYTHONPATH=. $(PY) tools/import_cycles.py converters torchrs

clean:
	rm -rf $(VENV) $(KR_VENV) reports .pytest_cache
