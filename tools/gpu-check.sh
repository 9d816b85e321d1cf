#!/usr/bin/env bash
# GPU check in one call, for the lent NVIDIA machine (it has CUDA but no .NET and no package registry).
#
#   tools/gpu-check.sh prepare   # here: publish ke, pack the .NET runtime and the test model into .gpu/ (git-ignored)
#   tools/gpu-check.sh run       # there (carry .gpu): device list, every kernel vs the CPU backend on CUDA,
#                                # stories260K reference ids, GPU benchmarks (llama-160m, llama-1b) and profiles,
#                                # each kernel's PTX and its shape counts; results under $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
if [ "$mode" = prepare ]; then
  rm -rf .gpu && mkdir -p .gpu/models
  dotnet publish tools/ke -c Release -o .gpu/app --nologo
  rt=$(ls -d /usr/share/dotnet/shared/Microsoft.NETCore.App/10.* | head -1)
  tar cJf .gpu/dotnet-rt.tar.xz -C /usr/share/dotnet dotnet host "shared/Microsoft.NETCore.App/$(basename "$rt")"
  cp -r ../shared/models/stories260K .gpu/models/
  du -sh .gpu
  exit 0
fi
: "${OUT:=$PWD/gpu-results}"
mkdir -p "$OUT" /tmp/dn
tar xJf .gpu/dotnet-rt.tar.xz -C /tmp/dn
export DOTNET_ROOT=/tmp/dn PATH=/tmp/dn:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1
ke() { dotnet .gpu/app/ke.dll "$@"; }
{ nvidia-smi || true; } > "$OUT/nvidia-smi.txt" 2>&1
ke devices --json > "$OUT/devices.json" 2>&1 || true
set +e
ke check --device cuda --model .gpu/models/stories260K --tokens 256 2>&1 | tee "$OUT/check.txt"
check_rc=${PIPESTATUS[0]}
ke bench --preset llama-160m --dtype f32,f16,q8_0,q4_0 --device cuda --pp 512 --tg 128 --reps 3 --no-roofline 2>&1 | tee "$OUT/bench-cuda.txt"
ke bench --model .gpu/models/stories260K --device cuda --pp 128 --tg 256 --reps 3 --no-roofline 2>&1 | tee -a "$OUT/bench-cuda.txt"
ke profile --preset llama-160m --device cuda --tokens 128 --steps 32 --trace "$OUT/trace-cuda.json" 2>&1 | tee "$OUT/profile-cuda.txt"
# the issue's yardstick: llama-1b (TinyLlama's shape) F16/Q8_0/Q4_0, pp512/tg128; bounded so the whole script fits 8 minutes
timeout 300 dotnet .gpu/app/ke.dll bench --preset llama-1b --dtype f16,q8_0,q4_0 --device cuda --pp 512 --tg 128 --reps 2 --json > "$OUT/bench-llama-1b.json" 2> "$OUT/bench-llama-1b.err"
timeout 90 dotnet .gpu/app/ke.dll profile --preset llama-1b --dtype f16 --device cuda --tokens 64 --steps 16 --json > "$OUT/profile-llama-1b.json" 2>&1
ke kernels --ptx "$OUT/ptx" --arch sm_90 --json > "$OUT/ptx-shape.json" 2>&1 || true
echo "gpu-check: check exit $check_rc" | tee -a "$OUT/check.txt"
exit $check_rc
