#include "common/model/token_id_bytes.h"

namespace resbm {

int64_t TokenIdBytes::VarintSize(uint64_t value) {
  int64_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

int64_t TokenIdBytes::InRequest(const int64_t* ids, int64_t n) {
  int64_t payload = 0;
  for (int64_t i = 0; i < n; ++i) payload += VarintSize(static_cast<uint64_t>(ids[i]));
  // TokenIds: field 1, packed: one tag byte, the length, the varints (nothing when empty).
  const int64_t message = payload == 0 ? 0 : 1 + VarintSize(payload) + payload;
  // RunStepRequest.inputs (field 7): one tag byte and the message's length.
  return 1 + VarintSize(message) + message;
}

}  // namespace resbm
