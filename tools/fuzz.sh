#!/usr/bin/env bash
# Fuzzes the model-folder readers with mutated copies of ../shared's real models (see tests/.../Hardening/FuzzTests.cs).
#   tools/fuzz.sh          the fixed-seed set CI runs (240 stories260K + 15 tiny-random-gpt2 folders)
#   tools/fuzz.sh --long   10,000 stories260K + 2,500 tiny-random-gpt2 folders
#   tools/fuzz.sh N        N stories260K + N/4 tiny-random-gpt2 folders
set -euo pipefail
cd "$(dirname "$0")/.."
cases=""
case "${1:-}" in
  --long) cases=10000 ;;
  "") ;;
  *) cases="$1" ;;
esac
dotnet build tests/KernelEngine.Tests -c Release >/dev/null
KE_FUZZ_CASES="$cases" dotnet test tests/KernelEngine.Tests -c Release --no-build --filter "Category=Fuzz" \
  --logger "console;verbosity=normal" | grep -E "mutated folders|Passed|Failed|case [0-9]+ "
