#include "common/modelio/checkpoint_manifest_file.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/file_io.h"
#include "common/config/job_config.h"
#include "common/status/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace resbm {
namespace {

constexpr uint64_t kMaxManifestBytes = 16 << 20;

// Everything but reading the file: the checks Read and Write share.
absl::Status Check(const v1::CheckpointManifest& manifest, const std::string& path) {
  if (manifest.format_version() != CheckpointManifestFile::kFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": format_version ",
                                                   manifest.format_version(), "; expected ",
                                                   CheckpointManifestFile::kFormatVersion));
  }
  v1::JobConfig config = manifest.config();
  ApplyJobConfigDefaults(&config);
  if (absl::Status valid = ValidateJobConfig(config); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": config.", valid.message()));
  }
  const int stages = static_cast<int>(config.stages().num_stages());
  if (manifest.stage_files_size() != stages) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", manifest.stage_files_size(),
                                                   " stage_files; expected one per stage (", stages,
                                                   ")"));
  }
  for (int s = 0; s < stages; ++s) {
    if (manifest.stage_files(s).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": stage_files[", s, "]: empty; expected a checkpoint file"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::CheckpointManifest> CheckpointManifestFile::Read(const std::string& path) {
  std::error_code error;
  const std::string file =
      std::filesystem::is_directory(path, error) ? absl::StrCat(path, "/", kFileName) : path;
  absl::StatusOr<std::string> text = ReadFileToString(file, kMaxManifestBytes);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("checkpoint manifest ", text.status().message()));
  }
  v1::CheckpointManifest manifest;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(*text, &manifest, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": ", std::string(parsed.message()),
                     "; expected JSON of resbm.v1.CheckpointManifest"));
  }
  RESBM_RETURN_IF_ERROR(Check(manifest, file));
  ApplyJobConfigDefaults(manifest.mutable_config());
  const std::filesystem::path dir =
      std::filesystem::absolute(std::filesystem::path(file).parent_path(), error);
  for (std::string& stage_file : *manifest.mutable_stage_files()) {
    const std::filesystem::path p(stage_file);
    if (p.is_relative()) stage_file = (dir / p).lexically_normal().string();
  }
  return manifest;
}

absl::Status CheckpointManifestFile::Write(const std::string& path,
                                           const v1::CheckpointManifest& manifest) {
  RESBM_RETURN_IF_ERROR(Check(manifest, path));
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto printed = google::protobuf::util::MessageToJsonString(manifest, &json, options);
  if (!printed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot print the manifest: ", std::string(printed.message())));
  }
  return WriteFileAtomically(path, json);
}

}  // namespace resbm
