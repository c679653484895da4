// RawTensor: a named tensor as bytes (dtype, shape, little-endian row-major data), the
// currency of the model files (checkpoints, safetensors exports) in code that needs no
// LibTorch: the coordinator stitches and checks model files with these alone. Value type;
// thread-compatible.
#ifndef RESBM_COMMON_MODEL_RAW_TENSOR_H_
#define RESBM_COMMON_MODEL_RAW_TENSOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace resbm {

enum class TensorDtype : uint8_t {
  kFloat32,
  kFloat64,
  kInt64,
  kBFloat16,
  kFloat16,
  kInt32,
  kUInt8,
};

// Bytes per element.
int64_t ElementSize(TensorDtype dtype);
// The safetensors name ("F32", "BF16", "I64", ...), and back (nullopt for an unknown one).
std::string SafetensorsDtypeName(TensorDtype dtype);
std::optional<TensorDtype> SafetensorsDtypeFromName(absl::string_view name);

struct RawTensor {
  std::string name;
  TensorDtype dtype = TensorDtype::kFloat32;
  std::vector<int64_t> shape;
  std::string data;  // numel() * ElementSize(dtype) bytes.

  int64_t numel() const;
};

// "[2,256]".
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_RAW_TENSOR_H_
