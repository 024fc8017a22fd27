#!/usr/bin/env bash
# Assembles the memory hog `radar-deploy drill memory` runs inside an app instance
# (src/drill/hog/x86_64.S → src/drill/hog/x86_64.bin, embedded with include_bytes!).
# Needs GNU binutils (as, ld). The output is checked in: building radar-deploy needs no
# assembler, and the bytes are reviewable against their source.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
as --64 -o "$tmp/hog.o" src/drill/hog/x86_64.S
# -N: one small RWX segment (no page alignment): 488 bytes instead of 8 KB; -s: no symbols.
ld -m elf_x86_64 -static -nostdlib -N -s --no-warn-rwx-segments -o src/drill/hog/x86_64.bin "$tmp/hog.o" 2>/dev/null \
  || ld -m elf_x86_64 -static -nostdlib -N -s -o src/drill/hog/x86_64.bin "$tmp/hog.o"
ls -l src/drill/hog/x86_64.bin
