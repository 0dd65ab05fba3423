# debug.session: the session issue 7 asks for, gdb-multiarch against the device stub over the
# plain serial line (debug.sh fills in @ELF@ and @PORT@). debug.sh checks the output by MARKs.
set pagination off
set confirm off
file @ELF@
set remotelogfile @RLOG@
target remote 127.0.0.1:@PORT@
echo MARK info-registers\n
info registers
echo MARK break\n
break level5
continue
echo MARK bt\n
bt
echo MARK locals\n
print local5
print x
print table[1]
up
print local4
down
echo MARK set-var\n
set var counter = 1234
print counter
echo MARK watchdog-paused\n
# Longer than the app's 500 ms watchdog: a halt must not count as a hang.
python import time; time.sleep(1.5)
echo MARK finish\n
finish
echo MARK next\n
next
echo MARK step\n
delete
break level1
continue
next
step
echo MARK stepi\n
stepi
stepi
info registers pc
echo MARK x\n
x/16x table
echo MARK refused\n
python
for addr in (0x38000000, 0x10000000, 0x40200000, 0x281ffffc, 0x28280000):
    try:
        gdb.execute("x/1x %d" % addr, to_string=True)
        print("READ-ALLOWED 0x%08x" % addr)
    except gdb.MemoryError:
        print("READ-REFUSED 0x%08x" % addr)
try:
    gdb.execute("set var *(unsigned int *)0x38000000 = 1")
    print("WRITE-ALLOWED")
except gdb.MemoryError:
    print("WRITE-REFUSED")
end
echo MARK isr\n
delete
break isr_work
continue
bt
python import time; time.sleep(1.5)
finish
delete
echo MARK interrupt\n
# Ctrl-C as gdb sends it while a foreground continue waits: posted from a thread after 0.5 s.
python
import threading, time
def _stop():
    time.sleep(0.5)
    gdb.post_event(lambda: gdb.execute("interrupt"))
threading.Thread(target=_stop).start()
end
continue
echo MARK after-interrupt\n
print counter > 1234
echo MARK detach\n
break level3
detach
