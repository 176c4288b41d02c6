#!/bin/bash
# Instructions per operation of one of the *-count.mjs tools, with valgrind's callgrind: the
# difference between the counts of two runs over the difference of N, start-up cancelled out.
# Node's start-up has a random prime search (`detail::sprp`) whose cost moves the totals by up to
# ~8M instructions from run to run; it is left out (bench/NOTES.md, thirteenth session).
# Diagnostic, not a row of bench/run.mjs.
#   bench/tools/count.sh pingpong [root of a bunnet checkout]      (N = 5,000 and 45,000)
#   bench/tools/count.sh churn-unix [root]                         (N = 2,000 and 12,000)
#   bench/tools/count.sh churn-tcp [root]
# The callgrind files stay in $TMPDIR (default /tmp) as bunnet-count.<tool>.<N>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "${2:-$here/../..}" && pwd)
out=${TMPDIR:-/tmp}
case "${1:-}" in
  pingpong) script=pingpong-count.mjs; pre=(); a=5000; b=45000 ;;
  churn-unix) script=churn-count.mjs; pre=(unix); a=2000; b=12000 ;;
  churn-tcp) script=churn-count.mjs; pre=(tcp); a=2000; b=12000 ;;
  *) echo "usage: $0 pingpong|churn-unix|churn-tcp [bunnet root]" >&2; exit 2 ;;
esac
for n in $a $b; do
  valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file="$out/bunnet-count.$1.$n" \
    node "$here/$script" "${pre[@]}" "$n" "$root/index.mjs" >/dev/null 2>&1
done
python3 - "$out/bunnet-count.$1.$a" "$out/bunnet-count.$1.$b" "$a" "$b" <<'PY'
import re, subprocess, sys
def total(f):
    out = subprocess.run(['callgrind_annotate', '--inclusive=no', '--threshold=100', f], capture_output=True, text=True).stdout
    tot = noise = 0
    for line in out.splitlines():
        m = re.match(r'\s*([\d,]+) \([^)]*\)\s+(.*)', line)
        if not m:
            continue
        v = int(m.group(1).replace(',', ''))
        if 'PROGRAM TOTALS' in m.group(2):
            tot = v
        elif 'sprp' in m.group(2):
            noise += v
    return tot - noise
fa, fb, na, nb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print(f'{(total(fb) - total(fa)) / (nb - na):,.0f} instructions per operation')
PY
