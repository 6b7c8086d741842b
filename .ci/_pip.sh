# Sourced by .ci/setup*: run pip quietly, show its output only on failure (minus the local
# wheel-store notices), and fail loudly.
pip_install() {
  local py=$1; shift
  local log
  log=$(mktemp)
  if ! "$py" -m pip install -q "$@" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2 || true
    rm -f "$log"
    echo "pip install $* failed" >&2
    return 1
  fi
  grep -v "^WARNING: Location" "$log" || true
  rm -f "$log"
}
