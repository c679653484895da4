// Export names, the checkpoint manifest, ModelSource, ModelExporter and ModelInitCheck,
// without LibTorch: stage checkpoints made of known bytes are stitched into one safetensors
// file under the Llama names, whatever the stage split, and every bad source is refused
// naming the tensor and both shapes.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/config/job_config.h"
#include "common/model/checkpoint_codec.h"
#include "common/model/fixed_token_table.h"
#include "common/model/model_tensor_names.h"
#include "common/modelio/checkpoint_manifest_file.h"
#include "common/modelio/exported_model.h"
#include "common/modelio/model_exporter.h"
#include "common/modelio/model_init_check.h"
#include "common/modelio/model_source.h"
#include "common/modelio/safetensors_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

v1::JobConfig TinyConfig(int stages, int d_model = 32) {
  auto config = ParseJobConfigJson(absl::StrCat(
      R"({"model": {"vocab_size": 256, "d_model": )", d_model,
      R"(, "n_layers": 4, "n_heads": 2, "mlp_hidden": 64, "seq_len": 16},
          "stages": {"num_stages": )",
      stages, R"(}, "compression": {"ratio": 8, "token_channel": "TOKEN_CHANNEL_NONE"}})"));
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

// The local names StageImpl registers for `spec` (kept here by hand: a rename in the model
// must show up as a failing test).
std::vector<std::string> LocalNames(const StageSpec& spec, const CompressionOptions& c = {}) {
  std::vector<std::string> names;
  const bool two_layer = c.halves_hidden > 0;
  if (spec.is_first()) names.push_back("embed.weight");
  if (!spec.is_first()) {
    if (two_layer) {
      names.push_back("decoder.D.fc1.weight");
      names.push_back("decoder.D.fc2.weight");
    } else {
      names.push_back("decoder.D.weight");
    }
    if (c.token_channel == TokenChannelKind::kLearned ||
        c.token_channel == TokenChannelKind::kFactorized) {
      names.push_back("token_channel.table.weight");
    }
    if (c.token_channel == TokenChannelKind::kFactorized) {
      names.push_back("token_channel.proj.weight");
    }
  }
  for (int64_t l = spec.first_layer; l < spec.first_layer + spec.num_layers; ++l) {
    for (const char* suffix :
         {"attn_norm.weight", "attn.wq.weight", "attn.wk.weight", "attn.wv.weight",
          "attn.wo.weight", "mlp_norm.weight", "mlp.w1.weight", "mlp.w2.weight", "mlp.w3.weight"}) {
      names.push_back(absl::StrCat("layer", l, ".", suffix));
    }
  }
  if (spec.is_last()) {
    names.push_back("final_norm.weight");
    names.push_back("head.weight");
  } else {
    if (c.encoder_norm) names.push_back("encoder.norm.weight");
    if (two_layer) {
      names.push_back("encoder.E.fc1.weight");
      names.push_back("encoder.E.fc2.weight");
    } else {
      names.push_back("encoder.E.weight");
    }
  }
  return names;
}

// `config` with every boundary variant on: normed, two-layer halves and `channel`.
v1::JobConfig WithVariants(v1::JobConfig config, v1::TokenChannel channel) {
  config.mutable_compression()->set_token_channel(channel);
  if (channel == v1::TOKEN_CHANNEL_FACTORIZED) {
    config.mutable_compression()->set_token_channel_rank(4);
  }
  config.mutable_compression()->set_encoder_norm(true);
  config.mutable_compression()->set_halves_hidden(8);
  EXPECT_TRUE(ValidateJobConfig(config).ok()) << ValidateJobConfig(config);
  return config;
}

// A value that identifies tensor `name` element `i`, so a mix-up shows.
float Marker(const std::string& name, int64_t i) {
  return static_cast<float>(std::hash<std::string>()(name) % 1000) + 0.001f * i;
}

// Writes a complete checkpoint of `config` after `step` steps: stage files whose parameters
// hold Marker values under their export name, optimizer state beside them, and a manifest.
std::string WriteCheckpoint(const v1::JobConfig& config, int64_t step, const std::string& dir) {
  const auto plan = *PlanJobStages(config);
  const auto shapes =
      ModelTensorNames::ExportShapes(ToModelOptions(config), ToCompressionOptions(config), plan);
  v1::CheckpointManifest manifest;
  manifest.set_format_version(1);
  manifest.set_job_id("job-7");
  manifest.set_step(step);
  *manifest.mutable_config() = config;
  for (const StageSpec& spec : plan) {
    CheckpointData data;
    data.stage = spec.index;
    data.step = step;
    for (const std::string& local : LocalNames(spec, ToCompressionOptions(config))) {
      const std::string exported = *ModelTensorNames::ExportName(spec, local);
      RawTensor t;
      t.name = "param." + local;
      for (const auto& s : shapes) {
        if (s.name == exported) t.shape = s.shape;
      }
      std::vector<float> values(t.numel());
      for (int64_t i = 0; i < t.numel(); ++i) values[i] = Marker(exported, i);
      t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * 4);
      data.tensors.push_back(t);
    }
    RawTensor momentum;
    momentum.name = "optim.muon.x.momentum";
    momentum.shape = {1};
    momentum.data = std::string(4, '\0');
    data.tensors.push_back(momentum);
    const std::string file = absl::StrCat("stage-", spec.index, ".ckpt");
    EXPECT_TRUE(CheckpointCodec::WriteFile(dir + "/" + file, data).ok());
    manifest.add_stage_files(file);
  }
  EXPECT_TRUE(CheckpointManifestFile::Write(dir + "/manifest.json", manifest).ok());
  return dir + "/manifest.json";
}

TEST(ModelTensorNamesTest, MapsStageParametersOntoLlamaNames) {
  const auto plan = *PlanStages(4, 3, {});  // [2, 1, 1]
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[0], "embed.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[0], "layer1.attn.wq.weight"),
            "model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "layer2.mlp.w1.weight"),
            "model.layers.2.mlp.gate_proj.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "layer2.mlp.w3.weight"),
            "model.layers.2.mlp.up_proj.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "layer2.mlp.w2.weight"),
            "model.layers.2.mlp.down_proj.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "layer2.attn_norm.weight"),
            "model.layers.2.input_layernorm.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "layer2.mlp_norm.weight"),
            "model.layers.2.post_attention_layernorm.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "decoder.D.weight"),
            "model.boundaries.0.decoder.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "encoder.E.weight"),
            "model.boundaries.1.encoder.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[2], "head.weight"), "lm_head.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[2], "final_norm.weight"), "model.norm.weight");
  // A layer another stage owns, a head on a middle stage, a name nothing registers.
  EXPECT_FALSE(ModelTensorNames::ExportName(plan[1], "layer0.attn.wq.weight").ok());
  EXPECT_FALSE(ModelTensorNames::ExportName(plan[1], "head.weight").ok());
  EXPECT_FALSE(ModelTensorNames::ExportName(plan[0], "layer0.attn.rotary.cos").ok());
}

TEST(ModelTensorNamesTest, EveryExportTensorHasOneOwningStageThatNamesIt) {
  const v1::JobConfig config = TinyConfig(3);
  const auto plan = *PlanJobStages(config);
  const auto shapes =
      ModelTensorNames::ExportShapes(ToModelOptions(config), ToCompressionOptions(config), plan);
  std::set<std::string> named;
  for (const StageSpec& spec : plan) {
    for (const std::string& local : LocalNames(spec)) {
      const std::string exported = *ModelTensorNames::ExportName(spec, local);
      EXPECT_TRUE(named.insert(exported).second) << exported;
      EXPECT_EQ(*ModelTensorNames::OwningStage(plan, exported), spec.index) << exported;
    }
  }
  EXPECT_EQ(named.size(), shapes.size());
  for (const auto& shape : shapes) EXPECT_EQ(named.count(shape.name), 1u) << shape.name;
  EXPECT_EQ(shapes.size(), 1 + 4 * 9 + 2 * 2 + 2u);
  EXPECT_FALSE(ModelTensorNames::OwningStage(plan, "model.boundaries.2.encoder.weight").ok());
  EXPECT_FALSE(ModelTensorNames::OwningStage(plan, "model.layers.4.mlp.up_proj.weight").ok());
}

TEST(ModelTensorNamesTest, TokenChannelsAndTwoLayerHalvesHaveExportNames) {
  for (v1::TokenChannel channel :
       {v1::TOKEN_CHANNEL_LEARNED, v1::TOKEN_CHANNEL_FIXED, v1::TOKEN_CHANNEL_FACTORIZED}) {
    SCOPED_TRACE(v1::TokenChannel_Name(channel));
    const v1::JobConfig config = WithVariants(TinyConfig(3), channel);
    const auto plan = *PlanJobStages(config);
    const CompressionOptions compression = ToCompressionOptions(config);
    const auto shapes = ModelTensorNames::ExportShapes(ToModelOptions(config), compression, plan);
    std::set<std::string> named;
    for (const StageSpec& spec : plan) {
      for (const std::string& local : LocalNames(spec, compression)) {
        auto exported = ModelTensorNames::ExportName(spec, local);
        ASSERT_TRUE(exported.ok()) << local << ": " << exported.status();
        EXPECT_TRUE(named.insert(*exported).second) << *exported;
        EXPECT_EQ(*ModelTensorNames::OwningStage(plan, *exported), spec.index) << *exported;
      }
    }
    // A fixed table is exported though no stage holds it as a parameter.
    for (int64_t s = 1; s < 3; ++s) {
      const std::string fixed = ModelTensorNames::FixedTableName(s);
      const bool listed = std::any_of(shapes.begin(), shapes.end(),
                                      [&](const NamedShape& n) { return n.name == fixed; });
      EXPECT_EQ(listed, channel == v1::TOKEN_CHANNEL_FIXED) << fixed;
      if (listed) {
        named.insert(fixed);
        EXPECT_EQ(*ModelTensorNames::OwningStage(plan, fixed), s);
      }
    }
    EXPECT_EQ(named.size(), shapes.size());
    for (const auto& shape : shapes) EXPECT_EQ(named.count(shape.name), 1u) << shape.name;
  }
  const auto plan = *PlanJobStages(TinyConfig(3));
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "token_channel.table.weight"),
            "model.token_channels.1.table.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[2], "token_channel.proj.weight"),
            "model.token_channels.2.proj.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "encoder.E.fc1.weight"),
            "model.boundaries.1.encoder.fc1.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[1], "decoder.D.fc2.weight"),
            "model.boundaries.0.decoder.fc2.weight");
  EXPECT_EQ(*ModelTensorNames::ExportName(plan[0], "encoder.norm.weight"),
            "model.boundaries.0.encoder.norm.weight");
  EXPECT_FALSE(ModelTensorNames::ExportName(plan[0], "token_channel.table.weight").ok());
  EXPECT_FALSE(ModelTensorNames::ExportName(plan[1], "decoder.norm.weight").ok());
  EXPECT_FALSE(ModelTensorNames::ExportName(plan[1], "encoder.E.fc3.weight").ok());
  EXPECT_FALSE(ModelTensorNames::OwningStage(plan, "model.token_channels.0.table.weight").ok());
  EXPECT_FALSE(ModelTensorNames::OwningStage(plan, "model.token_channels.3.table.weight").ok());
  EXPECT_FALSE(ModelTensorNames::OwningStage(plan, "model.boundaries.0.decoder.norm.weight").ok());
}

TEST(ModelExporterTest, ExportsEveryVariantWithTheFixedTablesRegenerated) {
  for (v1::TokenChannel channel :
       {v1::TOKEN_CHANNEL_LEARNED, v1::TOKEN_CHANNEL_FIXED, v1::TOKEN_CHANNEL_FACTORIZED}) {
    SCOPED_TRACE(v1::TokenChannel_Name(channel));
    ScopedTempDir dir;
    const v1::JobConfig config = WithVariants(TinyConfig(3), channel);
    auto result = ModelExporter::Export(WriteCheckpoint(config, 9, dir.path()), dir.File("out"));
    ASSERT_TRUE(result.ok()) << result.status();
    auto file = SafetensorsFile::Open(dir.File("out/model.safetensors"));
    ASSERT_TRUE(file.ok()) << file.status();
    const auto shapes = ModelTensorNames::ExportShapes(
        ToModelOptions(config), ToCompressionOptions(config), *PlanJobStages(config));
    ASSERT_EQ(file->entries().size(), shapes.size());
    for (const auto& shape : shapes) {
      auto t = file->Read(shape.name);
      ASSERT_TRUE(t.ok()) << t.status();
      std::vector<float> values(t->numel());
      std::memcpy(values.data(), t->data.data(), t->data.size());
      const bool fixed = shape.name.find("fixed_table") != std::string::npos;
      const std::vector<float> table =
          fixed ? FixedTokenTable::Values(shape.name == ModelTensorNames::FixedTableName(1) ? 1 : 2,
                                          256, 32, 0.02f)
                : std::vector<float>();
      for (int64_t j = 0; j < t->numel(); j += 5) {
        ASSERT_EQ(values[j], fixed ? table[j] : Marker(shape.name, j)) << shape.name << " " << j;
      }
    }
    std::ifstream in(dir.File("out/config.json"));
    const auto json = nlohmann::json::parse(in);
    EXPECT_EQ(json["architectures"][0], "ResbmForCausalLM");
    EXPECT_EQ(json["resbm"]["token_channel"]["kind"],
              TokenChannelName(ToCompressionOptions(config).token_channel));
    EXPECT_EQ(json["resbm"]["boundaries"][0]["halves_hidden"], 8);
    EXPECT_EQ(json["resbm"]["boundaries"][0]["encoder_norm"], true);
  }
}

TEST(ModelExporterTest, StitchesStageCheckpointsIntoOneSafetensorsFile) {
  ScopedTempDir dir;
  const v1::JobConfig config = TinyConfig(3);
  const std::string manifest = WriteCheckpoint(config, 40, dir.path());
  auto result = ModelExporter::Export(manifest, dir.File("export"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->step, 40);
  EXPECT_EQ(result->tensors, 43);
  auto file = SafetensorsFile::Open(dir.File("export/model.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("resbm.step"), "40");
  EXPECT_EQ(file->metadata().at("resbm.job_id"), "job-7");
  const auto shapes = ModelTensorNames::ExportShapes(
      ToModelOptions(config), ToCompressionOptions(config), *PlanJobStages(config));
  ASSERT_EQ(file->entries().size(), shapes.size());
  int64_t parameters = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(file->entries()[i].name, shapes[i].name);  // In file order.
    auto t = file->Read(shapes[i].name);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->shape, shapes[i].shape);
    std::vector<float> values(t->numel());
    std::memcpy(values.data(), t->data.data(), t->data.size());
    for (int64_t j = 0; j < t->numel(); j += 7) {
      ASSERT_EQ(values[j], Marker(shapes[i].name, j)) << shapes[i].name << " element " << j;
    }
    parameters += t->numel();
  }
  EXPECT_EQ(result->parameters, parameters);
  // config.json: Llama fields, the boundaries, and the job config that reopens.
  std::ifstream in(dir.File("export/config.json"));
  const auto json = nlohmann::json::parse(in);
  EXPECT_EQ(json["model_type"], "resbm");
  EXPECT_EQ(json["hidden_size"], 32);
  EXPECT_EQ(json["num_hidden_layers"], 4);
  EXPECT_EQ(json["resbm"]["layers_per_stage"], nlohmann::json({2, 1, 1}));
  EXPECT_EQ(json["resbm"]["boundaries"][1]["after_layer"], 2);
  EXPECT_EQ(json["resbm"]["boundaries"][1]["k"], 4);
  auto opened = ExportedModel::Open(dir.File("export"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->step(), 40);
  EXPECT_EQ(opened->config().stages().num_stages(), 3u);
}

TEST(ModelExporterTest, ANoneBoundaryModelIsPlainLlama) {
  ScopedTempDir dir;
  v1::JobConfig config = TinyConfig(2);
  SetCompression(v1::COMPRESSION_KIND_NONE, 1, &config);
  ASSERT_TRUE(ValidateJobConfig(config).ok());
  auto result = ModelExporter::Export(WriteCheckpoint(config, 1, dir.path()), dir.File("out"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tensors, 1 + 4 * 9 + 2);
  std::ifstream in(dir.File("out/config.json"));
  EXPECT_EQ(nlohmann::json::parse(in)["architectures"][0], "LlamaForCausalLM");
}

TEST(ModelExporterTest, RefusesCheckpointsThatDisagreeWithTheirManifest) {
  ScopedTempDir dir;
  const v1::JobConfig config = TinyConfig(2);
  const std::string manifest = WriteCheckpoint(config, 5, dir.path());
  // Stage 1's file swapped for stage 0's.
  std::filesystem::copy_file(dir.File("stage-0.ckpt"), dir.File("stage-1.ckpt"),
                             std::filesystem::copy_options::overwrite_existing);
  auto swapped = ModelExporter::Export(manifest, dir.File("a"));
  EXPECT_EQ(swapped.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(swapped.status().message(), HasSubstr("checkpoint of stage 0"));
  // A stage file gone.
  std::filesystem::remove(dir.File("stage-1.ckpt"));
  auto missing = ModelExporter::Export(manifest, dir.File("b"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("stage-1.ckpt"));
  // A corrupt byte.
  WriteCheckpoint(config, 5, dir.path());
  {
    std::fstream f(dir.File("stage-1.ckpt"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x55');
  }
  auto corrupt = ModelExporter::Export(manifest, dir.File("c"));
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(corrupt.status().message(), HasSubstr("checksum"));
}

TEST(CheckpointManifestFileTest, RefusesBadManifests) {
  ScopedTempDir dir;
  EXPECT_EQ(CheckpointManifestFile::Read(dir.File("none.json")).status().code(),
            absl::StatusCode::kNotFound);
  std::ofstream(dir.File("garbage.json")) << "{\"step\": \"many\"";
  EXPECT_EQ(CheckpointManifestFile::Read(dir.File("garbage.json")).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::CheckpointManifest manifest;
  manifest.set_format_version(1);
  *manifest.mutable_config() = TinyConfig(2);
  manifest.add_stage_files("only-one.ckpt");
  auto written = CheckpointManifestFile::Write(dir.File("m.json"), manifest);
  EXPECT_THAT(written.message(), HasSubstr("1 stage_files; expected one per stage (2)"));
  manifest.set_format_version(9);
  EXPECT_THAT(CheckpointManifestFile::Write(dir.File("m.json"), manifest).message(),
              HasSubstr("format_version 9"));
}

v1::JobConfig FineTune(v1::JobConfig config, const std::string& from_checkpoint,
                       const std::string& from_model = "") {
  if (!from_model.empty()) {
    config.mutable_init()->set_from_model(from_model);
  } else {
    config.mutable_init()->set_from_checkpoint(from_checkpoint);
  }
  EXPECT_TRUE(ValidateJobConfig(config).ok());
  return config;
}

TEST(ModelInitCheckTest, AcceptsAMatchingSource) {
  ScopedTempDir dir;
  const std::string manifest = WriteCheckpoint(TinyConfig(3), 40, dir.path());
  ASSERT_TRUE(ModelExporter::Export(manifest, dir.File("export")).ok());
  EXPECT_TRUE(ModelInitCheck::Check(FineTune(TinyConfig(3), manifest)).ok());
  // The export itself, or its safetensors file.
  EXPECT_TRUE(ModelInitCheck::Check(FineTune(TinyConfig(3), "", dir.File("export"))).ok());
  EXPECT_TRUE(
      ModelInitCheck::Check(FineTune(TinyConfig(3), "", dir.File("export/model.safetensors")))
          .ok());
  EXPECT_TRUE(ModelInitCheck::Check(TinyConfig(2)).ok());  // No source.
}

v1::JobConfig NoBoundaries(int stages) {
  v1::JobConfig config = TinyConfig(stages);
  SetCompression(v1::COMPRESSION_KIND_NONE, 1, &config);
  return config;
}

TEST(ModelInitCheckTest, AModelWithoutBoundariesMayBeSplitAnew) {
  ScopedTempDir dir;
  const std::string manifest = WriteCheckpoint(NoBoundaries(2), 3, dir.path());
  EXPECT_TRUE(ModelInitCheck::Check(FineTune(NoBoundaries(4), manifest)).ok());
}

TEST(ModelInitCheckTest, RefusesMismatchesNamingTheTensorAndBothShapes) {
  ScopedTempDir dir;
  const std::string manifest = WriteCheckpoint(TinyConfig(3), 40, dir.path());
  ASSERT_TRUE(ModelExporter::Export(manifest, dir.File("export")).ok());
  auto wider = ModelInitCheck::Check(FineTune(TinyConfig(3, 64), "", dir.File("export")));
  EXPECT_EQ(wider.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wider.message(),
              HasSubstr("init.from_model: tensor model.embed_tokens.weight has shape [256,32] in "
                        "exported model"));
  EXPECT_THAT(wider.message(), HasSubstr("and [256,64] in this model"));
  auto resplit = ModelInitCheck::Check(FineTune(TinyConfig(2), manifest));
  EXPECT_EQ(resplit.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(resplit.message()),
      HasSubstr("was trained with layers per stage [2,1,1] and this job splits them [2,2]"));
  // A bare safetensors file without the split: the tensors still must match.
  auto tensors = SafetensorsFile::Open(dir.File("export/model.safetensors"))->ReadAll();
  ASSERT_TRUE(SafetensorsFile::Write(dir.File("bare.safetensors"), *tensors).ok());
  auto fewer_boundaries =
      ModelInitCheck::Check(FineTune(TinyConfig(2), "", dir.File("bare.safetensors")));
  EXPECT_THAT(std::string(fewer_boundaries.message()),
              HasSubstr("init.from_model: tensor model.boundaries.1."));
  EXPECT_THAT(std::string(fewer_boundaries.message()), HasSubstr("has no place in this model"));
  auto missing = ModelInitCheck::Check(FineTune(TinyConfig(3), dir.File("nope.json")));
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.message(), HasSubstr("nope.json"));
}

TEST(ModelInitCheckTest, CarriesOptimizerStateOnlyBetweenEqualSplits) {
  ScopedTempDir dir;
  const std::string manifest = WriteCheckpoint(NoBoundaries(2), 40, dir.path());
  v1::JobConfig same = FineTune(NoBoundaries(2), manifest);
  same.mutable_init()->set_carry_optimizer_state(true);
  EXPECT_TRUE(ModelInitCheck::Check(same).ok());
  v1::JobConfig resplit = same;
  resplit.mutable_stages()->add_layers_per_stage(3);
  resplit.mutable_stages()->add_layers_per_stage(1);
  ASSERT_TRUE(ValidateJobConfig(resplit).ok());
  EXPECT_THAT(std::string(ModelInitCheck::Check(resplit).message()),
              HasSubstr("init.carry_optimizer_state"));
  v1::JobConfig adamw = same;
  adamw.mutable_optimizer()->set_kind(v1::OPTIMIZER_KIND_ADAMW);
  EXPECT_THAT(std::string(ModelInitCheck::Check(adamw).message()),
              HasSubstr("OPTIMIZER_KIND_MUON"));
}

}  // namespace
}  // namespace resbm
