# Included by scripts/build-llama.sh (CMAKE_PROJECT_INCLUDE) into llama.cpp's CMake project. A unity
# build (CMAKE_UNITY_BUILD=ON) compiles each target's sources in batches, so the same headers are
# parsed once per batch rather than once per source (the time saved: docs/benchmarks.md). Two
# sources do not combine with the others of their target and stay apart: common/json.cpp (it
# specialises templates the others instantiate) and mtmd's helper sources (they must not see
# mtmd's internal headers).
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL set_source_files_properties
  "${CMAKE_SOURCE_DIR}/common/json.cpp" TARGET_DIRECTORY llama-common PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL set_source_files_properties
  "${CMAKE_SOURCE_DIR}/tools/mtmd/mtmd-helper.cpp" "${CMAKE_SOURCE_DIR}/tools/mtmd/mtmd-helper-gen.cpp"
  TARGET_DIRECTORY mtmd PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
