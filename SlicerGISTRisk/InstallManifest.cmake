# Reads install_manifest.txt, the one list of what the extension installs (the tests build the
# install tree from the same file with SlicerGISTRiskLib/install_layout.py).

# slicergistrisk_read_install_manifest(<manifest>)
#   Sets MODULE_PYTHON_SCRIPTS, MODULE_PYTHON_RESOURCES and MODULE_PYTHON_PACKAGES in the caller's
#   scope: paths relative to the manifest's folder. Stops on a line it does not understand.
function(slicergistrisk_read_install_manifest manifest)
  file(STRINGS "${manifest}" _lines)
  set(_scripts)
  set(_resources)
  set(_packages)
  foreach(_line IN LISTS _lines)
    string(STRIP "${_line}" _line)
    if(_line STREQUAL "" OR _line MATCHES "^#")
      continue()
    endif()
    if(NOT _line MATCHES "^(script|resource|package)[ \t]+([^ \t]+)$")
      message(FATAL_ERROR "${manifest}: cannot read line \"${_line}\" (expected: script|resource|package <path>)")
    endif()
    if(CMAKE_MATCH_1 STREQUAL "script")
      list(APPEND _scripts "${CMAKE_MATCH_2}")
    elseif(CMAKE_MATCH_1 STREQUAL "resource")
      list(APPEND _resources "${CMAKE_MATCH_2}")
    else()
      list(APPEND _packages "${CMAKE_MATCH_2}")
    endif()
  endforeach()
  set(MODULE_PYTHON_SCRIPTS ${_scripts} PARENT_SCOPE)
  set(MODULE_PYTHON_RESOURCES ${_resources} PARENT_SCOPE)
  set(MODULE_PYTHON_PACKAGES ${_packages} PARENT_SCOPE)
endfunction()

# slicergistrisk_copy_packages(<source_dir> <destination> <packages>...)
#   Copies each package folder (relative to <source_dir>) into <destination>, without bytecode.
function(slicergistrisk_copy_packages source_dir destination)
  foreach(_package IN LISTS ARGN)
    file(COPY "${source_dir}/${_package}" DESTINATION "${destination}"
      PATTERN "__pycache__" EXCLUDE
      PATTERN "*.pyc" EXCLUDE
      )
  endforeach()
endfunction()
