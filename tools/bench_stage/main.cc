// bench_stage: one middle pipeline stage's forward + backward (its blocks and both boundary
// halves, E and D) at a chosen size on a chosen device, as achieved TFLOP/s next to a plain
// matmul of the same dtype measured in the same run: how much of the device the stage keeps.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/model/stage_runner.h"
#include "common/runtime/flag_parser.h"

namespace {

void Synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
}

// Best-of-`repeats` seconds of `run` after one warm-up call.
template <typename F>
double BestSeconds(int64_t repeats, const torch::Device& device, F run) {
  run();
  Synchronize(device);
  double best = 1e30;
  for (int64_t i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    Synchronize(device);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_name = "cpu";
  int64_t d_model = 256, layers = 2, heads = 4, mlp_hidden = 768, seq = 128, batch = 8;
  int64_t ratio = 128, repeats = 5, matmul_size = 2048, threads = 0;
  resbm::FlagParser flags("bench_stage",
                          "A middle stage's forward+backward TFLOP/s against a plain matmul.");
  flags.AddString("device", &device_name, "LibTorch device: cpu, cuda, cuda:N");
  flags.AddInt("d-model", &d_model, "model width");
  flags.AddInt("layers", &layers, "blocks on the stage");
  flags.AddInt("heads", &heads, "attention heads");
  flags.AddInt("mlp-hidden", &mlp_hidden, "SwiGLU hidden width");
  flags.AddInt("seq", &seq, "tokens per sequence");
  flags.AddInt("batch", &batch, "sequences per microbatch");
  flags.AddInt("ratio", &ratio, "ResBM compression ratio r (k = d / r)");
  flags.AddInt("repeats", &repeats, "timed repetitions (best is reported)");
  flags.AddInt("matmul-size", &matmul_size, "side of the reference square matmul");
  flags.AddInt("threads", &threads, "CPU intra-op threads (0: LibTorch's default)");
  if (auto status = flags.Parse(argc, argv); !status.ok()) {
    std::fprintf(stderr, "bench_stage: %s\n", status.ToString().c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
  if (device_name.rfind("cuda", 0) == 0 && !torch::cuda::is_available()) {
    std::fprintf(stderr, "bench_stage: --device: '%s'; no CUDA device is available\n",
                 device_name.c_str());
    return 2;
  }
  const torch::Device device(device_name);

  resbm::StageRunnerOptions options;
  options.model.d_model = d_model;
  options.model.n_layers = layers + 2;
  options.model.n_heads = heads;
  options.model.mlp_hidden = mlp_hidden;
  options.model.seq_len = seq;
  options.compression.ratio = ratio;
  options.compression.init_std = 0.02;
  options.spec = resbm::StageSpec{1, 3, 1, layers};  // A middle stage: D, blocks, E.
  options.device = device_name;
  auto runner = resbm::StageRunner::Create(options);
  if (!runner.ok()) {
    std::fprintf(stderr, "bench_stage: %s\n", runner.status().ToString().c_str());
    return 1;
  }
  const int64_t k = options.compression.WireWidth(d_model);
  const torch::Tensor z = torch::randn({batch, seq, k}, torch::TensorOptions().device(device));
  const torch::Tensor grad = torch::randn_like(z);
  bool ok = true;
  const double step_seconds = BestSeconds(repeats, device, [&] {
    auto out = (*runner)->Forward(0, z);
    ok = ok && out.ok() && (*runner)->Backward(0, grad).ok();
  });
  (*runner)->AbortStep();
  if (!ok) {
    std::fprintf(stderr, "bench_stage: forward or backward failed\n");
    return 1;
  }
  // Matmul FLOPs of one forward: per token and block, the attention projections (4 d^2), the
  // SwiGLU MLP (3 d h), the scores and mixing (2 T d, causal masking not subtracted), times 2
  // for multiply-add; backward twice that. E and D (2 d k per token) are included.
  const double tokens = static_cast<double>(batch * seq);
  const double per_token =
      2.0 * (layers * (4.0 * d_model * d_model + 3.0 * d_model * mlp_hidden + 2.0 * seq * d_model) +
             2.0 * d_model * k);
  const double stage_tflops = 3.0 * per_token * tokens / step_seconds / 1e12;

  const auto dtype = torch::kFloat32;  // The stage computes in fp32 (bf16 autocast: to come).
  const torch::Tensor a =
      torch::randn({matmul_size, matmul_size}, torch::TensorOptions().device(device).dtype(dtype));
  const torch::Tensor b = torch::randn_like(a);
  const double matmul_seconds = BestSeconds(repeats, device, [&] { (void)torch::mm(a, b); });
  const double n = static_cast<double>(matmul_size);
  const double matmul_tflops = 2.0 * n * n * n / matmul_seconds / 1e12;

  std::printf(
      "bench_stage: %s | d=%lld layers=%lld heads=%lld h=%lld | microbatch %lld x %lld tokens "
      "| k=%lld (r=%lld) | fp32\n",
      device_name.c_str(), static_cast<long long>(d_model), static_cast<long long>(layers),
      static_cast<long long>(heads), static_cast<long long>(mlp_hidden),
      static_cast<long long>(batch), static_cast<long long>(seq), static_cast<long long>(k),
      static_cast<long long>(ratio));
  std::printf("  stage forward+backward: %.2f ms  %.3f TFLOP/s\n", step_seconds * 1e3,
              stage_tflops);
  std::printf("  matmul %lldx%lld:        %.2f ms  %.3f TFLOP/s\n",
              static_cast<long long>(matmul_size), static_cast<long long>(matmul_size),
              matmul_seconds * 1e3, matmul_tflops);
  std::printf("  stage / matmul = %.3f\n", stage_tflops / matmul_tflops);
  return 0;
}
