include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS khalo EXPORT khaloTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The probe helper is internal to khalo's readers: libexec, not bin.
install(TARGETS khalo-h5probe EXPORT khaloTargets RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/khalo)
install(DIRECTORY include/khalo DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/include/khalo/config.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/khalo)

set(_cfgdir ${CMAKE_INSTALL_LIBDIR}/cmake/khalo)
install(EXPORT khaloTargets NAMESPACE khalo:: DESTINATION ${_cfgdir})
configure_package_config_file(cmake/khaloConfig.cmake.in
  ${PROJECT_BINARY_DIR}/khaloConfig.cmake INSTALL_DESTINATION ${_cfgdir})
# Semantic versioning; before 1.0 a minor release may break the API, so only the same minor version
# is compatible (0.1.x satisfies find_package(khalo 0.1), 0.2 does not).
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_khalo_compat SameMinorVersion)
else()
  set(_khalo_compat SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/khaloConfigVersion.cmake
  COMPATIBILITY ${_khalo_compat})
# Programs that find the installed package compile in the installed helper's path. It is written at
# install time, so that `cmake --install --prefix DIR` records the prefix really used.
install(CODE "
  set(KHALO_H5PROBE_PATH \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBEXECDIR}/khalo/khalo-h5probe\")
  set(_khalo_out \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${_cfgdir}/khalo_h5probe_path.cpp\")
  message(STATUS \"Installing: \${_khalo_out}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/cmake/h5probe_path.cpp.in\" \"\${_khalo_out}\" @ONLY)
")
install(FILES
  ${PROJECT_BINARY_DIR}/khaloConfig.cmake
  ${PROJECT_BINARY_DIR}/khaloConfigVersion.cmake
  cmake/KhaloKokkosFixup.cmake
  DESTINATION ${_cfgdir})
