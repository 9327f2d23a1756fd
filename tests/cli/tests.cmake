# The rrt binary end to end (shell script: prepare, config, train, resume, eval, bad input).
add_test(NAME Cli.EndToEndSmoke
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/cli_smoke.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Cli.EndToEndSmoke PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")

# rrt demo --quick: every stage of the pipeline in miniature, the table, results.json, resume.
add_test(NAME Cli.DemoQuick
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/demo_quick.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Cli.DemoQuick PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
# The same with --precision bf16: every stage on the CPU bf16 backend, the table scored on it;
# skipped (77) where this build or CPU has none.
add_test(NAME Cli.DemoQuickBf16
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/demo_quick.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR} bf16)
set_tests_properties(Cli.DemoQuickBf16 PROPERTIES SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")

# rrt eval of a bf16 run's checkpoint: scored on the CPU bf16 model ("cpu-bf16"), every exit
# within the bf16 loss tolerance of fp32's; skipped (77) where there is no bf16 backend.
add_test(NAME Cli.EvalBf16
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/eval_bf16.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Cli.EvalBf16 PROPERTIES SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")

# Signals (a stop after the step with a checkpoint, exit 3; a second signal at once) and the run
# directory's lock, through the binary; resumes compared bit for bit (checkpoint_diff).
add_test(NAME Cli.Signals
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/signals.sh $<TARGET_FILE:rrt_cli>
          $<TARGET_FILE:checkpoint_diff> ${CMAKE_SOURCE_DIR})
set_tests_properties(Cli.Signals PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive"
  TIMEOUT 300)

# Usage errors (CLI11 parse errors, unknown subcommands, bad flags and values) exit 2, as
# docs/runs.md says; help and --version 0; a failure of the work itself 1.
add_test(NAME Cli.UsageErrors
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/usage_errors.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})

# HF tokenizer.json through the binary: convert carries it, prepare / eval / generate take
# --tokenizer, other tokenizers' shards refused, export writes it back.
add_test(NAME Cli.TokenizerJson
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/tokenizer_json.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Cli.TokenizerJson PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")

# rrt convert --score: the original and the converted model scored per exit, equal to rrt eval on
# the same tokens; a full-rank conversion with per-loop norms scores the original; text input.
add_test(NAME Cli.ConvertScore
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/convert_score.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Cli.ConvertScore PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")

# An HF directory or a GGUF file wherever a checkpoint is taken (checkpoint/model_source.h):
# eval and greedy generate equal their converted checkpoint's; serve-bench on a .gguf file; bad
# paths told what is accepted.
add_test(NAME Cli.AnySource
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/any_source.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Cli.AnySource PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")

# Checkpoints of a run launched elsewhere (a sweep's): eval and generate find its relative
# data.path and data.tokenizer from any directory; a command-line path stays relative to here.
add_test(NAME Cli.LaunchDirectory
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/launch_dir.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Cli.LaunchDirectory PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
