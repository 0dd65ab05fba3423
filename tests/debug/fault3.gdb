# debug.fault, third connection: the app hangs while gdb waits in 'continue'; its watchdog stops
# it for good, so gdb hears SIGKILL; the restarted app then runs on.
set pagination off
set confirm off
file @ELF@
target remote 127.0.0.1:@PORT@
echo MARK sigkill\n
set var fault_mode = 3
continue
