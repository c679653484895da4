// The devices a model-core test runs on: the CPU always, the first GPU where this LibTorch
// has CUDA and sees one. GPU-only tests skip with a message on CPU machines (this one, CI).
// Header-only.
#ifndef RESBM_TESTS_TESTING_DEVICES_H_
#define RESBM_TESTS_TESTING_DEVICES_H_

#include <string>
#include <vector>

#include "common/model/compute_device.h"
#include "gtest/gtest.h"

namespace resbm::testing {

inline std::vector<std::string> TestDevices() {
  std::vector<std::string> devices = {"cpu"};
  if (CudaAvailable()) devices.push_back("cuda:0");
  return devices;
}

}  // namespace resbm::testing

// Skips the current test where no CUDA device is visible.
#define RESBM_SKIP_WITHOUT_CUDA()                                                  \
  do {                                                                             \
    if (!::resbm::CudaAvailable()) GTEST_SKIP() << "no CUDA device in this process"; \
  } while (0)

#endif  // RESBM_TESTS_TESTING_DEVICES_H_
