# The boards of this tree: every folder firmware/platform/<board>/ with a board.cmake. Included by
# the firmware build (which builds one board, KEEL_BOARD) and by the host build (whose tools know
# every board: the registry behind --board, core/src/board_registry.c).
#
# A board.cmake sets, relative to its folder:
#   KEEL_BOARD_FW_SOURCES    the board's firmware sources (board_desc.c, the descriptor, among them)
#   KEEL_BOARD_LINKER_SCRIPT the microvisor's linker script
#   KEEL_BOARD_NSC_BASE      where the NSC veneers go (the import library's addresses)
#   KEEL_BOARD_IS_DEFAULT    ON for the one board host tools and the firmware use when none is named
#
# Sets KEEL_BOARDS (names, sorted) and KEEL_BOARD_DEFAULT.
file(GLOB _keel_board_files LIST_DIRECTORIES false ${CMAKE_CURRENT_LIST_DIR}/*/board.cmake)
list(SORT _keel_board_files)
set(KEEL_BOARDS)
set(KEEL_BOARD_DEFAULT)
foreach(_f ${_keel_board_files})
  get_filename_component(_d ${_f} DIRECTORY)
  get_filename_component(_name ${_d} NAME)
  set(KEEL_BOARD_IS_DEFAULT OFF)
  include(${_f})
  list(APPEND KEEL_BOARDS ${_name})
  if(KEEL_BOARD_IS_DEFAULT)
    if(KEEL_BOARD_DEFAULT)
      message(FATAL_ERROR "boards ${KEEL_BOARD_DEFAULT} and ${_name} both say they are the default")
    endif()
    set(KEEL_BOARD_DEFAULT ${_name})
  endif()
endforeach()
if(NOT KEEL_BOARD_DEFAULT)
  message(FATAL_ERROR "no board under ${CMAKE_CURRENT_LIST_DIR} sets KEEL_BOARD_IS_DEFAULT")
endif()

# keel_boards (host): the descriptor of every board and the registry over them.
function(keel_boards_library)
  set(_externs "")
  set(_list "")
  set(_objs)
  foreach(_name ${KEEL_BOARDS})
    set(_dir ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${_name})
    add_library(keel_board_${_name} OBJECT ${_dir}/board_desc.c)
    target_include_directories(keel_board_${_name} PRIVATE ${_dir})
    target_link_libraries(keel_board_${_name} PRIVATE keel_core)
    string(APPEND _externs "extern const kboard_t kboard_${_name}; ")
    string(APPEND _list "&kboard_${_name}, ")
    list(APPEND _objs $<TARGET_OBJECTS:keel_board_${_name}>)
  endforeach()
  set(_gen ${CMAKE_CURRENT_BINARY_DIR}/boards_gen)
  file(CONFIGURE OUTPUT ${_gen}/boards_gen.h CONTENT
"/* Written by firmware/platform/boards.cmake: the boards of this tree. */
#define KBOARD_EXTERNS ${_externs}
#define KBOARD_LIST ${_list}
#define KBOARD_DEFAULT kboard_${KEEL_BOARD_DEFAULT}
")
  add_library(keel_boards STATIC ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/../../core/src/board_registry.c ${_objs})
  target_include_directories(keel_boards PRIVATE ${_gen})
  target_link_libraries(keel_boards PUBLIC keel_core)
endfunction()
