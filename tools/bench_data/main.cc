// bench_data: what opening a large token-shard set costs the coordinator. In one run, over the
// same generated llm.c shards (default 4 GiB), it measures (a) TokenDataset::FromTokenShards,
// which leaves the tokens on disk and preads each sampled window, and (b) reading every shard
// into one vector, as the loader did before: seconds to open, resident memory after, and
// microseconds per sampled batch; it prints each side by side with the ratio.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/hash.h"
#include "common/data/batch_sampler.h"
#include "common/data/token_dataset.h"
#include "common/data/token_shard.h"
#include "common/runtime/flag_parser.h"
#include "common/status/status_macros.h"

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

struct Options {
  std::string dir;
  int64_t gib = 4;
  int64_t shard_mib = 256;
  int64_t vocab = 50257;
  int64_t batches = 200;
  int64_t batch = 32;
  int64_t seq_len = 256;
  bool drop_caches = false;
};

// One field of /proc/self/status ("VmRSS", "VmHWM") in MiB.
double ProcStatusMiB(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  }
  return -1.0;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Empties the page cache so the next open reads the disk, as a fresh machine would. False when
// this process may not (not root, or a container).
bool DropCaches() {
  std::ofstream out("/proc/sys/vm/drop_caches");
  out << "3\n";
  return out.good();
}

// Writes the shards unless files of the expected size are there already; returns their paths
// (the last one is the validation split, the rest train).
absl::StatusOr<std::vector<std::string>> EnsureShards(const Options& o) {
  const int64_t shard_tokens = o.shard_mib * kMiB / 2;
  const int64_t count = o.gib * 1024 / o.shard_mib;
  std::vector<std::string> paths;
  std::vector<uint16_t> tokens;
  const auto start = std::chrono::steady_clock::now();
  int64_t written = 0;
  for (int64_t s = 0; s <= count; ++s) {  // `count` train shards and one val shard.
    const std::string path = absl::StrCat(o.dir, "/shard_", s, ".bin");
    paths.push_back(path);
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 &&
        st.st_size == resbm::kTokenShardHeaderBytes + 2 * shard_tokens) {
      continue;
    }
    tokens.resize(static_cast<size_t>(shard_tokens));
    for (int64_t i = 0; i < shard_tokens; ++i) {
      tokens[i] = static_cast<uint16_t>(
          resbm::SplitMix64(static_cast<uint64_t>(s * shard_tokens + i)) % o.vocab);
    }
    RESBM_RETURN_IF_ERROR(resbm::WriteTokenShard(path, tokens));
    ++written;
  }
  if (written > 0) {
    std::printf("generated %lld shards of %lld MiB in %.1f s\n", static_cast<long long>(written),
                static_cast<long long>(o.shard_mib), SecondsSince(start));
  }
  return paths;
}

struct Side {
  double open_seconds = 0.0;
  double rss_mib = 0.0;  // Resident after the open, before sampling.
  double us_per_batch = 0.0;
};

absl::StatusOr<double> TimeSampling(const resbm::TokenStream* tokens, const Options& o) {
  resbm::BatchSampler sampler(tokens, o.seq_len, 1337);
  std::vector<int64_t> x, y;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < o.batches; ++b) {
    RESBM_RETURN_IF_ERROR(sampler.Sample(b, 0, o.batch, &x, &y));
  }
  return SecondsSince(start) * 1e6 / static_cast<double>(o.batches);
}

absl::StatusOr<Side> MeasureStreamed(const std::vector<std::string>& paths, const Options& o) {
  Side side;
  const auto start = std::chrono::steady_clock::now();
  RESBM_ASSIGN_OR_RETURN(resbm::TokenDataset data,
                         resbm::TokenDataset::FromTokenShards({paths.begin(), paths.end() - 1},
                                                              {paths.back()}, o.vocab));
  side.open_seconds = SecondsSince(start);
  side.rss_mib = ProcStatusMiB("VmRSS");
  RESBM_ASSIGN_OR_RETURN(side.us_per_batch, TimeSampling(&data.train(), o));
  return side;
}

// The loader before streaming: every train shard read and checked into one vector.
absl::StatusOr<Side> MeasureInMemory(const std::vector<std::string>& paths, const Options& o) {
  Side side;
  const auto start = std::chrono::steady_clock::now();
  std::vector<uint16_t> all;
  for (size_t i = 0; i + 1 < paths.size(); ++i) {
    RESBM_ASSIGN_OR_RETURN(std::vector<uint16_t> tokens, resbm::ReadTokenShard(paths[i]));
    for (uint16_t t : tokens) {
      if (t >= o.vocab) return absl::InvalidArgumentError(absl::StrCat(paths[i], ": bad token"));
    }
    all.insert(all.end(), tokens.begin(), tokens.end());
  }
  const resbm::TokenStream stream = resbm::TokenStream::InMemory(std::move(all));
  side.open_seconds = SecondsSince(start);
  side.rss_mib = ProcStatusMiB("VmRSS");
  RESBM_ASSIGN_OR_RETURN(side.us_per_batch, TimeSampling(&stream, o));
  return side;
}

absl::Status Run(const Options& o) {
  RESBM_ASSIGN_OR_RETURN(const std::vector<std::string> paths, EnsureShards(o));
  const bool cold = o.drop_caches && DropCaches();
  std::printf(
      "bench_data: %zu train shards of %lld MiB (%lld GiB) + 1 val shard | %lld batches of %lld "
      "x %lld tokens | page cache %s\n",
      paths.size() - 1, static_cast<long long>(o.shard_mib), static_cast<long long>(o.gib),
      static_cast<long long>(o.batches), static_cast<long long>(o.batch),
      static_cast<long long>(o.seq_len),
      cold ? "dropped before each side (cold)" : "as the generation left it (warm)");
  const double rss_before = ProcStatusMiB("VmRSS");
  RESBM_ASSIGN_OR_RETURN(const Side streamed, MeasureStreamed(paths, o));
  if (cold) DropCaches();
  RESBM_ASSIGN_OR_RETURN(const Side memory, MeasureInMemory(paths, o));
  std::printf("  %-28s %12s %12s %8s\n", "", "streamed", "in memory", "ratio");
  std::printf("  %-28s %12.3f %12.3f %8.4f\n", "open (s)", streamed.open_seconds,
              memory.open_seconds, streamed.open_seconds / memory.open_seconds);
  std::printf("  %-28s %12.1f %12.1f %8.4f\n", "resident after open (MiB)", streamed.rss_mib,
              memory.rss_mib, streamed.rss_mib / memory.rss_mib);
  std::printf("  %-28s %12.1f %12.1f %8.2f\n", "sampling (us per batch)", streamed.us_per_batch,
              memory.us_per_batch, streamed.us_per_batch / memory.us_per_batch);
  std::printf("  resident before either: %.1f MiB\n", rss_before);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  resbm::FlagParser flags("bench_data",
                          "opening a generated multi-GiB token-shard set: streamed "
                          "(TokenDataset) vs read into memory, side by side.");
  flags.AddString("dir", &o.dir, "where the shards are generated (reused when present)");
  flags.AddInt("gib", &o.gib, "GiB of train shards");
  flags.AddInt("shard_mib", &o.shard_mib, "MiB per shard (llm.c's are ~190)");
  flags.AddInt("vocab", &o.vocab, "vocabulary size of the generated tokens");
  flags.AddInt("batches", &o.batches, "batches sampled per side");
  flags.AddInt("batch", &o.batch, "rows per batch");
  flags.AddInt("seq_len", &o.seq_len, "tokens per row");
  flags.AddBool("drop_caches", &o.drop_caches, "empty the page cache before each side (root)");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (o.dir.empty() || o.gib < 1 || o.shard_mib < 1 || o.shard_mib > 4095 ||
      o.gib * 1024 < o.shard_mib || o.vocab < 1 || o.vocab > 65536 || o.batches < 1 ||
      o.batch < 1 || o.seq_len < 1) {
    std::fprintf(stderr,
                 "bench_data: --dir is required; --gib >= 1, --shard_mib in [1, 4095] and at "
                 "most --gib * 1024, --vocab in [1, 65536], --batches, --batch, --seq_len >= 1\n");
    return 2;
  }
  if (absl::Status status = Run(o); !status.ok()) {
    std::fprintf(stderr, "bench_data: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
