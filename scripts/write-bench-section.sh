#!/usr/bin/env bash
# write-bench-section.sh RESULTS_FILE < SECTION
# Replace (or add) one "## ..." section of bench/results.md with the Markdown on stdin, keeping the
# other sections: every benchmark script owns exactly one section, named by its first line.
set -euo pipefail
out=${1:?usage: write-bench-section.sh RESULTS_FILE < SECTION}
section=$(cat)
title=$(head -n1 <<<"$section")
case $title in "## "*) ;; *) echo "write-bench-section: the section must start with a '## ' title" >&2; exit 2 ;; esac
mkdir -p "$(dirname "$out")"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if [ -f "$out" ]; then
    awk -v t="$title" '$0 == t {skip=1; next} /^## / {skip=0} !skip' "$out" >"$tmp"
else
    printf '# Keel benchmark results\n\nWritten by `make bench`; each section is replaced when its benchmark runs again.\n\n' >"$tmp"
fi
{ cat "$tmp"; printf '%s\n\n' "$section"; } | cat -s >"$out"
