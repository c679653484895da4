#include "common/train/progress_line.h"

#include <unistd.h>

#include <cmath>

#include "absl/strings/str_format.h"

namespace resbm {

ProgressLine::ProgressLine(std::FILE* out, int64_t total_steps, double interval_seconds)
    : out_(out),
      total_steps_(total_steps),
      interval_seconds_(interval_seconds),
      terminal_(::isatty(::fileno(out)) != 0) {}

std::string ProgressLine::FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

void ProgressLine::Update(int64_t steps_done, double loss, double val_loss,
                          double tokens_per_second, double elapsed_seconds, bool force) {
  const bool due = terminal_ ? elapsed_seconds - last_print_ >= 0.2
                             : elapsed_seconds - last_print_ >= interval_seconds_;
  if (!force && !due) return;
  last_print_ = elapsed_seconds;
  const int64_t timed = steps_done - start_step_;
  const double eta = timed > 0 ? elapsed_seconds / timed * (total_steps_ - steps_done) : -1.0;
  std::string line =
      absl::StrFormat("step %d/%d | loss %.4f | val %s | %.0f tok/s | ETA %s", steps_done,
                      total_steps_, loss, val_loss >= 0 ? absl::StrFormat("%.4f", val_loss) : "-",
                      tokens_per_second, FormatDuration(eta));
  if (terminal_) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void ProgressLine::Finish() {
  if (terminal_) std::fprintf(out_, "\n");
  std::fflush(out_);
}

}  // namespace resbm
