# Writes OUT (a C++ file defining jigsaw::Version()) from the project version and the commit of SRC, only when
# that text changes, so that a build records the commit it was built from without rebuilding anything else.
execute_process(COMMAND git -C "${SRC}" describe --always --dirty --abbrev=12 OUTPUT_VARIABLE commit
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
if(failed OR commit STREQUAL "")
  set(commit "unknown commit")
endif()
set(text "#include \"base/version.h\"\nnamespace jigsaw {\nconst char* Version() { return \"${VERSION} (${commit})\"; }\n}  // namespace jigsaw\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
