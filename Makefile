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
# Where a stage's videos run (docs/distributed.md): local, or ray (the Ray cluster at RAY_ADDRESS,
# else a local Ray; make env-ray first). RAY_WORKERS and RAY_GPU_FRACTION pass through too.
EXECUTOR ?= local
export EXECUTOR
DATA_OPTS = --data $(DATA) --dataset $(DATASET) --split $(SPLIT)
RUN_OPTS = $(DATA_OPTS) $(if $(SHARD),--shard $(SHARD))
DEVICE_OPTS = --device $(DEVICE) --precision $(PRECISION)
FUSION = $(PY) -m rvos_fusion
INFER = $(PY) -m rvos_nn.infer
PROPAGATE = $(PY) -m rvos_vos.propagate
# Options of $(MAKE) in a recipe: the same Makefile, from any folder (make -f /path/to/Makefile).
SUBMAKE_ARGS = --no-print-directory -f $(ROOT)/Makefile
# Extra propagation options (vos/README.md), e.g. PROPAGATE_OPTS="--expression-group 8".
PROPAGATE_OPTS ?=
# Propagators whose command propagates several runs at once (vos/README.md); empty: one run a command.
# None with EXECUTOR=ray: such a command runs in one process, a single run's videos go to the workers.
JOINT_PROPAGATORS ?= $(if $(filter ray,$(EXECUTOR)),,aot deaot)
# $(call JOINT_PAIRS,<propagator>,<input nodes>), in the recipe line of a propagation that shares its
# stage and propagator with others (rvos_core.recipe): a shell substitution giving
# "--run $(W)/<input> --out $(W)/<input>+<propagator>" for each of those others that Make would
# rebuild now (its input up to date, itself not), so that one command propagates them together.
JOINT_QUERY = $(MAKE) $(SUBMAKE_ARGS) -q
JOINT_PAIRS = $(if $(filter $(1),$(JOINT_PROPAGATORS)),$$(for n in $(2); do \
    $(JOINT_QUERY) $(W)/$$n/run.json 2>/dev/null && ! $(JOINT_QUERY) $(W)/$$n+$(1)/run.json 2>/dev/null \
    && printf ' --run %s --out %s' $(W)/$$n $(W)/$$n+$(1); done))

PACKAGES := core nn fusion eval models/referformer vos models/soc models/mutr models/sam3 train report
# core's C kernels (rvos_core._kernels) are compiled when core is installed: a change rebuilds them.
PACKAGE_FILES := $(foreach p,$(PACKAGES),$(ROOT)/$(p)/pyproject.toml) $(ROOT)/core/src/rvos_core/_kernels.c

.PHONY: help env env-uninext env-ray test lint format demo demo-run demo-simulated zoo submission recipe vote import-pth validate train finetune train-tiny world \
        evaluate report segment bench bench-full clean-work paths

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%+-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

paths: ## print the paths every target uses (paths.env, then the environment, then the command line)
	@$(foreach v,$(PATH_VARS),echo '$(v) = $($(v))';)

# ---------------------------------------------------------------------------------------------
# Environments and checks

# Environments are built with compiled bytecode (uv's --compile-bytecode for the installed
# packages, compileall for ours, which are editable): no command pays for compiling at start-up,
# even where PYTHONDONTWRITEBYTECODE is set.
COMPILE_SOURCES = $(1)/bin/python -m compileall -q $(foreach p,$(2),$(ROOT)/$(p)/src)

$(VENV)/.stamp: $(ROOT)/env/requirements-main.txt $(ROOT)/env/requirements-tools.txt $(PACKAGE_FILES)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r $(ROOT)/env/requirements-tools.txt
	VIRTUAL_ENV=$(VENV) $(VENV)/bin/uv pip install --quiet --compile-bytecode \
	    -r $(ROOT)/env/requirements-main.txt $(foreach p,$(PACKAGES),-e $(ROOT)/$(p))
	$(call COMPILE_SOURCES,$(VENV),$(PACKAGES))
	touch $@

env: $(VENV)/.stamp ## build the main environment .venv from env/ (pinned)

# UNINEXT's own environment (env/requirements-uninext.txt): core + nn + models/uninext + train
# + eval (UNINEXT's training and its validation hook run here: make train MODEL=uninext_...),
# built by the main environment's uv.
$(VENV_UNINEXT)/.stamp: $(ROOT)/env/requirements-uninext.txt $(ROOT)/core/pyproject.toml \
                        $(ROOT)/core/src/rvos_core/_kernels.c \
                        $(ROOT)/nn/pyproject.toml $(ROOT)/models/uninext/pyproject.toml \
                        $(ROOT)/train/pyproject.toml $(ROOT)/eval/pyproject.toml | $(VENV)/.stamp
	python3 -m venv $(VENV_UNINEXT)
	VIRTUAL_ENV=$(VENV_UNINEXT) $(VENV)/bin/uv pip install --quiet --compile-bytecode \
	    -r $(ROOT)/env/requirements-uninext.txt -e $(ROOT)/core -e $(ROOT)/nn -e $(ROOT)/models/uninext \
	    -e $(ROOT)/train -e $(ROOT)/eval
	$(call COMPILE_SOURCES,$(VENV_UNINEXT),core nn eval models/uninext train)
	touch $@

env-uninext: $(VENV_UNINEXT)/.stamp ## build the UNINEXT environment .venv-uninext from env/ (pinned)

# Ray (EXECUTOR=ray) in .venv and, when it exists, .venv-uninext: its stages' workers run there too.
env-ray: $(VENV)/.stamp ## add the optional Ray extra (env/requirements-ray.txt) for EXECUTOR=ray
	$(foreach v,$(VENV) $(wildcard $(VENV_UNINEXT)),VIRTUAL_ENV=$(v) $(VENV)/bin/uv pip install \
	    --quiet --compile-bytecode -r $(ROOT)/env/requirements-ray.txt &&) true

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
# The recipe (docs/recipes.md): its node graph is data, rvos_core/recipes/$(RECIPE).toml or a .toml
# path. `python3 -m rvos_core.recipe makefile` (standard library only) writes its rules into build/:
# one target per stage (models, propagated, round1, round2 for lsvos2023), infer-<model> per model
# node, and a pattern rule plus propagate-<propagator> RUN=<node> per propagator. Each node is
# $(W)/<node>/run.json. The generated rules use the variables below.

RECIPE ?= lsvos2023
RECIPE_FILE := $(if $(filter %.toml,$(RECIPE)),$(abspath $(RECIPE)),$(ROOT)/core/src/rvos_core/recipes/$(RECIPE).toml)
RECIPE_MK := $(ROOT)/build/recipe-$(basename $(notdir $(RECIPE_FILE))).mk
INFER_main = $(INFER)
INFER_uninext = $(PY_UNINEXT) -m rvos_nn.infer

$(RECIPE_MK): $(RECIPE_FILE) $(ROOT)/core/src/rvos_core/recipe.py
	@mkdir -p $(@D)
	@PYTHONPATH=$(ROOT)/core/src python3 -m rvos_core.recipe makefile $(RECIPE_FILE) > $@.tmp && mv $@.tmp $@
include $(RECIPE_MK)

submission: $(W)/submission.zip ## the whole recipe -> $(WORK)/$(SPLIT)/submission.zip
recipe: ## print the node graph of RECIPE
	@PYTHONPATH=$(ROOT)/core/src python3 -m rvos_core.recipe show $(RECIPE_FILE)

$(W)/submission.zip: $(W)/$(RECIPE_SUBMISSION)/run.json
	$(FUSION) submission $(<D) --out $@ $(RUN_OPTS)

# A node that no rule makes (an imported or voted one) and that is not there: say so, by name.
$(W)/%/run.json:
	@echo "error: $(@D): no complete run folder (run.json) and no rule makes it; make it first (make import-pth NODE=..., make vote OUT=...)" >&2; exit 2

# ---------------------------------------------------------------------------------------------
# The demo (demo/run.py): RECIPE's Make chain with the tiny zoo (ZOO_DIR, make zoo) on the world the
# zoo was trained on, its held-out split (Ref-YouTube-VOS valid, or MeViS valid_u with
# DATASET=mevis): every model run, propagation, vote and the submission are the real drivers;
# every node is scored against the ground truth. demo/simulated.py is the older, simulated chain
# (no weights: each "model" is the ground truth with its own errors), kept as a fast fixture:
# make demo-simulated.

ZOO_DIR ?= $(ROOT)/zoo
DEMO := $(WORK)/demo
DEMO_SPLIT = $(if $(filter mevis,$(DATASET)),valid_u,valid)
DEMO_DATA = $(DEMO)/world/data
# DEMO_WORLD="--world-seed 7 --valid-videos 4": another draw of the world (demo/run.py)
DEMO_WORLD ?=
# The zoo through the recipe's own rules: its weights for every model and propagator (MUTR at its
# training size, not upstream's 360-pixel setting).
# The propagations take one view (the frame's own size, no flip; the zoo's propagators train on
# 96-pixel crops) instead of the competition's 3 scales x flip, six times less work;
# DEMO_PROPAGATE_OPTS= restores the competition's views.
DEMO_PROPAGATE_OPTS ?= --scales 1.0 --no-flip
# DEMO_JOBS nodes at a time, each on one thread (unless OMP_NUM_THREADS says otherwise): torch's
# threads of two jobs on two cores would spin against each other.
DEMO_JOBS ?= 2
ZOO_VARIABLES = INFER_main="$(PY) -m rvos_nn.infer --zoo $(ZOO_DIR)" \
    INFER_uninext="$(PY_UNINEXT) -m rvos_nn.infer --zoo $(ZOO_DIR)" \
    PROPAGATE="$(PY) -m rvos_vos.propagate --zoo $(ZOO_DIR)" MUTR_OPTS= \
    PROPAGATE_OPTS="$(DEMO_PROPAGATE_OPTS) $(PROPAGATE_OPTS)"

demo: $(VENV)/.stamp $(VENV_UNINEXT)/.stamp ## [DATASET=mevis]: the recipe end to end with the tiny zoo on generated videos; J&F of every node
	$(MAKE) $(SUBMAKE_ARGS) demo-run

demo-run: ## the demo's chain in the environments as they are (make demo builds them first)
	$(PY) $(ROOT)/demo/run.py prepare --out $(DEMO) --zoo $(ZOO_DIR) --dataset $(DATASET) $(DEMO_WORLD)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(MAKE) $(SUBMAKE_ARGS) -j$(DEMO_JOBS) submission \
	    DATA=$(DEMO_DATA) WORK=$(DEMO)/work SPLIT=$(DEMO_SPLIT) $(ZOO_VARIABLES)
	$(PY) $(ROOT)/demo/run.py score --data $(DEMO_DATA) --work $(DEMO)/work/$(DEMO_SPLIT) \
	    --recipe $(RECIPE_FILE) --dataset $(DATASET)
	$(MAKE) $(SUBMAKE_ARGS) report DATA=$(DEMO_DATA) WORK=$(DEMO)/work SPLIT=$(DEMO_SPLIT) \
	    TRUTH=$(DEMO)/truth-$(DATASET)
	@echo "demo: $(DEMO)/work/$(DEMO_SPLIT)/submission.zip, report $(DEMO)/work/$(DEMO_SPLIT)/report/index.html"

SIMULATED := $(WORK)/demo-simulated
demo-simulated: $(VENV)/.stamp ## the chain on simulated model outputs (no weights, seconds)
	$(PY) $(ROOT)/demo/simulated.py prepare --out $(SIMULATED) --recipe $(RECIPE_FILE)
	$(MAKE) $(SUBMAKE_ARGS) submission DATA=$(SIMULATED)/data WORK=$(SIMULATED)/work SPLIT=valid \
	    PROPAGATE="EXECUTOR=local $(PY) $(ROOT)/demo/simulated.py propagate"
	$(PY) $(ROOT)/demo/simulated.py report --out $(SIMULATED)
	$(MAKE) $(SUBMAKE_ARGS) report DATA=$(SIMULATED)/data WORK=$(SIMULATED)/work SPLIT=valid TRUTH=$(SIMULATED)/truth

# ---------------------------------------------------------------------------------------------
# Training (train/README.md): one run folder per configuration under $(WORK)/train/; the same
# command again resumes it. GPUS=N starts N processes with torchrun (one per GPU with
# DEVICE=cuda, gloo processes on the CPU); fewer processes than the recipe's GPUs accumulate
# gradients so that the global batch stays upstream's.

GPUS ?= 1
CONFIG ?=
INIT ?=
TRAIN_OPTS ?=
TRAIN_RUN = $(WORK)/train/$(MODEL)-$(1)
TRAIN = $(if $(filter uninext_%,$(MODEL)),$(PY_UNINEXT),$(PY)) $(if $(filter-out 1,$(GPUS)),-m torch.distributed.run --standalone --nproc_per_node $(GPUS)) -m rvos_train
TRAIN_ARGS = --device $(DEVICE) --precision $(PRECISION) $(TRAIN_OPTS)
# WORLD=v2: make train-tiny on the referring-video world (docs/world.md) instead of the moving blobs.
WORLD ?=
GENERATED := $(WORK)/generated$(if $(WORLD),-$(WORLD))

# AOT / DeAOT: STAGE=pre|video names the configuration (upstream's PRE and PRE_YTB_DAV stages);
# the video stage starts from the PRE stage's run folder unless INIT says otherwise.
STAGE ?=
TRAIN_CONFIG = $(or $(CONFIG),$(STAGE))
TRAIN_INIT = $(or $(INIT),$(if $(filter video,$(TRAIN_CONFIG)),$(call TRAIN_RUN,pre)/model.pth))

train: ## MODEL=soc|referformer|mutr|uninext_vith|uninext_convnext CONFIG=<name> | MODEL=aot|deaot STAGE=pre|video [INIT=<checkpoint>] [GPUS=n]: train (or resume) one configuration
	@test -n "$(MODEL)" -a -n "$(TRAIN_CONFIG)" || { echo "usage: make train MODEL=soc CONFIG=joint [INIT=...] [GPUS=n], make train MODEL=aot STAGE=pre (configs: python -m rvos_train MODEL --list)" >&2; exit 2; }
	$(TRAIN) $(MODEL) --config $(TRAIN_CONFIG) --out $(call TRAIN_RUN,$(notdir $(basename $(TRAIN_CONFIG)))) \
	    $(if $(TRAIN_INIT),--init $(TRAIN_INIT)) $(TRAIN_ARGS)

finetune: ## MODEL=... DATASET=refytvos|mevis INIT=<checkpoint> [GPUS=n]: fine-tune a checkpoint on one dataset
	@test -n "$(MODEL)" -a -n "$(INIT)" || { echo "usage: make finetune MODEL=soc|referformer|mutr DATASET=refytvos|mevis INIT=<checkpoint>" >&2; exit 2; }
	$(TRAIN) $(MODEL) --config finetune --out $(call TRAIN_RUN,finetune-$(DATASET)) \
	    --init $(INIT) --set 'data.sets=["$(DATASET)"]' $(TRAIN_ARGS)

train-tiny: ## MODEL=... [WORLD=v2]: generate the training world and train the tiny MODEL on it (CPU minutes)
	@test -n "$(MODEL)" || { echo "usage: make train-tiny MODEL=soc|referformer|mutr|aot|deaot|uninext_... [WORLD=v2]" >&2; exit 2; }
	$(PY) -m rvos_train.generate --out $(GENERATED) $(if $(WORLD),--world $(WORLD))
	$(TRAIN) $(MODEL) --config tiny --out $(call TRAIN_RUN,tiny$(if $(WORLD),-$(WORLD))) --data $(GENERATED)/data \
	    --pretrained $(GENERATED)/pretrained $(TRAIN_ARGS)

# The tiny zoo (docs/zoo.md): every model and propagator of the default recipe trained on the
# world by their zoo configurations, exported to ZOO_DIR with its manifest (hours of CPU; resumes).
# ZOO_ONLY="soc aot" rebuilds some and keeps the others.
ZOO_ONLY ?=
zoo: $(VENV)/.stamp $(VENV_UNINEXT)/.stamp ## [ZOO_ONLY="soc aot"]: train the tiny zoo on the world -> zoo/ (safetensors + manifest; prints its CPU time)
	$(PY) -m rvos_train.zoo --out $(ZOO_DIR) --work $(WORK)/zoo --python-uninext $(PY_UNINEXT) \
	    $(if $(ZOO_ONLY),--only $(ZOO_ONLY))

WORLD_OPTS ?=
world: $(VENV)/.stamp ## [WORLD_OPTS="--videos 96 --size 120x208"]: the referring-video world (docs/world.md) -> $(WORK)/world
	$(PY) -m rvos_core.world --out $(WORK)/world $(WORLD_OPTS)

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
	$(PY) -m rvos_core.validate $(W)/$(NODE) $(DATA_OPTS)

evaluate: ## NODE=<node>: J&F of a run against the split's ground truth (MeViS valid_u, Ref-DAVIS, DAVIS)
	@test -n "$(NODE)" || { echo "usage: make evaluate NODE=<node> DATASET=mevis SPLIT=valid_u" >&2; exit 2; }
	$(PY) -m rvos_eval $(W)/$(NODE) $(DATA_OPTS) --out $(W)/$(NODE)/eval
	$(if $(filter davis,$(DATASET)),,$(MAKE) $(SUBMAKE_ARGS) report NODES="$(NODE)" REPORT=$(W)/$(NODE)/eval/report)

# The HTML report (README.md, "Looking at the results"): NODES (default: the recipe's submitted node and its inputs)
# against TRUTH (a folder of <video>/<exp_id>/<frame>.png) and their `make evaluate` results.
NODES ?=
TRUTH ?=
REPORT ?= $(W)/report
REPORT_OPTS ?=
report: $(VENV)/.stamp ## [NODES="soc en2 final"] [TRUTH=<masks folder>]: HTML report of runs -> $(W)/report/index.html
	$(PY) -m rvos_report $(NODES) --work $(W) --out $(REPORT) --recipe $(RECIPE_FILE) $(DATA_OPTS) \
	    $(if $(TRUTH),--truth $(TRUTH)) $(REPORT_OPTS)

# Your own video (README.md, "Your own video"): VIDEO with TEXT (and TEXT2) through the recipe or
# one MODEL, with the checkpoints of CHECKPOINTS; ZOO=zoo: the tiny zoo (docs/zoo.md) stands in for
# missing checkpoints (a model's own network; every propagator when one is missing). The texts
# reach the command through the environment (quotes and apostrophes stay as typed).
SEGMENT_OUT ?= $(WORK)/segment/$(basename $(notdir $(VIDEO)))
ZOO ?=
export TEXT TEXT2
segment: $(VENV)/.stamp ## VIDEO=clip.mp4 TEXT="..." [TEXT2=...] [RECIPE=...|MODEL=...] [EVERY_FRAME=1] [ZOO=zoo]: segment your own video (ZOO: the tiny zoo for missing checkpoints)
	@test -n "$(VIDEO)" -a -n "$$TEXT" || { echo 'usage: make segment VIDEO=clip.mp4 TEXT="the dog on the left" [TEXT2=...] [RECIPE=...|MODEL=soc]' >&2; exit 2; }
	$(PY) -m rvos_report.segment $(VIDEO) --text "$$TEXT" $${TEXT2:+--text "$$TEXT2"} --out $(SEGMENT_OUT) \
	    $(if $(MODEL),--model $(MODEL),--recipe $(RECIPE_FILE)) $(if $(ZOO),--zoo $(ZOO)) \
	    $(if $(EVERY_FRAME),--every-frame) --make "$(MAKE) $(SUBMAKE_ARGS) PY=$(PY) DEVICE=$(DEVICE) PRECISION=$(PRECISION)"

bench: $(VENV)/.stamp ## quick benchmarks (minutes on a CPU): eval, fusion, the driver with tiny models
	$(PY) $(ROOT)/bench/eval/run.py
	$(PY) $(ROOT)/bench/fusion/run.py
	for model in referformer mutr soc; do $(PY) $(ROOT)/bench/infer/run.py $$model --variant tiny || exit 1; done
	$(PY) $(ROOT)/bench/propagate/trackers.py --variants tiny,small
bench-full: $(VENV)/.stamp $(VENV_UNINEXT)/.stamp ## full-size models and propagators on DEVICE / PRECISION (hours on a CPU)
	$(PY) $(ROOT)/bench/infer/referformer.py --device $(DEVICE) --precision $(PRECISION) --videos 3
	$(PY) $(ROOT)/bench/infer/mutr.py --device $(DEVICE) --precision $(PRECISION) --videos 3
	$(PY) $(ROOT)/bench/infer/soc.py --device $(DEVICE) --precision $(PRECISION) --videos 3
	$(PY_UNINEXT) $(ROOT)/bench/infer/uninext.py --device $(DEVICE) --precision $(PRECISION)
	$(PY) $(ROOT)/bench/propagate/run.py --device $(DEVICE) --precision $(PRECISION) --expressions 1
	$(PY) $(ROOT)/bench/propagate/run.py --device $(DEVICE) --precision $(PRECISION) --expressions 4
	$(PY) $(ROOT)/bench/propagate/trackers.py --variants full --device $(DEVICE) --precision $(PRECISION)
