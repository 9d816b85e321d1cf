#!/usr/bin/env bash
# Speed under the runtime's default settings: the Bench sample (an ordinary app, tiered compilation on) against the
# same generation in `ke` (tiered compilation off), alternating, REPS runs each; prints a markdown table of medians.
# Needs samples/run.sh to have built artifacts/samples/Bench and tools/ke built in Release.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-5}
ke=tools/ke/bin/Release/net10.0/ke.dll
bench=artifacts/samples/Bench/Bench.dll
row() {  # model copies generate: both run the same prompt text (copies of " x"); the table names its token count
  local model=$1 copies=$2 tg=$3 a=() b=() c=() d=() text pp
  text=$(python3 -c "print(' x' * $copies)")
  for ((i = 0; i < reps; i++)); do
    read -r _ dec _ pre _ pp _ _ < <(dotnet "$bench" "$model" "$text" "$tg")
    a+=("$dec"); b+=("$pre")
    read -r dec pre < <(dotnet "$ke" generate --model "$model" --max-tokens "$tg" --temperature 0 --json --prompt "$text" \
      | python3 -c "import json,sys; s=json.load(sys.stdin)['stats']; print(s['decode_tokens_per_second'], s['prefill_tokens_per_second'])")
    c+=("$dec"); d+=("$pre")
  done
  python3 - "$model" "$pp" "$tg" "${a[*]}" "${b[*]}" "${c[*]}" "${d[*]}" <<'PY'
import sys, statistics as st
m, pp, tg = sys.argv[1:4]
app_dec, app_pre, ke_dec, ke_pre = ([float(x) for x in v.split()] for v in sys.argv[4:8])
name = m.rstrip('/').split('/')[-1]
print(f"| {name} | decode {tg} | {st.median(app_dec):.0f} | {st.median(ke_dec):.0f} | **{st.median(app_dec)/st.median(ke_dec):.2f}** |")
print(f"| {name} | prefill {pp} | {st.median(app_pre):.0f} | {st.median(ke_pre):.0f} | **{st.median(app_pre)/st.median(ke_pre):.2f}** |")
PY
}
echo "| model | test | app, default settings (tok/s) | ke (tok/s) | ratio |"
echo "|---|---|---|---|---|"
row ../shared/models/stories260K 128 256
for m in "$@"; do row "$m" 400 128; done
