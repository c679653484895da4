#include "common/modelio/model_exporter.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/file_io.h"
#include "common/config/job_config.h"
#include "common/model/model_tensor_names.h"
#include "common/modelio/model_source.h"
#include "common/modelio/safetensors_file.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

using OrderedJson = nlohmann::ordered_json;

bool HasBoundaryHalves(CompressionKind kind) {
  return kind == CompressionKind::kResbm || kind == CompressionKind::kBottleneck;
}

// Stages s >= 1 add T_s[tokens] to the decoded residual (DESIGN.md section 7).
OrderedJson TokenChannelSection(const CompressionOptions& compression) {
  OrderedJson section = {{"kind", TokenChannelName(compression.token_channel)}};
  switch (compression.token_channel) {
    case TokenChannelKind::kFactorized:
      section["rank"] = compression.token_channel_rank;
      section["formula"] = "table.weight[tokens] @ proj.weight^T";
      break;
    case TokenChannelKind::kFixed:
      section["formula"] =
          "fixed_table[v, j] = +init_std if bit 63 of splitmix64((s * V + v) * d + j) is 0, "
          "else -init_std";
      break;
    default:
      break;
  }
  return section;
}

OrderedJson ResbmSection(const v1::JobConfig& config, const std::string& job_id, int64_t step) {
  const CompressionOptions compression = ToCompressionOptions(config);
  auto plan = PlanJobStages(config);
  OrderedJson layers = OrderedJson::array();
  OrderedJson boundaries = OrderedJson::array();
  if (plan.ok()) {
    for (const StageSpec& spec : *plan) {
      layers.push_back(spec.num_layers);
      if (spec.is_last()) continue;
      boundaries.push_back({{"index", spec.index},
                            {"after_layer", spec.first_layer + spec.num_layers - 1},
                            {"kind", CompressionKindName(compression.kind)},
                            {"ratio", compression.ratio},
                            {"k", compression.WireWidth(config.model().d_model())},
                            {"wire_dtype", WireDtypeName(compression.wire_dtype)},
                            {"has_encoder_decoder", HasBoundaryHalves(compression.kind)},
                            {"encoder_norm", compression.encoder_norm},
                            {"halves_hidden", compression.halves_hidden}});
    }
  }
  OrderedJson section = {
      {"format_version", 1},
      {"job_id", job_id},
      {"step", step},
      {"layers_per_stage", layers},
      {"boundaries", boundaries},
      {"token_channel", TokenChannelSection(compression)},
      {"compute_dtype", ComputeDtypeName(ToModelOptions(config).compute_dtype)},
      {"rotary",
       "rotate_half: each head's first half pairs with its second (Hugging Face "
       "Llama layout; no q/k permutation)"},
  };
  // The job config exactly as the API prints it, so a reader can rebuild the pipeline.
  section["job_config"] = OrderedJson::parse(JobConfigToJson(config), nullptr, false);
  return section;
}

}  // namespace

std::string ModelExporter::ConfigJson(const v1::JobConfig& config, const std::string& job_id,
                                      int64_t step) {
  const auto& m = config.model();
  const CompressionOptions compression = ToCompressionOptions(config);
  const bool plain_llama =
      config.stages().num_stages() == 1 || (compression.kind == CompressionKind::kNone &&
                                            compression.token_channel == TokenChannelKind::kNone);
  // With boundaries a plain Llama loader would silently skip them: say it is another model.
  OrderedJson json = {
      {"architectures", {plain_llama ? "LlamaForCausalLM" : "ResbmForCausalLM"}},
      {"model_type", plain_llama ? "llama" : "resbm"},
      {"vocab_size", m.vocab_size()},
      {"hidden_size", m.d_model()},
      {"intermediate_size", m.mlp_hidden()},
      {"num_hidden_layers", m.n_layers()},
      {"num_attention_heads", m.n_heads()},
      {"num_key_value_heads", m.n_heads()},
      {"head_dim", m.d_model() / m.n_heads()},
      {"max_position_embeddings", m.seq_len()},
      // As the model computes with them (the float's shortest decimal, 1e-05 not 9.99e-06).
      {"rms_norm_eps", ToModelOptions(config).norm_eps},
      {"rope_theta", ToModelOptions(config).rope_theta},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"tie_word_embeddings", false},
      {"torch_dtype", "float32"},
  };
  json["resbm"] = ResbmSection(config, job_id, step);
  return json.dump(2) + "\n";
}

absl::StatusOr<ExportResult> ModelExporter::Export(const std::string& manifest_path,
                                                   const std::string& out_dir) {
  RESBM_ASSIGN_OR_RETURN(auto source, ModelSource::OpenCheckpoint(manifest_path));
  const v1::CheckpointManifest& manifest = *source->manifest();
  RESBM_ASSIGN_OR_RETURN(auto plan, PlanJobStages(manifest.config()));
  // Read stage by stage (each stage file decoded once: boundary halves alternate stages in
  // file order), placed in file order.
  const std::vector<NamedShape>& shapes = source->shapes();
  std::vector<RawTensor> tensors(shapes.size());
  ExportResult result;
  for (const StageSpec& spec : plan) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      RESBM_ASSIGN_OR_RETURN(const int64_t owner,
                             ModelTensorNames::OwningStage(plan, shapes[i].name));
      if (owner != spec.index) continue;
      RESBM_ASSIGN_OR_RETURN(tensors[i], source->Read(shapes[i].name));
      result.parameters += tensors[i].numel();
    }
  }
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("export directory '", out_dir, "': ", error.message()));
  }
  std::vector<int64_t> sizes;
  for (const StageSpec& spec : plan) sizes.push_back(spec.num_layers);
  // The split says where the boundaries sit: a fine-tune must put them in the same places.
  const SafetensorsFile::Metadata metadata = {
      {"format", "pt"},
      {"resbm.job_id", manifest.job_id()},
      {"resbm.step", absl::StrCat(manifest.step())},
      {"resbm.layers_per_stage", absl::StrJoin(sizes, ",")}};
  const std::string model_path = absl::StrCat(out_dir, "/", kModelFile);
  RESBM_RETURN_IF_ERROR(SafetensorsFile::Write(model_path, tensors, metadata));
  const std::string config_json =
      ConfigJson(manifest.config(), manifest.job_id(), static_cast<int64_t>(manifest.step()));
  RESBM_RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(out_dir, "/", kConfigFile), config_json));
  result.dir = out_dir;
  result.step = static_cast<int64_t>(manifest.step());
  result.tensors = static_cast<int64_t>(tensors.size());
  result.files.emplace_back(kModelFile, std::filesystem::file_size(model_path, error));
  result.files.emplace_back(kConfigFile, static_cast<int64_t>(config_json.size()));
  return result;
}

}  // namespace resbm
