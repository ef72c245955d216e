# Helpers shared by the folder libraries: one library per folder, one shared PCH.

# gsdiff_add_library(NAME folder DEPS ...): library gsdiff_<folder> (alias gsdiff::<folder>)
# from every .cpp in the folder; headers are included as "folder/file.h" from the repo root.
function(gsdiff_add_library folder)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  set(tgt gsdiff_${folder})
  if(NOT srcs)  # a folder whose sources are still to come builds as an empty library
    set(srcs ${CMAKE_BINARY_DIR}/gsdiff_empty_${folder}.cpp)
    file(WRITE ${srcs} "// ${folder}/ has no sources yet\n")
  endif()
  add_library(${tgt} ${srcs})
  add_library(gsdiff::${folder} ALIAS ${tgt})
  target_include_directories(${tgt} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/gsdiff>)
  target_link_libraries(${tgt} PUBLIC ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json ${ARG_DEPS})
  target_compile_options(${tgt} PRIVATE ${GSDIFF_COMMON_FLAGS})
  # Consumers compile gsdiff's headers (and LibTorch's) at the same standard: C++20 on LibTorch 2.
  target_compile_features(${tgt} PUBLIC cxx_std_${CMAKE_CXX_STANDARD})
  gsdiff_use_pch(${tgt})
endfunction()

# One precompiled header (LibTorch + std) built once, reused by every target.
# The PCH lives in its own tiny target so that no folder waits on another folder's sources.
set(GSDIFF_COMMON_FLAGS -Wall -Wextra -Wno-unused-parameter)
# CONFIGURE writes only when the text changes: a rewrite on every re-run of CMake (a new file anywhere)
# would date the PCH and rebuild every translation unit.
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/gsdiff_pch_dummy.cpp CONTENT "// dummy TU that produces the shared PCH\n")
add_library(gsdiff_pch OBJECT ${CMAKE_BINARY_DIR}/gsdiff_pch_dummy.cpp)
target_link_libraries(gsdiff_pch PRIVATE ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json)
target_compile_options(gsdiff_pch PRIVATE ${GSDIFF_COMMON_FLAGS})
set_target_properties(gsdiff_pch PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_precompile_headers(gsdiff_pch PRIVATE <torch/torch.h> <nlohmann/json.hpp>
  <vector> <string> <memory> <functional> <map> <stdexcept> <cmath>)

# GCC accepts a PCH only under the same -fPIC/-fPIE setting: executables are compiled with -fPIC
# (as the PCH is) instead of CMake's -fPIE, which links into the default PIE executable just the same.
function(gsdiff_use_pch tgt)
  get_target_property(type ${tgt} TYPE)
  if(type STREQUAL "EXECUTABLE")
    set_target_properties(${tgt} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${tgt} PRIVATE -fPIC)
  else()
    set_target_properties(${tgt} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  endif()
  target_precompile_headers(${tgt} REUSE_FROM gsdiff_pch)
endfunction()
