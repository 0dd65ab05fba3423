# debug.fault, second connection (after the restart): SIGILL, then kill.
set pagination off
set confirm off
file @ELF@
target remote 127.0.0.1:@PORT@
echo MARK sigill\n
print fault_mode
set var fault_mode = 2
continue
echo MARK kill\n
kill
