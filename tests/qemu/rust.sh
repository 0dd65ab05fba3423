#!/usr/bin/env bash
# rust.sh KEEL HELLO_RUST_ELF: the Rust example app (firmware/apps/hello-rust, on the keel crate)
# uses the API: its log lines reach the microvisor, the STARTED notification is decoded from the
# ring, update control answers (status; a confirm off trial is refused with State), a bad channel
# name is refused and a good channel queues; then it restarts itself with keel::app_restart and the
# next run is told "restart". Built only when rustc and rust-src are installed (`make deps`).
. "$(dirname "$0")/lib.sh"
keel=$1 elf=$2
kq_need_file "keel CLI" "$keel"
[ -f "$elf" ] || kq_die "the Rust app is not built at '$elf': install rustc and rust-src ('make deps': scripts/packages/rust.txt), then 'make' (the firmware build says why it skipped Rust apps)"
kq_setup hello-rust
r='^\[app\] I hello-rust: '
kq_run "$keel" "$elf" "${KQ_SECONDS:-40}" /dev/null \
    "${r}notification Started, previous run ended by power-on, restarts 0\$" "${r}restarting through keel::app_restart\$" \
    "${r}notification Started, previous run ended by restart, restarts 1\$" "${r}tick 3 " \
    '^\[keel\] heartbeat' '^\[keel\] heartbeat'

kq_expect started '^\[keel\] app started' "the app was never started"
kq_expect v "${r}microvisor [0-9]+\.[0-9]+\.[0-9]+ api 1 app 0\.0\.0\$" "keel::version() was not logged" "$started"
kq_expect seen "${r}device id [A-Za-z0-9._-]+\$" "keel::device_id() was not logged" "$v"
kq_expect seen "${r}update state Idle, installed 0\.0\.0, on trial false\$" "keel::update_status() was not logged" "$v"
kq_expect seen "${r}update_confirm off trial: Err\(State\)\$" "keel::update_confirm() off trial must be refused with State" "$v"
kq_expect seen "${r}open \"a/b\": Err\(Invalid\)\$" "a bad channel name must be refused with Invalid" "$v"
kq_expect seen "${r}channel rust open, message queued as seq [0-9]+\$" "the channel did not open and queue" "$v"
# 128-bit division through the SDK's compiler_builtins (values checked with Python's integers).
kq_expect seen "${r}u128 340282366920938463463374607431768199110 / 18446744073709551623 = 18446744073709551608 rem 18446744073709539326; i128 -170141183460469231731687303715884105000 / 7 = -24305883351495604533098186245126300714 rem -2\$" \
    "128-bit division gave a wrong answer" "$v"
kq_expect n1 "${r}notification Started, previous run ended by power-on, restarts 0\$" "the STARTED notification was not decoded" "$v"
kq_expect t1 "${r}tick 1 \([1-9][0-9]* systicks\)\$" "no tick (SysTick wakes the loop)" "$n1"
kq_expect rs "${r}restarting through keel::app_restart\$" "no restart" "$t1"
kq_expect stop '^\[keel\] app stopped: restart' "the microvisor did not stop the app for its restart" "$started"
kq_expect again '^\[keel\] app started' "the app was not started again" "$stop"
kq_expect n2 "${r}notification Started, previous run ended by restart, restarts 1\$" "the next run was not told 'restart'" "$rs"
kq_expect seen "${r}tick 3 " "the second run did not tick on (watchdog kicked)" "$n2"
kq_expect_none "${r}(.* failed|panic|app_restart returned)" "an API call failed or the app panicked"
[ "$(grep -c '^\[keel\] app stopped' "$KQ_OUT")" -eq 1 ] || kq_fail "the app must stop exactly once (its restart): never by its watchdog"
kq_check_heartbeats
kq_finish
