#!/usr/bin/env bash
# hello.sh KEEL HELLO_ELF: hello runs, ticks, sees its STARTED notification, logs through the
# microvisor, and its watchdog (kicked from the main loop) never fires.
. "$(dirname "$0")/lib.sh"
keel=$1 elf=$2
kq_need_file "keel CLI" "$keel"
kq_need_file "hello app" "$elf"
kq_setup hello
# Until tick 5: more than two of hello's 2 s watchdog periods, so the checks below that nothing
# stopped it and no watchdog warning came had time to fail (bounded at 40 s on a loaded machine).
kq_run "$keel" "$elf" "${KQ_SECONDS:-40}" /dev/null '^app\| hello: tick 5$' \
    '^\[keel\] heartbeat' '^\[keel\] heartbeat'

# Two streams (the microvisor's UART1 and the app's UART0, "app| ") are merged by the CLI as lines
# arrive, so lines are ordered only against lines of their own stream.
kq_expect started '^\[keel\] app started' "the app was never started"
kq_expect seen '^app\| hello: microvisor [0-9]+\.[0-9]+\.[0-9]+ api 1 ' "hello did not print the versions"
kq_expect seen '^app\| hello: device id [A-Za-z0-9._-]+$' "hello did not print the device id"
kq_expect seen '^app\| hello: notification STARTED previous run ended by power-on, restarts 0$' \
    "the STARTED notification did not arrive"
kq_expect seen '^\[.*hello: up and logging' "the microvisor did not print hello's log message"
kq_expect seen '^\[.*hello: STARTED, previous run ended by power-on' \
    "the microvisor did not print hello's STARTED log"
kq_expect tick '^app\| hello: tick 1$' "no first tick"
kq_expect seen '^app\| hello: tick 3$' "fewer than 3 ticks" "$tick"
kq_expect_none '^app\| hello: .* failed: status' "an API call failed"
kq_expect_none '^\[keel\] app stopped' "hello must not be stopped (watchdog kicked from the main loop)"
kq_expect_none '^app\| hello: notification WATCHDOG' "the watchdog warned: kicks from the main loop came late"
kq_check_heartbeats
kq_finish
