#!/usr/bin/env bash
# Writes small valid seed inputs for the data fuzzers into DIR/corpus_fuzz_{cifar,idx,text8}.
set -euo pipefail
dir=${1:-build-fuzz}
mkdir -p "$dir"/corpus_fuzz_cifar "$dir"/corpus_fuzz_idx "$dir"/corpus_fuzz_text8
# CIFAR: one record (label 3 + 3072 pixel bytes) and two records.
{ printf '\x03'; head -c 3072 /dev/zero | tr '\0' '\x80'; } > "$dir"/corpus_fuzz_cifar/one
{ cat "$dir"/corpus_fuzz_cifar/one; printf '\x09'; head -c 3072 /dev/zero; } > "$dir"/corpus_fuzz_cifar/two
# IDX: byte 0 = where the images file ends; then a 2x2x2 images file and a 2-label file.
{ printf '\xb4'; printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02';
  printf '\x01\x02\x03\x04\x05\x06\x07\x08'; printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x09'; } > "$dir"/corpus_fuzz_idx/pair
# text8: valid text, mixed text for text8ify.
printf ' anarchism originated as a term of abuse' > "$dir"/corpus_fuzz_text8/valid
printf 'Hello, World! 1984 caf\xc3\xa9 -- END\n' > "$dir"/corpus_fuzz_text8/mixed
