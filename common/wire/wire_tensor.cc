#include "common/wire/wire_tensor.h"

#include <cstring>

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

namespace {

// Values of `count` consecutive `Bits`-sized words at `data` whose exponent bits (`mask`)
// are all ones: Inf or NaN in IEEE formats. memcpy keeps unaligned payloads well defined.
template <typename Bits>
int64_t CountAllOnesExponent(const char* data, int64_t count, Bits mask) {
  int64_t bad = 0;
  for (int64_t i = 0; i < count; ++i) {
    Bits word;
    std::memcpy(&word, data + i * int64_t{sizeof(Bits)}, sizeof(Bits));
    bad += (word & mask) == mask;
  }
  return bad;
}

}  // namespace

absl::StatusOr<int64_t> CountNonFiniteValues(const WireTensor& wire) {
  auto bytes = WirePayloadBytes(wire.shape, wire.dtype);
  if (!bytes.ok()) return bytes.status();
  if (static_cast<int64_t>(wire.payload.size()) != *bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("payload: ", wire.payload.size(), " bytes; expected ", *bytes));
  }
  const char* data = wire.payload.data();
  switch (wire.dtype) {
    case WireDtype::kFp32:
      return CountAllOnesExponent<uint32_t>(data, *bytes / 4, 0x7F800000u);
    case WireDtype::kBf16:
      return CountAllOnesExponent<uint16_t>(data, *bytes / 2, 0x7F80u);
    case WireDtype::kFp16:
      return CountAllOnesExponent<uint16_t>(data, *bytes / 2, 0x7C00u);
    case WireDtype::kInt8: {
      // int8 values are always finite; the scales (fp32, one per token) come first.
      const int64_t tokens = *bytes / (wire.shape.back() + int64_t{sizeof(float)});
      return CountAllOnesExponent<uint32_t>(data, tokens, 0x7F800000u);
    }
  }
  return int64_t{0};
}

}  // namespace resbm
