// Debug-size model options for tests: small enough that a forward and backward take
// milliseconds on one CPU core. Header-only.
#ifndef RESBM_TESTS_TESTING_TINY_MODEL_H_
#define RESBM_TESTS_TESTING_TINY_MODEL_H_

#include "common/model/model_options.h"

namespace resbm::testing {

inline ModelOptions TinyModel() {
  ModelOptions model;
  model.vocab_size = 64;
  model.d_model = 32;
  model.n_layers = 4;
  model.n_heads = 2;
  model.mlp_hidden = 64;
  model.seq_len = 16;
  return model;
}

inline CompressionOptions Fp32Boundary(CompressionKind kind, int64_t ratio) {
  CompressionOptions compression;
  compression.kind = kind;
  compression.ratio = kind == CompressionKind::kNone ? 1 : ratio;
  compression.wire_dtype = WireDtype::kFp32;
  return compression;
}

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_TINY_MODEL_H_
