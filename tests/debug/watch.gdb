# debug.watch: watchpoints (Z2 watch, Z3 rwatch, Z4 awatch) on the device stub over the serial
# line; debug.sh fills in @ELF@, @PORT@ and @RLOG@ (gdb's packet log: the stop replies must name
# the right kind and address) and checks the output by MARKs and the device console.
set pagination off
set confirm off
file @ELF@
set remotelogfile @RLOG@
target remote 127.0.0.1:@PORT@
echo MARK addresses\n
printf "ADDR counter %08x\n", &counter
printf "ADDR isr_ticks %08x\n", &isr_ticks
printf "ADDR table6 %08x\n", &table[6]
echo MARK watch\n
# counter shares its 32-byte granule with isr_ticks, written by every TIMER1 interrupt: those
# writes are trapped too and must not stop gdb.
watch counter
continue
continue
print mpu_ctrl_seen
delete
echo MARK rwatch\n
rwatch isr_ticks
continue
bt 2
delete
echo MARK awatch\n
# level5 does table[x & 15] += 1: a read, then a write.
awatch table[6]
continue
continue
delete
echo MARK refused-outside\n
watch *(int *)0x38000000
python
try:
    gdb.execute("continue")
    print("INSERT-ACCEPTED")
except gdb.error as e:
    print("INSERT-REFUSED")
end
delete
echo MARK refused-stack\n
break level5
continue
delete
watch -location local5
python
try:
    gdb.execute("continue")
    print("INSERT-ACCEPTED")
except gdb.error as e:
    print("INSERT-REFUSED")
end
delete
echo MARK refused-full\n
watch table[0]
watch table[2]
rwatch table[4]
awatch table[8]
watch table[10]
python
try:
    gdb.execute("continue")
    print("INSERT-ACCEPTED")
except gdb.error as e:
    print("INSERT-REFUSED")
end
delete
echo MARK none\n
# No watchpoint left: the app's MPU is its own again (it reads 0, as the app never enabled it).
break level1
continue
continue
print mpu_ctrl_seen
delete
detach
