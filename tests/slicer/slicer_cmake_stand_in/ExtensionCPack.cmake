# Stand-in for SlicerExtensionCPack.cmake's checks: the files the package carries must exist.
foreach(_var IN ITEMS EXTENSION_README_FILE EXTENSION_LICENSE_FILE)
  if(NOT EXISTS "${${_var}}")
    message(FATAL_ERROR "error: ${_var} points to an inexistent file: ${${_var}}")
  endif()
endforeach()
