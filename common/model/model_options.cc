#include "common/model/model_options.h"

namespace resbm {

std::string CompressionKindName(CompressionKind kind) {
  switch (kind) {
    case CompressionKind::kNone:
      return "none";
    case CompressionKind::kResbm:
      return "resbm";
    case CompressionKind::kBottleneck:
      return "bottleneck";
    case CompressionKind::kTruncate:
      return "truncate";
  }
  return "unknown";
}

std::string WireDtypeName(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFp32:
      return "fp32";
    case WireDtype::kBf16:
      return "bf16";
    case WireDtype::kFp16:
      return "fp16";
    case WireDtype::kInt8:
      return "int8";
  }
  return "unknown";
}

std::string TokenChannelName(TokenChannelKind channel) {
  switch (channel) {
    case TokenChannelKind::kNone:
      return "none";
    case TokenChannelKind::kLearned:
      return "learned";
    case TokenChannelKind::kFixed:
      return "fixed";
    case TokenChannelKind::kFactorized:
      return "factorized";
  }
  return "unknown";
}

std::string ComputeDtypeName(ComputeDtype dtype) {
  return dtype == ComputeDtype::kBf16 ? "bf16" : "fp32";
}

}  // namespace resbm
