#!/usr/bin/env bash
# The GPU checks, in one script of at most about 10 minutes: bash benchmarks/gpu.sh [OUT] (default $OUT or
# runs/gpu). Every result goes under OUT, one log per step, and summary.txt collects their last lines.
#   1. the CUDA tests (tests/ops/test_cuda.py: every op, the networks and a training step on CUDA)
#   2. the ffhq2d and energy3d training benches (python -m ndgan.bench, real loop, regularisation included)
#   3. the peers' harness against NVIDIA StyleGAN2-ADA's custom CUDA kernels at 128² and 256², with its GPU
#      default of the top 4 blocks in float16 on both sides (needs NV_SRC, a checkout of
#      NVlabs/stylegan2-ada-pytorch, and nvcc + ninja for its plugins; skipped with a note otherwise)
#   4. the 128³ one-channel memory check: one training step of a 128³ volume, peak CUDA memory
# DRY_RUN=1 runs every step on the CPU at a toy size instead, to check the script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-runs/gpu}}
mkdir -p "$OUT"
DEV=cuda
STEPS=48
ROUNDS=5
if [ "${DRY_RUN:-0}" = 1 ]; then DEV=cpu; STEPS=1; ROUNDS=1; fi
status=0
step() {  # step NAME TIMEOUT_S COMMAND...: run one check, log it, keep going if it fails
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 4 "$OUT/$name.log" | sed 's/^/   /' >> "$OUT/summary.txt"
  echo "   rc=$rc" >> "$OUT/summary.txt"
  [ $rc = 0 ] || status=1
}
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi";
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"; } \
  > "$OUT/summary.txt" 2>&1

step tests 150 python -m pytest -q -x tests/ops/test_cuda.py   # on the CPU of a dry run: all skipped

if [ "$DEV" = cuda ]; then
  # ffhq2d's networks and step on built-in blobs (the FFHQ thumbnails are not on the machine)
  step bench_ffhq2d 150 python -m ndgan.bench configs/ffhq2d.yaml --device cuda --steps $STEPS \
    data.source=procedural "data.options={}" data.workers=0
  step bench_energy3d 150 python -m ndgan.bench configs/energy3d.yaml --device cuda --steps $STEPS \
    data.path=/tmp/ndgan_gpu_energy.h5 data.options.n=512 data.workers=0
else  # toy sizes: the script's own check
  step bench_ffhq2d 150 python -m ndgan.bench configs/tiny2d.yaml --device cpu --steps 1 train.batch=4
  step bench_energy3d 150 python -m ndgan.bench configs/tiny3d.yaml --device cpu --steps 1 train.batch=4
fi

if [ -n "${NV_SRC:-}" ] && { [ "$DEV" = cpu ] || { command -v nvcc && python -c "import ninja"; } > /dev/null 2>&1; }; then
  if [ "$DEV" = cuda ]; then
    for res in 128 256; do
      step "peers_nvidia_$res" 150 python benchmarks/peers.py --peer nvidia --source "$NV_SRC" --device cuda \
        --res $res --cbase 16384 --cmax 512 --batch 32 --fp16-res 4 --iters 10 --rounds $ROUNDS
    done
  else
    step peers_nvidia_32 150 python benchmarks/peers.py --peer nvidia --source "$NV_SRC" --device cpu --res 32 \
      --cbase 1024 --cmax 64 --batch 4 --iters 1 --rounds 1
  fi
else
  echo "== peers: skipped (set NV_SRC to a checkout of NVlabs/stylegan2-ada-pytorch; CUDA needs nvcc and ninja)" \
    | tee -a "$OUT/summary.txt"
fi

if [ "$DEV" = cuda ]; then
  # the MRI preset's networks at 128³, one channel, on built-in blobs
  step memory_128cube 120 python -m ndgan.bench configs/mri3d.yaml --device cuda --steps 16 data.source=procedural \
    "data.options={}" data.workers=0 "data.shape=[128,128,128]" train.batch=4
else
  step memory_128cube 150 python -m ndgan.bench configs/tiny3d.yaml --device cpu --steps 1 "data.shape=[32,32,32]" \
    data.channels=1 train.batch=2 data.periodic=false
fi

cat "$OUT/summary.txt"
exit $status
