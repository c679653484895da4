#include "common/wire/frame_codec.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/hash.h"
#include "common/config/job_config.h"

namespace resbm {
namespace {

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

}  // namespace

v1::TensorFrame FrameCodec::Encode(const FrameHeader& header, WireTensor tensor) {
  v1::TensorFrame frame;
  frame.set_format_version(kFormatVersion);
  frame.set_job_id(header.job_id);
  frame.set_step(static_cast<uint64_t>(header.step));
  frame.set_microbatch(static_cast<uint32_t>(header.microbatch));
  frame.set_kind(header.kind);
  for (int64_t dim : tensor.shape) frame.add_shape(dim);
  frame.set_dtype(WireDtypeToProto(tensor.dtype));
  frame.set_checksum(Fnv1a64(tensor.payload.data(), tensor.payload.size()));
  frame.set_payload(std::move(tensor.payload));
  return frame;
}

absl::StatusOr<WireTensor> FrameCodec::Decode(v1::TensorFrame frame,
                                              const FrameExpectation& expected) {
  if (frame.format_version() != kFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat("frame.format_version: ", frame.format_version(),
                                                   "; expected ", kFormatVersion));
  }
  if (frame.kind() != expected.kind) {
    return absl::FailedPreconditionError(
        absl::StrCat("frame.kind: ", v1::FrameKind_Name(frame.kind()), "; expected ",
                     v1::FrameKind_Name(expected.kind)));
  }
  if (frame.job_id() != expected.job_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("frame.job_id: '", frame.job_id(), "'; expected '", expected.job_id, "'"));
  }
  if (frame.step() != static_cast<uint64_t>(expected.step)) {
    return absl::FailedPreconditionError(
        absl::StrCat("frame.step: ", frame.step(), "; expected ", expected.step));
  }
  if (frame.microbatch() >= static_cast<uint64_t>(expected.num_microbatches)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frame.microbatch: ", frame.microbatch(), "; expected 0..", expected.num_microbatches - 1));
  }
  auto dtype = WireDtypeFromProto(frame.dtype());
  if (!dtype.ok())
    return absl::InvalidArgumentError(absl::StrCat("frame.", dtype.status().message()));
  if (*dtype != expected.dtype) {
    return absl::InvalidArgumentError(absl::StrCat("frame.dtype: ", WireDtypeName(*dtype),
                                                   "; expected ", WireDtypeName(expected.dtype)));
  }
  const auto& shape = frame.shape();
  bool shape_ok = static_cast<size_t>(shape.size()) == expected.shape.size();
  for (int i = 0; shape_ok && i < shape.size(); ++i) {
    const bool sequence_dim = i == 1 && expected.allow_shorter_sequence;
    shape_ok = sequence_dim ? (shape[i] >= 1 && shape[i] <= expected.shape[i])
                            : shape[i] == expected.shape[i];
  }
  if (!shape_ok) {
    return absl::InvalidArgumentError(absl::StrCat("frame.shape: ", ShapeString(shape),
                                                   "; expected [",
                                                   absl::StrJoin(expected.shape, ","), "]"));
  }
  std::vector<int64_t> dims(shape.begin(), shape.end());
  auto bytes = WirePayloadBytes(dims, *dtype, expected.max_payload_bytes);
  if (!bytes.ok())
    return absl::InvalidArgumentError(absl::StrCat("frame.", bytes.status().message()));
  if (static_cast<int64_t>(frame.payload().size()) != *bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame.payload: ", frame.payload().size(), " bytes; expected ", *bytes,
                     " for shape ", ShapeString(shape), " in ", WireDtypeName(*dtype)));
  }
  const uint64_t checksum = Fnv1a64(frame.payload().data(), frame.payload().size());
  if (checksum != frame.checksum()) {
    return absl::DataLossError(absl::StrCat("frame.checksum: ", frame.checksum(),
                                            "; payload hashes to ", checksum,
                                            " (corrupted in transit)"));
  }
  WireTensor tensor;
  tensor.dtype = *dtype;
  tensor.shape = std::move(dims);
  tensor.payload = std::move(*frame.mutable_payload());
  return tensor;
}

}  // namespace resbm
