#!/usr/bin/env bash
# Fuzzes the manifest decoder with libFuzzer (clang 16 from Debian) under AddressSanitizer,
# UndefinedBehaviorSanitizer and LeakSanitizer.
#   scripts/fuzz.sh [SECONDS]     default 600
# The corpus starts from every example manifest; crashes land in .fuzz/ as crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
source scripts/deps.sh >/dev/null
mentat_install_packages clang-16 libclang-rt-16-dev

seconds=${1:-600}
out=.fuzz
mkdir -p "$out/corpus"
find examples -name '*.yaml' -o -name '*.json' | while read -r f; do cp "$f" "$out/corpus/"; done

# libstdc++ 12 enables <expected> only for __cpp_concepts >= 202002L; clang 16 implements what
# it needs but still reports 201907L.
clang++-16 -std=c++2b -D__cpp_concepts=202002L -Wno-macro-redefined -I. -O1 -g \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  apis/decoder_fuzzer.cc apis/error.cc apis/object.cc apis/yaml.cc apis/service.cc \
  apis/security_profile.cc apis/hull_manifest.cc apis/hull_manifest_parse.cc \
  -lyaml-cpp -o "$out/decoder_fuzzer"

echo "==> fuzzing the decoder for ${seconds}s"
ASAN_OPTIONS=detect_leaks=1 "$out/decoder_fuzzer" "$out/corpus" \
  -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
  -artifact_prefix="$out/" -print_final_stats=1
