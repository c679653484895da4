// The spine: a job run on stage workers over real gRPC streams (loopback, port 0) produces,
// step by step, the same losses and the same parameters as the single-process LocalPipeline
// with the same seed and config, for GPipe and 1F1B, for `none` and `resbm`, on 2 and 4
// stages (fp32 wire), with every token channel and with normed, two-layer boundary halves. Bad
// frames are refused and the worker keeps serving.
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/data/batch_sampler.h"
#include "common/data/token_dataset.h"
#include "common/model/checkpoint_file.h"
#include "common/model/stage_plan.h"
#include "common/status/failure_cause.h"
#include "common/status/status_macros.h"
#include "common/train/local_pipeline.h"
#include "common/wire/frame_codec.h"
#include "common/wire/wire_codec.h"
#include "gtest/gtest.h"
#include "services/coordinator/pipeline_driver.h"
#include "services/stage_worker/stage_worker.h"
#include "tests/testing/random_tokens.h"

namespace resbm {
namespace {

v1::JobConfig TinyJob(int stages, v1::CompressionKind kind, v1::PipelineSchedule schedule,
                      v1::TokenChannel token_channel = v1::TOKEN_CHANNEL_NONE,
                      bool mlp_halves = false) {
  auto config = ParseJobConfigJson(R"({
    "model": {"vocab_size": 64, "d_model": 32, "n_layers": 4, "n_heads": 2, "mlp_hidden": 64,
              "seq_len": 16},
    "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32", "init_std": 0.02},
    "training": {"steps": 5, "batch_size": 8, "microbatches": 4, "seed": 5},
    "data": {"token_shards": {"train_paths": ["unused.bin"], "val_paths": ["unused.bin"]}}
  })");
  EXPECT_TRUE(config.ok()) << config.status();
  config->mutable_stages()->set_num_stages(stages);
  SetCompression(kind, config->compression().ratio(), &*config);
  config->mutable_training()->set_schedule(schedule);
  config->mutable_compression()->set_token_channel(token_channel);
  config->mutable_compression()->set_token_channel_rank(
      token_channel == v1::TOKEN_CHANNEL_FACTORIZED ? 4 : 0);
  if (kind != v1::COMPRESSION_KIND_NONE) {
    config->mutable_compression()->set_encoder_norm(mlp_halves);
    config->mutable_compression()->set_halves_hidden(mlp_halves ? 16 : 0);
  }
  EXPECT_TRUE(ValidateJobConfig(*config).ok()) << ValidateJobConfig(*config);
  return *config;
}

// Random tokens below the vocabulary: the equivalence does not need real text.
using ::resbm::testing::RandomTokens;

struct Cluster {
  std::vector<std::unique_ptr<StageWorker>> workers;
  std::vector<std::string> addresses;
};

// Where the in-process workers keep checkpoints (the same for all, as a shared volume).
std::string CheckpointDir() {
  return ::testing::TempDir() + "/resbm_eq_" + std::to_string(::getpid());
}

Cluster StartWorkers(int count) {
  Cluster cluster;
  for (int i = 0; i < count; ++i) {
    StageWorkerOptions options;
    options.session.checkpoint_dir = CheckpointDir();
    auto worker = StageWorker::Start(options);
    EXPECT_TRUE(worker.ok()) << worker.status();
    cluster.addresses.push_back((*worker)->address());
    cluster.workers.push_back(std::move(*worker));
  }
  return cluster;
}

// The single-process pipeline of `config`: the reference every distributed run must equal.
absl::StatusOr<std::unique_ptr<LocalPipeline>> LocalPipelineOf(const v1::JobConfig& config) {
  LocalPipelineOptions options;
  options.model = ToModelOptions(config);
  options.compression = ToCompressionOptions(config);
  options.optimizer = ToOptimizerOptions(config);
  options.seed = config.training().seed();
  options.plan = *PlanStages(config.model().n_layers(), config.stages().num_stages(), {});
  return LocalPipeline::Create(options);
}

// Step `step`'s batch as the sampler draws it: ids for the driver, (B, T) tensors for the
// single-process pipeline.
struct SampledBatch {
  std::vector<int64_t> x, y;
  at::Tensor inputs, targets;
};

absl::StatusOr<SampledBatch> SampleBatch(BatchSampler& sampler, int64_t step, int64_t batch,
                                         int64_t seq) {
  SampledBatch sampled;
  RESBM_RETURN_IF_ERROR(sampler.Sample(step, 0, batch, &sampled.x, &sampled.y));
  sampled.inputs = torch::from_blob(sampled.x.data(), {batch, seq}, torch::kInt64).clone();
  sampled.targets = torch::from_blob(sampled.y.data(), {batch, seq}, torch::kInt64).clone();
  return sampled;
}

double RelativeDifference(double a, double b) {
  return std::abs(a - b) / std::max(1e-12, std::abs(b));
}

// A replicas job on in-process workers beside the single-process pipeline it must equal:
// the same config, tokens and sampler for both.
struct ReplicaRig {
  explicit ReplicaRig(v1::JobConfig job)
      : config(std::move(job)),
        tokens(TokenStream::InMemory(RandomTokens(4096, config.model().vocab_size(), 3))),
        sampler(&tokens, config.model().seq_len(), config.training().seed()),
        cluster(StartWorkers(config.stages().num_stages() * config.stages().replicas())) {}

  // The reference and the assigned driver of job `job_id`.
  absl::Status Start(const std::string& job_id) {
    torch::set_num_threads(1);
    RESBM_ASSIGN_OR_RETURN(local, LocalPipelineOf(config));
    RESBM_ASSIGN_OR_RETURN(driver, PipelineDriver::Create(job_id, config, cluster.addresses));
    return driver->Assign().status();
  }
  absl::Status Sample(int64_t step, std::vector<int64_t>* x, std::vector<int64_t>* y) {
    return sampler.Sample(step, 0, config.training().batch_size(), x, y);
  }
  // The single-process step on the same batch, against the distributed one's stats.
  void ExpectSameStep(int64_t step, std::vector<int64_t>& x, std::vector<int64_t>& y,
                      const StepStats& distributed) {
    const int64_t batch = config.training().batch_size(), seq = config.model().seq_len();
    auto reference =
        local->TrainStep(step, torch::from_blob(x.data(), {batch, seq}, torch::kInt64).clone(),
                         torch::from_blob(y.data(), {batch, seq}, torch::kInt64).clone(),
                         config.training().microbatches());
    ASSERT_TRUE(reference.ok()) << reference.status();
    EXPECT_LT(RelativeDifference(distributed.loss, reference->loss), 1e-5) << step;
    EXPECT_LT(RelativeDifference(distributed.grad_norm, reference->grad_norm), 1e-5) << step;
  }

  v1::JobConfig config;
  TokenStream tokens;
  BatchSampler sampler;
  Cluster cluster;
  std::unique_ptr<LocalPipeline> local;
  std::unique_ptr<PipelineDriver> driver;
};

struct Case {
  int stages;
  v1::CompressionKind kind;
  v1::PipelineSchedule schedule;
  v1::TokenChannel token_channel = v1::TOKEN_CHANNEL_NONE;
  bool mlp_halves = false;
  int replicas = 1;  // Pipelines: R x P workers, gradients all-reduced between replicas.
};

class PipelineEquivalenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(PipelineEquivalenceTest, DistributedStepsMatchTheSingleProcessPipeline) {
  torch::set_num_threads(1);
  const Case c = GetParam();
  v1::JobConfig config = TinyJob(c.stages, c.kind, c.schedule, c.token_channel, c.mlp_halves);
  config.mutable_stages()->set_replicas(c.replicas);
  ASSERT_TRUE(ValidateJobConfig(config).ok()) << ValidateJobConfig(config);
  const TokenStream tokens =
      TokenStream::InMemory(RandomTokens(4096, config.model().vocab_size(), 3));
  BatchSampler sampler(&tokens, config.model().seq_len(), config.training().seed());

  auto local = LocalPipelineOf(config);
  ASSERT_TRUE(local.ok()) << local.status();

  Cluster cluster = StartWorkers(c.stages * c.replicas);
  auto driver = PipelineDriver::Create("job-eq", config, cluster.addresses);
  ASSERT_TRUE(driver.ok()) << driver.status();
  auto parameters = (*driver)->Assign();
  ASSERT_TRUE(parameters.ok()) << parameters.status();

  const int64_t batch = config.training().batch_size(), seq = config.model().seq_len();
  std::vector<uint64_t> token_id_bytes(c.stages, 0);
  for (int64_t step = 0; step < 5; ++step) {
    auto sampled = SampleBatch(sampler, step, batch, seq);
    ASSERT_TRUE(sampled.ok()) << sampled.status();
    auto distributed = (*driver)->TrainStep(step, sampled->x, sampled->y);
    ASSERT_TRUE(distributed.ok()) << distributed.status();
    auto reference = (*local)->TrainStep(step, sampled->inputs, sampled->targets,
                                         config.training().microbatches());
    ASSERT_TRUE(reference.ok()) << reference.status();
    EXPECT_LT(RelativeDifference(distributed->stats.loss, reference->loss), 1e-5)
        << "step " << step << ": " << distributed->stats.loss << " vs " << reference->loss;
    EXPECT_LT(RelativeDifference(distributed->stats.grad_norm, reference->grad_norm), 1e-5)
        << "step " << step;
    // Wire bytes: k x tokens x 4 per boundary and direction (fp32), over the pipelines
    // (slot r * P + s is pipeline r's stage s).
    ASSERT_EQ(distributed->stages.size(), static_cast<size_t>(c.stages * c.replicas));
    const int64_t k = config.model().d_model() / config.compression().ratio();
    for (int s = 0; s < c.stages; ++s) {
      uint64_t sent = 0, received = 0;
      for (int r = 0; r < c.replicas; ++r) {
        const v1::RunStepResponse& slot = distributed->stages[r * c.stages + s];
        sent += slot.activation_bytes_sent();
        received += slot.gradient_bytes_received();
        token_id_bytes[s] += slot.token_id_bytes_received();
        // Each replica sends 2 (R - 1) / R of its stage's gradients on the ring.
        EXPECT_EQ(slot.all_reduce_bytes_sent() > 0, c.replicas > 1) << "slot " << r << "/" << s;
      }
      if (s + 1 < c.stages) {
        EXPECT_EQ(sent, uint64_t(batch * seq * k * 4));
        EXPECT_EQ(received, uint64_t(batch * seq * k * 4));
      }
    }
  }
  // The ids the token channels were sent, counted apart: what the one-process pipeline
  // counts for the same batches (the varint bytes of the requests' `inputs`).
  EXPECT_EQ(token_id_bytes[0], 0u);
  for (int s = 1; s < c.stages; ++s) {
    const int64_t counted = (*local)->traffic()[s - 1].token_id_bytes;
    EXPECT_EQ(token_id_bytes[s], static_cast<uint64_t>(counted)) << "stage " << s;
    if (c.token_channel == v1::TOKEN_CHANNEL_NONE) {
      EXPECT_EQ(counted, 0) << "stage " << s;
    } else {
      // At least one byte an id, five steps of batch x seq ids.
      EXPECT_GE(counted, 5 * batch * seq) << "stage " << s;
    }
  }
  // The updated parameters on the workers equal the single-process ones.
  // Addressed by (job, step, stage): each worker picks the file under its checkpoint directory.
  std::vector<std::string> paths;
  for (int s = 0; s < c.stages; ++s) {
    paths.push_back(absl::StrCat(CheckpointDir(), "/job-eq-step-5-stage-", s, ".ckpt"));
  }
  auto saved_bytes = (*driver)->SaveCheckpoints(5);
  ASSERT_TRUE(saved_bytes.ok()) << saved_bytes.status();
  EXPECT_GT(*saved_bytes, 0);
  for (int s = 0; s < c.stages; ++s) {
    auto saved = CheckpointFile::Read(paths[s]);
    ASSERT_TRUE(saved.ok()) << saved.status();
    EXPECT_EQ(saved->step, 5);
    std::map<std::string, torch::Tensor> remote;
    for (auto& [name, t] : saved->tensors) remote[name] = t;
    for (const auto& [name, p] : (*local)->stage(s).Parameters()) {
      ASSERT_TRUE(remote.count("param." + name)) << name;
      // Relative difference in the Frobenius norm: ||remote - local|| / ||local||. (Gradients
      // of microbatches accumulate in schedule order, so single elements differ by rounding.)
      const double diff =
          ((remote["param." + name] - p).norm() / p.norm().clamp_min(1e-12)).item<double>();
      EXPECT_LT(diff, 1e-5) << "stage " << s << " " << name;
    }
    // Every other replica of the stage holds exactly replica 0's state: it writes its own
    // checkpoint (under another step number, so as not to replace replica 0's file).
    for (int r = 1; r < c.replicas; ++r) {
      auto stub = v1::StageWorker::NewStub(grpc::CreateChannel(cluster.addresses[r * c.stages + s],
                                                               grpc::InsecureChannelCredentials()));
      grpc::ClientContext context;
      v1::SaveCheckpointRequest request;
      request.set_job_id("job-eq");
      request.set_step(100 + r);
      v1::SaveCheckpointResponse response;
      ASSERT_TRUE(stub->SaveCheckpoint(&context, request, &response).ok());
      const std::string path =
          absl::StrCat(CheckpointDir(), "/job-eq-step-", 100 + r, "-stage-", s, ".ckpt");
      auto replica = CheckpointFile::Read(path);
      ASSERT_TRUE(replica.ok()) << replica.status();
      ASSERT_EQ(replica->tensors.size(), saved->tensors.size());
      for (size_t i = 0; i < saved->tensors.size(); ++i) {
        EXPECT_EQ(replica->tensors[i].first, saved->tensors[i].first);
        EXPECT_TRUE(torch::equal(replica->tensors[i].second, saved->tensors[i].second))
            << "stage " << s << " replica " << r << " " << saved->tensors[i].first;
      }
      std::remove(path.c_str());
    }
    std::remove(paths[s].c_str());
  }
  // Evaluation through the workers equals the local evaluation of the updated model.
  std::vector<int64_t> x, y;
  ASSERT_TRUE(sampler.Sample(1000, 0, batch, &x, &y).ok());
  auto distributed_eval = (*driver)->Evaluate(0, x, y);
  ASSERT_TRUE(distributed_eval.ok()) << distributed_eval.status();
  auto local_eval = (*local)->Evaluate(torch::from_blob(x.data(), {batch, seq}, torch::kInt64),
                                       torch::from_blob(y.data(), {batch, seq}, torch::kInt64));
  ASSERT_TRUE(local_eval.ok());
  // Microbatched mean of means equals the batch mean for equal microbatches.
  EXPECT_LT(RelativeDifference(*distributed_eval, *local_eval), 1e-5);
}

// A replica whose state drifts from its peers' (here an extra update sent to it alone) is
// refused at the next step, which is not applied; rebuilt from a live replica of its stage,
// the redone step and the ones after equal the single-process run again.
TEST(PipelineReplicasTest, ARogueReplicaIsRefusedAndRebuiltFromItsPeer) {
  v1::JobConfig config = TinyJob(2, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_1F1B);
  config.mutable_stages()->set_replicas(2);
  ReplicaRig rig(config);
  ASSERT_TRUE(rig.Start("job-rogue").ok());
  PipelineDriver* driver = rig.driver.get();
  const Cluster& cluster = rig.cluster;
  for (int64_t step = 0; step < 5; ++step) {
    std::vector<int64_t> x, y;
    ASSERT_TRUE(rig.Sample(step, &x, &y).ok());
    auto distributed = driver->TrainStep(step, x, y);
    if (step == 2) {
      ASSERT_FALSE(distributed.ok());
      EXPECT_EQ(distributed.status().code(), absl::StatusCode::kDataLoss) << distributed.status();
      EXPECT_NE(distributed.status().message().find("stage 1 replica 1 ("), std::string::npos)
          << distributed.status();
      ASSERT_EQ(driver->refused(), std::vector<size_t>{3});
      ASSERT_TRUE(driver->Replace({{3, driver->endpoint(3)}}).ok());
      distributed = driver->TrainStep(step, x, y);  // Redone, on the same state.
    }
    ASSERT_TRUE(distributed.ok()) << "step " << step << ": " << distributed.status();
    rig.ExpectSameStep(step, x, y, distributed->stats);
    if (step == 1) {
      // An update that only stage 1 of pipeline 1 gets, at another clip factor.
      auto stub = v1::StageWorker::NewStub(
          grpc::CreateChannel(cluster.addresses[3], grpc::InsecureChannelCredentials()));
      grpc::ClientContext context;
      v1::ApplyStepRequest rogue;
      rogue.set_job_id("job-rogue");
      rogue.set_step(1);
      rogue.set_clip_factor(0.5);
      v1::ApplyStepResponse applied;
      ASSERT_TRUE(stub->ApplyStep(&context, rogue, &applied).ok());
    }
  }
}

// A pipeline out of the job (as when its worker is lost and none is idle) and back: while it
// is out, the others are dealt every microbatch and each stage's ring closes over its live
// replicas; back, its stages take their state from a live replica. Pipeline 0 goes out, so
// pipeline 1 reports the norm and writes a checkpoint meanwhile. Every step, and the final
// parameters, equal the single-process run's.
TEST(PipelineReplicasTest, APipelineOutOfTheJobAndBackKeepsTheSingleProcessSteps) {
  v1::JobConfig config = TinyJob(2, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_GPIPE);
  config.mutable_stages()->set_replicas(3);
  config.mutable_training()->set_microbatches(4);
  ReplicaRig rig(config);
  ASSERT_TRUE(rig.Start("job-out").ok());
  PipelineDriver* driver = rig.driver.get();
  EXPECT_FALSE(driver->CanDrop({0, 1, 2}));
  for (int64_t step = 0; step < 6; ++step) {
    if (step == 2) {
      ASSERT_TRUE(driver->DropPipelines({0}).ok());
      EXPECT_EQ(driver->dropped(), std::set<int64_t>{0});
    }
    if (step == 3) {  // Written by pipeline 1, the first in the job now.
      ASSERT_TRUE(driver->SaveCheckpoints(3).ok());
      for (int s = 0; s < 2; ++s) {
        const std::string path =
            absl::StrCat(CheckpointDir(), "/job-out-step-3-stage-", s, ".ckpt");
        EXPECT_TRUE(CheckpointFile::Read(path).ok()) << path;
        std::remove(path.c_str());
      }
    }
    if (step == 4) {
      // Pipeline 0's slots (0 and 1) back, on the same workers with fresh state.
      ASSERT_TRUE(driver->Replace({{0, driver->endpoint(0)}, {1, driver->endpoint(1)}}).ok());
      EXPECT_TRUE(driver->dropped().empty());
    }
    std::vector<int64_t> x, y;
    ASSERT_TRUE(rig.Sample(step, &x, &y).ok());
    auto distributed = driver->TrainStep(step, x, y);
    ASSERT_TRUE(distributed.ok()) << "step " << step << ": " << distributed.status();
    // No call reached the pipeline that is out.
    const bool out = step == 2 || step == 3;
    EXPECT_EQ(distributed->stages[0].microbatches_size() == 0, out) << step;
    EXPECT_EQ(distributed->stages[1].microbatches_size() == 0, out) << step;
    rig.ExpectSameStep(step, x, y, distributed->stats);
  }
  ASSERT_TRUE(driver->SaveCheckpoints(6).ok());
  for (int s = 0; s < 2; ++s) {
    const std::string path = absl::StrCat(CheckpointDir(), "/job-out-step-6-stage-", s, ".ckpt");
    auto saved = CheckpointFile::Read(path);
    ASSERT_TRUE(saved.ok()) << saved.status();
    std::map<std::string, torch::Tensor> remote;
    for (auto& [name, t] : saved->tensors) remote[name] = t;
    for (const auto& [name, p] : rig.local->stage(s).Parameters()) {
      const double diff =
          ((remote["param." + name] - p).norm() / p.norm().clamp_min(1e-12)).item<double>();
      EXPECT_LT(diff, 1e-5) << "stage " << s << " " << name;
    }
    std::remove(path.c_str());
  }
}

// Replicas and checkpoints: replica 0 of each stage writes the stage's file, every replica
// restores it (on a fresh assignment, as a recovery or a restarted coordinator does), and
// the steps after the restore are the steps after the save again.
TEST(PipelineReplicasTest, EveryReplicaRestoresItsStagesCheckpoint) {
  torch::set_num_threads(1);
  v1::JobConfig config = TinyJob(2, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_GPIPE);
  config.mutable_stages()->set_replicas(2);
  const TokenStream tokens =
      TokenStream::InMemory(RandomTokens(4096, config.model().vocab_size(), 3));
  BatchSampler sampler(&tokens, config.model().seq_len(), config.training().seed());
  Cluster cluster = StartWorkers(4);
  auto driver = PipelineDriver::Create("job-restore", config, cluster.addresses);
  ASSERT_TRUE(driver.ok()) << driver.status();
  ASSERT_TRUE((*driver)->Assign().ok());
  const int64_t batch = config.training().batch_size();
  auto train = [&](int64_t step) -> absl::StatusOr<StepStats> {
    std::vector<int64_t> x, y;
    RESBM_RETURN_IF_ERROR(sampler.Sample(step, 0, batch, &x, &y));
    RESBM_ASSIGN_OR_RETURN(PipelineStepResult result, (*driver)->TrainStep(step, x, y));
    return result.stats;
  };
  for (int64_t step = 0; step < 3; ++step) ASSERT_TRUE(train(step).ok()) << step;
  ASSERT_TRUE((*driver)->SaveCheckpoints(3).ok());
  std::vector<StepStats> first;
  for (int64_t step = 3; step < 6; ++step) {
    auto stats = train(step);
    ASSERT_TRUE(stats.ok()) << stats.status();
    first.push_back(*stats);
  }
  driver = PipelineDriver::Create("job-restore", config, cluster.addresses);
  ASSERT_TRUE(driver.ok()) << driver.status();
  ASSERT_TRUE((*driver)->Assign().ok());
  auto restored = (*driver)->LoadCheckpoints(3);
  ASSERT_TRUE(restored.ok()) << restored.status();
  for (int64_t step = 3; step < 6; ++step) {
    auto again = train(step);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->loss, first[step - 3].loss) << "step " << step;
    EXPECT_EQ(again->grad_norm, first[step - 3].grad_norm) << "step " << step;
  }
  for (int s = 0; s < 2; ++s) {
    std::remove(absl::StrCat(CheckpointDir(), "/job-restore-step-3-stage-", s, ".ckpt").c_str());
  }
}

// DiLoCo: two pipelines that each train on their half of the step (their own mean, their own
// clip) and synchronise every 2 steps equal two single-process pipelines on those halves whose
// stages exchange their encoded changes by hand, loss and gradient norm at every step.
TEST(PipelineReplicasTest, OuterOptimizerReplicasEqualSingleProcessPipelinesSynchronisedByHand) {
  torch::set_num_threads(1);
  for (const v1::WireDtype dtype : {v1::WIRE_DTYPE_BF16, v1::WIRE_DTYPE_INT8}) {
    SCOPED_TRACE(v1::WireDtype_Name(dtype));
    v1::JobConfig config = TinyJob(2, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_1F1B);
    constexpr int64_t kPeriod = 2, kSteps = 6;
    config.mutable_stages()->set_replicas(2);
    config.mutable_training()->set_steps(kSteps);
    config.mutable_training()->set_checkpoint_every(kSteps);
    config.mutable_optimizer()->set_grad_clip(0.5f);  // Clips: each pipeline by its own norm.
    config.mutable_optimizer()->mutable_outer()->set_steps(kPeriod);
    config.mutable_optimizer()->mutable_outer()->set_dtype(dtype);
    ASSERT_TRUE(ValidateJobConfig(config).ok()) << ValidateJobConfig(config);
    const TokenStream tokens =
        TokenStream::InMemory(RandomTokens(4096, config.model().vocab_size(), 3));
    BatchSampler sampler(&tokens, config.model().seq_len(), config.training().seed());
    // Replica r's pipeline takes microbatches 2r and 2r + 1: rows [4r, 4r + 4) of the batch.
    v1::JobConfig half = config;
    half.mutable_training()->set_batch_size(4);
    half.mutable_training()->set_microbatches(2);
    std::vector<std::unique_ptr<LocalPipeline>> locals;
    for (int r = 0; r < 2; ++r) {
      auto local = LocalPipelineOf(half);
      ASSERT_TRUE(local.ok()) << local.status();
      locals.push_back(std::move(*local));
    }
    Cluster cluster = StartWorkers(4);
    auto driver = PipelineDriver::Create("job-outer", config, cluster.addresses);
    ASSERT_TRUE(driver.ok()) << driver.status();
    ASSERT_TRUE((*driver)->Assign().ok());
    const int64_t batch = config.training().batch_size(), seq = config.model().seq_len();
    for (int64_t step = 0; step < kSteps; ++step) {
      auto sampled = SampleBatch(sampler, step, batch, seq);
      ASSERT_TRUE(sampled.ok()) << sampled.status();
      auto distributed = (*driver)->TrainStep(step, sampled->x, sampled->y);
      ASSERT_TRUE(distributed.ok()) << distributed.status();
      const at::Tensor& inputs = sampled->inputs;
      const at::Tensor& targets = sampled->targets;
      double loss = 0.0, squared = 0.0;
      for (int r = 0; r < 2; ++r) {
        auto stats =
            locals[r]->TrainStep(step, inputs.narrow(0, 4 * r, 4), targets.narrow(0, 4 * r, 4), 2);
        ASSERT_TRUE(stats.ok()) << stats.status();
        loss += stats->loss / 2;
        squared += stats->grad_norm * stats->grad_norm / 2;
      }
      EXPECT_LT(RelativeDifference(distributed->stats.loss, loss), 1e-5) << "step " << step;
      EXPECT_LT(RelativeDifference(distributed->stats.grad_norm, std::sqrt(squared)), 1e-5)
          << "step " << step;
      // The synchronisation rides on the step after the period's last: only it has bytes.
      // Each replica sends its encoded change once (R - 1 = 1 hop of the all-gather).
      const bool synced = step > 0 && step % kPeriod == 0;
      for (size_t slot = 0; slot < distributed->stages.size(); ++slot) {
        const uint64_t encoded = locals[0]->stage(slot % 2).EncodeOuterDelta()->size();
        EXPECT_EQ(distributed->stages[slot].all_reduce_bytes_sent(), synced ? encoded : 0)
            << "step " << step << " slot " << slot;
      }
      if ((step + 1) % kPeriod != 0) continue;
      for (int s = 0; s < 2; ++s) {
        std::vector<std::string> deltas;
        for (int r = 0; r < 2; ++r) {
          auto delta = locals[r]->stage(s).EncodeOuterDelta();
          ASSERT_TRUE(delta.ok()) << delta.status();
          deltas.push_back(*delta);
        }
        for (int r = 0; r < 2; ++r) ASSERT_TRUE(locals[r]->stage(s).OuterStep(deltas).ok());
      }
    }
    for (int s = 0; s < 2; ++s) {
      EXPECT_EQ(*locals[0]->stage(s).ParameterChecksum(), *locals[1]->stage(s).ParameterChecksum());
    }
  }
}

// A worker that dies mid-job fails the step promptly with a status naming a stage: nothing
// waits forever for frames that will not come. (Recovery from it is the job layer's work.)
TEST(PipelineFailureTest, ALostWorkerFailsTheStepInsteadOfHanging) {
  torch::set_num_threads(1);
  const v1::JobConfig config = TinyJob(4, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_1F1B);
  const TokenStream tokens =
      TokenStream::InMemory(RandomTokens(4096, config.model().vocab_size(), 3));
  BatchSampler sampler(&tokens, config.model().seq_len(), config.training().seed());
  Cluster cluster = StartWorkers(4);
  auto driver = PipelineDriver::Create("job-fail", config, cluster.addresses);
  ASSERT_TRUE(driver.ok());
  ASSERT_TRUE((*driver)->Assign().ok());
  (*driver)->set_step_timeout(absl::Seconds(20));
  std::vector<int64_t> x, y;
  ASSERT_TRUE(sampler.Sample(0, 0, config.training().batch_size(), &x, &y).ok());
  ASSERT_TRUE((*driver)->TrainStep(0, x, y).ok());

  cluster.workers[2]->Shutdown(absl::Now());
  ASSERT_TRUE(sampler.Sample(1, 0, config.training().batch_size(), &x, &y).ok());
  const absl::Time start = absl::Now();
  auto step = (*driver)->TrainStep(1, x, y);
  ASSERT_FALSE(step.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(15)) << step.status();
  EXPECT_NE(step.status().message().find("stage "), std::string::npos) << step.status();
  EXPECT_TRUE(step.status().code() == absl::StatusCode::kUnavailable ||
              step.status().code() == absl::StatusCode::kCancelled)
      << step.status();
}

// A worker whose heartbeat lapsed (a link cut without a reset) fails the step at once with a
// transient cause, instead of after the link's keepalive or the step deadline.
TEST(PipelineFailureTest, AWorkerWhoseHeartbeatLapsedFailsTheStepAtOnce) {
  torch::set_num_threads(1);
  const v1::JobConfig config = TinyJob(2, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_GPIPE);
  const TokenStream tokens =
      TokenStream::InMemory(RandomTokens(4096, config.model().vocab_size(), 3));
  BatchSampler sampler(&tokens, config.model().seq_len(), config.training().seed());
  Cluster cluster = StartWorkers(2);
  auto driver = PipelineDriver::Create("job-lapse", config, cluster.addresses);
  ASSERT_TRUE(driver.ok());
  ASSERT_TRUE((*driver)->Assign().ok());
  const std::string lapsed = cluster.addresses[1];
  (*driver)->set_liveness([lapsed](const std::string& address) {
    return address == lapsed ? absl::Now() - absl::Seconds(1) : absl::InfiniteFuture();
  });
  std::vector<int64_t> x, y;
  ASSERT_TRUE(sampler.Sample(0, 0, config.training().batch_size(), &x, &y).ok());
  auto step = (*driver)->TrainStep(0, x, y);
  ASSERT_FALSE(step.ok());
  EXPECT_EQ(step.status().code(), absl::StatusCode::kUnavailable) << step.status();
  EXPECT_EQ(CauseOf(step.status()), FailureCause::kWorkerLost) << step.status();
  EXPECT_NE(step.status().message().find("stage 1 (" + lapsed + "): its worker's heartbeat lapsed"),
            std::string::npos)
      << step.status();
}

INSTANTIATE_TEST_SUITE_P(
    AllSchedules, PipelineEquivalenceTest,
    ::testing::Values(
        Case{2, v1::COMPRESSION_KIND_NONE, v1::PIPELINE_SCHEDULE_GPIPE},
        Case{2, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_1F1B},
        Case{4, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_GPIPE},
        Case{4, v1::COMPRESSION_KIND_NONE, v1::PIPELINE_SCHEDULE_1F1B},
        Case{4, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_1F1B},
        Case{4, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_1F1B, v1::TOKEN_CHANNEL_LEARNED},
        Case{3, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_GPIPE, v1::TOKEN_CHANNEL_FIXED},
        Case{2, v1::COMPRESSION_KIND_BOTTLENECK, v1::PIPELINE_SCHEDULE_1F1B,
             v1::TOKEN_CHANNEL_FACTORIZED, /*mlp_halves=*/true},
        // R pipelines of P stages: the step's microbatches dealt to them (4 to 3: 2, 1, 1).
        Case{2, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_GPIPE, v1::TOKEN_CHANNEL_NONE,
             false, /*replicas=*/2},
        Case{3, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_1F1B, v1::TOKEN_CHANNEL_LEARNED,
             false, /*replicas=*/2},
        Case{2, v1::COMPRESSION_KIND_NONE, v1::PIPELINE_SCHEDULE_1F1B, v1::TOKEN_CHANNEL_NONE,
             false, /*replicas=*/3},
        Case{3, v1::COMPRESSION_KIND_RESBM, v1::PIPELINE_SCHEDULE_GPIPE, v1::TOKEN_CHANNEL_NONE,
             false, /*replicas=*/3}));

}  // namespace
}  // namespace resbm
