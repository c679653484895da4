// BinaryPath: where the build put a binary (ctest sets RESBM_BINARY_DIR). Header-only.
#ifndef RESBM_TESTS_TESTING_BINARIES_H_
#define RESBM_TESTS_TESTING_BINARIES_H_

#include <cstdlib>
#include <string>

namespace resbm::testing {

inline std::string BinaryPath(const std::string& name) {
  const char* dir = std::getenv("RESBM_BINARY_DIR");
  return std::string(dir ? dir : "build") + "/bin/" + name;
}

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_BINARIES_H_
