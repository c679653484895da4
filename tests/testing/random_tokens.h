// RandomTokens: seeded token ids for tests that need a corpus but not its text.
#ifndef RESBM_TESTS_TESTING_RANDOM_TOKENS_H_
#define RESBM_TESTS_TESTING_RANDOM_TOKENS_H_

#include <cstdint>
#include <random>
#include <vector>

namespace resbm::testing {

// `n` ids drawn uniformly from [0, vocab), the same for the same seed.
inline std::vector<uint16_t> RandomTokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint16_t> tokens(static_cast<size_t>(n));
  for (uint16_t& t : tokens) t = static_cast<uint16_t>(rng() % static_cast<uint64_t>(vocab));
  return tokens;
}

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_RANDOM_TOKENS_H_
