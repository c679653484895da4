// bench_pipeline: the same job with `none` and with `resbm` at 128x on stage workers over
// loopback gRPC, side by side in one run: tokens/s of each and their ratio, bytes per step on
// the wire, and per stage the time computing vs waiting for a neighbour (the bubble) next to
// the textbook (p - 1) / (m + p - 1).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/config/job_config.h"
#include "common/data/batch_sampler.h"
#include "common/runtime/flag_parser.h"
#include "common/schedule/pipeline_schedule.h"
#include "common/train/job_dataset.h"
#include "services/coordinator/pipeline_driver.h"
#include "services/stage_worker/stage_worker.h"

namespace {

struct Result {
  double tokens_per_second = 0.0;
  double wire_bytes_per_step = 0.0;
  std::vector<double> compute_seconds;  // Per stage, summed over the timed steps.
  std::vector<double> wait_seconds;
};

absl::StatusOr<Result> Measure(const resbm::v1::JobConfig& config, int64_t warmup, int64_t steps) {
  const int64_t stages = config.stages().num_stages();
  std::vector<std::unique_ptr<resbm::StageWorker>> workers;
  std::vector<std::string> addresses;
  for (int64_t s = 0; s < stages; ++s) {
    auto worker = resbm::StageWorker::Start(resbm::StageWorkerOptions{});
    if (!worker.ok()) return worker.status();
    addresses.push_back((*worker)->address());
    workers.push_back(std::move(*worker));
  }
  auto dataset = resbm::LoadJobDataset(config);
  if (!dataset.ok()) return dataset.status();
  resbm::BatchSampler sampler(&dataset->train(), config.model().seq_len(),
                              config.training().seed());
  auto driver = resbm::PipelineDriver::Create("bench", config, addresses);
  if (!driver.ok()) return driver.status();
  if (auto assigned = (*driver)->Assign(); !assigned.ok()) return assigned.status();

  Result result;
  result.compute_seconds.assign(stages, 0.0);
  result.wait_seconds.assign(stages, 0.0);
  std::chrono::steady_clock::time_point start;
  for (int64_t step = 0; step < warmup + steps; ++step) {
    if (step == warmup) start = std::chrono::steady_clock::now();
    std::vector<int64_t> x, y;
    if (auto sampled = sampler.Sample(step, 0, config.training().batch_size(), &x, &y);
        !sampled.ok()) {
      return sampled;
    }
    auto stats = (*driver)->TrainStep(step, x, y);
    if (!stats.ok()) return stats.status();
    if (step < warmup) continue;
    for (int64_t s = 0; s < stages; ++s) {
      const auto& r = stats->stages[s];
      for (const auto& mb : r.microbatches()) {
        result.compute_seconds[s] += mb.forward_seconds() + mb.backward_seconds();
      }
      result.wait_seconds[s] += r.wait_seconds();
      result.wire_bytes_per_step +=
          static_cast<double>(r.activation_bytes_sent() + r.gradient_bytes_sent()) / steps;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.tokens_per_second = static_cast<double>(steps) * config.training().batch_size() *
                             config.model().seq_len() / seconds;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  int64_t steps = 10, warmup = 2;
  resbm::FlagParser flags("bench_pipeline",
                          "tokens/s of `none` vs `resbm` 128x over loopback, and the bubble.");
  flags.AddString("config", &config_path, "job config (default: the default job)");
  flags.AddInt("steps", &steps, "timed steps per run");
  flags.AddInt("warmup", &warmup, "untimed steps first");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (steps < 1 || warmup < 0) {
    std::fprintf(stderr, "bench_pipeline: --steps >= 1, --warmup >= 0\n");
    return 2;
  }
  torch::set_num_threads(1);
  resbm::v1::JobConfig base = resbm::DefaultJobConfig();
  if (!config_path.empty()) {
    auto loaded = resbm::LoadJobConfigFile(config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "bench_pipeline: %s\n", loaded.status().ToString().c_str());
      return 2;
    }
    base = *loaded;
  }
  const int64_t p = base.stages().num_stages(), m = base.training().microbatches();
  std::printf(
      "bench_pipeline: d=%u L=%u T=%u | %lld stages, %lld microbatches of %u seqs | %s "
      "| %lld timed steps\n",
      base.model().d_model(), base.model().n_layers(), base.model().seq_len(),
      static_cast<long long>(p), static_cast<long long>(m),
      base.training().batch_size() / base.training().microbatches(),
      resbm::v1::PipelineSchedule_Name(base.training().schedule()).c_str(),
      static_cast<long long>(steps));

  struct Run {
    const char* name;
    resbm::v1::CompressionKind kind;
    uint32_t ratio;
  };
  std::vector<Result> results;
  for (const Run& run : {Run{"none", resbm::v1::COMPRESSION_KIND_NONE, 1},
                         Run{"resbm r=128", resbm::v1::COMPRESSION_KIND_RESBM, 128}}) {
    resbm::v1::JobConfig config = base;
    resbm::SetCompression(run.kind, run.ratio, &config);
    if (auto status = resbm::ValidateJobConfig(config); !status.ok()) {
      std::fprintf(stderr, "bench_pipeline: %s\n", status.ToString().c_str());
      return 2;
    }
    auto result = Measure(config, warmup, steps);
    if (!result.ok()) {
      std::fprintf(stderr, "bench_pipeline: %s: %s\n", run.name,
                   result.status().ToString().c_str());
      return 1;
    }
    std::printf("\n%-12s %9.0f tok/s | wire %.0f bytes/step (%s)\n", run.name,
                result->tokens_per_second, result->wire_bytes_per_step,
                resbm::v1::WireDtype_Name(config.compression().wire_dtype()).c_str());
    std::printf("  stage | compute s/step | wait s/step | waiting fraction\n");
    for (int64_t s = 0; s < p; ++s) {
      const double compute = result->compute_seconds[s] / steps;
      const double wait = result->wait_seconds[s] / steps;
      std::printf("  %5lld | %14.3f | %11.3f | %.3f\n", static_cast<long long>(s), compute, wait,
                  wait / (compute + wait));
    }
    results.push_back(*result);
  }
  std::printf("\ntheoretical bubble (p-1)/(m+p-1) = %.3f\n",
              resbm::TheoreticalBubbleFraction(p, m));
  std::printf("throughput ratio resbm/none = %.3f; wire bytes ratio none/resbm = %.1f\n",
              results[1].tokens_per_second / results[0].tokens_per_second,
              results[0].wire_bytes_per_step / results[1].wire_bytes_per_step);
  return 0;
}
