# debug.session, second connection: stepping where the microvisor and the hardware take part
# (exception returns, calls into the microvisor). debug.sh fills in @ELF@ and @PORT@.
set pagination off
set confirm off
file @ELF@
target remote 127.0.0.1:@PORT@
echo MARK stepi-exc-return\n
# A stepi over the handler's exception return (pop {r7, pc} of an EXC_RETURN) lands in the
# interrupted main-line code.
python
for line in gdb.execute("disassemble IRQ4_Handler", to_string=True).splitlines():
    if "pop" in line and "pc}" in line:
        gdb.execute("break *" + line.split()[0])
        break
end
continue
stepi
bt 1
delete
echo MARK next-over-keel-call\n
# main's call of keel_watchdog_kick(): a BL into the microvisor's veneer, stepped over.
python
src = gdb.lookup_global_symbol("main").symtab.fullname()
line = [i for i, l in enumerate(open(src), 1) if "keel_watchdog_kick();" in l][0]
gdb.execute("break %d" % line)
end
continue
next
delete
echo MARK stepi-veneer\n
# The linker veneer jumps into the microvisor (ldr pc, then a literal word: hence '*', gdb's
# prologue skip would plant the breakpoint on the literal): a stepi there ends back in main.
break *__keel_watchdog_kick_veneer
continue
stepi
info registers pc
delete
echo MARK steps-detach\n
detach
