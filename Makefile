# MedRobustBench developer entry points. `make demo` and `make test` are the README's Quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Torch is installed first, so the project's own `torch>=2.2` requirement is already met.
# This pair is on the disk of the reference machine; elsewhere override, e.g.
#   make demo TORCH="torch torchvision"
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# Versions known to work together (pip freeze of a passing environment). Without them pip's
# resolver backtracks for many minutes over torchattacks' old `requests~=2.25.1` pin. Users
# on other platforms may drop them: make demo TORCH="torch torchvision" CONSTRAINTS=
CONSTRAINTS ?= constraints.txt
STAMP  := $(VENV)/.installed
# The main job: train ResNet-18 on PneumoniaMNIST if the zoo lacks it, evaluate it clean and
# under the `quick` attack preset, write the results JSON.
DEMO_ARGS ?= --dataset pneumoniamnist --model resnet18 --train-if-missing --download --epochs 10 \
	--attacks quick
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

.PHONY: setup browser sandbox demo test test-slow lint zoo-docs docs site site-shots device-prep

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/bench evaluate $(DEMO_ARGS)

# The browser tests drive Debian's Chromium: installed here when it is missing and we may (root
# with apt-get); otherwise they are skipped, and this says in one line how to include them.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium for the browser tests (apt-get install chromium)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
	      || echo "could not install Chromium: the browser tests will be skipped"; \
	  else \
	    echo "Chromium is missing: the browser tests will be skipped; 'sudo apt-get install chromium' includes them"; \
	  fi; \
	fi

# Submissions run under Debian's bubblewrap (benchmark/defenses/sandbox.py), and so do the
# sandbox tests (tests/unit/test_sandbox.py, test_isolation.py): installed here when it is
# missing and we may; otherwise those tests are skipped (CI sets BENCH_REQUIRE_SANDBOX=1).
sandbox:
	@if ! command -v bwrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap for the sandbox tests (apt-get install bubblewrap)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q bubblewrap >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; } \
	      || echo "could not install bubblewrap: the sandbox tests will be skipped"; \
	  else \
	    echo "bubblewrap is missing: the sandbox tests will be skipped; 'sudo apt-get install bubblewrap' includes them"; \
	  fi; \
	fi

test: setup browser sandbox
	$(OFFLINE) $(BIN)/python -m pytest

test-slow: setup
	$(OFFLINE) $(BIN)/python -m pytest -m slow

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

zoo-docs: setup
	$(BIN)/bench zoo report --out docs/model_zoo.md

docs: setup
	$(BIN)/bench report update docs/attacks.md docs/corruptions.md docs/defenses.md docs/leaderboard.md docs/protocol.md \
		data_cards/breastmnist.md data_cards/ham10000_220.md data_cards/pneumoniamnist.md \
		data_cards/retinamnist.md --root leaderboard/results

site: setup
	$(BIN)/bench leaderboard build --out leaderboard/site --root leaderboard/results

site-shots: site
	$(BIN)/python docs/screenshots.py leaderboard/site docs/images

# What a lent GPU machine needs and does not have (benchmarks/README.md, "On a lent GPU"): the
# packages missing from its image, unpacked for Python 3.12 into .devprep/site (pyautoattack
# without its 45 MB of example checkpoints), and the three MedMNIST files, in a folder git
# ignores; a device call carries .devprep and sets PYTHONPATH=.devprep/site:.
DEVICE_WHEELS := medmnist==3.0.2 torchattacks==3.5.1 pyautoattack==0.2.0 jsonschema==4.26.0 \
	jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 \
	imagecorruptions-imaug==1.1.5 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
device-prep: setup
	mkdir -p .git/info && (grep -qxF '/.devprep/' .git/info/exclude 2>/dev/null || echo '/.devprep/' >> .git/info/exclude)
	rm -rf .devprep && mkdir -p .devprep/whl .devprep/site .devprep/data/medmnist
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .devprep/whl $(DEVICE_WHEELS)
	for w in .devprep/whl/*.whl; do $(BIN)/python -m zipfile -e $$w .devprep/site; done
	rm -rf .devprep/whl .devprep/site/pyautoattack/examples
	cp ../shared/data/medmnist/breastmnist.npz ../shared/data/medmnist/pneumoniamnist.npz \
		../shared/data/medmnist/retinamnist.npz .devprep/data/medmnist/
	du -sh .devprep
