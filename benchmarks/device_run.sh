#!/bin/bash
# One call on a lent GPU machine (see ../.library/device): unpack ACDC carried in .devdata, run gpu_check.py, then the
# ACDC experiments of lomix.py, vqseg.py and arco.py as parallel shards with a deadline, and bring everything back in
# $OUT/runs.tgz. Every run's JSON is written as it finishes, so a cut-short grid keeps its finished runs.
#   STEPS (default 300) training steps per run; BUDGET (default 330) seconds for the experiments; CHECK_BUDGET (200) for
#   gpu_check; LOMIX_SHARDS, VQSEG_SHARDS, ARCO_SHARDS (4, 4, 6) processes per experiment.
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
timeout ${CHECK_BUDGET:-200} python3 benchmarks/gpu_check.py > $R/gpu_check.log 2>&1; echo "gpu_check rc=$? in $(( $(date +%s) - t0 )) s"
pids=()
# runs finished by an earlier call (carried in .devdata/prev) are merged and skipped
prev() { ls .devdata/prev/$1.*.json 2>/dev/null | tr '\n' ' '; }
launch() {  # script shards
  for ((i = 0; i < $2; i++)); do
    timeout $BUDGET python3 benchmarks/$1.py --steps $STEPS --json $R/$1.$i.json --shard $i/$2 --merge $(prev $1) > $R/$1.$i.log 2>&1 & pids+=($!)
  done
}
launch lomix ${LOMIX_SHARDS:-4}; launch vqseg ${VQSEG_SHARDS:-4}; launch arco ${ARCO_SHARDS:-6}
wait "${pids[@]}"
echo "experiments done in $(( $(date +%s) - t0 )) s"; nvidia-smi --query-gpu=memory.used --format=csv
grep -h '^{' $R/*.log | wc -l
