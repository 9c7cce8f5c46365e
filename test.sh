#!/usr/bin/env bash
# Builds the solution and runs every test project; ends with "tests: N passed, N failed, N skipped".
# The kvm tests need a real /dev/kvm with hardware virtualization: where ../shared/tools/kvm-guest/run exists they run
# inside that tool's Linux guest (a real kernel KVM under emulated AMD-V); otherwise on this host, where they are
# skipped with the probe's reason if kvm cannot run.
set -uo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
config=Release
logs=artifacts/test-logs
rm -rf "$logs"; mkdir -p "$logs"

echo "== build ($config)"
if ! dotnet build Hypervisor.sln -c "$config" -nologo > "$logs/build.log" 2>&1; then
  grep -E "error" "$logs/build.log" | sort -u | head -40
  echo "build failed (see $logs/build.log)"
  echo "tests: 0 passed, 1 failed, 0 skipped"
  exit 1
fi

# Debian's cloud kernel for the Linux boot tests (apt-get download + dpkg -x into a cache outside git; never committed).
# Without it those tests skip with the reason.
if kernel=$(tests/assets/fetch-linux-kernel.sh 2> "$logs/fetch-linux-kernel.log"); then
  export HV_LINUX_KERNEL="$kernel"
else
  echo "  (Linux kernel not fetched, see $logs/fetch-linux-kernel.log: the Linux boot tests will skip)"
fi

passed=0; failed=0; skipped=0; status=0
count() { # $1 = log file of one MTP test executable run
  local t f s sk
  t=$(grep -E '^\s*total:' "$1" | tail -1 | grep -oE '[0-9]+')
  f=$(grep -E '^\s*failed:' "$1" | tail -1 | grep -oE '[0-9]+')
  s=$(grep -E '^\s*succeeded:' "$1" | tail -1 | grep -oE '[0-9]+')
  sk=$(grep -E '^\s*skipped:' "$1" | tail -1 | grep -oE '[0-9]+')
  if [ -z "$t" ]; then echo "  (no summary in $1: counted as one failure)"; failed=$((failed+1)); return; fi
  passed=$((passed+s)); failed=$((failed+f)); skipped=$((skipped+sk))
}

kvm_tool=../shared/tools/kvm-guest/run
for proj in tests/*/; do
  name=$(basename "$proj")
  dll="$proj/bin/$config/net10.0/$name.dll"
  [ -f "$dll" ] || continue
  log="$logs/$name.log"
  # Always through the tool when it is there: some hosts expose a /dev/kvm (kvm_pvm) that cannot run our guests.
  if [ "$name" = "Hypervisor.Accel.Kvm.Tests" ] && [ -x "$kvm_tool" ]; then
    echo "== $name (inside kvm-guest: real /dev/kvm)"
    KVM_GUEST_PASS_ENV="HV_LINUX_KERNEL" "$kvm_tool" --timeout 900 --workdir "$PWD" -- dotnet "$dll" --no-progress > "$log" 2>&1
  else
    echo "== $name"
    dotnet "$dll" --no-progress > "$log" 2>&1
  fi
  rc=$?
  grep -E '^(failed|skipped) ' "$log" | sed 's/^/  /' | head -40
  grep -E '^\s*(total|failed|succeeded|skipped):' "$log" | tr -s ' ' | tr '\n' ' '; echo
  # MTP exit codes: 0 ok, 8 = zero tests ran (a project whose tests are all filtered out), others = failure.
  if [ $rc -ne 0 ] && [ $rc -ne 8 ]; then status=1; fi
  count "$log"
done

[ $failed -eq 0 ] || status=1
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
