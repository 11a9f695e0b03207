include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS khalo EXPORT khaloTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/khalo DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/include/khalo/config.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/khalo)

set(_cfgdir ${CMAKE_INSTALL_LIBDIR}/cmake/khalo)
install(EXPORT khaloTargets NAMESPACE khalo:: DESTINATION ${_cfgdir})
configure_package_config_file(cmake/khaloConfig.cmake.in
  ${PROJECT_BINARY_DIR}/khaloConfig.cmake INSTALL_DESTINATION ${_cfgdir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/khaloConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/khaloConfig.cmake
  ${PROJECT_BINARY_DIR}/khaloConfigVersion.cmake
  cmake/KhaloKokkosFixup.cmake
  DESTINATION ${_cfgdir})
