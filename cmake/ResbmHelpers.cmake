# Small helpers so every target gets the same warnings, include root and PCH.
#
#   resbm_cc_library(NAME name SRCS a.cc ... DEPS dep ... [TORCH])
#   resbm_cc_binary(NAME name SRCS main.cc DEPS dep ... [TORCH] [OUTPUT_NAME resbm-x])
#   resbm_cc_test(NAME name SRCS a_test.cc DEPS dep ... [TORCH] [LABELS l ...] [TIMEOUT s])
#
# TORCH marks targets whose sources include LibTorch headers: they reuse one precompiled
# <torch/torch.h> (resbm_torch_pch), which cuts a 25-35 s translation unit to about 10 s.

# -pthread on every target: gRPC and GTest add it to their users, and a PCH built without it
# is silently skipped (_REENTRANT differs), so the PCH owner and all its users carry it.
set(RESBM_WARNINGS -Wall -Wextra -Wno-unused-parameter -pthread -Winvalid-pch)
if(RESBM_WERROR)
  list(APPEND RESBM_WARNINGS -Werror)
endif()

# The PCH owner. Its users must compile with identical flags (-pthread included), so every
# TORCH target links Threads and torch the same way this one does.
if(RESBM_USE_PCH)
  file(WRITE ${CMAKE_BINARY_DIR}/resbm_pch_stub.cc "// PCH owner.\n")
  add_library(resbm_torch_pch OBJECT ${CMAKE_BINARY_DIR}/resbm_pch_stub.cc)
  target_link_libraries(resbm_torch_pch PUBLIC ${TORCH_LIBRARIES} Threads::Threads)
  target_compile_options(resbm_torch_pch PRIVATE ${RESBM_WARNINGS})
  target_precompile_headers(resbm_torch_pch PRIVATE <torch/torch.h>)
endif()

function(_resbm_common_setup target torch)
  target_include_directories(${target} PUBLIC ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
  target_compile_options(${target} PRIVATE ${RESBM_WARNINGS})
  target_link_libraries(${target} PUBLIC Threads::Threads)
  if(torch)
    target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
    if(RESBM_USE_PCH)
      target_precompile_headers(${target} REUSE_FROM resbm_torch_pch)
    endif()
  endif()
endfunction()

function(resbm_cc_library)
  cmake_parse_arguments(ARG "TORCH" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS})
  _resbm_common_setup(${ARG_NAME} ${ARG_TORCH})
endfunction()

function(resbm_cc_binary)
  cmake_parse_arguments(ARG "TORCH" "NAME;OUTPUT_NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  _resbm_common_setup(${ARG_NAME} ${ARG_TORCH})
  if(ARG_OUTPUT_NAME)
    set_target_properties(${ARG_NAME} PROPERTIES OUTPUT_NAME ${ARG_OUTPUT_NAME})
  endif()
endfunction()

function(resbm_cc_test)
  cmake_parse_arguments(ARG "TORCH" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  _resbm_common_setup(${ARG_NAME} ${ARG_TORCH})
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  set_tests_properties(${ARG_NAME} PROPERTIES
    TIMEOUT ${ARG_TIMEOUT}
    LABELS "${ARG_LABELS}"
    ENVIRONMENT "RESBM_SOURCE_DIR=${CMAKE_SOURCE_DIR};RESBM_BINARY_DIR=${CMAKE_BINARY_DIR};OMP_NUM_THREADS=1")
endfunction()
