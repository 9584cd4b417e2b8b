# packaging/cpack-check.cmake - read by cpack (CPACK_PROJECT_CONFIG_FILE) before it makes the
# package: refuses a tree the package would not work from.
if(CPACK_GENERATOR STREQUAL "DEB")
  if(NOT CPACK_EFC_INSTALL_PREFIX STREQUAL "/usr")
    message(FATAL_ERROR "efc: the package installs under /usr but this tree was configured with "
                        "CMAKE_INSTALL_PREFIX=${CPACK_EFC_INSTALL_PREFIX} (mount.alinas has the "
                        "daemon's path built in): configure with -DCMAKE_INSTALL_PREFIX=/usr")
  endif()
  if(NOT CPACK_EFC_MANPAGES)
    message(FATAL_ERROR "efc: no man pages in this tree (needs help2man, and not a sanitizer "
                        "build): apt-get install help2man and configure again")
  endif()
endif()
