#!/usr/bin/env bash
# hello_cxx.sh KEEL HELLO_CXX_ELF: the C++ app's global constructor runs before main (SDK startup),
# then it ticks with its watchdog kicked.
. "$(dirname "$0")/lib.sh"
keel=$1 elf=$2
kq_need_file "keel CLI" "$keel"
kq_need_file "hello-cxx app" "$elf"
kq_setup hello-cxx
# Until tick 5: several watchdog periods of ticking, so "never stopped" below had time to fail.
kq_run "$keel" "$elf" "${KQ_SECONDS:-40}" /dev/null '^app\| hello-cxx: tick 5 ' \
    '^\[keel\] heartbeat' '^\[keel\] heartbeat'

kq_expect started '^\[keel\] app started' "the app was never started"
kq_expect ctor '^app\| hello-cxx: global constructor ran before main at [0-9]+ us$' \
    "the global constructor did not run"
kq_expect main '^app\| hello-cxx: main$' "main did not run after the constructor" "$ctor"
kq_expect seen '^app\| hello-cxx: keel api 1$' "hello-cxx did not get the API version" "$main"
kq_expect seen '^app\| hello-cxx: tick 2 \(longest gap [0-9]+ ms\)$' "hello-cxx did not tick twice" "$main"
kq_expect_none '^\[keel\] app stopped' "hello-cxx must not be stopped"
kq_check_heartbeats
kq_finish
