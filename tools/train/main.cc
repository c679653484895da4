// resbm-train: trains a model in one process, all stages chained through the real boundary
// and wire code. The reference the distributed run must match.
#include <torch/torch.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include "common/config/job_config.h"
#include "common/config/job_flags.h"
#include "common/runtime/flag_parser.h"
#include "common/runtime/shutdown_signal.h"
#include "common/train/local_backend.h"
#include "common/train/trainer.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "resbm-train: %s\n", status.ToString().c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // SIGINT/SIGTERM stop the run between steps (the loss curve so far is kept).
  resbm::BlockShutdownSignals();
  static std::atomic<int> stop_signal{0};
  std::thread([] { stop_signal = resbm::WaitForShutdownSignal(); }).detach();
  resbm::JobFlags job;
  std::string device = "cpu";
  std::string checkpoint_dir = "out/checkpoint";
  int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  resbm::FlagParser flags("resbm-train",
                          "Trains a ResBM model in one process from a job config (JSON or "
                          "textproto); without --config, the shipped default job.");
  job.Register(&flags);
  flags.AddString("device", &device, "LibTorch device: cpu, cuda, cuda:N");
  flags.AddInt("threads", &threads, "intra-op CPU threads");
  flags.AddString("checkpoint-dir", &checkpoint_dir,
                  "where the final checkpoint goes (every stage's file and manifest.json, what "
                  "resbmctl export --checkpoint and init.from_checkpoint take); empty: none");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;

  resbm::TrainerOptions options;
  auto config = job.LoadConfig(flags);
  if (!config.ok()) return Fail(config.status());
  options.config = *config;
  if (threads < 1) {
    return Fail(absl::InvalidArgumentError("--threads: expected at least 1"));
  }
  torch::set_num_threads(static_cast<int>(threads));
  options.stop_requested = [] { return stop_signal.load() != 0; };
  options.summary_json_path = job.summary_json;
  options.loss_csv_path = job.loss_csv;
  if (!checkpoint_dir.empty()) options.final_manifest_path = checkpoint_dir + "/manifest.json";

  const auto& c = options.config;
  const resbm::CompressionOptions compression = resbm::ToCompressionOptions(c);
  std::printf(
      "resbm-train: %s | d=%u L=%u heads=%u T=%u | %u stages | %s r=%u wire=%s | "
      "%u steps x %u seqs | %lld threads\n",
      c.name().c_str(), c.model().d_model(), c.model().n_layers(), c.model().n_heads(),
      c.model().seq_len(), c.stages().num_stages(),
      resbm::CompressionKindName(compression.kind).c_str(), c.compression().ratio(),
      resbm::WireDtypeName(compression.wire_dtype).c_str(), c.training().steps(),
      c.training().batch_size(), static_cast<long long>(threads));
  std::fflush(stdout);

  auto backend = resbm::LocalBackend::Create(options.config, device, checkpoint_dir);
  if (!backend.ok()) return Fail(backend.status());
  auto trainer = resbm::Trainer::Create(options, std::move(*backend));
  if (!trainer.ok()) return Fail(trainer.status());
  auto summary = (*trainer)->Run();
  if (summary.status().code() == absl::StatusCode::kCancelled) {
    std::printf("resbm-train: signal %d: %s (%s)\n", stop_signal.load(),
                std::string(summary.status().message()).c_str(), job.loss_csv.c_str());
    return 130;
  }
  if (!summary.ok()) return Fail(summary.status());
  std::printf("done: %s\nsummary: %s\nloss curve: %s\n", summary->Describe().c_str(),
              job.summary_json.c_str(), job.loss_csv.c_str());
  if (!options.final_manifest_path.empty()) {
    std::printf("final checkpoint: %s (resbmctl export --checkpoint %s --out DIR)\n",
                options.final_manifest_path.c_str(), checkpoint_dir.c_str());
  }
  return 0;
}
