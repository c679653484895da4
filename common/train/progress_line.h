// ProgressLine: the live progress display of a training run ("step 120/300 | loss 2.13 |
// val 2.21 | 5,432 tok/s | ETA 1m10s"). On a terminal it redraws one line; otherwise it
// prints a line at most every `interval_seconds` and at the end. Not thread-safe.
#ifndef RESBM_COMMON_TRAIN_PROGRESS_LINE_H_
#define RESBM_COMMON_TRAIN_PROGRESS_LINE_H_

#include <cstdint>
#include <cstdio>
#include <string>

namespace resbm {

class ProgressLine {
 public:
  // `out` is not owned and must outlive this object.
  ProgressLine(std::FILE* out, int64_t total_steps, double interval_seconds);

  // The run resumed after `steps`: the ETA counts only the steps timed since.
  void set_start_step(int64_t steps) { start_step_ = steps; }

  // Reports completed step `steps_done` (1-based); val_loss < 0 means none yet.
  void Update(int64_t steps_done, double loss, double val_loss, double tokens_per_second,
              double elapsed_seconds, bool force);
  // Ends the redrawn line.
  void Finish();

  static std::string FormatDuration(double seconds);

 private:
  std::FILE* out_;
  int64_t total_steps_;
  int64_t start_step_ = 0;
  double interval_seconds_;
  bool terminal_;
  double last_print_ = -1e9;
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_PROGRESS_LINE_H_
