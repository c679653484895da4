#include "common/model/wire_tensor.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace resbm {

int64_t WireBytesPerValue(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFp32:
      return 4;
    case WireDtype::kBf16:
    case WireDtype::kFp16:
      return 2;
    case WireDtype::kInt8:
      return 1;
  }
  return 4;
}

absl::StatusOr<int64_t> WirePayloadBytes(const std::vector<int64_t>& shape, WireDtype dtype,
                                         int64_t max_bytes) {
  if (shape.empty()) {
    return absl::InvalidArgumentError("shape: []; expected at least one dimension");
  }
  int64_t values = 1;
  for (int64_t dim : shape) {
    if (dim <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape: [", absl::StrJoin(shape, ","), "]; expected every dimension >= 1"));
    }
    // Checked before multiplying so a hostile shape cannot overflow.
    if (values > max_bytes / dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape: [", absl::StrJoin(shape, ","), "]; exceeds the limit of ", max_bytes, " bytes"));
    }
    values *= dim;
  }
  const int64_t tokens = values / shape.back();
  const int64_t bytes = values * WireBytesPerValue(dtype) +
                        (dtype == WireDtype::kInt8 ? tokens * int64_t{sizeof(float)} : 0);
  if (bytes > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("shape: [", absl::StrJoin(shape, ","),
                                                   "] needs ", bytes, " bytes; the limit is ",
                                                   max_bytes));
  }
  return bytes;
}

}  // namespace resbm
