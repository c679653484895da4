// resbm-generate: samples a continuation of a prompt from an exported model (resbmctl
// export) in one process, on the CPU or a GPU, through the model's own boundaries and wire
// rounding, with a key/value cache. The text (or the ids) goes to stdout, the timing to
// stderr.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/runtime/flag_parser.h"
#include "common/train/exported_generator.h"
#include "tools/generate/token_vocabulary.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "resbm-generate: %s\n", status.ToString().c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ||
                 status.code() == absl::StatusCode::kNotFound ||
                 status.code() == absl::StatusCode::kFailedPrecondition
             ? 2
             : 1;
}

absl::StatusOr<std::vector<int64_t>> ParseIds(const std::string& text) {
  std::vector<int64_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids: '", part, "'; expected comma-separated token ids"));
    }
    ids.push_back(id);
  }
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, prompt, prompt_ids, vocab_path, device = "cpu";
  int64_t max_tokens = 200, top_k = 40, seed = 1;
  int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  double temperature = 0.8;
  bool no_cache = false;
  resbm::FlagParser flags("resbm-generate",
                          "Samples a continuation of --prompt from an exported model "
                          "(resbmctl export): text for a byte-level model, ids otherwise "
                          "(text with --vocab).");
  flags.AddString("model", &model_dir, "export directory (model.safetensors + config.json)");
  flags.AddString("prompt", &prompt, "prompt text (byte-level models)");
  flags.AddString("prompt-ids", &prompt_ids, "prompt as comma-separated token ids");
  flags.AddInt("max-tokens", &max_tokens, "tokens to generate");
  flags.AddDouble("temperature", &temperature, "sampling temperature; 0: greedy");
  flags.AddInt("top-k", &top_k, "sample among the k likeliest tokens; 0: all");
  flags.AddInt("seed", &seed, "sampling seed");
  flags.AddString("device", &device, "LibTorch device: cpu, cuda, cuda:N");
  flags.AddInt("threads", &threads, "intra-op CPU threads");
  flags.AddString("vocab", &vocab_path,
                  "vocab.json (Hugging Face, GPT-2 byte alphabet) or one token per line: "
                  "print text for a token-shard model");
  flags.AddBool("no-cache", &no_cache, "recompute the context for every token (slow)");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (model_dir.empty()) return Fail(absl::InvalidArgumentError("--model: required"));
  if (threads < 1) return Fail(absl::InvalidArgumentError("--threads: expected at least 1"));
  torch::set_num_threads(static_cast<int>(threads));

  auto loaded = resbm::ExportedGenerator::Load(model_dir, device);
  if (!loaded.ok()) return Fail(loaded.status());
  const bool byte_model = loaded->model.config().data().has_byte_corpus();
  resbm::TokenVocabulary vocab = resbm::TokenVocabulary::Bytes();
  if (!vocab_path.empty()) {
    auto file = resbm::TokenVocabulary::Load(vocab_path);
    if (!file.ok()) return Fail(file.status());
    vocab = *std::move(file);
  }
  absl::StatusOr<std::vector<int64_t>> ids =
      prompt_ids.empty() ? vocab.EncodeBytes(prompt) : ParseIds(prompt_ids);
  if (!ids.ok()) return Fail(ids.status());
  if (ids->empty()) {
    return Fail(absl::InvalidArgumentError("--prompt / --prompt-ids: empty; expected a prompt"));
  }
  resbm::SamplingOptions sampling;
  sampling.max_tokens = max_tokens;
  sampling.temperature = temperature;
  sampling.top_k = top_k;
  sampling.seed = static_cast<uint64_t>(seed);
  sampling.use_cache = !no_cache;
  resbm::GenerationStats stats;
  auto tokens = loaded->generator->Generate(*ids, sampling, &stats);
  if (!tokens.ok()) return Fail(tokens.status());
  if (byte_model || !vocab_path.empty()) {
    const std::string text = vocab.Decode(*tokens);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
  } else {
    std::printf("%s\n", absl::StrJoin(*tokens, " ").c_str());
  }
  const double decode_rate =
      stats.decode_seconds > 0 ? (stats.new_tokens - 1) / stats.decode_seconds : 0.0;
  std::fprintf(stderr,
               "resbm-generate: %lld prompt tokens, %lld new on %s (%lld threads, %s): first in "
               "%.3f s, then %.1f tokens/s; model from step %lld of %s\n",
               static_cast<long long>(stats.prompt_tokens),
               static_cast<long long>(stats.new_tokens), device.c_str(),
               static_cast<long long>(threads), no_cache ? "no cache" : "KV cache",
               stats.prefill_seconds, decode_rate, static_cast<long long>(loaded->model.step()),
               loaded->model.job_id().c_str());
  return 0;
}
