// resbm-worker: serves one pipeline stage. Parses flags, starts the server, waits for
// SIGINT/SIGTERM, shuts down gracefully.
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "common/runtime/bulk_allocator.h"
#include "common/runtime/flag_parser.h"
#include "common/runtime/shutdown_signal.h"
#include "services/stage_worker/stage_worker.h"

int main(int argc, char** argv) {
  resbm::KeepBulkBuffersMapped();
  resbm::BlockShutdownSignals();
  resbm::StageWorkerOptions options;
  std::string port_file;
  int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  int64_t drain_seconds = 5;
  resbm::FlagParser flags("resbm-worker", "Serves one pipeline stage of a ResBM job.");
  flags.AddString("listen", &options.listen_address, "host:port to serve on (port 0: any)");
  flags.AddString("device", &options.session.device, "LibTorch device: cpu, cuda, cuda:N");
  flags.AddString("port-file", &port_file, "write the bound port here once serving");
  flags.AddString("coordinator", &options.coordinator_address,
                  "host:port of the coordinator to register with");
  flags.AddString("advertise-address", &options.advertise_address,
                  "host:port the coordinator and the previous stage reach this worker at "
                  "(default: the listen address with the bound port)");
  flags.AddString("exchange-address", &options.exchange_address,
                  "host:port the previous stage streams to, when it differs from the "
                  "advertised address (default: the advertised address)");
  flags.AddString("metrics-listen", &options.metrics_address,
                  "host:port of the Prometheus /metrics endpoint (empty: none)");
  flags.AddString("checkpoint-dir", &options.session.checkpoint_dir,
                  "the only directory this worker writes and reads checkpoints in: the "
                  "coordinator's --checkpoint-dir, on a volume they share (empty: no checkpoints)");
  flags.AddInt("threads", &threads, "intra-op CPU threads");
  flags.AddInt("drain-seconds", &drain_seconds,
               "on SIGTERM/SIGINT, how long calls in flight (and connected peers) get");
  resbm::TransportSecurityOptions security;
  resbm::AddTransportSecurityFlags(&flags, &security);
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (!options.session.checkpoint_dir.empty()) {
    options.session.checkpoint_dir =
        std::filesystem::absolute(options.session.checkpoint_dir).lexically_normal().string();
  }
  auto loaded = resbm::TransportSecurity::Load(security, /*server=*/true);
  if (!loaded.ok()) {
    std::fprintf(stderr, "resbm-worker: %s\n", loaded.status().ToString().c_str());
    return 2;
  }
  options.security = *loaded;
  torch::set_num_threads(static_cast<int>(std::max<int64_t>(1, threads)));
  auto worker = resbm::StageWorker::Start(options);
  if (!worker.ok()) {
    std::fprintf(stderr, "resbm-worker: %s\n", worker.status().ToString().c_str());
    return 1;
  }
  std::printf("resbm-worker: serving on %s\n", (*worker)->address().c_str());
  resbm::ServeUntilShutdownSignal(
      "resbm-worker", (*worker)->port(), (*worker)->metrics_port(), port_file,
      [&] { (*worker)->Shutdown(absl::Now() + absl::Seconds(drain_seconds)); });
  return 0;
}
