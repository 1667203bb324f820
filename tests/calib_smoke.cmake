# calib_smoke.cmake - the calibration end to end on the model file: esa-run dumps the queries and
# keys of 600 tokens of GPL-3's text (Debian's base-files), esa-calib fits closed-form, PCA and
# random compressions at d' 32 and measures their top-k recall (small l_I, l_L, k for 600 tokens;
# in-sample, a check of the pipeline, not of quality), and esa-run then selects with the
# closed-form file loaded into its cache, and refuses it for a cache of another w. Fails unless the
# closed form beats PCA, PCA beats random, and the closed form's mean recall is at least 0.85.
# Arguments: -DRUN=esa-run -DCALIB=esa-calib -DMODEL=path -DWORK=dir -DTEXT=path
if(NOT EXISTS "${MODEL}")
  message("SKIP: no model file at ${MODEL}")
  return()
endif()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_out "${out}${err}" PARENT_SCOPE)
endfunction()
run(${RUN} --model ${MODEL} --prompt-file ${TEXT} --raw --n-predict 0 --attention dense --quiet --validate
    --dump-qk ${WORK}/qk.safetensors --dump-tokens 600)
foreach(m closed-form pca random)
  run(${CALIB} fit ${WORK}/qk.safetensors --dim 32 --method ${m} -o ${WORK}/${m}.esac)
endforeach()
run(${CALIB} recall ${WORK}/qk.safetensors ${WORK}/closed-form.esac ${WORK}/pca.esac ${WORK}/random.esac
    --initial 16 --local 128 --top-k 64 --chunk 64 --out ${WORK} --no-plots)
file(READ "${WORK}/recall.json" js)
set(means "")
foreach(i 0 1 2)
  string(JSON layers LENGTH "${js}" maps ${i} recall)
  set(sum 0)
  math(EXPR last "${layers} - 1")
  foreach(l RANGE ${last})
    string(JSON v GET "${js}" maps ${i} recall ${l} 0)
    # CMake has no float arithmetic: thousandths ("1.0", "0.94271", "1")
    string(REGEX MATCH "^([0-9]+)\\.?([0-9]*)" _ "${v}")
    set(whole "${CMAKE_MATCH_1}")
    set(frac "${CMAKE_MATCH_2}000")
    string(SUBSTRING "${frac}" 0 3 frac)
    string(REGEX REPLACE "^0*([0-9])" "\\1" frac "${frac}")
    math(EXPR milli "${whole} * 1000 + ${frac}")
    math(EXPR sum "${sum} + ${milli}")
  endforeach()
  math(EXPR mean "${sum} / ${layers}")
  list(APPEND means ${mean})
endforeach()
list(GET means 0 cf)
list(GET means 1 pca)
list(GET means 2 rnd)
message("mean chunk recall (thousandths): closed form ${cf}, PCA ${pca}, random ${rnd}")
if(NOT cf GREATER pca OR NOT pca GREATER rnd OR cf LESS 850)
  message(FATAL_ERROR "recall out of order or too low: closed form ${cf}, PCA ${pca}, random ${rnd}")
endif()
# the file loaded into the model's cache (checked against it): a run that selects with it
run(${RUN} --model ${MODEL} --validate --passkey 600 --attention esa --initial 16 --local 64 --top-k 64
    --chunk 128 --quiet --n-predict 8 --compression ${WORK}/closed-form.esac)
if(NOT last_out MATCHES "pass key [0-9]+: (retrieved|NOT retrieved)")
  message(FATAL_ERROR "esa-run with the closed-form compressions did not answer:\n${last_out}")
endif()
message("esa-run selected with the closed-form compressions: ${CMAKE_MATCH_1}")
# a file of another shape is refused by name
execute_process(COMMAND ${RUN} --model ${MODEL} --passkey 600 --initial 16 --local 64 --top-k 64 --chunk 128
                --quiet --n-predict 1 --compression ${WORK}/closed-form.esac --global-pos 100
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "global_pos is 4096 in the file, 100 in this cache")
  message(FATAL_ERROR "a mismatched w was not refused by name (${rc}):\n${out}${err}")
endif()
