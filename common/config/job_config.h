// Job configuration: loads a JSON or textproto job file onto resbm.v1.JobConfig, fills the
// defaults stated in protos/resbm/v1/config.proto, validates every range and cross-field rule
// (ValidateJobConfig, a pure function), and maps the result onto the plain option structs of
// common/model/model_options.h. Free functions on value types: all are thread-safe; none keeps
// state between calls.
#ifndef RESBM_COMMON_CONFIG_JOB_CONFIG_H_
#define RESBM_COMMON_CONFIG_JOB_CONFIG_H_

#include <algorithm>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/model_options.h"
#include "common/model/stage_plan.h"
#include "common/schedule/pipeline_schedule.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

// Longest accepted JobConfig.name, in characters.
inline constexpr int kMaxJobNameLength = 128;

// Parses proto3 JSON (snake_case or lowerCamelCase field names), rejecting unknown fields and
// unknown enum names, then applies the defaults and validates. "{}" gives DefaultJobConfig().
// Every failure is kInvalidArgument; a parse error carries protobuf's message, which names the
// field.
absl::StatusOr<v1::JobConfig> ParseJobConfigJson(absl::string_view json);

// As ParseJobConfigJson, for protobuf text format (unknown fields and enum names rejected).
absl::StatusOr<v1::JobConfig> ParseJobConfigTextproto(absl::string_view text);

// Reads `path` and parses it: as text format when it ends in ".textproto" or ".pbtxt", as JSON
// otherwise. kNotFound (naming the path) when the file cannot be opened; otherwise as the parse
// functions above. Errors are prefixed with the path.
absl::StatusOr<v1::JobConfig> LoadJobConfigFile(const std::string& path);

// ApplyJobConfigDefaults on an empty message: the job every omitted field describes.
v1::JobConfig DefaultJobConfig();

// Fills every unset field with the default its proto comment states: `optional` fields by
// presence, plain proto3 scalars and enums when 0. Sub-messages are always created, so the
// result prints every section. Idempotent. Leaves set fields alone, even invalid ones.
void ApplyJobConfigDefaults(v1::JobConfig* config);

// Changes the boundary of a defaulted config to `kind` with `ratio` (ignored for NONE, which
// takes 1): the fields whose default depends on the kind (the token channel, the halves'
// shape and learning rate) are reset to that kind's defaults; the wire dtype and init_std
// are kept.
void SetCompression(v1::CompressionKind kind, uint32_t ratio, v1::JobConfig* config);

// Checks the ranges and cross-field rules of a config whose defaults have been applied.
// Returns the first violation as kInvalidArgument, "<field path>: <value> ...; expected ...".
// Whether data files exist is checked when the data is loaded, not here.
absl::Status ValidateJobConfig(const v1::JobConfig& config);

// The workers a job runs on: one per stage of each of its stages.replicas pipelines.
inline int64_t JobWorkerCount(const v1::JobConfig& config) {
  return static_cast<int64_t>(config.stages().num_stages()) *
         std::max<int64_t>(1, config.stages().replicas());
}

// Converters to the model core's option structs. They apply the defaults to a copy first, so a
// partially filled config maps as ParseJobConfigJson would fill it; they do not validate.
ModelOptions ToModelOptions(const v1::JobConfig& config);
CompressionOptions ToCompressionOptions(const v1::JobConfig& config);
// schedule.total_steps = training.steps; use_muon = (kind == OPTIMIZER_KIND_MUON).
OptimizerOptions ToOptimizerOptions(const v1::JobConfig& config);

// The job's pipeline schedule (training.schedule; GPipe unless 1F1B).
ScheduleKind ToScheduleKind(const v1::JobConfig& config);

// The job's stage split (PlanStages over model.n_layers, stages.num_stages and
// stages.layers_per_stage).
absl::StatusOr<std::vector<StageSpec>> PlanJobStages(const v1::JobConfig& config);

// Command-line overrides of a job config (the binaries' --steps, --stages, --seed); unset
// fields leave the config alone.
struct JobOverrides {
  std::optional<int64_t> steps;
  // Also clears an explicit layers_per_stage (the split becomes even).
  std::optional<int64_t> stages;
  std::optional<int64_t> seed;
  // stages.replicas: pipelines, each with a worker per stage.
  std::optional<int64_t> replicas;
};

// Loads `path` (the default job when empty), applies `overrides`, validates.
absl::StatusOr<v1::JobConfig> LoadJobConfigWithOverrides(const std::string& path,
                                                         const JobOverrides& overrides);

// The wire dtype between its proto enum and the model core's. FromProto takes an int so that
// unknown values arriving on the wire are refused (InvalidArgument), UNSPECIFIED included.
absl::StatusOr<WireDtype> WireDtypeFromProto(int dtype);
v1::WireDtype WireDtypeToProto(WireDtype dtype);

// Pretty-printed JSON with every field (unset scalars printed as their zero value) and proto
// field names (snake_case): the effective config echoed into run summaries.
std::string JobConfigToJson(const v1::JobConfig& config);

}  // namespace resbm

#endif  // RESBM_COMMON_CONFIG_JOB_CONFIG_H_
