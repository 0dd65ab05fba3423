# rtos.gdb: gdb commands for the rtos example app (source it after `file rtos.elf`).
#
#   kos-threads    every thread of the scheduler: name, priority, state, where it is (pc and
#                  function) and its stack pointer. The running thread's pc/sp are the halted
#                  registers; a switched-out thread's come from the frame PendSV left on its stack
#                  (r4-r11, EXC_RETURN, then the hardware frame r0-r3, r12, lr, pc, xPSR).
#
# The microvisor's gdb stub shows the app as one thread (it knows no app scheduler); this lists
# the app's own threads from its memory, which works through any transport (serial or the cloud).
python
import gdb

class KosThreads(gdb.Command):
    """List the rtos app's threads (kos_threads[]): name, priority, state, pc, function, sp."""

    STATES = ("ready", "sleeping", "blocked", "done")

    def __init__(self):
        super(KosThreads, self).__init__("kos-threads", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        n = int(gdb.parse_and_eval("kos_nthreads"))
        cur = int(gdb.parse_and_eval("(unsigned int)kos_cur"))
        inf = gdb.selected_inferior()
        for i in range(n):
            t = gdb.parse_and_eval("kos_threads[%d]" % i).dereference()
            addr = int(gdb.parse_and_eval("(unsigned int)kos_threads[%d]" % i))
            state = int(t["state"])
            if addr == cur:
                pc = int(gdb.parse_and_eval("$pc")) & 0xFFFFFFFF
                sp = int(gdb.parse_and_eval("$sp")) & 0xFFFFFFFF
                mark = "*"
            else:
                sp = int(t["sp"])
                words = inf.read_memory(sp + 15 * 4, 4).tobytes()
                pc = int.from_bytes(words, "little")
                sp = sp + 17 * 4
                mark = " "
            # The function the pc is in, not a function inlined into it.
            fn = "??"
            block = gdb.block_for_pc(pc)
            while block is not None and not block.is_static and not block.is_global:
                if block.function is not None:
                    fn = block.function.name
                block = block.superblock
            print("%s %-2d %-9s prio %-2d %-8s pc 0x%08x in %-20s sp 0x%08x" % (
                mark, i, t["name"].string(), int(t["prio"]),
                self.STATES[state] if state < len(self.STATES) else "?", pc, fn, sp))

KosThreads()
end
