#include "common/model/fixed_token_table.h"

#include "common/base/hash.h"

namespace resbm {

std::vector<float> FixedTokenTable::Values(int64_t stage, int64_t vocab_size, int64_t d_model,
                                           double std) {
  const auto size = static_cast<uint64_t>(vocab_size * d_model);
  const uint64_t base = static_cast<uint64_t>(stage) * size;
  const float plus = static_cast<float>(std);
  std::vector<float> values(size);
  for (uint64_t i = 0; i < size; ++i) {
    values[i] = (SplitMix64(base + i) >> 63) == 0 ? plus : -plus;
  }
  return values;
}

}  // namespace resbm
