#!/bin/bash
# One call on a lent GPU machine (see ../.library/device): unpack ACDC carried in .devdata, run gpu_check.py, then the
# ACDC experiments of lomix.py, vqseg.py and arco.py as parallel shards with a deadline, and bring everything back in
# $OUT/runs.tgz. Every run's JSON is written as it finishes, so a cut-short grid keeps its finished runs.
#   STEPS (default 300) training steps per run; BUDGET (default 330) seconds for the experiments; CHECK_BUDGET (200) for
#   gpu_check, 0 skips it; LOMIX_SHARDS, VQSEG_SHARDS, ARCO_SHARDS (4, 4, 6) processes per experiment, 0 skips one;
#   LOMIX_ARGS, VQSEG_ARGS, ARCO_ARGS more arguments for one script (they win over --steps $STEPS), LOMIX_TAG, VQSEG_TAG,
#   ARCO_TAG a suffix for its shard files: a second grid, say LOMIX_TAG=_long LOMIX_ARGS="--steps 1000 --seeds 0
#   --section lomix_long", keeps its runs apart from the first (which would otherwise count as done).
set -u
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MEDSEG_DATA=/tmp/data
STEPS=${STEPS:-300}; BUDGET=${BUDGET:-330}
R=$OUT/runs; mkdir -p $R
finish() { cp benchmarks/RESULTS.md $R/ 2>/dev/null; tar czf $OUT/runs.tgz -C $OUT runs && rm -rf $R; }
trap finish EXIT
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
nvidia-smi -L | tee $R/gpu.txt
python3 -c "import torch, medseg_nb; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" || exit 1
python3 benchmarks/pack_acdc.py unpack .devdata/acdc.pkl.xz /tmp/data/ACDC || exit 1
t0=$(date +%s)
if [ "${CHECK_BUDGET:-200}" -gt 0 ]; then
  timeout ${CHECK_BUDGET:-200} python3 benchmarks/gpu_check.py > $R/gpu_check.log 2>&1; echo "gpu_check rc=$? in $(( $(date +%s) - t0 )) s"
fi
pids=()
# runs finished by an earlier call (carried in .devdata/prev) are merged and skipped
prev() { ls .devdata/prev/$1.*.json 2>/dev/null | tr '\n' ' '; }
launch() {  # script shards tag extra-args
  local name=$1$3
  for ((i = 0; i < $2; i++)); do
    timeout $BUDGET python3 benchmarks/$1.py --steps $STEPS $4 --json $R/$name.$i.json --shard $i/$2 --merge $(prev $name) > $R/$name.$i.log 2>&1 & pids+=($!)
  done
}
launch lomix ${LOMIX_SHARDS:-4} "${LOMIX_TAG:-}" "${LOMIX_ARGS:-}"
launch vqseg ${VQSEG_SHARDS:-4} "${VQSEG_TAG:-}" "${VQSEG_ARGS:-}"
launch arco ${ARCO_SHARDS:-6} "${ARCO_TAG:-}" "${ARCO_ARGS:-}"
wait "${pids[@]}"
echo "experiments done in $(( $(date +%s) - t0 )) s"; nvidia-smi --query-gpu=memory.used --format=csv
grep -h '^{' $R/*.log | wc -l
