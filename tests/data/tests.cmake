# Data layer: tokenizers, `prepare` into HDF5 token shards, the per-rank loader and its errors.
rrt_add_test(test_data
  ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_prepare.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_loader.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_data_errors.cpp
)
# Shard sets complete or refused (manifest, INCOMPLETE); shards in any integer storage.
rrt_add_test(test_shard_set ${CMAKE_CURRENT_LIST_DIR}/test_shard_set.cpp)
# Byte-level BPE from GGUF metadata, against transformers on SmolLM2's vocabulary; the piece
# cache both BPE tokenizers share between threads.
rrt_add_test(test_bpe_tokenizer
  ${CMAKE_CURRENT_LIST_DIR}/test_bpe_tokenizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_piece_cache.cpp
)
# HF tokenizer.json against the tokenizers library, per family style (tools/
# make_tokenizer_json_fixtures.py), and its refusals.
rrt_add_test(test_tokenizer_json ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer_json.cpp)
# rrt prepare's inputs (jsonl, zstd, gzip, Parquet), malformed inputs, threads and resume after
# SIGKILL (child processes).
rrt_add_test(test_prepare_inputs
  ${CMAKE_CURRENT_LIST_DIR}/test_prepare_inputs.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_prepare_bad.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_prepare_parallel.cpp
)
# The same through the rrt binary: compressed inputs, exit codes, kill -9 and resume.
add_test(NAME Data.PrepareCli
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/prepare_cli.sh $<TARGET_FILE:rrt_cli>)
# The same under mpirun: ranks tokenise whole files and write the one-process shard set.
if(RRT_MPI)
  add_test(NAME Data.PrepareOnMpiRanks
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/prepare_mpi.sh $<TARGET_FILE:rrt_cli> ${MPIEXEC_EXECUTABLE})
  set_tests_properties(Data.PrepareOnMpiRanks PROPERTIES LABELS mpi TIMEOUT 300
    ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
endif()
# Weighted mixtures of shard sets: proportions, resume, ranks, epoch caps (data/mixture.h); and a
# pin of the single-path loader's batches.
rrt_add_test(test_mixture ${CMAKE_CURRENT_LIST_DIR}/test_mixture.cpp)
# SentencePiece vocabularies of GGUF files (Llama 2, Gemma): against the sentencepiece library
# and transformers' GGUF loader (tools/make_spm_gguf_fixtures.py), merge rules, refusals.
rrt_add_test(test_spm_tokenizer ${CMAKE_CURRENT_LIST_DIR}/test_spm_tokenizer.cpp)
# A SentencePiece GGUF vocabulary written as tokenizer.json (rrt export): read back, it encodes
# and decodes the spm_gguf samples as the GGUF tokenizer does; merge order, refusals.
rrt_add_test(test_tokenizer_json_spm ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer_json_spm.cpp)
