#!/usr/bin/env bash
# Packs KernelEngine into ../artifacts/packages, then builds and runs each sample against that local feed and installs the
# ke tool from it. Needs ../shared (stories260K) to run the samples; without it they are only built.
set -euo pipefail
cd "$(dirname "$0")/.."
feed=artifacts/packages
rm -rf "$feed" && mkdir -p "$feed"
suffix="ci$(date +%Y%m%d%H%M%S)"
dotnet pack KernelEngine.sln -c Release -o "$feed" -p:VersionSuffix="$suffix" >/dev/null
version="0.1.0-$suffix"
echo "packed $(ls "$feed" | tr '\n' ' ')"
model=../shared/models/stories260K
for s in ChatConsole Scoring WebApi Bench; do
  dotnet build "samples/$s" -c Release -p:KernelEngineVersion="$version" -o "artifacts/samples/$s" >/dev/null
  echo "sample $s built against KernelEngine $version"
done
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
dotnet tool install KernelEngine.Tool --version "$version" --add-source "$feed" --tool-path "$tools" >/dev/null
"$tools/ke" devices | head -2
if [ ! -d "$model" ]; then echo "samples: $model absent, not run"; exit 0; fi
printf 'Tell me a story\nAnd then?\n' | dotnet "artifacts/samples/ChatConsole/ChatConsole.dll" "$model" 32
printf 'Once upon a time there was a little girl who loved to play in the park with her friends.\n' > artifacts/samples/text.txt
dotnet "artifacts/samples/Scoring/Scoring.dll" "$model" artifacts/samples/text.txt
dotnet "artifacts/samples/WebApi/WebApi.dll" "$model" --self-test
dotnet "artifacts/samples/Bench/Bench.dll" "$model" "Once upon a time there was a" 64
"$tools/ke" generate --model "$model" --prompt "Once upon a time" --max-tokens 16 --temperature 0
