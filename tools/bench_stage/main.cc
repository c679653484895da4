// bench_stage: one middle pipeline stage's forward + backward (its blocks and both boundary
// halves, E and D) at a chosen size, device and compute dtype, as achieved TFLOP/s next to a
// plain square matmul of the same dtype measured in the same run on the same device: the
// model FLOPs utilisation against what the device really does, not against a datasheet.
// --json writes the numbers (forward and backward seconds per microbatch included) for the
// pipeline simulator's projections (tools/study_network --project-stage-json).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/model/compute_device.h"
#include "common/model/stage_runner.h"
#include "common/runtime/flag_parser.h"

namespace {

void Synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_name = "cpu", dtype_name = "fp32", json_path;
  int64_t d_model = 256, layers = 2, heads = 4, mlp_hidden = 768, seq = 128, batch = 8;
  int64_t ratio = 128, repeats = 5, matmul_size = 2048, threads = 0;
  resbm::FlagParser flags("bench_stage",
                          "A middle stage's forward+backward TFLOP/s against a plain matmul.");
  flags.AddString("device", &device_name, "LibTorch device: cpu, cuda, cuda:N");
  flags.AddString("dtype", &dtype_name, "compute dtype of the blocks: fp32 or bf16 (autocast)");
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
  flags.AddString("json", &json_path, "also write the results here as JSON");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (dtype_name != "fp32" && dtype_name != "bf16") {
    std::fprintf(stderr, "bench_stage: --dtype: '%s'; expected fp32 or bf16\n",
                 dtype_name.c_str());
    return 2;
  }
  auto resolved = resbm::ResolveComputeDevice("--device", device_name);
  if (!resolved.ok()) {
    std::fprintf(stderr, "bench_stage: %s\n", resolved.status().ToString().c_str());
    return 2;
  }
  if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
  const torch::Device device(*resolved);
  const bool bf16 = dtype_name == "bf16";

  resbm::StageRunnerOptions options;
  options.model.d_model = d_model;
  options.model.n_layers = layers + 2;
  options.model.n_heads = heads;
  options.model.mlp_hidden = mlp_hidden;
  options.model.seq_len = seq;
  options.model.compute_dtype = bf16 ? resbm::ComputeDtype::kBf16 : resbm::ComputeDtype::kFp32;
  options.compression.ratio = ratio;
  options.compression.init_std = 0.02;
  options.spec = resbm::StageSpec{1, 3, 1, layers};  // A middle stage: D, blocks, E.
  options.device = *resolved;
  auto runner = resbm::StageRunner::Create(options);
  if (!runner.ok()) {
    std::fprintf(stderr, "bench_stage: %s\n", runner.status().ToString().c_str());
    return 1;
  }
  const int64_t k = options.compression.WireWidth(d_model);
  const torch::Tensor z = torch::randn({batch, seq, k}, torch::TensorOptions().device(device));
  const torch::Tensor grad = torch::randn_like(z);
  // Forward and backward timed apart (the simulator takes both), each synchronised; the
  // best of `repeats` after one warm-up.
  double forward_best = 1e30, backward_best = 1e30;
  for (int64_t i = 0; i <= repeats; ++i) {
    Synchronize(device);
    auto start = std::chrono::steady_clock::now();
    auto out = (*runner)->Forward(0, z);
    Synchronize(device);
    const double forward = Seconds(start);
    start = std::chrono::steady_clock::now();
    auto back = out.ok() ? (*runner)->Backward(0, grad) : out.status();
    Synchronize(device);
    const double backward = Seconds(start);
    if (!out.ok() || !back.ok()) {
      std::fprintf(stderr, "bench_stage: %s\n",
                   (out.ok() ? back.status() : out.status()).ToString().c_str());
      return 1;
    }
    if (i == 0) continue;  // Warm-up: allocator, kernel selection, caches.
    forward_best = std::min(forward_best, forward);
    backward_best = std::min(backward_best, backward);
  }
  (*runner)->AbortStep();
  // Matmul FLOPs of one forward: per token and block, the attention projections (4 d^2), the
  // SwiGLU MLP (3 d h), the scores and mixing (2 T d, causal masking not subtracted), times 2
  // for multiply-add; backward twice that. E and D (2 d k per token) are included.
  const double tokens = static_cast<double>(batch * seq);
  const double per_token =
      2.0 * (layers * (4.0 * d_model * d_model + 3.0 * d_model * mlp_hidden + 2.0 * seq * d_model) +
             2.0 * d_model * k);
  const double step_seconds = forward_best + backward_best;
  const double stage_tflops = 3.0 * per_token * tokens / step_seconds / 1e12;

  const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat32;
  const torch::Tensor a =
      torch::randn({matmul_size, matmul_size}, torch::TensorOptions().device(device).dtype(dtype));
  const torch::Tensor b = torch::randn_like(a);
  double matmul_seconds = 1e30;
  for (int64_t i = 0; i <= repeats; ++i) {
    Synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    (void)torch::mm(a, b);
    Synchronize(device);
    if (i > 0) matmul_seconds = std::min(matmul_seconds, Seconds(start));
  }
  const double n = static_cast<double>(matmul_size);
  const double matmul_tflops = 2.0 * n * n * n / matmul_seconds / 1e12;
  const double utilisation = stage_tflops / matmul_tflops;

  std::printf(
      "bench_stage: %s | d=%lld layers=%lld heads=%lld h=%lld | microbatch %lld x %lld tokens "
      "| k=%lld (r=%lld) | %s\n",
      resolved->c_str(), static_cast<long long>(d_model), static_cast<long long>(layers),
      static_cast<long long>(heads), static_cast<long long>(mlp_hidden),
      static_cast<long long>(batch), static_cast<long long>(seq), static_cast<long long>(k),
      static_cast<long long>(ratio), dtype_name.c_str());
  std::printf("  forward %.2f ms, backward %.2f ms per microbatch\n", forward_best * 1e3,
              backward_best * 1e3);
  std::printf("  stage forward+backward: %.2f ms  %.3f TFLOP/s\n", step_seconds * 1e3,
              stage_tflops);
  std::printf("  matmul %lldx%lld %s:   %.2f ms  %.3f TFLOP/s\n",
              static_cast<long long>(matmul_size), static_cast<long long>(matmul_size),
              dtype_name.c_str(), matmul_seconds * 1e3, matmul_tflops);
  std::printf("  model FLOPs utilisation (stage / matmul, same dtype) = %.3f\n", utilisation);
  if (!json_path.empty()) {
    std::ofstream json(json_path);
    json << "{\"device\": \"" << *resolved << "\", \"dtype\": \"" << dtype_name
         << "\", \"d_model\": " << d_model << ", \"layers\": " << layers
         << ", \"heads\": " << heads << ", \"mlp_hidden\": " << mlp_hidden
         << ", \"seq_len\": " << seq << ", \"microbatch_seqs\": " << batch
         << ", \"ratio\": " << ratio << ", \"forward_seconds\": " << forward_best
         << ", \"backward_seconds\": " << backward_best << ", \"stage_tflops\": " << stage_tflops
         << ", \"matmul_size\": " << matmul_size << ", \"matmul_tflops\": " << matmul_tflops
         << ", \"utilisation\": " << utilisation << "}\n";
    if (!json) {
      std::fprintf(stderr, "bench_stage: --json: cannot write '%s'\n", json_path.c_str());
      return 1;
    }
  }
  return 0;
}
