#include "common/train/run_summary.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace resbm {

namespace {

double Compression(const std::vector<BoundarySummary>& boundaries, bool with_token_ids) {
  int64_t sent = 0, reference = 0;
  for (const auto& b : boundaries) {
    const BoundaryTraffic& t = b.traffic;
    sent += t.forward_bytes + t.backward_bytes + (with_token_ids ? t.token_id_bytes : 0);
    reference += 2 * b.bf16_reference_bytes;
  }
  return sent > 0 ? static_cast<double>(reference) / static_cast<double>(sent) : 0.0;
}

}  // namespace

double RunSummary::EffectiveCompression() const {
  return Compression(boundaries, /*with_token_ids=*/false);
}

double RunSummary::EffectiveCompressionWithTokenIds() const {
  return Compression(boundaries, /*with_token_ids=*/true);
}

std::string RunSummary::Describe() const {
  return absl::StrFormat(
      "train loss %.4f | val loss %.4f (unigram entropy %.4f) | %d tokens in %.1f s "
      "(%.0f tok/s) | wire compression vs bf16 %.1fx%s",
      final_train_loss, final_val_loss, unigram_entropy_nats, tokens, wall_seconds,
      tokens_per_second, EffectiveCompression(),
      EffectiveCompressionWithTokenIds() == EffectiveCompression()
          ? ""
          : absl::StrFormat(" (%.1fx with the token ids)", EffectiveCompressionWithTokenIds()));
}

std::string RunSummary::ToJson() const {
  nlohmann::json boundaries_json = nlohmann::json::array();
  for (const auto& b : boundaries) {
    boundaries_json.push_back({{"boundary", b.boundary},
                               {"forward_bytes", b.traffic.forward_bytes},
                               {"backward_bytes", b.traffic.backward_bytes},
                               {"forward_tokens", b.traffic.forward_tokens},
                               {"backward_tokens", b.traffic.backward_tokens},
                               {"framing_overhead_bytes", b.traffic.framing_overhead_bytes},
                               {"bf16_reference_bytes_per_direction", b.bf16_reference_bytes},
                               {"token_id_bytes", b.traffic.token_id_bytes}});
  }
  nlohmann::json stages_json = nlohmann::json::array();
  for (const auto& s : stages) {
    stages_json.push_back({{"stage", s.stage},
                           {"steps", s.steps},
                           {"forward_seconds_per_microbatch", s.forward_seconds},
                           {"backward_seconds_per_microbatch", s.backward_seconds},
                           {"wait_seconds_per_step", s.wait_seconds_per_step}});
  }
  nlohmann::json j = {
      {"job_name", job_name},
      {"outcome", outcome},
      {"error", error},
      {"compression", compression},
      {"ratio", ratio},
      {"wire_dtype", wire_dtype},
      {"num_stages", num_stages},
      {"steps", steps},
      {"recoveries", recoveries},
      {"tokens", tokens},
      {"final_train_loss", final_train_loss},
      {"final_val_loss", final_val_loss},
      {"unigram_entropy_nats", unigram_entropy_nats},
      {"wall_seconds", wall_seconds},
      {"tokens_per_second", tokens_per_second},
      {"effective_compression_vs_bf16", EffectiveCompression()},
      {"effective_compression_with_token_ids_vs_bf16", EffectiveCompressionWithTokenIds()},
      {"final_checkpoint_step", final_checkpoint_step},
      {"final_checkpoint_manifest", final_checkpoint_manifest},
      {"boundaries", boundaries_json},
      {"stages", stages_json}};
  if (initial_val_loss.has_value()) j["initial_val_loss"] = *initial_val_loss;
  return j.dump(2);
}

absl::StatusOr<RunSummary> RunSummary::FromJson(const std::string& json) {
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("summary: not a JSON object");
  }
  RunSummary s;
  try {
    s.job_name = j.value("job_name", "");
    s.outcome = j.value("outcome", "succeeded");
    s.error = j.value("error", "");
    s.compression = j.value("compression", "");
    s.ratio = j.value("ratio", int64_t{1});
    s.wire_dtype = j.value("wire_dtype", "");
    s.num_stages = j.value("num_stages", int64_t{1});
    s.steps = j.value("steps", int64_t{0});
    s.recoveries = j.value("recoveries", int64_t{0});
    s.tokens = j.value("tokens", int64_t{0});
    s.final_train_loss = j.value("final_train_loss", 0.0);
    s.final_val_loss = j.value("final_val_loss", 0.0);
    s.unigram_entropy_nats = j.value("unigram_entropy_nats", 0.0);
    s.wall_seconds = j.value("wall_seconds", 0.0);
    s.tokens_per_second = j.value("tokens_per_second", 0.0);
    s.final_checkpoint_step = j.value("final_checkpoint_step", int64_t{-1});
    s.final_checkpoint_manifest = j.value("final_checkpoint_manifest", "");
    if (j.contains("initial_val_loss")) s.initial_val_loss = j["initial_val_loss"].get<double>();
    for (const auto& b : j.value("boundaries", nlohmann::json::array())) {
      BoundarySummary boundary;
      boundary.boundary = b.value("boundary", int64_t{0});
      boundary.traffic.forward_bytes = b.value("forward_bytes", int64_t{0});
      boundary.traffic.backward_bytes = b.value("backward_bytes", int64_t{0});
      boundary.traffic.forward_tokens = b.value("forward_tokens", int64_t{0});
      boundary.traffic.backward_tokens = b.value("backward_tokens", int64_t{0});
      boundary.traffic.framing_overhead_bytes = b.value("framing_overhead_bytes", int64_t{0});
      boundary.bf16_reference_bytes = b.value("bf16_reference_bytes_per_direction", int64_t{0});
      boundary.traffic.token_id_bytes = b.value("token_id_bytes", int64_t{0});
      s.boundaries.push_back(boundary);
    }
    for (const auto& t : j.value("stages", nlohmann::json::array())) {
      StageSummary stage;
      stage.stage = t.value("stage", int64_t{0});
      stage.steps = t.value("steps", int64_t{0});
      stage.forward_seconds = t.value("forward_seconds_per_microbatch", 0.0);
      stage.backward_seconds = t.value("backward_seconds_per_microbatch", 0.0);
      stage.wait_seconds_per_step = t.value("wait_seconds_per_step", 0.0);
      s.stages.push_back(stage);
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("summary: ", e.what()));
  }
  return s;
}

absl::Status RunSummary::WriteJson(const std::string& path) const {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat("summary ", path, ": cannot open"));
  out << ToJson() << "\n";
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("summary ", path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace resbm
