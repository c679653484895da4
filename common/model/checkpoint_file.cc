#include "common/model/checkpoint_file.h"

#include <utility>

#include "common/model/checkpoint_codec.h"
#include "common/model/tensor_bytes.h"
#include "common/status/status_macros.h"

namespace resbm {

absl::Status CheckpointFile::Write(const std::string& path, const CheckpointContents& contents) {
  CheckpointData data;
  data.stage = contents.stage;
  data.step = contents.step;
  RESBM_ASSIGN_OR_RETURN(data.tensors, TensorBytes::ToRaw(contents.tensors));
  return CheckpointCodec::WriteFile(path, data);
}

absl::StatusOr<CheckpointContents> CheckpointFile::Read(const std::string& path) {
  RESBM_ASSIGN_OR_RETURN(CheckpointData data, CheckpointCodec::ReadFile(path));
  CheckpointContents contents;
  contents.stage = data.stage;
  contents.step = data.step;
  RESBM_ASSIGN_OR_RETURN(contents.tensors, TensorBytes::FromRaw(data.tensors));
  return contents;
}

}  // namespace resbm
