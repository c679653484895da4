// MakePipelineSchedule: the pure microbatch schedule generator for pipeline-parallel training
// (GPipe and non-interleaved 1F1B), with a validator, an event simulation that reports the
// makespan and per-stage bubble time, and debug formatting.
// Pure functions and value types; thread-safe.
#ifndef RESBM_COMMON_SCHEDULE_PIPELINE_SCHEDULE_H_
#define RESBM_COMMON_SCHEDULE_PIPELINE_SCHEDULE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace resbm {

// Largest inputs MakePipelineSchedule and SimulateSchedule accept (sanity limits).
inline constexpr int64_t kMaxPipelineStages = 4096;
inline constexpr int64_t kMaxPipelineMicrobatches = 1000000;
// Bound on num_stages * num_microbatches (the schedule holds two ops for each).
inline constexpr int64_t kMaxPipelineStageMicrobatches = 10000000;

enum class ScheduleKind {
  // Every stage runs all forwards F0..F(m-1), then all backwards B(m-1)..B0.
  kGpipe,
  // PipeDream-flush / Megatron non-interleaved: a warmup of forwards, then one forward and one
  // backward alternately, then the remaining backwards. At most min(p - s, m) microbatches are
  // in flight on stage s, against m for GPipe.
  k1F1B,
};

enum class OpKind { kForward, kBackward };

// One unit of work on one stage: the forward or backward pass of one microbatch.
struct PipelineOp {
  OpKind kind = OpKind::kForward;
  int64_t microbatch = 0;

  bool operator==(const PipelineOp& other) const {
    return kind == other.kind && microbatch == other.microbatch;
  }
  bool operator!=(const PipelineOp& other) const { return !(*this == other); }
};

// The ordered list of ops each stage executes within one optimizer step.
struct PipelineSchedule {
  ScheduleKind kind = ScheduleKind::kGpipe;
  int64_t num_stages = 0;
  int64_t num_microbatches = 0;
  std::vector<std::vector<PipelineOp>> stage_ops;  // [stage][i], executed in order.
};

// Builds the schedule of `kind` for `num_stages` (1..kMaxPipelineStages) stages and
// `num_microbatches` (1..kMaxPipelineMicrobatches) microbatches. 1F1B on stage s runs
// w = min(p - s - 1, m) warmup forwards F0..F(w-1), then F(w+i) B(i) for i in [0, m - w),
// then the cooldown backwards B(m-w)..B(m-1); the last stage alternates F(i) B(i).
// Errors are InvalidArgument naming the value.
absl::StatusOr<PipelineSchedule> MakePipelineSchedule(ScheduleKind kind, int64_t num_stages,
                                                      int64_t num_microbatches);

// The largest number of microbatches whose forward has run but whose backward has not, on
// `stage`, over its op list: the number of activations the stage must hold at once. Returns 0
// for a stage outside [0, s.stage_ops.size()).
int64_t MaxInFlight(const PipelineSchedule& s, int64_t stage);

// Checks that `s` is executable. InvalidArgument (naming the stage and op) unless the sizes are
// in range and every stage runs F and B of every microbatch exactly once; FailedPrecondition
// (naming the stuck stages and the ops they wait on) when the list orders deadlock, which
// includes a stage running B(m) before its own F(m). Uses SimulateSchedule with unit times.
absl::Status ValidatePipelineSchedule(const PipelineSchedule& s);

// The simulated execution of one schedule. busy + idle == makespan on every stage.
struct ScheduleTimeline {
  double makespan_seconds = 0;       // From the first op's start to the last op's end.
  std::vector<double> busy_seconds;  // [stage]: time spent running ops.
  std::vector<double> idle_seconds;  // [stage]: makespan - busy, the pipeline bubble.
  std::vector<double> end_seconds;   // [stage]: when its last op ends.
};

// Simulates `s`: each op takes forward_seconds[stage] or backward_seconds[stage]; F(s, m) starts
// after F(s-1, m), B(s, m) after B(s+1, m) (on the last stage, after its own F(m)), each
// cross-stage hop adding `link_seconds`; a stage runs its ops strictly in list order and starts
// each as soon as the previous op and the dependency are done. Errors: InvalidArgument for a
// malformed schedule, a vector whose size is not num_stages, or a negative or non-finite time;
// FailedPrecondition on deadlock, naming the stuck stages.
absl::StatusOr<ScheduleTimeline> SimulateSchedule(const PipelineSchedule& s,
                                                  const std::vector<double>& forward_seconds,
                                                  const std::vector<double>& backward_seconds,
                                                  double link_seconds);

// A boundary link between neighbouring stages, the same for every boundary, each direction
// independent (full duplex). A frame occupies its direction for bytes / bytes_per_second, one
// frame at a time in send order, then arrives `latency_seconds` later.
struct LinkModel {
  double latency_seconds = 0;
  double bytes_per_second = 0;  // 0: unlimited (no serialization).
  double forward_bytes = 0;     // One microbatch's activation frame.
  double backward_bytes = 0;    // One microbatch's gradient frame.
};

// As SimulateSchedule above, with frames that queue on a link of limited rate. Errors as
// above, plus InvalidArgument naming a negative or non-finite link field.
absl::StatusOr<ScheduleTimeline> SimulateSchedule(const PipelineSchedule& s,
                                                  const std::vector<double>& forward_seconds,
                                                  const std::vector<double>& backward_seconds,
                                                  const LinkModel& link);

// The textbook bubble fraction (p - 1) / (m + p - 1) of GPipe and 1F1B with uniform stages and
// no link latency. Returns 0 when either argument is below 1.
double TheoreticalBubbleFraction(int64_t num_stages, int64_t num_microbatches);

// "gpipe" or "1f1b" ("unknown" for a value outside the enum).
std::string ScheduleKindName(ScheduleKind kind);

// One line per stage, for debugging and docs: "stage 0: F0 F1 B1 B0\nstage 1: ...\n".
std::string FormatSchedule(const PipelineSchedule& s);

}  // namespace resbm

#endif  // RESBM_COMMON_SCHEDULE_PIPELINE_SCHEDULE_H_
