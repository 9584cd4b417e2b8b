# packaging/deb.cmake - man pages, the package's other files, and the Debian package.
#
#     cmake -S . -B build/deb -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build/deb
#     cd build/deb && cpack          # -> efc_<version>_amd64.deb
#
# Why CPack rather than a debian/ directory and dpkg-buildpackage: the package is made from the
# build tree that was just built and tested (CI packages the very binaries its tests ran, in
# seconds, instead of building everything a second time through debhelper); the version has one
# source, project() above; nothing is written outside the build tree (dpkg-buildpackage writes to
# the source tree's parent); and it needs no build dependency beyond dpkg-dev and help2man. What
# debhelper would add is written out here: dpkg-shlibdeps for the Depends
# (CPACK_DEBIAN_PACKAGE_SHLIBDEPS), stripped binaries, compressed man pages and changelog, the
# copyright file, and the systemd snippets of the maintainer scripts (packaging/deb/*.in).
#
# The mount helper has the daemon's path built in (EFC_DAEMON_PATH), so the package is made only
# from a tree configured with CMAKE_INSTALL_PREFIX=/usr (packaging/cpack-check.cmake says so).

set(efc_pkg_dir ${CMAKE_SOURCE_DIR}/packaging)
set(efc_pkg_out ${CMAKE_BINARY_DIR}/packaging)
set(EFC_DEB_MAINTAINER "efc maintainers <maintainers@users.noreply.h-seed-d8451028.example>"
    CACHE STRING "the package's Maintainer")
file(MAKE_DIRECTORY ${efc_pkg_out})

# ---- man pages: help2man on each program's --help, at build time --------------------------------
# A sanitizer's or libFuzzer's build is not one to document (or to package); without help2man
# (Debian's help2man package) there are none, and cpack refuses to make the package.
find_program(HELP2MAN help2man)
find_program(GZIP gzip)
set(efc_manpages OFF)
if(HELP2MAN AND GZIP AND NOT (EFC_SANITIZE OR EFC_TSAN OR EFC_FUZZ))
  set(efc_manpages ON)
elseif(NOT HELP2MAN)
  message(STATUS "help2man not found: no man pages (scripts/setup.sh installs it)")
endif()

set(efc_man_outputs)
# efc_manpage(<name> <section> <program> <help option> <depends> <one-line description>)
function(efc_manpage name section program helpopt dep desc)
  set(raw ${efc_pkg_out}/man/${name}.${section})
  add_custom_command(
    OUTPUT ${raw}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${efc_pkg_out}/man
    COMMAND ${HELP2MAN} --no-info --no-discard-stderr --section=${section} --name=${desc}
            --version-string=${PROJECT_VERSION} --help-option=${helpopt}
            --include=${efc_pkg_dir}/man/see-also.h2m --output=${raw} ${program}
    COMMAND ${GZIP} -9nf ${raw}
    DEPENDS ${dep} ${efc_pkg_dir}/man/see-also.h2m
    COMMENT "man page ${name}(${section})"
    VERBATIM)
  set(efc_man_outputs ${efc_man_outputs} ${raw}.gz PARENT_SCOPE)
  install(FILES ${raw}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endfunction()

if(efc_manpages)
  efc_manpage(aliyun-alinas-efc 8 $<TARGET_FILE:aliyun-alinas-efc> --help aliyun-alinas-efc
              "the efc daemon: mounts an OSS or S3 bucket read-only with a block cache")
  efc_manpage(mount.alinas 8 $<TARGET_FILE:mount.alinas> -h mount.alinas
              "mount helper for mount -t alinas -o efc,...")
  efc_manpage(aliyun-alinas-efc-cli 1 $<TARGET_FILE:aliyun-alinas-efc-cli> --help
              aliyun-alinas-efc-cli "manage an efc mount's cache: warm-up, counters, cluster")
  efc_manpage(efc_runtime_ops 8 ${CMAKE_SOURCE_DIR}/cli/efc_runtime_ops --help
              ${CMAKE_SOURCE_DIR}/cli/efc_runtime_ops
              "change a mounted efc's parameters without unmounting, or roll them back")
  efc_manpage(aliyun-alinas-efc-service 8
              ${CMAKE_BINARY_DIR}/service/aliyun-alinas-efc-service --help
              ${CMAKE_BINARY_DIR}/service/aliyun-alinas-efc-service
              "the watchdog of every efc mount on the host")
  add_custom_target(efc_manpages ALL DEPENDS ${efc_man_outputs})
  # efc_runtime_ops.py, the guide's name for efc_runtime_ops, has its page too.
  file(CREATE_LINK efc_runtime_ops.8.gz ${efc_pkg_out}/efc_runtime_ops.py.8.gz SYMBOLIC)
  install(FILES ${efc_pkg_out}/efc_runtime_ops.py.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
endif()

# ---- configuration and documentation -------------------------------------------------------------
# /etc/efc with an example rootlist, all comments (a conffile: an edited copy survives upgrades).
install(FILES ${efc_pkg_dir}/rootlist.example DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/efc)
# The package's own documentation, lintian's overrides: only in the package's layout.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  install(FILES ${efc_pkg_dir}/deb/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
  install(FILES ${efc_pkg_out}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
  install(FILES ${efc_pkg_dir}/deb/lintian-overrides
          DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME efc)
endif()
string(TIMESTAMP EFC_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC) # SOURCE_DATE_EPOCH if set
configure_file(${efc_pkg_dir}/deb/changelog.in ${efc_pkg_out}/changelog @ONLY)
add_custom_command(
  OUTPUT ${efc_pkg_out}/changelog.gz
  COMMAND ${GZIP} -9nkf ${efc_pkg_out}/changelog
  DEPENDS ${efc_pkg_out}/changelog
  VERBATIM)
add_custom_target(efc_changelog ALL DEPENDS ${efc_pkg_out}/changelog.gz)

# ---- the maintainer scripts and CPack --------------------------------------------------------------
set(EFC_SERVICE_PATH ${CMAKE_INSTALL_FULL_SBINDIR}/aliyun-alinas-efc-service)
set(EFC_SYSCONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR})
foreach(f postinst prerm postrm conffiles)
  configure_file(${efc_pkg_dir}/deb/${f}.in ${efc_pkg_out}/deb/${f} @ONLY)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME efc)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${EFC_DEB_MAINTAINER})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
    GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # efc_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Beyond the libraries: fuse3 (fusermount3, /etc/fuse.conf), Python 3 for efc_runtime_ops and the
# service. The maintainer scripts' deb-systemd-helper is in init-system-helpers, an essential
# package.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3, python3")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "read-only FUSE mount of an OSS or S3 bucket with a block cache")
# The summary above is its first line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "efc mounts an object-storage bucket (Alibaba Cloud OSS, or any S3-compatible
store) as a read-only local directory, with a memory and disk block cache on
every node, shared between nodes peer to peer, and an HTTP management API.
It takes the mount options, management API, CLI and metrics of the cache
feature of Alibaba Cloud's Elastic File Client (mount -t alinas -o efc).
.
This package holds the daemon aliyun-alinas-efc, the mount helper
mount.alinas, the CLI aliyun-alinas-efc-cli, efc_runtime_ops (also as
efc_runtime_ops.py) and the service aliyun-alinas-efc, a watchdog of every
efc mount on the host, enabled but not started on installation.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${efc_pkg_out}/deb/postinst ${efc_pkg_out}/deb/prerm
    ${efc_pkg_out}/deb/postrm ${efc_pkg_out}/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_PROJECT_CONFIG_FILE ${efc_pkg_dir}/cpack-check.cmake)
set(CPACK_EFC_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_EFC_MANPAGES ${efc_manpages})
include(CPack)
