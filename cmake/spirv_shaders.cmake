# esa_spirv_shaders(PREFIX SRC_DIR GEN_DIR HEADER OUT_VAR VARIANT...): the shaders of a library,
# GLSL -> SPIR-V -> C arrays, with include dependency tracking. A variant is "name source
# [DEFINE...]": glslc compiles SRC_DIR/source.comp with -DDEFINE... into GEN_DIR/name.spv
# (checked by spirv-val where found), embedded as PREFIX_shader_name_spv[] and
# PREFIX_shader_name_spv_size in GEN_DIR/name_spv.c; GEN_DIR/HEADER declares them all, and
# OUT_VAR receives the .c files. Uses GLSLC and SPIRV_VAL (find_program, top level).
function(esa_spirv_shaders prefix src_dir gen header out_var)
  set(embed "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/embed_spirv.cmake")
  file(MAKE_DIRECTORY "${gen}")
  set(sources)
  set(decls "/* generated: the embedded SPIR-V of ${prefix}'s shaders */\n#include <stddef.h>\n#include <stdint.h>\n")
  foreach(v IN LISTS ARGN)
    string(REPLACE " " ";" parts "${v}")
    list(POP_FRONT parts name src)
    set(defs)
    foreach(d IN LISTS parts)
      list(APPEND defs "-D${d}")
    endforeach()
    set(spv "${gen}/${name}.spv")
    set(csrc "${gen}/${name}_spv.c")
    set(validate)
    if(SPIRV_VAL)
      set(validate COMMAND ${SPIRV_VAL} --target-env vulkan1.2 "${spv}")
    endif()
    add_custom_command(
      OUTPUT "${spv}"
      COMMAND ${GLSLC} --target-env=vulkan1.2 -O -Werror -I "${src_dir}" ${defs}
              -MD -MF "${spv}.d" -o "${spv}" "${src_dir}/${src}.comp"
      ${validate}
      DEPENDS "${src_dir}/${src}.comp"
      DEPFILE "${spv}.d"
      COMMENT "glslc ${name} (${src}.comp ${defs})"
      VERBATIM)
    add_custom_command(
      OUTPUT "${csrc}"
      COMMAND ${CMAKE_COMMAND} -DSPV=${spv} -DOUT=${csrc} -DNAME=${prefix}_shader_${name}
              -P "${embed}"
      DEPENDS "${spv}" "${embed}"
      VERBATIM)
    list(APPEND sources "${csrc}")
    string(APPEND decls "extern const uint32_t ${prefix}_shader_${name}_spv[];\nextern const size_t ${prefix}_shader_${name}_spv_size;\n")
  endforeach()
  file(CONFIGURE OUTPUT "${gen}/${header}" CONTENT "${decls}")
  set(${out_var} ${sources} PARENT_SCOPE)
endfunction()
