// TokenIdBytes: what the token ids of one microbatch cost on the way to a stage's token
// channel: the serialized size of a resbm.v1.TokenIds message holding them (packed varints:
// 1 byte an id below 128, 2 below 16384), plus the tag and length that embed it in a
// RunStepRequest. The one-process pipeline counts with it what the coordinator sends.
// Torch- and protobuf-free; pure functions.
#ifndef RESBM_COMMON_MODEL_TOKEN_ID_BYTES_H_
#define RESBM_COMMON_MODEL_TOKEN_ID_BYTES_H_

#include <cstdint>

namespace resbm {

class TokenIdBytes {
 public:
  // Bytes of a varint encoding of `value` (non-negative).
  static int64_t VarintSize(uint64_t value);
  // Bytes of `ids` (n of them, each in [0, 2^31)) as one element of RunStepRequest.inputs.
  static int64_t InRequest(const int64_t* ids, int64_t n);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_TOKEN_ID_BYTES_H_
