# Stand-in for Slicer's use file: the two macros a scripted module calls. Like Slicer's
# ctkMacroCompilePythonScript, scripts and resources keep their path relative to the module folder.
set(_stand_in_dir ${CMAKE_BINARY_DIR}/stand_in)
file(MAKE_DIRECTORY ${_stand_in_dir})

function(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY "WITH_GENERIC_TESTS;WITH_SUBDIR" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  file(WRITE ${_stand_in_dir}/module_${MY_NAME}.txt "scripts=${MY_SCRIPTS}\nresources=${MY_RESOURCES}\n")
  foreach(_file IN LISTS MY_SCRIPTS MY_RESOURCES)
    get_filename_component(_dir ${_file} DIRECTORY)
    install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/${_file}
      DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/${_dir} COMPONENT RuntimeLibraries)
  endforeach()
endfunction()

function(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "SCRIPT" "" ${ARGN})
  file(APPEND ${_stand_in_dir}/unittests.txt "${MY_SCRIPT}\n")
endfunction()
