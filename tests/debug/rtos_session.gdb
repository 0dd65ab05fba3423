# debug.rtos: a breakpoint in a thread of firmware/apps/rtos and its threads (debug.sh rtos checks
# the output by MARKs).
set pagination off
set confirm off
file @ELF@
source @TMP@/rtos.gdb
target remote 127.0.0.1:@PORT@
echo MARK break\n
break pair_update
continue
echo MARK bt\n
bt
echo MARK thread\n
print kos_cur->name
echo MARK threads\n
kos-threads
echo MARK other\n
python
first = gdb.parse_and_eval("kos_cur->name").string()
other = first
for _ in range(100):
    gdb.execute("continue", to_string=True)
    other = gdb.parse_and_eval("kos_cur->name").string()
    if other != first:
        break
print("OTHER %s AFTER %s" % (other, first))
end
bt 2
echo MARK detach\n
delete
detach
