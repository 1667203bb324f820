# eval_merge.cmake - esa-run --eval-merge on fixed eval.csv files (no model, no device): the two
# runs of tests/data/eval_merge/a and b become one grid whose eval.md must equal expected.md (the
# command line aside): lengths and depths as the union, sorted; methods in the order first seen;
# a cell that both runs measured counts both prompts (dense 8192 at 0.5: 1/2); a row that holds
# a comma inside its quoted answer. Merging the merged folder again must give the same tables.
# A malformed row, a missing folder and a grid option beside --eval-merge must fail, saying why.
# Arguments: -DRUN=esa-run -DDATA=tests/data/eval_merge -DWORK=dir
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
function(merge out expect_rc expect_msg)
  execute_process(COMMAND ${RUN} --eval-merge ${ARGN} --eval-out ${WORK}/${out} --no-plots
                  RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(NOT rc EQUAL expect_rc OR NOT "${e}" MATCHES "${expect_msg}")
    message(FATAL_ERROR "esa-run --eval-merge ${ARGN}: exit ${rc} (want ${expect_rc}), stderr: ${e}")
  endif()
endfunction()
function(tables dir var) # eval.md without its first line (the command)
  file(READ "${dir}/eval.md" md)
  string(FIND "${md}" "\n" nl)
  math(EXPR nl "${nl} + 1")
  string(SUBSTRING "${md}" ${nl} -1 md)
  set(${var} "${md}" PARENT_SCOPE)
endfunction()
merge(ab 0 "^$" ${DATA}/a,${DATA}/b)
tables(${WORK}/ab got)
file(READ "${DATA}/expected.md" want)
if(NOT got STREQUAL want)
  message(FATAL_ERROR "merged tables differ from ${DATA}/expected.md:\n${got}")
endif()
merge(again 0 "^$" ${WORK}/ab)
tables(${WORK}/again again)
if(NOT again STREQUAL got)
  message(FATAL_ERROR "merging the merged folder changed the tables:\n${again}")
endif()
merge(bad 1 "bad/eval.csv line 2: not a row" ${DATA}/a,${DATA}/bad)
merge(none 1 "cannot read .*nope/eval.csv" ${DATA}/nope)
merge(opt 2 "takes the grid from the runs it merges" ${DATA}/a --eval-depths 0.5)
message("eval_merge: tables as expected")
