// bench_matmul: times an fp32 2048x2048 matmul through LibTorch and names the BLAS library the
// process loaded, so a user can check that OpenBLAS (not the slow reference BLAS) is in use.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "common/runtime/flag_parser.h"

namespace {

// Shared objects mapped into this process whose names mention BLAS.
std::set<std::string> LoadedBlas() {
  std::set<std::string> libs;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("blas") != std::string::npos) libs.insert(path);
  }
  return libs;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t size = 2048, repeats = 5;
  int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  resbm::FlagParser flags("bench_matmul", "fp32 matmul throughput through LibTorch.");
  flags.AddInt("size", &size, "matrix side");
  flags.AddInt("repeats", &repeats, "timed repetitions (best is reported)");
  flags.AddInt("threads", &threads, "intra-op threads");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (size < 1 || repeats < 1) {
    std::fprintf(stderr, "bench_matmul: --size and --repeats must be >= 1\n");
    return 2;
  }
  torch::set_num_threads(static_cast<int>(threads));
  auto a = torch::randn({size, size});
  auto b = torch::randn({size, size});
  torch::matmul(a, b);  // Warm-up: thread pool start, page faults.
  double best = 1e30;
  for (int64_t i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto c = torch::matmul(a, b);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const double gflops = 2.0 * size * size * size / best / 1e9;
  std::printf("fp32 %lldx%lld matmul: %.1f GFLOP/s (best of %lld, %lld threads)\n",
              static_cast<long long>(size), static_cast<long long>(size), gflops,
              static_cast<long long>(repeats), static_cast<long long>(threads));
  for (const auto& lib : LoadedBlas()) std::printf("BLAS loaded: %s\n", lib.c_str());
  return 0;
}
