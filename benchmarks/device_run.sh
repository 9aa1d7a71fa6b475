#!/bin/bash
# One call on a lent GPU machine (see ../.library/device): unpack ACDC carried in .devdata, run gpu_check.py, then the
# claims' grids as parallel shards with a deadline: the ACDC recipe's method rows (acdc_recipe.py --methods ...) and the
# Mamba-HoME grid on ACDC volumes (mamba_home.py --dataset acdc; the phantom grid ran on CPU); bring everything back in
# $OUT/runs.tgz. Every run's JSON is written as it finishes, so a cut-short grid keeps its finished runs.
#   STEPS (default 2000) training steps per run; BUDGET (default 450) seconds for the grids; CHECK_BUDGET (200) for
#   gpu_check, 0 skips it; ACDC_SHARDS, HOME_SHARDS (6, 3) processes per grid, 0 skips one; ACDC_ARGS, HOME_ARGS more
#   arguments for one grid (they win over --steps $STEPS; ACDC_ARGS defaults to the ACDC rows the claims table still
#   lacks, HOME_ARGS to --dataset acdc); ACDC_TAG, HOME_TAG (default _acdc) a suffix for its shard files: a second
#   budget, say ACDC_TAG=_long ACDC_ARGS="--steps 5000 --section acdc_long", keeps its runs apart from the first (which
#   would otherwise count as done).
set -u
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MEDSEG_DATA=/tmp/data
STEPS=${STEPS:-2000}; BUDGET=${BUDGET:-450}
ACDC_ARGS=${ACDC_ARGS:---methods single lomix deep additive vqseg:perturb=dropout arco:sampler=ns arco:sampler=sg --patients 3 --compare 3}
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
launch acdc_recipe ${ACDC_SHARDS:-6} "${ACDC_TAG:-}" "$ACDC_ARGS"
launch mamba_home ${HOME_SHARDS:-3} "${HOME_TAG-_acdc}" "${HOME_ARGS---dataset acdc}"
wait "${pids[@]}"
echo "experiments done in $(( $(date +%s) - t0 )) s"; nvidia-smi --query-gpu=memory.used --format=csv
grep -h '^{' $R/*.log | wc -l
