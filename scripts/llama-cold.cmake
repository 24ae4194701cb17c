# Included by scripts/build-llama.sh into llama.cpp's CMake project (CMAKE_PROJECT_INCLUDE): the code
# that does not run while a model generates is compiled with less optimisation, which takes about half
# the compiler's time at -O3 (measured in docs/benchmarks.md, "Set-up"). What runs for every token
# stays at the release build's -O3: all of ggml (the arithmetic), and llama's context, graph, memory,
# batch, sampler and grammar, so the numbers a model computes are the same as in a plain release build
# (the seed-10 study's answers and verdicts compared byte for byte).
#
# -O1: llama-server's request handling and HTTP, llama.cpp's common library (arguments, chat templates,
#      JSON schemas), the tools, and llama's loading, tokenizing and per-architecture graph code.
# -O0: mtmd (images and audio), which llama-server links but llm-judge never asks it to run.
#
# The same cold targets compile as unity builds (their sources combined in batches of 8, so a header
# is read once per batch, not once per file: mtmd's 45 vision and audio models are mostly headers).
# Left out of the batches: common/sampling.cpp (it runs for every token, so it is compiled as in a
# plain build), and the sources that do not combine (common/json.cpp specialises a template that
# other files instantiate; mtmd's helpers refuse mtmd's internal headers).
include_guard(GLOBAL)

set(LLM_JUDGE_COLD_TARGETS llama-common llama-common-base cpp-httplib server-context llama-server-impl
    llama-server llama-batched-bench-impl llama-batched-bench llama-export-lora llama-quantize-impl
    llama-quantize)
set(LLM_JUDGE_HOT_LLAMA_SOURCES llama.cpp llama-adapter.cpp llama-batch.cpp llama-context.cpp
    llama-cparams.cpp llama-grammar.cpp llama-graph.cpp llama-hparams.cpp llama-kv-cache.cpp
    llama-kv-cache-iswa.cpp llama-kv-cache-dsa.cpp llama-kv-cache-dsa-iswa.cpp llama-kv-cache-msa.cpp
    llama-kv-cache-dsv4.cpp llama-memory.cpp llama-memory-hybrid.cpp llama-memory-hybrid-iswa.cpp
    llama-memory-hybrid-idx.cpp llama-memory-recurrent.cpp llama-model.cpp llama-sampler.cpp)
set(LLM_JUDGE_UNITY_TARGETS mtmd llama-common server-context llama-server-impl)
set(LLM_JUDGE_UNITY_BATCH 8)
set(LLM_JUDGE_NOT_UNITY common/sampling.cpp common/json.cpp tools/mtmd/mtmd-helper.cpp tools/mtmd/mtmd-helper-gen.cpp)

function(_llm_judge_cold)
  foreach(target IN LISTS LLM_JUDGE_COLD_TARGETS)
    if(TARGET ${target})
      target_compile_options(${target} PRIVATE -O1)  # after the release flags' -O3, so it wins
    endif()
  endforeach()
  if(TARGET mtmd)
    target_compile_options(mtmd PRIVATE -O0)
  endif()
  if(TARGET llama)
    target_compile_options(llama PRIVATE -O1)
    # a source's own options come after its target's: the hot files are back at -O3 (they are kept
    # out of llama's unity build already, so the property does not split a batch)
    foreach(source IN LISTS LLM_JUDGE_HOT_LLAMA_SOURCES)
      if(NOT EXISTS "${CMAKE_SOURCE_DIR}/src/${source}")  # another llama.cpp: read the list again
        message(FATAL_ERROR "llama-cold.cmake: src/${source} is not in this llama.cpp; update its list of per-token sources")
      endif()
      set_source_files_properties("${CMAKE_SOURCE_DIR}/src/${source}" DIRECTORY "${CMAKE_SOURCE_DIR}/src"
                                  PROPERTIES COMPILE_OPTIONS -O3)
    endforeach()
  endif()
  foreach(target IN LISTS LLM_JUDGE_UNITY_TARGETS)
    if(TARGET ${target})
      set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${LLM_JUDGE_UNITY_BATCH})
    endif()
  endforeach()
  foreach(source IN LISTS LLM_JUDGE_NOT_UNITY)
    if(NOT EXISTS "${CMAKE_SOURCE_DIR}/${source}")
      message(FATAL_ERROR "llama-cold.cmake: ${source} is not in this llama.cpp; update its list of sources kept out of unity builds")
    endif()
    get_filename_component(dir "${CMAKE_SOURCE_DIR}/${source}" DIRECTORY)
    set_source_files_properties("${CMAKE_SOURCE_DIR}/${source}" DIRECTORY "${dir}" PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _llm_judge_cold)
