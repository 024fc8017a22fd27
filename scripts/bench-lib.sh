# Shared by the bench scripts (sourced, not run). Needs `$work`, the bench's temp dir.

# Seconds taken by a command; its output is kept only when it fails (then the bench stops).
timed() {
  local start end log=$work/last.log
  start=$(date +%s.%N)
  if ! "$@" >"$log" 2>&1; then
    echo "error: $* failed:" >&2
    cat "$log" >&2
    exit 2
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
