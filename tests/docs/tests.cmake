# The repository stands on its own: no tracked file points at notes outside it (docs/method.md is
# the method). Skipped (77) outside a git checkout.
add_test(NAME Docs.SelfContained
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/self_contained.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(Docs.SelfContained PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60)
# Each folder includes only itself and the layers below it (docs/architecture.md, "Layers").
add_test(NAME Docs.Layering COMMAND ${CMAKE_CURRENT_LIST_DIR}/layering.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(Docs.Layering PROPERTIES TIMEOUT 60)
