# unit.rsp.gdb: the session the issue asks for, against the RSP engine (test_rsp_qemu.sh fills
# in @ELF@ and @PORT@). Each command's output is matched in tests/unit/CMakeLists.txt.
set pagination off
set confirm off
file @ELF@
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
print counter
up
print local4
down
echo MARK set-var\n
set var counter = 1234
print counter
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
echo MARK interrupt\n
delete
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
break level3
echo MARK detach\n
print/d counter
detach
