#!/bin/sh
# unit.rsp.gdb: gdb-multiarch -> RSP engine (test_rsp_qemu) -> QEMU running test_rsp_qemu_app.
#   test_rsp_qemu.sh PROXY APP_ELF SESSION_GDB WORKDIR EXPECT
# Everything is bounded by timeout and stopped by pid. Passes only when gdb and the engine exit 0,
# the transcript matches the PCRE in EXPECT (test_rsp_qemu.expect) and the detached app ran on;
# CTest's FAIL_REGULAR_EXPRESSION adds gdb's warnings and sanitizer reports of the engine.
PROXY=$1 ELF=$2 SESSION=$3 DIR=$4 EXPECT=$5
mkdir -p "$DIR" && cd "$DIR" || exit 1
rm -f qemu-gdb.sock proxy.out session.gdb
timeout 60 qemu-system-arm -M mps2-an505 -display none -monitor none -serial null \
  -kernel "$ELF" -chardev socket,id=g,path=qemu-gdb.sock,server=on,wait=off -gdb chardev:g -S &
QP=$!
# start_engine: the engine between QEMU and the next gdb; sets PP and PORT
start_engine() {
  rm -f proxy.out
  timeout 60 "$PROXY" qemu-gdb.sock > proxy.out &
  PP=$!
  PORT=
  for i in $(seq 200); do
    PORT=$(sed -n 's/^port //p' proxy.out)
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  echo "the RSP engine did not start listening"
  kill $PP $QP 2>/dev/null
  exit 1
}

start_engine
sed "s/@PORT@/$PORT/; s#@ELF@#$ELF#" "$SESSION" > session.gdb
timeout 60 gdb-multiarch -q -batch -nx -x session.gdb > session.out 2>&1
GRC=$?
wait $PP
PRC=$?
cat session.out proxy.out

# After the detach the app must run on, with no breakpoint left behind (level3 was set when
# gdb detached): a second session finds the counter moved on and the program not stopped.
BEFORE=$(sed -n '/^MARK detach/{n;s/^\$[0-9]* = //p}' session.out)
sleep 0.3
start_engine
timeout 60 gdb-multiarch -q -batch -nx -ex "file $ELF" -ex "target remote 127.0.0.1:$PORT" \
  -ex "print/d counter" -ex "detach" > after.out 2>&1
wait $PP
AFTER=$(sed -n 's/^\$1 = //p' after.out)
kill $QP 2>/dev/null
wait $QP 2>/dev/null
echo "counter at detach: $BEFORE, after: $AFTER"
# Moved on, not "grew": the uint32 counter grows by some 10^8 a second on QEMU and wraps every
# half a minute or so, so a later value can be smaller. Only a stopped app leaves it as it was.
if [ -n "$BEFORE" ] && [ -n "$AFTER" ] && [ "$AFTER" != "$BEFORE" ]; then
  echo "app ran on after detach"
fi
echo "gdb exit $GRC, engine exit $PRC"
# The whole transcript, as printed above, must match the expected session (CTest would ignore
# the exit code if it matched the pattern itself).
{ cat session.out proxy.out; echo "counter at detach: $BEFORE, after: $AFTER"
  if [ -n "$BEFORE" ] && [ -n "$AFTER" ] && [ "$AFTER" != "$BEFORE" ]; then echo "app ran on after detach"; fi
} > transcript.out
if ! grep -Pzq "$(cat "$EXPECT")" transcript.out; then
  echo "FAIL: the gdb session does not match $EXPECT"
  exit 1
fi
[ $GRC -eq 0 ] && [ $PRC -eq 0 ] || { echo "FAIL: gdb or the engine exited non-zero"; exit 1; }
echo "PASS: the gdb session matches"
