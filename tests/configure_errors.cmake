# Configuring gsdiff with a LibTorch that cannot be had stops with one message naming what was found and
# what is needed: a GSDIFF_PYTHON that does not exist, one that cannot import torch, a Torch_DIR with no LibTorch.
function(expect_configure_error name match)
  set(dir ${WORK}/${name})
  file(REMOVE_RECURSE ${dir})
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${dir} ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${name}: the configure succeeded; expected an error matching '${match}'")
  endif()
  string(REGEX REPLACE "[ \n]+" " " flat "${err}")  # CMake wraps messages at 80 columns
  if(NOT flat MATCHES "${match}")
    message(FATAL_ERROR "${name}: expected '${match}' in:\n${err}")
  endif()
  message(STATUS "${name}: ok")
endfunction()
expect_configure_error(no_python "GSDIFF_PYTHON=/nonexistent/python does not exist. Run scripts/setup.sh"
                       -DGSDIFF_PYTHON=/nonexistent/python)
expect_configure_error(python_without_torch "/bin/false cannot import torch" -DGSDIFF_PYTHON=/bin/false)
expect_configure_error(no_libtorch "LibTorch not found \\(Torch_DIR=${WORK}/none has no TorchConfig.cmake\\)" -DTorch_DIR=${WORK}/none)
