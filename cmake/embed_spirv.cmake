# Turns one SPIR-V file into a C source holding it as a uint32_t array (run with cmake -P).
# Inputs: SPV (file), OUT (C file), NAME (symbol stem).
file(READ "${SPV}" hex HEX)
string(LENGTH "${hex}" len)
math(EXPR rem "${len} % 8")
if(NOT rem EQUAL 0 OR len EQUAL 0)
  message(FATAL_ERROR "${SPV}: not a SPIR-V word stream")
endif()
# Bytes are little-endian words: regroup each 8 hex digits as 0xDDCCBBAA.
string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u," words "${hex}")
string(REGEX REPLACE "(0x........u,0x........u,0x........u,0x........u,0x........u,0x........u,)" "\\1\n" words "${words}")
math(EXPR nwords "${len} / 8")
file(WRITE "${OUT}" "/* generated from ${SPV}; do not edit */\n#include <stdint.h>\n#include <stddef.h>\nconst uint32_t ${NAME}_spv[${nwords}] = {\n${words}\n};\nconst size_t ${NAME}_spv_size = sizeof(${NAME}_spv);\n")
