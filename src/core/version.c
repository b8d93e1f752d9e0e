/* The version the build was configured with (CMake's PROJECT_VERSION), so a program can
 * tell which library it loaded. */
#include "core/status.h"

#ifndef MESHLM_VERSION_STRING
#error "MESHLM_VERSION_STRING is set by CMakeLists.txt for meshlm_obj"
#endif

const char *meshlm_version(void) { return MESHLM_VERSION_STRING; }
