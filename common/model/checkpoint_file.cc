#include "common/model/checkpoint_file.h"

#include <utility>

#include "common/model/checkpoint_codec.h"
#include "common/model/tensor_bytes.h"
#include "common/status/status_macros.h"

namespace resbm {

namespace {

absl::StatusOr<CheckpointData> ToData(const CheckpointContents& contents) {
  CheckpointData data;
  data.stage = contents.stage;
  data.step = contents.step;
  RESBM_ASSIGN_OR_RETURN(data.tensors, TensorBytes::ToRaw(contents.tensors));
  return data;
}

absl::StatusOr<CheckpointContents> FromData(const CheckpointData& data) {
  CheckpointContents contents;
  contents.stage = data.stage;
  contents.step = data.step;
  RESBM_ASSIGN_OR_RETURN(contents.tensors, TensorBytes::FromRaw(data.tensors));
  return contents;
}

}  // namespace

absl::Status CheckpointFile::Write(const std::string& path, const CheckpointContents& contents) {
  RESBM_ASSIGN_OR_RETURN(CheckpointData data, ToData(contents));
  return CheckpointCodec::WriteFile(path, data);
}

absl::StatusOr<CheckpointContents> CheckpointFile::Read(const std::string& path) {
  RESBM_ASSIGN_OR_RETURN(CheckpointData data, CheckpointCodec::ReadFile(path));
  return FromData(data);
}

absl::StatusOr<std::string> CheckpointFile::Encode(const CheckpointContents& contents) {
  RESBM_ASSIGN_OR_RETURN(CheckpointData data, ToData(contents));
  return CheckpointCodec::Encode(data);
}

absl::StatusOr<CheckpointContents> CheckpointFile::Decode(const std::string& bytes,
                                                          const std::string& source) {
  RESBM_ASSIGN_OR_RETURN(CheckpointData data, CheckpointCodec::Decode(bytes, source));
  return FromData(data);
}

}  // namespace resbm
