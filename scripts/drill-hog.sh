#!/usr/bin/env bash
# Assembles the memory hog `radar-deploy drill memory` runs inside an app instance
# (src/drill/hog/x86_64.S → src/drill/hog/x86_64.bin, embedded with include_bytes!).
# Needs GNU binutils (as, ld). The output is checked in: building radar-deploy needs no
# assembler, and the bytes are reviewable against their source (a unit test of
# src/drill/memory.rs assembles it again into a temp file and compares).
#
#   scripts/drill-hog.sh [OUT]     (default src/drill/hog/x86_64.bin)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-src/drill/hog/x86_64.bin}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
as --64 -o "$tmp/hog.o" src/drill/hog/x86_64.S
# -N: one small RWX segment (no page alignment): about 500 bytes instead of 8 KB; -s: no symbols.
ld -m elf_x86_64 -static -nostdlib -N -s --no-warn-rwx-segments -o "$out" "$tmp/hog.o" 2>/dev/null \
  || ld -m elf_x86_64 -static -nostdlib -N -s -o "$out" "$tmp/hog.o"
ls -l "$out"
