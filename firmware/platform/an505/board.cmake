# The AN505 (QEMU mps2-an505) for the build: see firmware/platform/boards.cmake.
set(KEEL_BOARD_FW_SOURCES board.c board_desc.c flash_store.c port.c startup.c
  ../drivers/lan9118.c) # the NIC (nic.h): a shared driver
set(KEEL_BOARD_LINKER_SCRIPT secure.ld)
# The NSC veneers' address (ld wants it on the command line when it reuses an import library);
# board_desc.c checks it against layout.h.
set(KEEL_BOARD_NSC_BASE 0x1007F000)
set(KEEL_BOARD_IS_DEFAULT ON)
