# RVOS ensemble: every target reads paths.env; any of its variables can be overridden on the
# command line (make submission DATA=/path/rvosdata SPLIT=test) or by the environment. Every node of the recipe is a
# run folder $(WORK)/$(SPLIT)/<node>/ whose run.json marks it complete; Make rebuilds a node only
# when it is missing or older than its inputs. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

# paths.env. Precedence, highest first: the command line, the environment (a non-empty value),
# the file. `include` would override the environment, so its values are put back afterwards.
# A relative value of the file is relative to the file's folder; a value of the command line or
# the environment is taken as given (relative to the current folder), as rvos_core.paths does.
PATH_VARS := DATA PRETRAINED CHECKPOINTS WORK SPLIT
FOLDER_VARS := $(filter-out SPLIT,$(PATH_VARS))
$(foreach v,$(PATH_VARS),$(if $(filter environment,$(origin $(v))),$(eval ENV_$(v) := $(value $(v)))))
include $(ROOT)/paths.env
from_file = $(if $(filter /% ~ ~/%,$(1)),$(patsubst ~%,$(HOME)%,$(1)),$(if $(1),$(ROOT)/$(1)))
$(foreach v,$(FOLDER_VARS),$(if $(filter file,$(origin $(v))),$(eval $(v) := $(call from_file,$($(v))))))
$(foreach v,$(PATH_VARS),$(if $(ENV_$(v)),$(eval $(v) := $(ENV_$(v)))))
export $(PATH_VARS)
export RVOS_PATHS_ENV := $(ROOT)/paths.env

DATASET ?= refytvos
VENV := $(ROOT)/.venv
VENV_UNINEXT := $(ROOT)/.venv-uninext
PY := $(VENV)/bin/python
PY_UNINEXT := $(VENV_UNINEXT)/bin/python
W := $(WORK)/$(SPLIT)

# torch 2.13.0 comes from the local CPU wheel folder when there is one (uv does not read pip.conf);
# elsewhere set UV_EXTRA_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) or UV_FIND_LINKS.
TORCH_WHEELS ?= /opt/wheels
ifneq ($(wildcard $(TORCH_WHEELS)),)
export UV_FIND_LINKS ?= $(TORCH_WHEELS)
endif

# Options passed to every model / propagation / vote command (e.g. SHARD=0/4 DEVICE=cuda PRECISION=bf16).
SHARD ?=
DEVICE ?= cpu
PRECISION ?= fp32
DATA_OPTS = --data $(DATA) --dataset $(DATASET) --split $(SPLIT)
RUN_OPTS = $(DATA_OPTS) $(if $(SHARD),--shard $(SHARD))
DEVICE_OPTS = --device $(DEVICE) --precision $(PRECISION)
FUSION = $(PY) -m rvos_fusion
INFER = $(PY) -m rvos_core.infer
PROPAGATE = $(PY) -m rvos_vos.propagate
# Options of $(MAKE) in a recipe: the same Makefile, from any folder (make -f /path/to/Makefile).
SUBMAKE_ARGS = --no-print-directory -f $(ROOT)/Makefile
# Extra propagation options (vos/README.md), e.g. PROPAGATE_OPTS="--expression-group 8".
PROPAGATE_OPTS ?=

PACKAGES := core fusion eval models/referformer vos models/soc models/mutr
PACKAGE_FILES := $(foreach p,$(PACKAGES),$(ROOT)/$(p)/pyproject.toml)

.PHONY: help env env-uninext test lint format demo submission models propagated round1 round2 \
        infer-referformer infer-mutr infer-soc infer-uninext-vith infer-uninext-convnext \
        propagate-aot propagate-deaot vote import-pth validate evaluate bench bench-full clean-work \
        paths

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%+-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

paths: ## print the paths every target uses (paths.env, then the environment, then the command line)
	@$(foreach v,$(PATH_VARS),echo '$(v) = $($(v))';)

# ---------------------------------------------------------------------------------------------
# Environments and checks

$(VENV)/.stamp: $(ROOT)/env/requirements-main.txt $(ROOT)/env/requirements-tools.txt $(PACKAGE_FILES)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r $(ROOT)/env/requirements-tools.txt
	VIRTUAL_ENV=$(VENV) $(VENV)/bin/uv pip install --quiet -r $(ROOT)/env/requirements-main.txt \
	    $(foreach p,$(PACKAGES),-e $(ROOT)/$(p))
	touch $@

env: $(VENV)/.stamp ## build the main environment .venv from env/ (pinned)

# UNINEXT's own environment (env/requirements-uninext.txt): core + models/uninext, built by the
# main environment's uv.
$(VENV_UNINEXT)/.stamp: $(ROOT)/env/requirements-uninext.txt $(ROOT)/core/pyproject.toml \
                        $(ROOT)/models/uninext/pyproject.toml | $(VENV)/.stamp
	python3 -m venv $(VENV_UNINEXT)
	VIRTUAL_ENV=$(VENV_UNINEXT) $(VENV)/bin/uv pip install --quiet \
	    -r $(ROOT)/env/requirements-uninext.txt -e $(ROOT)/core -e $(ROOT)/models/uninext
	touch $@

env-uninext: $(VENV_UNINEXT)/.stamp ## build the UNINEXT environment .venv-uninext from env/ (pinned)

test: $(VENV)/.stamp ## run every test environment (tox: lint + one per subproject + e2e)
	cd $(ROOT) && $(VENV)/bin/tox $(TOX_ARGS)

lint: $(VENV)/.stamp ## ruff check + format check
	cd $(ROOT) && $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.stamp ## apply ruff fixes and formatting
	cd $(ROOT) && $(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# First line of every recipe that reads the dataset (a recipe line, not a phony prerequisite, so
# that `make -q` can tell an up-to-date chain).
CHECK_DATA = @test -d "$(DATA)" || { echo "error: $(or $(DATA),(empty)): DATA is not a folder: set DATA in paths.env or run make ... DATA=/path/rvosdata" >&2; exit 2; }

clean-work: ## remove $(WORK)/$(SPLIT) (every run folder of this split)
	rm -rf $(W)

# ---------------------------------------------------------------------------------------------
# The default recipe (DESIGN.md), node by node. Each node is $(W)/<node>/run.json.

MODEL_NODES := soc mutr referformer_ft uninext_vith uninext_convnext
PROPAGATED_NODES := soc+aot mutr+aot referformer_ft+aot referformer_ft+deaot uninext_vith+deaot

models: $(foreach n,$(MODEL_NODES),$(W)/$(n)/run.json) ## run the five models
propagated: $(foreach n,$(PROPAGATED_NODES),$(W)/$(n)/run.json) ## propagate the model runs
round1: $(W)/soc_mutr_referft/run.json $(W)/vit_convnext_soc/run.json ## the two round-1 votes
round2: $(W)/final/run.json ## the round-2 votes (en2, final)
submission: $(W)/submission.zip ## the whole chain -> $(WORK)/$(SPLIT)/submission.zip

infer-referformer: $(W)/referformer_ft/run.json ## ReferFormer-ft model run
infer-mutr: $(W)/mutr/run.json ## MUTR model run
infer-soc: $(W)/soc/run.json ## SOC model run
infer-uninext-vith: $(W)/uninext_vith/run.json ## UNINEXT ViT-H model run (.venv-uninext)
infer-uninext-convnext: $(W)/uninext_convnext/run.json ## UNINEXT ConvNeXt-L model run (.venv-uninext)

$(W)/referformer_ft/run.json:
	$(CHECK_DATA)
	$(INFER) referformer --checkpoint $(CHECKPOINTS)/referformer_ft.pth --out $(@D) $(RUN_OPTS) $(DEVICE_OPTS)
# MUTR's input short side (models/mutr/README.md): 360 as upstream's mutr.pth, which round 1 fuses;
# MUTR_OPTS="--option short_side=432" reproduces upstream's MUTR Annotations instead.
MUTR_OPTS ?= --option short_side=360
$(W)/mutr/run.json:
	$(CHECK_DATA)
	$(INFER) mutr --checkpoint $(CHECKPOINTS)/mutr.pth --out $(@D) $(RUN_OPTS) $(DEVICE_OPTS) $(MUTR_OPTS)
$(W)/soc/run.json:
	$(CHECK_DATA)
	$(INFER) soc --checkpoint $(CHECKPOINTS)/soc.tar --out $(@D) $(RUN_OPTS) $(DEVICE_OPTS)
$(W)/uninext_vith/run.json:
	$(CHECK_DATA)
	$(PY_UNINEXT) -m rvos_core.infer uninext_vith --checkpoint $(CHECKPOINTS)/uninext_vith.pth --out $(@D) $(RUN_OPTS) $(DEVICE_OPTS)
$(W)/uninext_convnext/run.json:
	$(CHECK_DATA)
	$(PY_UNINEXT) -m rvos_core.infer uninext_convnext --checkpoint $(CHECKPOINTS)/uninext_convnext.pth --out $(@D) $(RUN_OPTS) $(DEVICE_OPTS)

# A node that no rule makes (an imported or voted one) and that is not there: say so, by name.
$(W)/%/run.json:
	@echo "error: $(@D): no complete run folder (run.json) and no rule makes it; make it first (make import-pth NODE=..., make vote OUT=...)" >&2; exit 2

# Propagation of any run: $(W)/<run>+aot and $(W)/<run>+deaot.
$(W)/%+aot/run.json: $(W)/%/run.json
	$(PROPAGATE) aot --checkpoint $(CHECKPOINTS)/aot_swinl.pth --run $(<D) --out $(@D) $(RUN_OPTS) $(DEVICE_OPTS) $(PROPAGATE_OPTS)
$(W)/%+deaot/run.json: $(W)/%/run.json
	$(PROPAGATE) deaot --checkpoint $(CHECKPOINTS)/deaot_swinl.pth --run $(<D) --out $(@D) $(RUN_OPTS) $(DEVICE_OPTS) $(PROPAGATE_OPTS)

propagate-aot: ## propagate RUN=<node> with AOT -> $(W)/<node>+aot
	@test -n "$(RUN)" || { echo "usage: make propagate-aot RUN=<node under $(W)>" >&2; exit 2; }
	$(MAKE) $(SUBMAKE_ARGS) $(W)/$(RUN)+aot/run.json
propagate-deaot: ## propagate RUN=<node> with DeAOT -> $(W)/<node>+deaot
	@test -n "$(RUN)" || { echo "usage: make propagate-deaot RUN=<node under $(W)>" >&2; exit 2; }
	$(MAKE) $(SUBMAKE_ARGS) $(W)/$(RUN)+deaot/run.json

# Vote rules. Ref-YouTube-VOS: pair votes (expressions 2i and 2i+1 describe one object). MeViS and
# Ref-DAVIS: every expression votes alone with the per-expression form of the same rules (round 1:
# >= 2 of the 3 runs, the majority that >= 3 of 6 is for a pair; round 2: >= 3 of 4, upstream's rule
# for an unpaired expression).
ifeq ($(DATASET),refytvos)
ROUND1_RULE = --grouping pairs --min-votes 3 --unpaired reference
ROUND2_RULE = --grouping pairs --min-votes 4 --unpaired 3
else
ROUND1_RULE = --grouping none --min-votes 2
ROUND2_RULE = --grouping none --min-votes 3
endif

# Round 1: votes on the model runs (>= 3 of 6; an unpaired expression takes run 0's mask; key
# frames from run 0). COMPAT=1 reproduces upstream's unpaired-expression bug (spec §7.1).
ROUND1 = $(FUSION) vote $(ROUND1_RULE) --key-frames-from 0 \
         $(if $(COMPAT),--compat-unpaired-sigmoid) $(RUN_OPTS)
$(W)/soc_mutr_referft/run.json: $(W)/soc/run.json $(W)/mutr/run.json $(W)/referformer_ft/run.json
	$(ROUND1) --out $(@D) $(^D)
$(W)/vit_convnext_soc/run.json: $(W)/uninext_vith/run.json $(W)/uninext_convnext/run.json $(W)/soc/run.json
	$(ROUND1) --out $(@D) $(^D)

# Round 2: votes on propagated runs (>= 4 of 8; an unpaired expression needs >= 3 of 4).
ROUND2 = $(FUSION) vote $(ROUND2_RULE) $(RUN_OPTS)
$(W)/en2/run.json: $(W)/soc_mutr_referft+aot/run.json $(W)/soc+aot/run.json $(W)/mutr+aot/run.json $(W)/referformer_ft+aot/run.json
	$(ROUND2) --out $(@D) $(^D)
$(W)/final/run.json: $(W)/vit_convnext_soc+deaot/run.json $(W)/uninext_vith+deaot/run.json $(W)/en2/run.json $(W)/referformer_ft+deaot/run.json
	$(ROUND2) --out $(@D) $(^D)

$(W)/submission.zip: $(W)/final/run.json
	$(FUSION) submission $(<D) --out $@ $(RUN_OPTS)

# ---------------------------------------------------------------------------------------------
# The demo: the recipe's Make chain on generated data. Model and propagation outputs are SIMULATED
# (rvos_fusion.demo), so it needs no checkpoint; every fusion node, the submission and the report are real.

DEMO := $(WORK)/demo
demo: $(VENV)/.stamp ## run the whole chain on generated data (simulated model outputs) and report J&F
	$(PY) -m rvos_fusion.demo prepare --out $(DEMO)
	$(MAKE) $(SUBMAKE_ARGS) submission DATA=$(DEMO)/data WORK=$(DEMO)/work SPLIT=valid \
	    PROPAGATE="$(PY) -m rvos_fusion.demo propagate"
	$(PY) -m rvos_fusion.demo report --out $(DEMO)
	@echo "demo submission: $(DEMO)/work/valid/submission.zip"

# ---------------------------------------------------------------------------------------------
# Tools on single nodes

vote: ## OUT=<node> RUNS="<node> ..." [VOTE_OPTS="--min-votes 2 ..."]: any vote -> $(W)/$(OUT)
	@test -n "$(OUT)" -a -n "$(RUNS)" || { echo "usage: make vote OUT=<node> RUNS='<node> ...' [VOTE_OPTS=...]" >&2; exit 2; }
	$(FUSION) vote --out $(W)/$(OUT) $(addprefix $(W)/,$(RUNS)) $(RUN_OPTS) $(VOTE_OPTS)

import-pth: ## PTH="<file or chunks>" NODE=<node> DOMAIN=logit|probability: upstream .pth -> run folder
	@test -n "$(PTH)" -a -n "$(NODE)" -a -n "$(DOMAIN)" || { echo "usage: make import-pth PTH='a.pth ...' NODE=<node> DOMAIN=logit|probability" >&2; exit 2; }
	$(FUSION) split-pth $(PTH) --domain $(DOMAIN) --out $(W)/$(NODE) $(RUN_OPTS)

validate: ## NODE=<node>: check a run against the dataset (every video, expression, frame, size)
	@test -n "$(NODE)" || { echo "usage: make validate NODE=<node>" >&2; exit 2; }
	$(PY) -m rvos_core.run_cli validate $(W)/$(NODE) $(DATA_OPTS)

evaluate: ## NODE=<node>: J&F of a run against the split's ground truth (MeViS valid_u, Ref-DAVIS, DAVIS)
	@test -n "$(NODE)" || { echo "usage: make evaluate NODE=<node> DATASET=mevis SPLIT=valid_u" >&2; exit 2; }
	$(PY) -m rvos_eval $(W)/$(NODE) $(DATA_OPTS) --out $(W)/$(NODE)/eval

bench: $(VENV)/.stamp ## quick benchmarks (minutes on a CPU): eval, fusion, the driver with tiny models
	$(PY) $(ROOT)/bench/eval/run.py
	$(PY) $(ROOT)/bench/fusion/run.py
	for model in referformer mutr soc; do $(PY) $(ROOT)/bench/infer/run.py $$model --variant tiny || exit 1; done
bench-full: $(VENV)/.stamp $(VENV_UNINEXT)/.stamp ## full-size models and propagators on DEVICE / PRECISION (hours on a CPU)
	$(PY) $(ROOT)/bench/infer/referformer.py --device $(DEVICE) --precision $(PRECISION) --videos 3
	$(PY) $(ROOT)/bench/infer/mutr.py --device $(DEVICE) --precision $(PRECISION) --videos 3
	$(PY) $(ROOT)/bench/infer/soc.py --device $(DEVICE) --precision $(PRECISION) --videos 3
	$(PY_UNINEXT) $(ROOT)/bench/infer/uninext.py --device $(DEVICE) --precision $(PRECISION)
	$(PY) $(ROOT)/bench/propagate/run.py --device $(DEVICE) --precision $(PRECISION) --expressions 1
	$(PY) $(ROOT)/bench/propagate/run.py --device $(DEVICE) --precision $(PRECISION) --expressions 4
