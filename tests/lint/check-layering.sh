#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The house rule "no two files use each other's symbols", checked on the object files of the core
# library: an edge A -> B for every symbol A uses that B defines, and no cycle of any length among them
# (tsort finds one). Prints the edges of a cycle and exits 1 when there is one.
# Usage: check-layering.sh OBJECT...
set -euo pipefail

(($# > 0)) || { echo "usage: $0 OBJECT..." >&2; exit 64; }

declare -A owner
for o in "$@"; do
        name=$(basename "$o" .o)
        name=${name%.c}
        while read -r sym; do
                owner[$sym]=$name
        done < <(nm --defined-only -g "$o" | awk '$2 ~ /^[TDBRV]$/ {print $3}')
done

edges=$(for o in "$@"; do
        name=$(basename "$o" .o)
        name=${name%.c}
        nm -u "$o" | awk '{print $2}' | while read -r sym; do
                dep=${owner[$sym]:-}
                if [[ -n $dep && $dep != "$name" ]]; then
                        echo "$name $dep $sym"
                fi
        done
done | sort -u)

if ! tsort_out=$(cut -d' ' -f1,2 <<<"$edges" | sort -u | tsort 2>&1 >/dev/null) || [[ -n $tsort_out ]]; then
        echo "check-layering: the files' dependencies have a cycle:" >&2
        echo "$tsort_out" >&2
        # The edges between the files tsort named, with a symbol each, to say where to look.
        files=$(grep -v 'input contains a loop' <<<"$tsort_out" | sed 's/^tsort: //' | sort -u)
        while read -r a b sym; do
                if grep -qx "$a" <<<"$files" && grep -qx "$b" <<<"$files"; then
                        echo "  $a -> $b ($sym)" >&2
                fi
        done <<<"$edges"
        exit 1
fi
echo "check-layering: $(cut -d' ' -f1,2 <<<"$edges" | sort -u | wc -l) dependencies between $# files, no cycle"
