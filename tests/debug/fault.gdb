# debug.fault: app faults while a debugger is attached stop with the right signal.
set pagination off
set confirm off
file @ELF@
target remote 127.0.0.1:@PORT@
echo MARK sigbus\n
set var fault_mode = 1
continue
bt 1
echo MARK detach\n
detach
