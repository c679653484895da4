// The trained model as an output, with real processes: a job ends with a final checkpoint
// that outlives its workers; ExportModel streams it as safetensors + config.json (what
// resbm-generate then samples from); a fine-tune submitted with init.from_job starts from
// exactly those weights (its first validation loss is the parent's last); bad sources are
// refused at submission naming the tensor and both shapes; jobs without a final
// checkpoint export their last complete one, or are refused.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/config/job_config.h"
#include "common/modelio/safetensors_file.h"
#include "common/runtime/child_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/process_cluster.h"
#include "tests/testing/wait_for.h"

namespace resbm {
namespace {

using ::resbm::testing::BinaryPath;
using ::resbm::testing::ProcessCluster;
using ::resbm::testing::WaitFor;
using ::testing::HasSubstr;

v1::JobConfig TinyJob(int steps) {
  auto config = ParseJobConfigJson(R"({"model": {"d_model": 64, "n_layers": 4, "n_heads": 2,
      "mlp_hidden": 128, "seq_len": 32},
    "stages": {"num_stages": 2},
    "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32",
                    "token_channel": "TOKEN_CHANNEL_LEARNED"},
    "training": {"steps": 20, "batch_size": 8, "microbatches": 2, "eval_every": 10,
                 "eval_batches": 2, "seed": 3, "checkpoint_every": 10}})");
  EXPECT_TRUE(config.ok()) << config.status();
  config->mutable_training()->set_steps(steps);
  return *config;
}

class ModelOutputTest : public ::testing::Test {
 protected:
  ModelOutputTest()
      : cluster_(::testing::TempDir() + "/resbm_model_output_" + std::to_string(::getpid()) + "_" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  void SetUp() override {
    ASSERT_TRUE(cluster_.StartCoordinator().ok()) << cluster_.Logs();
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(cluster_.StartWorker().ok());
  }

  v1::Job RunToEnd(const v1::JobConfig& config) {
    auto submitted = cluster_.client().Submit(config);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    if (!submitted.ok()) return v1::Job();
    auto ended = cluster_.client().WaitForEnd(submitted->job_id(), absl::Minutes(3));
    EXPECT_TRUE(ended.ok()) << ended.status() << cluster_.Logs();
    return ended.value_or(v1::Job());
  }

  ProcessCluster cluster_;
};

TEST_F(ModelOutputTest, AJobsModelIsKeptExportedSampledAndFineTuned) {
  const v1::Job parent = RunToEnd(TinyJob(20));
  ASSERT_EQ(parent.state(), v1::JOB_STATE_SUCCEEDED) << parent.message() << cluster_.Logs();
  ASSERT_TRUE(parent.has_final_checkpoint_step());
  EXPECT_EQ(parent.final_checkpoint_step(), 20u);
  EXPECT_TRUE(std::filesystem::exists(parent.final_checkpoint_manifest()));
  EXPECT_EQ(parent.progress().checkpoint_step(), 20u);

  // Export through the job API; a second export reuses the first.
  const std::string out = cluster_.dir() + "/export";
  auto info = cluster_.client().ExportModel(parent.job_id(), out);
  ASSERT_TRUE(info.ok()) << info.status() << cluster_.Logs();
  EXPECT_EQ(info->step(), 20u);
  // Embedding, 4 blocks, E and D, stage 1's token table, final norm and head.
  EXPECT_EQ(info->tensors(), 1u + 4 * 9 + 2 + 1 + 2);
  ASSERT_EQ(info->files_size(), 2);
  auto file = SafetensorsFile::Open(out + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(static_cast<uint64_t>(std::filesystem::file_size(out + "/model.safetensors")),
            info->files(0).size());
  EXPECT_EQ(file->metadata().at("resbm.job_id"), parent.job_id());
  auto again = cluster_.client().ExportModel(parent.job_id(), cluster_.dir() + "/export2");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(SafetensorsFile::Open(cluster_.dir() + "/export2/model.safetensors")->ReadAll()->size(),
            file->entries().size());

  // The export samples in another process.
  auto generate = ChildProcess::Start({BinaryPath("resbm-generate"), "--model=" + out,
                                       "--prompt=The ", "--max-tokens=20", "--threads=1"},
                                      cluster_.dir() + "/generate.log");
  ASSERT_TRUE(generate.ok());
  auto generated = (*generate)->Wait(absl::Seconds(60));
  ASSERT_TRUE(generated.has_value());
  EXPECT_EQ(DescribeWaitStatus(*generated), "exit 0") << (*generate)->Log();
  EXPECT_THAT((*generate)->Log(), HasSubstr("tokens/s"));

  // A fine-tune from the job: the weights are the parent's final ones exactly.
  v1::JobConfig child_config = TinyJob(10);
  child_config.mutable_init()->set_from_job(parent.job_id());
  auto child_submitted = cluster_.client().Submit(child_config);
  ASSERT_TRUE(child_submitted.ok()) << child_submitted.status();
  EXPECT_EQ(child_submitted->config().init().from_checkpoint(), parent.final_checkpoint_manifest());
  auto child = cluster_.client().WaitForEnd(child_submitted->job_id(), absl::Minutes(3));
  ASSERT_TRUE(child.ok());
  ASSERT_EQ(child->state(), v1::JOB_STATE_SUCCEEDED) << child->message() << cluster_.Logs();
  ASSERT_TRUE(child->progress().has_initial_val_loss());
  const double parent_val = parent.progress().val_loss();
  EXPECT_NEAR(child->progress().initial_val_loss(), parent_val, 1e-6 * parent_val);
  EXPECT_EQ(child->final_checkpoint_step(), 10u);

  // And with its optimizer state carried over.
  child_config.mutable_init()->set_carry_optimizer_state(true);
  const v1::Job carried = RunToEnd(child_config);
  EXPECT_EQ(carried.state(), v1::JOB_STATE_SUCCEEDED) << carried.message();
  EXPECT_NEAR(carried.progress().initial_val_loss(), parent_val, 1e-6 * parent_val);
}

TEST_F(ModelOutputTest, BadInitSourcesAreRefusedAtSubmission) {
  const v1::Job parent = RunToEnd(TinyJob(2));
  ASSERT_EQ(parent.state(), v1::JOB_STATE_SUCCEEDED) << parent.message();
  const std::string out = cluster_.dir() + "/export";
  ASSERT_TRUE(cluster_.client().ExportModel(parent.job_id(), out).ok());
  auto refused = [&](std::function<void(v1::JobConfig*)> mutate) {
    v1::JobConfig config = TinyJob(5);
    mutate(&config);
    auto job = cluster_.client().Submit(config);
    EXPECT_FALSE(job.ok());
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << job.status();
    return std::string(job.status().message());
  };
  EXPECT_THAT(refused([](v1::JobConfig* c) { c->mutable_init()->set_from_job("job-99"); }),
              HasSubstr("init.from_job: 'job-99' is not a job of this coordinator"));
  EXPECT_THAT(refused([&](v1::JobConfig* c) {
                c->mutable_model()->set_d_model(128);
                c->mutable_init()->set_from_model(out);
              }),
              HasSubstr("init.from_model: tensor model.embed_tokens.weight has shape [256,64] in "
                        "exported model"));
  EXPECT_THAT(refused([&](v1::JobConfig* c) {
                c->mutable_stages()->set_num_stages(4);
                c->mutable_init()->set_from_job(parent.job_id());
              }),
              HasSubstr("layers per stage [2,2] and this job splits them [1,1,1,1]"));
  // A truncated and a lying file.
  const std::string bytes = [&] {
    std::ifstream in(out + "/model.safetensors", std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  std::ofstream(cluster_.dir() + "/cut.safetensors", std::ios::binary)
      << bytes.substr(0, bytes.size() / 2);
  EXPECT_THAT(refused([&](v1::JobConfig* c) {
                c->mutable_init()->set_from_model(cluster_.dir() + "/cut.safetensors");
              }),
              HasSubstr("cut.safetensors"));
  std::string lying = bytes;
  lying.replace(lying.find("\"shape\":[256,64]"), 16, "\"shape\":[256,65]");
  std::ofstream(cluster_.dir() + "/lying.safetensors", std::ios::binary) << lying;
  EXPECT_THAT(refused([&](v1::JobConfig* c) {
                c->mutable_init()->set_from_model(cluster_.dir() + "/lying.safetensors");
              }),
              HasSubstr("data_offsets"));
  auto jobs = cluster_.client().List();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 1u) << "a refused job was stored";
}

TEST_F(ModelOutputTest, JobsWithoutAFinalCheckpointExportTheirLastOneOrAreRefused) {
  v1::JobConfig long_job = TinyJob(100000);
  long_job.mutable_training()->set_checkpoint_every(5);
  auto running = cluster_.client().Submit(long_job);
  ASSERT_TRUE(running.ok());
  auto queued = cluster_.client().Submit(TinyJob(5));
  ASSERT_TRUE(queued.ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto job = cluster_.client().Get(running->job_id());
        return job.ok() && job->progress().checkpoint_step() >= 5;
      },
      absl::Minutes(2)))
      << cluster_.Logs();
  auto busy = cluster_.client().ExportModel(running->job_id(), cluster_.dir() + "/a");
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition) << busy.status();
  EXPECT_THAT(std::string(busy.status().message()), HasSubstr("JOB_STATE_RUNNING"));
  v1::JobConfig from_running = TinyJob(5);
  from_running.mutable_init()->set_from_job(running->job_id());
  EXPECT_EQ(cluster_.client().Submit(from_running).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(cluster_.client().Cancel(queued->job_id()).ok());
  auto never_ran = cluster_.client().ExportModel(queued->job_id(), cluster_.dir() + "/b");
  EXPECT_EQ(never_ran.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(never_ran.status().message()),
              HasSubstr("before its first complete checkpoint"));
  ASSERT_TRUE(cluster_.client().Cancel(running->job_id()).ok());
  auto cancelled = cluster_.client().WaitForEnd(running->job_id(), absl::Minutes(1));
  ASSERT_TRUE(cancelled.ok());
  ASSERT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  auto last = cluster_.client().ExportModel(running->job_id(), cluster_.dir() + "/c");
  ASSERT_TRUE(last.ok()) << last.status() << cluster_.Logs();
  EXPECT_EQ(last->step(), cancelled->progress().checkpoint_step());
  EXPECT_GE(last->step(), 5u);
  EXPECT_EQ(cluster_.client().ExportModel("job-77", cluster_.dir() + "/d").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace resbm
