// FixedTokenTable: the table of TOKEN_CHANNEL_FIXED, a pure function of (stage, token,
// column) that any implementation can regenerate without a generator library:
//   T_s[v, j] = +std if bit 63 of SplitMix64((s * V + v) * d + j) is 0, else -std.
// Random signs, so the V rows are nearly orthogonal codes of the token; nothing trains and
// nothing is checkpointed. Torch-free, so the exporter writes it too. Thread-safe.
#ifndef RESBM_COMMON_MODEL_FIXED_TOKEN_TABLE_H_
#define RESBM_COMMON_MODEL_FIXED_TOKEN_TABLE_H_

#include <cstdint>
#include <vector>

namespace resbm {

class FixedTokenTable {
 public:
  // Row-major (V, d) values of stage `stage`'s table.
  static std::vector<float> Values(int64_t stage, int64_t vocab_size, int64_t d_model, double std);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_FIXED_TOKEN_TABLE_H_
