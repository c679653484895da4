// Every saved fuzz input (the seeds and each input a fuzzer ever crashed on, under
// tests/fuzz/corpus/<target>/) through the fuzz targets in the normal build, plus a few
// thousand seeded random mutations of them: the fuzzers' findings stay fixed in CI.
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/fuzz_targets.h"

namespace resbm::fuzz {
namespace {

using Target = int (*)(const uint8_t*, size_t);

std::vector<std::string> Inputs(const std::string& target) {
  const char* source = std::getenv("RESBM_SOURCE_DIR");
  const std::filesystem::path dir =
      std::filesystem::path(source ? source : ".") / "tests/fuzz/corpus" / target;
  std::vector<std::string> inputs;
  if (!std::filesystem::exists(dir)) return inputs;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    inputs.push_back(bytes.str());
  }
  return inputs;
}

void RunAll(const std::string& name, Target target, size_t min_inputs) {
  std::vector<std::string> inputs = Inputs(name);
  ASSERT_GE(inputs.size(), min_inputs) << name;
  std::mt19937 rng(1234);
  const size_t saved = inputs.size();
  // Seeded mutations: flip, insert and drop bytes of the saved inputs.
  for (int i = 0; i < 3000; ++i) {
    std::string input = saved ? inputs[rng() % saved] : std::string();
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      const size_t at = input.empty() ? 0 : rng() % input.size();
      switch (rng() % 3) {
        case 0:
          if (!input.empty()) input[at] = static_cast<char>(rng());
          break;
        case 1:
          input.insert(input.begin() + at, static_cast<char>(rng()));
          break;
        default:
          if (!input.empty()) input.erase(input.begin() + at);
      }
    }
    inputs.push_back(std::move(input));
  }
  for (const std::string& input : inputs) {
    EXPECT_EQ(target(reinterpret_cast<const uint8_t*>(input.data()), input.size()), 0);
  }
}

TEST(FuzzRegressionTest, FrameDecode) { RunAll("frame_decode", &FrameDecode, 1); }
TEST(FuzzRegressionTest, JobConfig) { RunAll("job_config", &JobConfig, 2); }
TEST(FuzzRegressionTest, TokenShard) { RunAll("token_shard", &TokenShard, 1); }
TEST(FuzzRegressionTest, Safetensors) { RunAll("safetensors", &Safetensors, 2); }

}  // namespace
}  // namespace resbm::fuzz
