#include "common/model/generator.h"

#include <torch/torch.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model/compute_device.h"
#include "common/model/stage.h"
#include "common/model/torch_seam.h"
#include "common/status/status_macros.h"
#include "common/wire/wire_codec.h"

namespace resbm {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

at::Tensor IdsTensor(const std::vector<int64_t>& ids, const std::string& device) {
  return torch::tensor(ids, torch::kInt64).view({1, -1}).to(torch::Device(device));  // (1, T)
}

}  // namespace

struct Generator::Caches {
  std::vector<StageImpl::KvCache> stages;
};

absl::StatusOr<std::unique_ptr<Generator>> Generator::Create(const GeneratorOptions& options) {
  if (options.plan.empty()) return absl::InvalidArgumentError("plan: empty; expected >= 1 stage");
  GeneratorOptions resolved = options;
  RESBM_ASSIGN_OR_RETURN(resolved.device, ResolveComputeDevice("device", options.device));
  std::unique_ptr<Generator> generator(new Generator(resolved));
  RESBM_RETURN_IF_ERROR(AtTorchSeam("generator", "create", [&]() -> absl::Status {
    for (const StageSpec& spec : resolved.plan) {
      auto stage = std::make_shared<StageImpl>(resolved.model, resolved.compression, spec);
      stage->to(torch::Device(resolved.device));
      stage->eval();
      generator->stages_.push_back(std::move(stage));
    }
    return absl::OkStatus();
  }));
  return generator;
}

Generator::Generator(const GeneratorOptions& options) : options_(options) {}

Generator::~Generator() = default;

NamedTensors Generator::StageParameters(int64_t stage) const {
  NamedTensors params;
  for (const auto& item : stages_[stage]->named_parameters()) {
    params.emplace_back(item.key(), item.value());
  }
  return params;
}

absl::Status Generator::CheckIds(const std::vector<int64_t>& ids, const char* what) const {
  if (ids.empty())
    return absl::InvalidArgumentError(absl::StrCat(what, ": empty; expected >= 1 token"));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= options_.model.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, "[", i, "]: token id ", ids[i], "; expected 0..", options_.model.vocab_size - 1));
    }
  }
  return absl::OkStatus();
}

absl::Status Generator::CheckWindow(const std::vector<int64_t>& ids) const {
  RESBM_RETURN_IF_ERROR(CheckIds(ids, "ids"));
  if (static_cast<int64_t>(ids.size()) > options_.model.seq_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ids: ", ids.size(), " tokens; expected <= ", options_.model.seq_len, " (model.seq_len)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> Generator::Forward(const at::Tensor& ids, Caches* caches) {
  torch::NoGradGuard no_grad;
  at::Tensor x = ids;  // (1, t)
  for (size_t s = 0; s < stages_.size(); ++s) {
    x = caches != nullptr ? stages_[s]->ForwardCached(x, ids, &caches->stages[s])
                          : stages_[s]->forward(x, ids);  // (1, t, k) or (1, t, V)
    if (s + 1 == stages_.size()) break;
    // The boundary's wire, rounded as in training.
    RESBM_ASSIGN_OR_RETURN(WireTensor wire,
                           WireCodec::Encode(x, options_.compression.wire_dtype));  // (1, t, k)
    RESBM_ASSIGN_OR_RETURN(at::Tensor decoded, WireCodec::Decode(wire));
    x = decoded.to(ids.device());  // (1, t, k)
  }
  return x;  // (1, t, V)
}

absl::StatusOr<at::Tensor> Generator::Logits(const std::vector<int64_t>& ids) {
  RESBM_RETURN_IF_ERROR(CheckWindow(ids));
  return AtTorchSeam("generator", "logits", [&]() -> absl::StatusOr<at::Tensor> {
    RESBM_ASSIGN_OR_RETURN(at::Tensor logits, Forward(IdsTensor(ids, options_.device), nullptr));
    return logits.cpu();  // (1, T, V)
  });
}

absl::StatusOr<at::Tensor> Generator::LogitsIncremental(const std::vector<int64_t>& ids) {
  RESBM_RETURN_IF_ERROR(CheckWindow(ids));
  return AtTorchSeam("generator", "incremental logits", [&]() -> absl::StatusOr<at::Tensor> {
    Caches caches;
    caches.stages.resize(stages_.size());
    std::vector<at::Tensor> rows;
    for (int64_t id : ids) {
      RESBM_ASSIGN_OR_RETURN(at::Tensor row, Forward(IdsTensor({id}, options_.device), &caches));
      rows.push_back(std::move(row));  // (1, 1, V)
    }
    return torch::cat(rows, /*dim=*/1).cpu();  // (1, T, V)
  });
}

absl::StatusOr<std::vector<int64_t>> Generator::Generate(const std::vector<int64_t>& prompt,
                                                         const SamplingOptions& sampling,
                                                         GenerationStats* stats) {
  RESBM_RETURN_IF_ERROR(CheckIds(prompt, "prompt"));
  if (sampling.max_tokens < 0 || sampling.temperature < 0 || sampling.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling: max_tokens ", sampling.max_tokens, ", temperature ",
                     sampling.temperature, ", top_k ", sampling.top_k, "; expected each >= 0"));
  }
  GenerationStats local;
  GenerationStats& s = stats != nullptr ? *stats : local;
  s = GenerationStats{};
  s.prompt_tokens = static_cast<int64_t>(prompt.size());
  const int64_t window = options_.model.seq_len;
  return AtTorchSeam("generator", "generate", [&]() -> absl::StatusOr<std::vector<int64_t>> {
    auto generator = at::detail::createCPUGenerator(sampling.seed);
    std::vector<int64_t> tokens = prompt;
    Caches caches;
    int64_t cached = 0;  // Tokens of `tokens` in the caches, from `cache_start`.
    size_t cache_start = 0;
    auto start = std::chrono::steady_clock::now();
    for (int64_t n = 0; n < sampling.max_tokens; ++n) {
      at::Tensor logits;  // (1, t, V)
      if (!sampling.use_cache) {
        const size_t from =
            tokens.size() > static_cast<size_t>(window) ? tokens.size() - window : 0;
        RESBM_ASSIGN_OR_RETURN(
            logits,
            Forward(IdsTensor({tokens.begin() + from, tokens.end()}, options_.device), nullptr));
      } else {
        if (cached == 0 || cached >= window) {
          // (Re)build the caches from the window's tail: the prompt, or the last window / 2.
          const size_t keep = cached == 0 ? std::min(tokens.size(), static_cast<size_t>(window))
                                          : static_cast<size_t>(window / 2);
          cache_start = tokens.size() - keep;
          if (cached != 0) ++s.window_rebuilds;
          caches.stages.assign(stages_.size(), StageImpl::KvCache{});
          RESBM_ASSIGN_OR_RETURN(
              logits,
              Forward(IdsTensor({tokens.begin() + cache_start, tokens.end()}, options_.device),
                      &caches));
          cached = static_cast<int64_t>(keep);
        } else {
          RESBM_ASSIGN_OR_RETURN(logits,
                                 Forward(IdsTensor({tokens.back()}, options_.device), &caches));
          ++cached;
        }
      }
      auto last = logits.select(1, logits.size(1) - 1)
                      .squeeze(0)
                      .to(torch::kCPU,
                          torch::kFloat32);  // (V)
      int64_t next;
      if (sampling.temperature == 0.0) {
        next = last.argmax().item<int64_t>();
      } else {
        auto scaled = last / sampling.temperature;  // (V)
        if (sampling.top_k > 0 && sampling.top_k < scaled.size(0)) {
          const auto kth = std::get<0>(scaled.topk(sampling.top_k)).min();
          scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<float>::infinity());
        }
        next = torch::multinomial(torch::softmax(scaled, 0), 1, false, generator).item<int64_t>();
      }
      tokens.push_back(next);
      if (n == 0) {
        s.prefill_seconds = SecondsSince(start);
        start = std::chrono::steady_clock::now();
      }
    }
    s.new_tokens = sampling.max_tokens;
    if (sampling.max_tokens > 1) s.decode_seconds = SecondsSince(start);
    return tokens;
  });
}

}  // namespace resbm
