// TestCertificates: a CA and certificates made by tools/make_certs.sh (openssl) in a test's
// own directory, as a user would make them. Header-only.
#ifndef RESBM_TESTS_TESTING_TEST_CERTIFICATES_H_
#define RESBM_TESTS_TESTING_TEST_CERTIFICATES_H_

#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace resbm::testing {

struct TestCertificates {
  std::string dir;
  std::string ca() const { return dir + "/ca.pem"; }
  std::string cert(const std::string& name) const { return absl::StrCat(dir, "/", name, ".pem"); }
  std::string key(const std::string& name) const { return absl::StrCat(dir, "/", name, ".key"); }
};

// Makes a CA in `dir` and a certificate for each of `names` (space separated).
inline absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir,
                                                             const std::string& names) {
  const char* source = std::getenv("RESBM_SOURCE_DIR");
  const std::string command =
      absl::StrCat(source ? source : ".", "/tools/make_certs.sh ", dir, " ", names, " >/dev/null");
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("'", command, "' failed"));
  }
  return TestCertificates{dir};
}

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_TEST_CERTIFICATES_H_
