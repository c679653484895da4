#include "common/config/job_config.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "resbm/v1/config.pb.h"

namespace resbm {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

std::string SourceDir() {
  const char* env = std::getenv("RESBM_SOURCE_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return RESBM_SOURCE_DIR_FALLBACK;
}

// Writes `contents` to a fresh file under the test temp dir and returns its path.
std::string WriteTempFile(const std::string& name, const std::string& contents) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  return path;
}

// Equality with the difference in the failure message.
::testing::AssertionResult ProtoEquals(const v1::JobConfig& expected, const v1::JobConfig& actual) {
  MessageDifferencer differencer;
  std::string diff;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, actual)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff;
}

// ---------------------------------------------------------------------------------------------
// Bad JSON: each row must give kInvalidArgument naming the field path, the value and what was
// expected.

struct BadJsonRow {
  std::string name;  // Test name suffix.
  std::string json;
  std::string path;   // Expected substring: the field path.
  std::string value;  // Expected substring: the offending value.
};

std::vector<BadJsonRow> BadJsonRows() {
  return {
      // Parse errors (protobuf's message names the field).
      {"UnknownTopLevelField", R"({"bogus": 1})", "bogus", "Cannot find field"},
      {"UnknownNestedField", R"({"model": {"dmodel": 64}})", "model", "dmodel"},
      {"UnknownEnumName", R"({"compression": {"kind": "ZIP"}})", "compression.kind", "ZIP"},
      {"NegativeUnsigned", R"({"training": {"steps": -1}})", "training.steps", "-1"},
      {"FractionalUnsigned", R"({"model": {"d_model": 1.5}})", "model.d_model", "1.5"},
      {"TwoDataSources", R"({"data": {"byte_corpus": {}, "token_shards": {"train_paths": ["t"]}}})",
       "data", "token_shards"},
      {"NotJson", "model: {}", "job config JSON", "Unexpected token"},
      // Name.
      {"NameTooLong", absl::StrCat(R"({"name": ")", std::string(200, 'a'), R"("})"), "name",
       "200 characters"},
      // Model.
      {"VocabTooSmall", R"({"model": {"vocab_size": 1}})", "model.vocab_size", "1"},
      {"VocabBeyondUint16", R"({"model": {"vocab_size": 70000}})", "model.vocab_size", "70000"},
      {"VocabBelowBytesForByteCorpus", R"({"model": {"vocab_size": 100}})", "model.vocab_size",
       "100 is too small for data.byte_corpus"},
      {"DModelTooSmall", R"({"model": {"d_model": 4, "n_heads": 1}})", "model.d_model", "4"},
      {"HeadsDoNotDivideDModel", R"({"model": {"n_heads": 3}})", "model.n_heads",
       "3 does not divide model.d_model 256"},
      {"OddHeadDim", R"({"model": {"d_model": 96, "n_heads": 32}})", "model.n_heads",
       "odd head dim 3"},
      {"SeqLenTooShort", R"({"model": {"seq_len": 1}})", "model.seq_len", "1"},
      {"NegativeRopeTheta", R"({"model": {"rope_theta": -1}})", "model.rope_theta", "-1"},
      {"NanRopeTheta", R"({"model": {"rope_theta": "NaN"}})", "model.rope_theta", "nan"},
      {"NormEpsNotBelowOne", R"({"model": {"norm_eps": 1.5}})", "model.norm_eps", "1.5"},
      {"NegativeInitStd", R"({"model": {"init_std": -0.1}})", "model.init_std", "-0.1"},
      {"InfiniteInitStd", R"({"model": {"init_std": "Infinity"}})", "model.init_std", "inf"},
      // Stages.
      {"MoreStagesThanLayers", R"({"stages": {"num_stages": 8}})", "stages.num_stages",
       "8 exceeds model.n_layers 4; expected 1..4"},
      {"MorePipelinesThanMicrobatches",
       R"({"stages": {"replicas": 5}, "training": {"batch_size": 8, "microbatches": 4}})",
       "stages.replicas", "5 pipelines for training.microbatches 4; expected at most one"},
      {"TooManyReplicas", R"({"stages": {"replicas": 65}})", "stages.replicas",
       "65; expected 1..64"},
      {"LayersPerStageWrongCount", R"({"stages": {"num_stages": 2, "layers_per_stage": [4]}})",
       "stages.layers_per_stage", "[4] has 1 entries"},
      {"LayersPerStageZeroEntry", R"({"stages": {"num_stages": 2, "layers_per_stage": [4, 0]}})",
       "stages.layers_per_stage[1]", "0"},
      {"LayersPerStageSumMismatch", R"({"stages": {"num_stages": 2, "layers_per_stage": [2, 3]}})",
       "stages.layers_per_stage", "sums to 5"},
      // Compression.
      {"RatioDoesNotDivideDModel", R"({"compression": {"ratio": 3}})", "compression.ratio",
       "3 does not divide model.d_model 256; expected a divisor of 256 such as 2, 4, 8, ... 128"},
      {"DefaultRatioDoesNotDivideSmallDModel", R"({"model": {"d_model": 64, "n_heads": 2}})",
       "compression.ratio", "128 does not divide model.d_model 64"},
      {"NoneWithRatio", R"({"compression": {"kind": "COMPRESSION_KIND_NONE", "ratio": 4}})",
       "compression.ratio", "4 with compression.kind COMPRESSION_KIND_NONE"},
      {"UnknownCompressionKindNumber", R"({"compression": {"kind": 7}})", "compression.kind", "7"},
      {"UnknownWireDtypeNumber", R"({"compression": {"wire_dtype": 9}})", "compression.wire_dtype",
       "9"},
      {"NegativeCompressionInitStd", R"({"compression": {"init_std": -1}})", "compression.init_std",
       "-1"},
      {"UnknownTokenChannelNumber", R"({"compression": {"token_channel": 9}})",
       "compression.token_channel", "9"},
      {"RankWithoutFactorizedChannel",
       R"({"compression": {"token_channel": "TOKEN_CHANNEL_LEARNED", "token_channel_rank": 8}})",
       "compression.token_channel_rank", "8 with compression.token_channel TOKEN_CHANNEL_LEARNED"},
      {"FactorizedRankAboveDModel",
       R"({"compression": {"token_channel": "TOKEN_CHANNEL_FACTORIZED", "token_channel_rank": 300}})",
       "compression.token_channel_rank", "300; expected 1..model.d_model (256)"},
      {"EncoderNormWithoutHalves",
       R"({"compression": {"kind": "COMPRESSION_KIND_TRUNCATE", "encoder_norm": true}})",
       "compression.encoder_norm", "set with compression.kind COMPRESSION_KIND_TRUNCATE"},
      {"HiddenHalvesWithoutHalves",
       R"({"compression": {"kind": "COMPRESSION_KIND_NONE", "halves_hidden": 8}})",
       "compression.halves_hidden", "set with compression.kind COMPRESSION_KIND_NONE"},
      {"TokenChannelWithoutCompression",
       R"({"compression": {"kind": "COMPRESSION_KIND_NONE", "token_channel": "TOKEN_CHANNEL_LEARNED"}})",
       "compression.token_channel",
       "TOKEN_CHANNEL_LEARNED with compression.kind COMPRESSION_KIND_NONE"},
      {"ZeroHalvesLrScale", R"({"compression": {"halves_lr_scale": 0}})",
       "compression.halves_lr_scale", "0"},
      {"HalvesLrScaleWithAdamW",
       R"({"compression": {"halves_lr_scale": 2}, "optimizer": {"kind": "OPTIMIZER_KIND_ADAMW"}})",
       "compression.halves_lr_scale", "2 with optimizer.kind OPTIMIZER_KIND_ADAMW"},
      {"HugeHiddenHalves", R"({"compression": {"halves_hidden": 100000}})",
       "compression.halves_hidden", "100000; expected 0 (linear) or 1..16 x d_model (4096)"},
      // Optimizer.
      {"OuterPeriodNotDividingSteps",
       R"({"optimizer": {"outer": {"steps": 7}}, "training": {"steps": 300}})", "training.steps",
       "300 with optimizer.outer.steps 7; expected a multiple of 7"},
      {"OuterPeriodNotDividingCheckpoints",
       R"({"optimizer": {"outer": {"steps": 20}}, "training": {"steps": 300}})",
       "training.checkpoint_every", "50 with optimizer.outer.steps 20; expected 0 or a multiple"},
      {"OuterMomentumOne", R"({"optimizer": {"outer": {"steps": 10, "momentum": 1}}})",
       "optimizer.outer.momentum", "1; expected a value in [0, 1)"},
      {"OuterZeroLr", R"({"optimizer": {"outer": {"steps": 10, "lr": 0}}})", "optimizer.outer.lr",
       "0"},
      {"OuterFp16", R"({"optimizer": {"outer": {"steps": 10, "dtype": "WIRE_DTYPE_FP16"}}})",
       "optimizer.outer.dtype", "WIRE_DTYPE_FP16; expected WIRE_DTYPE_FP32, WIRE_DTYPE_BF16"},
      {"UnknownOptimizerKindNumber", R"({"optimizer": {"kind": 5}})", "optimizer.kind", "5"},
      {"NegativeMuonLr", R"({"optimizer": {"muon": {"lr": -0.1}}})", "optimizer.muon.lr", "-0.1"},
      {"MuonMomentumOne", R"({"optimizer": {"muon": {"momentum": 1}}})", "optimizer.muon.momentum",
       "1"},
      {"TooManyNsSteps", R"({"optimizer": {"muon": {"ns_steps": 50}}})", "optimizer.muon.ns_steps",
       "50"},
      {"NegativeMuonWeightDecay", R"({"optimizer": {"muon": {"weight_decay": -0.5}}})",
       "optimizer.muon.weight_decay", "-0.5"},
      {"NegativeAdamWLr", R"({"optimizer": {"adamw": {"lr": -1}}})", "optimizer.adamw.lr", "-1"},
      {"AdamWBeta1AboveOne", R"({"optimizer": {"adamw": {"beta1": 1.5}}})", "optimizer.adamw.beta1",
       "1.5"},
      {"AdamWBeta2AboveOne", R"({"optimizer": {"adamw": {"beta2": 2}}})", "optimizer.adamw.beta2",
       "2"},
      {"NegativeAdamWEps", R"({"optimizer": {"adamw": {"eps": -1e-8}}})", "optimizer.adamw.eps",
       "-1e-08"},
      {"UnknownLrDecayNumber", R"({"optimizer": {"lr_schedule": {"decay": 8}}})",
       "optimizer.lr_schedule.decay", "8"},
      {"MinLrRatioAboveOne", R"({"optimizer": {"lr_schedule": {"min_lr_ratio": 2}}})",
       "optimizer.lr_schedule.min_lr_ratio", "2"},
      {"WarmupLongerThanTraining", R"({"optimizer": {"lr_schedule": {"warmup_steps": 500}}})",
       "optimizer.lr_schedule.warmup_steps", "500 exceeds training.steps 300"},
      {"NegativeGradClip", R"({"optimizer": {"grad_clip": -1}})", "optimizer.grad_clip", "-1"},
      // Training.
      {"TooManySteps", R"({"training": {"steps": 2000000000}})", "training.steps", "2000000000"},
      {"TooManyRecoveriesWithoutProgress",
       R"({"training": {"max_recoveries_without_progress": 1001}})",
       "training.max_recoveries_without_progress", "1001"},
      {"KeepingOneCheckpoint", R"({"training": {"keep_checkpoints": 1}})",
       "training.keep_checkpoints", "1"},
      {"MicrobatchesDoNotDivideBatch", R"({"training": {"microbatches": 3}})",
       "training.microbatches", "3 does not divide training.batch_size 16"},
      {"MoreMicrobatchesThanBatch", R"({"training": {"microbatches": 32}})",
       "training.microbatches", "32"},
      {"UnknownScheduleNumber", R"({"training": {"schedule": 5}})", "training.schedule", "5"},
      // Data.
      {"EmptyByteCorpusPath", R"({"data": {"byte_corpus": {"paths": ["a.txt", ""]}}})",
       "data.byte_corpus.paths[1]", "\"\""},
      {"ValFractionAboveHalf", R"({"data": {"byte_corpus": {"val_fraction": 0.7}}})",
       "data.byte_corpus.val_fraction", "0.7"},
      {"TokenShardsWithoutTrainPaths", R"({"data": {"token_shards": {"val_paths": ["v.bin"]}}})",
       "data.token_shards.train_paths", "empty"},
      {"TokenShardsWithoutValPaths", R"({"data": {"token_shards": {"train_paths": ["t.bin"]}}})",
       "data.token_shards.val_paths", "empty"},
      // Init.
      {"EmptyInitModelPath", R"({"init": {"from_model": ""}})", "init.from_model", "\"\""},
      {"EmptyInitJob", R"({"init": {"from_job": ""}})", "init.from_job", "job id"},
      {"TwoInitSources", R"({"init": {"from_model": "m", "from_job": "job-1"}})", "init", "oneof"},
      {"CarryWithoutSource", R"({"init": {"carry_optimizer_state": true}})",
       "init.carry_optimizer_state", "no init source"},
      {"CarryFromAnExport", R"({"init": {"from_model": "m", "carry_optimizer_state": true}})",
       "init.carry_optimizer_state", "an exported model has no optimizer state"},
  };
}

class BadJsonTest : public ::testing::TestWithParam<BadJsonRow> {};

TEST_P(BadJsonTest, IsInvalidArgumentNamingFieldValueAndExpectation) {
  const BadJsonRow& row = GetParam();
  const absl::StatusOr<v1::JobConfig> config = ParseJobConfigJson(row.json);
  ASSERT_FALSE(config.ok()) << row.json;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr(row.path));
  EXPECT_THAT(message, HasSubstr(row.value));
  EXPECT_THAT(message, HasSubstr("expected"));
}

INSTANTIATE_TEST_SUITE_P(Rows, BadJsonTest, ::testing::ValuesIn(BadJsonRows()),
                         [](const ::testing::TestParamInfo<BadJsonRow>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// ValidateJobConfig on configs that parsing cannot produce (defaults fill these fields), as a
// caller that builds the proto in code could.

struct BadConfigRow {
  std::string name;
  std::function<void(v1::JobConfig*)> mutate;  // Applied to DefaultJobConfig().
  std::string path;
  std::string value;
};

std::vector<BadConfigRow> BadConfigRows() {
  return {
      {"UnspecifiedCompressionKind",
       [](v1::JobConfig* c) {
         c->mutable_compression()->set_kind(v1::COMPRESSION_KIND_UNSPECIFIED);
       },
       "compression.kind", "COMPRESSION_KIND_UNSPECIFIED"},
      {"UnspecifiedWireDtype",
       [](v1::JobConfig* c) {
         c->mutable_compression()->set_wire_dtype(v1::WIRE_DTYPE_UNSPECIFIED);
       },
       "compression.wire_dtype", "WIRE_DTYPE_UNSPECIFIED"},
      {"UnspecifiedComputeDtype",
       [](v1::JobConfig* c) {
         c->mutable_model()->set_compute_dtype(v1::COMPUTE_DTYPE_UNSPECIFIED);
       },
       "model.compute_dtype", "COMPUTE_DTYPE_UNSPECIFIED; expected one of COMPUTE_DTYPE_FP32"},
      {"UnspecifiedOptimizerKind",
       [](v1::JobConfig* c) { c->mutable_optimizer()->set_kind(v1::OPTIMIZER_KIND_UNSPECIFIED); },
       "optimizer.kind", "OPTIMIZER_KIND_UNSPECIFIED"},
      {"UnspecifiedSchedule",
       [](v1::JobConfig* c) {
         c->mutable_training()->set_schedule(v1::PIPELINE_SCHEDULE_UNSPECIFIED);
       },
       "training.schedule", "PIPELINE_SCHEDULE_UNSPECIFIED"},
      {"ZeroStages", [](v1::JobConfig* c) { c->mutable_stages()->set_num_stages(0); },
       "stages.num_stages", "0; expected 1..4"},
      {"ZeroLayers", [](v1::JobConfig* c) { c->mutable_model()->set_n_layers(0); },
       "model.n_layers", "0"},
      {"ZeroMlpHidden", [](v1::JobConfig* c) { c->mutable_model()->set_mlp_hidden(0); },
       "model.mlp_hidden", "0"},
      {"ZeroRatio", [](v1::JobConfig* c) { c->mutable_compression()->set_ratio(0); },
       "compression.ratio", "0"},
      {"ZeroNsSteps",
       [](v1::JobConfig* c) { c->mutable_optimizer()->mutable_muon()->set_ns_steps(0); },
       "optimizer.muon.ns_steps", "0"},
      {"ZeroBatchSize", [](v1::JobConfig* c) { c->mutable_training()->set_batch_size(0); },
       "training.batch_size", "0"},
      {"ZeroEvalBatches", [](v1::JobConfig* c) { c->mutable_training()->set_eval_batches(0); },
       "training.eval_batches", "0"},
      {"ByteCorpusWithoutPaths",
       [](v1::JobConfig* c) { c->mutable_data()->mutable_byte_corpus()->clear_paths(); },
       "data.byte_corpus.paths", "empty"},
      {"NoDataSource", [](v1::JobConfig* c) { c->mutable_data()->clear_source(); }, "data",
       "no source set"},
  };
}

class BadConfigTest : public ::testing::TestWithParam<BadConfigRow> {};

TEST_P(BadConfigTest, IsInvalidArgumentNamingFieldValueAndExpectation) {
  const BadConfigRow& row = GetParam();
  v1::JobConfig config = DefaultJobConfig();
  row.mutate(&config);
  const absl::Status status = ValidateJobConfig(config);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr(row.path));
  EXPECT_THAT(message, HasSubstr(row.value));
  EXPECT_THAT(message, HasSubstr("expected"));
}

INSTANTIATE_TEST_SUITE_P(Rows, BadConfigTest, ::testing::ValuesIn(BadConfigRows()),
                         [](const ::testing::TestParamInfo<BadConfigRow>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// Defaults and the shipped config files.

TEST(JobConfigTest, EmptyObjectGivesTheDefaults) {
  const absl::StatusOr<v1::JobConfig> config = ParseJobConfigJson("{}");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(ProtoEquals(DefaultJobConfig(), *config));

  EXPECT_EQ(config->name(), "resbm-job");
  EXPECT_EQ(config->model().vocab_size(), 256u);
  EXPECT_EQ(config->model().d_model(), 256u);
  EXPECT_EQ(config->model().n_layers(), 4u);
  EXPECT_EQ(config->model().n_heads(), 4u);
  EXPECT_EQ(config->model().mlp_hidden(), 768u);
  EXPECT_EQ(config->model().seq_len(), 128u);
  EXPECT_FLOAT_EQ(config->model().rope_theta(), 10000.0f);
  EXPECT_FLOAT_EQ(config->model().norm_eps(), 1e-5f);
  EXPECT_FLOAT_EQ(config->model().init_std(), 0.02f);
  EXPECT_EQ(config->stages().num_stages(), 4u);
  EXPECT_TRUE(config->stages().layers_per_stage().empty());
  EXPECT_EQ(config->compression().kind(), v1::COMPRESSION_KIND_RESBM);
  EXPECT_EQ(config->compression().ratio(), 128u);
  EXPECT_EQ(config->compression().wire_dtype(), v1::WIRE_DTYPE_BF16);
  EXPECT_TRUE(config->compression().has_init_std());
  EXPECT_EQ(config->compression().init_std(), 0.0f);
  EXPECT_EQ(config->optimizer().kind(), v1::OPTIMIZER_KIND_MUON);
  EXPECT_FLOAT_EQ(config->optimizer().muon().lr(), 0.02f);
  EXPECT_FLOAT_EQ(config->optimizer().muon().momentum(), 0.95f);
  EXPECT_TRUE(config->optimizer().muon().nesterov());
  EXPECT_EQ(config->optimizer().muon().ns_steps(), 5u);
  EXPECT_EQ(config->optimizer().muon().weight_decay(), 0.0f);
  EXPECT_FLOAT_EQ(config->optimizer().adamw().lr(), 0.003f);
  EXPECT_FLOAT_EQ(config->optimizer().adamw().beta1(), 0.9f);
  EXPECT_FLOAT_EQ(config->optimizer().adamw().beta2(), 0.95f);
  EXPECT_FLOAT_EQ(config->optimizer().adamw().eps(), 1e-8f);
  EXPECT_EQ(config->optimizer().lr_schedule().warmup_steps(), 0u);
  EXPECT_EQ(config->optimizer().lr_schedule().decay(), v1::LR_DECAY_COSINE);
  EXPECT_FLOAT_EQ(config->optimizer().lr_schedule().min_lr_ratio(), 0.1f);
  EXPECT_FLOAT_EQ(config->optimizer().grad_clip(), 1.0f);
  EXPECT_EQ(config->training().steps(), 300u);
  EXPECT_EQ(config->training().batch_size(), 16u);
  EXPECT_EQ(config->training().microbatches(), 4u);
  EXPECT_EQ(config->training().eval_every(), 50u);
  EXPECT_EQ(config->training().eval_batches(), 8u);
  EXPECT_EQ(config->training().seed(), 1337u);
  EXPECT_EQ(config->training().schedule(), v1::PIPELINE_SCHEDULE_GPIPE);
  EXPECT_EQ(config->training().checkpoint_every(), 50u);
  ASSERT_TRUE(config->data().has_byte_corpus());
  ASSERT_EQ(config->data().byte_corpus().paths_size(), 1);
  EXPECT_EQ(config->data().byte_corpus().paths(0), "/usr/share/games/fortunes");
  EXPECT_FLOAT_EQ(config->data().byte_corpus().val_fraction(), 0.1f);
}

TEST(JobConfigTest, DefaultConfigIsValid) {
  EXPECT_TRUE(ValidateJobConfig(DefaultJobConfig()).ok());
}

TEST(JobConfigTest, ApplyingDefaultsTwiceChangesNothing) {
  v1::JobConfig once = ParseJobConfigJson(R"({"model": {"d_model": 128}})").value();
  v1::JobConfig twice = once;
  ApplyJobConfigDefaults(&twice);
  EXPECT_TRUE(ProtoEquals(once, twice));
}

TEST(JobConfigTest, SetFieldsSurviveDefaults) {
  const absl::StatusOr<v1::JobConfig> config = ParseJobConfigJson(R"({
    "model": {"d_model": 128},
    "compression": {"kind": "COMPRESSION_KIND_NONE", "init_std": 0.01},
    "optimizer": {"muon": {"nesterov": false, "weight_decay": 0.1}, "grad_clip": 0},
    "training": {"eval_every": 0, "seed": 0}
  })");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model().mlp_hidden(), 384u) << "mlp_hidden defaults to 3 * d_model";
  EXPECT_EQ(config->compression().ratio(), 1u) << "ratio defaults to 1 for NONE";
  EXPECT_FLOAT_EQ(config->compression().init_std(), 0.01f);
  EXPECT_FALSE(config->optimizer().muon().nesterov());
  EXPECT_FLOAT_EQ(config->optimizer().muon().weight_decay(), 0.1f);
  EXPECT_EQ(config->optimizer().grad_clip(), 0.0f) << "explicit 0 disables clipping";
  EXPECT_EQ(config->training().eval_every(), 0u);
  EXPECT_EQ(config->training().seed(), 0u);
}

// proto3 cannot tell an explicit zero enum from an omitted one, so UNSPECIFIED in a file
// means "take the default" rather than an error.
TEST(JobConfigTest, ExplicitUnspecifiedEnumTakesTheDefault) {
  const absl::StatusOr<v1::JobConfig> config =
      ParseJobConfigJson(R"({"compression": {"kind": "COMPRESSION_KIND_UNSPECIFIED"}})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->compression().kind(), v1::COMPRESSION_KIND_RESBM);
}

TEST(JobConfigTest, RatioOneIsLegalForEveryKind) {
  for (const char* kind : {"COMPRESSION_KIND_NONE", "COMPRESSION_KIND_RESBM",
                           "COMPRESSION_KIND_BOTTLENECK", "COMPRESSION_KIND_TRUNCATE"}) {
    const absl::StatusOr<v1::JobConfig> config = ParseJobConfigJson(
        absl::StrCat(R"({"compression": {"kind": ")", kind, R"(", "ratio": 1}})"));
    EXPECT_TRUE(config.ok()) << kind << ": " << config.status();
  }
}

TEST(JobConfigTest, TokenShardsAcceptAnyVocab) {
  for (const char* vocab : {"2", "100", "50257"}) {
    const absl::StatusOr<v1::JobConfig> config = ParseJobConfigJson(absl::StrCat(
        R"({"model": {"vocab_size": )", vocab,
        R"(}, "data": {"token_shards": {"train_paths": ["t.bin"], "val_paths": ["v.bin"]}}})"));
    EXPECT_TRUE(config.ok()) << vocab << ": " << config.status();
  }
}

TEST(JobConfigTest, ExplicitLayersPerStageIsAccepted) {
  const absl::StatusOr<v1::JobConfig> config = ParseJobConfigJson(
      R"({"model": {"n_layers": 8}, "stages": {"num_stages": 4, "layers_per_stage": [3, 2, 2, 1]}})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->stages().layers_per_stage_size(), 4);
}

TEST(JobConfigTest, DefaultJsonFileEqualsDefaultJobConfig) {
  const absl::StatusOr<v1::JobConfig> config =
      LoadJobConfigFile(SourceDir() + "/configs/default.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(ProtoEquals(DefaultJobConfig(), *config));

  // The file spells every field out: parsing it without the defaults gives the same message.
  std::ifstream in(SourceDir() + "/configs/default.json");
  const std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  v1::JobConfig raw;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &raw).ok());
  EXPECT_TRUE(ProtoEquals(DefaultJobConfig(), raw));
}

TEST(JobConfigTest, DebugJsonFileIsATinyValidModel) {
  const absl::StatusOr<v1::JobConfig> config =
      LoadJobConfigFile(SourceDir() + "/configs/debug.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(ValidateJobConfig(*config).ok());
  EXPECT_EQ(config->model().d_model(), 64u);
  EXPECT_EQ(config->model().n_layers(), 4u);
  EXPECT_EQ(config->model().n_heads(), 2u);
  EXPECT_EQ(config->model().mlp_hidden(), 128u);
  EXPECT_EQ(config->model().seq_len(), 32u);
  EXPECT_EQ(config->stages().num_stages(), 2u);
  EXPECT_EQ(config->compression().kind(), v1::COMPRESSION_KIND_RESBM);
  EXPECT_EQ(config->compression().ratio(), 8u);
  EXPECT_EQ(config->compression().wire_dtype(), v1::WIRE_DTYPE_FP32);
  EXPECT_EQ(config->training().steps(), 30u);
  EXPECT_EQ(config->training().batch_size(), 8u);
  EXPECT_EQ(config->training().microbatches(), 2u);
  EXPECT_EQ(config->training().eval_every(), 10u);
  EXPECT_EQ(config->training().eval_batches(), 2u);
  EXPECT_EQ(config->training().seed(), 7u);
}

TEST(JobConfigTest, SnakeCaseAndLowerCamelCaseNamesAreBothAccepted) {
  const absl::StatusOr<v1::JobConfig> snake = ParseJobConfigJson(R"({
    "model": {"d_model": 128, "n_heads": 8, "mlp_hidden": 256, "seq_len": 64},
    "compression": {"wire_dtype": "WIRE_DTYPE_INT8", "ratio": 16},
    "optimizer": {"lr_schedule": {"warmup_steps": 10, "min_lr_ratio": 0.5}},
    "training": {"batch_size": 32, "eval_every": 5}
  })");
  const absl::StatusOr<v1::JobConfig> camel = ParseJobConfigJson(R"({
    "model": {"dModel": 128, "nHeads": 8, "mlpHidden": 256, "seqLen": 64},
    "compression": {"wireDtype": "WIRE_DTYPE_INT8", "ratio": 16},
    "optimizer": {"lrSchedule": {"warmupSteps": 10, "minLrRatio": 0.5}},
    "training": {"batchSize": 32, "evalEvery": 5}
  })");
  ASSERT_TRUE(snake.ok()) << snake.status();
  ASSERT_TRUE(camel.ok()) << camel.status();
  EXPECT_TRUE(ProtoEquals(*snake, *camel));
  EXPECT_EQ(camel->model().d_model(), 128u);
  EXPECT_EQ(camel->compression().wire_dtype(), v1::WIRE_DTYPE_INT8);
  EXPECT_EQ(camel->optimizer().lr_schedule().warmup_steps(), 10u);
  EXPECT_EQ(camel->training().batch_size(), 32u);
}

TEST(JobConfigTest, JsonEchoRoundTripsWithEveryFieldSpelledOut) {
  const v1::JobConfig debug = LoadJobConfigFile(SourceDir() + "/configs/debug.json").value();
  const std::string json = JobConfigToJson(debug);
  EXPECT_THAT(json, HasSubstr("\"d_model\": 64"));
  EXPECT_THAT(json, HasSubstr("\"warmup_steps\": 0"));
  EXPECT_THAT(json, HasSubstr("\"wire_dtype\": \"WIRE_DTYPE_FP32\""));
  EXPECT_THAT(json, HasSubstr("\"checkpoint_every\": 50"));
  const absl::StatusOr<v1::JobConfig> reparsed = ParseJobConfigJson(json);
  ASSERT_TRUE(reparsed.ok()) << reparsed.status();
  EXPECT_TRUE(ProtoEquals(debug, *reparsed));
}

// ---------------------------------------------------------------------------------------------
// Files.

TEST(LoadJobConfigFileTest, ReadsTextprotoAndPbtxt) {
  const std::string text = R"pb(
    name: "text-job"
    model { d_model: 128 n_heads: 4 }
    compression { kind: COMPRESSION_KIND_TRUNCATE ratio: 4 }
    stages {
      num_stages: 2
      layers_per_stage: [ 3, 1 ]
    }
  )pb";
  for (const char* name : {"job.textproto", "job.pbtxt"}) {
    const absl::StatusOr<v1::JobConfig> config = LoadJobConfigFile(WriteTempFile(name, text));
    ASSERT_TRUE(config.ok()) << name << ": " << config.status();
    EXPECT_EQ(config->name(), "text-job");
    EXPECT_EQ(config->model().d_model(), 128u);
    EXPECT_EQ(config->model().mlp_hidden(), 384u);
    EXPECT_EQ(config->compression().kind(), v1::COMPRESSION_KIND_TRUNCATE);
    EXPECT_EQ(config->compression().ratio(), 4u);
    EXPECT_EQ(config->stages().layers_per_stage_size(), 2);
    EXPECT_EQ(config->training().steps(), 300u) << "defaults apply to textproto too";
  }
}

TEST(LoadJobConfigFileTest, TextprotoUnknownFieldNamesTheFieldAndPath) {
  const std::string path = WriteTempFile("bad.textproto", "model { d_modle: 128 }\n");
  const absl::StatusOr<v1::JobConfig> config = LoadJobConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
  EXPECT_THAT(config.status().message(), HasSubstr("d_modle"));
  EXPECT_THAT(config.status().message(), HasSubstr("line 1"));
}

TEST(LoadJobConfigFileTest, TextprotoIsValidatedLikeJson) {
  const std::string path = WriteTempFile("ratio.pbtxt", "compression { ratio: 3 }\n");
  const absl::StatusOr<v1::JobConfig> config = LoadJobConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("compression.ratio: 3"));
}

TEST(LoadJobConfigFileTest, JsonFileErrorsArePrefixedWithThePath) {
  const std::string path = WriteTempFile("stages.json", R"({"stages": {"num_stages": 8}})");
  const absl::StatusOr<v1::JobConfig> config = LoadJobConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
  EXPECT_THAT(config.status().message(), HasSubstr("stages.num_stages: 8"));
}

TEST(LoadJobConfigFileTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = ::testing::TempDir() + "/no_such_job.json";
  const absl::StatusOr<v1::JobConfig> config = LoadJobConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
}

TEST(LoadJobConfigFileTest, DirectoryIsInvalidArgument) {
  const absl::StatusOr<v1::JobConfig> config = LoadJobConfigFile(::testing::TempDir());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Converters.

TEST(ConvertersTest, DefaultsMatchTheStructDefaultsExactly) {
  // Exact double equality on purpose: 0.02f must map to the double 0.02, not 0.0199999995.
  const v1::JobConfig config = DefaultJobConfig();
  const ModelOptions model = ToModelOptions(config);
  const ModelOptions want_model;
  EXPECT_EQ(model.vocab_size, want_model.vocab_size);
  EXPECT_EQ(model.d_model, want_model.d_model);
  EXPECT_EQ(model.n_layers, want_model.n_layers);
  EXPECT_EQ(model.n_heads, want_model.n_heads);
  EXPECT_EQ(model.mlp_hidden, want_model.mlp_hidden);
  EXPECT_EQ(model.seq_len, want_model.seq_len);
  EXPECT_EQ(model.rope_theta, want_model.rope_theta);
  EXPECT_EQ(model.norm_eps, want_model.norm_eps);
  EXPECT_EQ(model.init_std, want_model.init_std);

  const CompressionOptions compression = ToCompressionOptions(config);
  const CompressionOptions want_compression;
  EXPECT_EQ(compression.kind, want_compression.kind);
  EXPECT_EQ(compression.ratio, want_compression.ratio);
  EXPECT_EQ(compression.wire_dtype, want_compression.wire_dtype);
  EXPECT_EQ(compression.init_std, want_compression.init_std);

  const OptimizerOptions optimizer = ToOptimizerOptions(config);
  const OptimizerOptions want_optimizer;
  EXPECT_EQ(optimizer.use_muon, want_optimizer.use_muon);
  EXPECT_EQ(optimizer.muon.lr, want_optimizer.muon.lr);
  EXPECT_EQ(optimizer.muon.momentum, want_optimizer.muon.momentum);
  EXPECT_EQ(optimizer.muon.nesterov, want_optimizer.muon.nesterov);
  EXPECT_EQ(optimizer.muon.ns_steps, want_optimizer.muon.ns_steps);
  EXPECT_EQ(optimizer.muon.weight_decay, want_optimizer.muon.weight_decay);
  EXPECT_EQ(optimizer.adamw.lr, want_optimizer.adamw.lr);
  EXPECT_EQ(optimizer.adamw.beta1, want_optimizer.adamw.beta1);
  EXPECT_EQ(optimizer.adamw.beta2, want_optimizer.adamw.beta2);
  EXPECT_EQ(optimizer.adamw.eps, want_optimizer.adamw.eps);
  EXPECT_EQ(optimizer.adamw.weight_decay, want_optimizer.adamw.weight_decay);
  EXPECT_EQ(optimizer.schedule.warmup_steps, want_optimizer.schedule.warmup_steps);
  EXPECT_EQ(optimizer.schedule.decay, want_optimizer.schedule.decay);
  EXPECT_EQ(optimizer.schedule.min_lr_ratio, want_optimizer.schedule.min_lr_ratio);
  EXPECT_EQ(optimizer.schedule.total_steps, 300) << "total_steps = training.steps";
  EXPECT_EQ(optimizer.grad_clip, want_optimizer.grad_clip);
}

TEST(ConvertersTest, MapEveryField) {
  const absl::StatusOr<v1::JobConfig> config = ParseJobConfigJson(R"({
    "model": {"vocab_size": 512, "d_model": 96, "n_layers": 6, "n_heads": 3, "mlp_hidden": 200,
              "seq_len": 48, "rope_theta": 500000, "norm_eps": 1e-6, "init_std": 0.01},
    "compression": {"kind": "COMPRESSION_KIND_BOTTLENECK", "ratio": 12,
                    "wire_dtype": "WIRE_DTYPE_FP16", "init_std": 0.001},
    "optimizer": {"kind": "OPTIMIZER_KIND_ADAMW",
                  "muon": {"lr": 0.05, "momentum": 0.9, "nesterov": false, "ns_steps": 3,
                           "weight_decay": 0.01},
                  "adamw": {"lr": 0.001, "beta1": 0.8, "beta2": 0.99, "eps": 1e-10,
                            "weight_decay": 0.1},
                  "lr_schedule": {"warmup_steps": 20, "decay": "LR_DECAY_LINEAR",
                                  "min_lr_ratio": 0},
                  "grad_clip": 0.5},
    "training": {"steps": 123}
  })");
  ASSERT_TRUE(config.ok()) << config.status();

  const ModelOptions model = ToModelOptions(*config);
  EXPECT_EQ(model.vocab_size, 512);
  EXPECT_EQ(model.d_model, 96);
  EXPECT_EQ(model.n_layers, 6);
  EXPECT_EQ(model.n_heads, 3);
  EXPECT_EQ(model.mlp_hidden, 200);
  EXPECT_EQ(model.seq_len, 48);
  EXPECT_EQ(model.rope_theta, 500000.0);
  EXPECT_EQ(model.norm_eps, 1e-6);
  EXPECT_EQ(model.init_std, 0.01);

  const CompressionOptions compression = ToCompressionOptions(*config);
  EXPECT_EQ(compression.kind, CompressionKind::kBottleneck);
  EXPECT_EQ(compression.ratio, 12);
  EXPECT_EQ(compression.wire_dtype, WireDtype::kFp16);
  EXPECT_EQ(compression.init_std, 0.001);
  EXPECT_EQ(compression.WireWidth(model.d_model), 8);

  const OptimizerOptions optimizer = ToOptimizerOptions(*config);
  EXPECT_FALSE(optimizer.use_muon);
  EXPECT_EQ(optimizer.muon.lr, 0.05);
  EXPECT_EQ(optimizer.muon.momentum, 0.9);
  EXPECT_FALSE(optimizer.muon.nesterov);
  EXPECT_EQ(optimizer.muon.ns_steps, 3);
  EXPECT_EQ(optimizer.muon.weight_decay, 0.01);
  EXPECT_EQ(optimizer.adamw.lr, 0.001);
  EXPECT_EQ(optimizer.adamw.beta1, 0.8);
  EXPECT_EQ(optimizer.adamw.beta2, 0.99);
  EXPECT_EQ(optimizer.adamw.eps, 1e-10);
  EXPECT_EQ(optimizer.adamw.weight_decay, 0.1);
  EXPECT_EQ(optimizer.schedule.warmup_steps, 20);
  EXPECT_EQ(optimizer.schedule.decay, LrDecay::kLinear);
  EXPECT_EQ(optimizer.schedule.min_lr_ratio, 0.0);
  EXPECT_EQ(optimizer.schedule.total_steps, 123);
  EXPECT_EQ(optimizer.grad_clip, 0.5);
}

TEST(ConvertersTest, MapEveryEnumValue) {
  struct Case {
    v1::CompressionKind proto;
    CompressionKind plain;
  };
  for (const Case& c : {Case{v1::COMPRESSION_KIND_NONE, CompressionKind::kNone},
                        Case{v1::COMPRESSION_KIND_RESBM, CompressionKind::kResbm},
                        Case{v1::COMPRESSION_KIND_BOTTLENECK, CompressionKind::kBottleneck},
                        Case{v1::COMPRESSION_KIND_TRUNCATE, CompressionKind::kTruncate}}) {
    v1::JobConfig config;
    config.mutable_compression()->set_kind(c.proto);
    EXPECT_EQ(ToCompressionOptions(config).kind, c.plain) << v1::CompressionKind_Name(c.proto);
  }
  struct DtypeCase {
    v1::WireDtype proto;
    WireDtype plain;
  };
  for (const DtypeCase& c : {DtypeCase{v1::WIRE_DTYPE_FP32, WireDtype::kFp32},
                             DtypeCase{v1::WIRE_DTYPE_BF16, WireDtype::kBf16},
                             DtypeCase{v1::WIRE_DTYPE_FP16, WireDtype::kFp16},
                             DtypeCase{v1::WIRE_DTYPE_INT8, WireDtype::kInt8}}) {
    v1::JobConfig config;
    config.mutable_compression()->set_wire_dtype(c.proto);
    EXPECT_EQ(ToCompressionOptions(config).wire_dtype, c.plain) << v1::WireDtype_Name(c.proto);
  }
  struct DecayCase {
    v1::LrDecay proto;
    LrDecay plain;
  };
  for (const DecayCase& c : {DecayCase{v1::LR_DECAY_COSINE, LrDecay::kCosine},
                             DecayCase{v1::LR_DECAY_LINEAR, LrDecay::kLinear},
                             DecayCase{v1::LR_DECAY_CONSTANT, LrDecay::kConstant}}) {
    v1::JobConfig config;
    config.mutable_optimizer()->mutable_lr_schedule()->set_decay(c.proto);
    EXPECT_EQ(ToOptimizerOptions(config).schedule.decay, c.plain) << v1::LrDecay_Name(c.proto);
  }
  v1::JobConfig muon;
  muon.mutable_optimizer()->set_kind(v1::OPTIMIZER_KIND_MUON);
  EXPECT_TRUE(ToOptimizerOptions(muon).use_muon);
}

TEST(ConvertersTest, ApplyDefaultsToPartialConfigs) {
  v1::JobConfig config;
  config.mutable_model()->set_d_model(64);
  config.mutable_compression()->set_kind(v1::COMPRESSION_KIND_NONE);
  EXPECT_EQ(ToModelOptions(config).mlp_hidden, 192);
  EXPECT_EQ(ToCompressionOptions(config).ratio, 1);
  EXPECT_TRUE(ToOptimizerOptions(config).muon.nesterov);
}

}  // namespace
}  // namespace resbm

namespace resbm {
namespace {

TEST(JobOverridesTest, AppliesFlagsOnTopOfTheDefaultJob) {
  JobOverrides overrides;
  overrides.steps = 7;
  overrides.stages = 2;
  overrides.seed = 3;
  overrides.replicas = 2;
  auto config = LoadJobConfigWithOverrides("", overrides);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->training().steps(), 7u);
  EXPECT_EQ(config->stages().num_stages(), 2u);
  EXPECT_EQ(config->training().seed(), 3u);
  EXPECT_EQ(config->stages().replicas(), 2u);
  EXPECT_EQ(config->model().d_model(), DefaultJobConfig().model().d_model());
}

TEST(JobOverridesTest, RefusesBadOverridesNamingTheFlag) {
  JobOverrides overrides;
  overrides.steps = -1;
  EXPECT_NE(LoadJobConfigWithOverrides("", overrides)
                .status()
                .message()
                .find("--steps: -1; expected a positive integer"),
            std::string::npos);
  overrides = JobOverrides();
  overrides.stages = 9;  // The default model has 4 blocks.
  auto config = LoadJobConfigWithOverrides("", overrides);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("stages.num_stages: 9"), std::string::npos)
      << config.status();
  overrides = JobOverrides();
  overrides.replicas = 0;
  EXPECT_NE(LoadJobConfigWithOverrides("", overrides)
                .status()
                .message()
                .find("--replicas: 0; expected a positive integer"),
            std::string::npos);
  overrides = JobOverrides();
  EXPECT_EQ(LoadJobConfigWithOverrides("/nonexistent.json", overrides).status().code(),
            absl::StatusCode::kNotFound);
}

// Found by job_config_fuzzer: protobuf refuses to serialize a string field that is not UTF-8,
// so such a config could be accepted but never stored or sent.
TEST(ValidateJobConfigTest, RefusesStringsThatAreNotUtf8) {
  v1::JobConfig config = DefaultJobConfig();
  config.set_name("t\xff\xffx");
  absl::Status status = ValidateJobConfig(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("name: not valid UTF-8 (byte 0xff at offset 1)"),
            std::string::npos)
      << status;
  config = DefaultJobConfig();
  config.mutable_data()->mutable_byte_corpus()->set_paths(0, "/data/\xc3\x28");
  status = ValidateJobConfig(config);
  EXPECT_NE(status.message().find("data.byte_corpus.paths[0]: not valid UTF-8 (byte 0xc3 at "
                                  "offset 6)"),
            std::string::npos)
      << status;
  config.mutable_data()->mutable_byte_corpus()->set_paths(0, "/data/caf\xc3\xa9 \xe2\x82\xac");
  config.set_name("\xf0\x9f\x9a\x80 ok");
  EXPECT_TRUE(ValidateJobConfig(config).ok());
}

}  // namespace
}  // namespace resbm
