#include "common/schedule/pipeline_schedule.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

// How many stuck stages a deadlock message lists before summarising the rest.
constexpr int64_t kMaxStuckStagesReported = 8;

std::string OpName(const PipelineOp& op) {
  const char* letter = op.kind == OpKind::kForward ? "F" : op.kind == OpKind::kBackward ? "B" : "?";
  return absl::StrCat(letter, op.microbatch);
}

absl::Status CheckSizes(int64_t num_stages, int64_t num_microbatches) {
  if (num_stages < 1 || num_stages > kMaxPipelineStages) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_stages: ", num_stages, "; expected 1..", kMaxPipelineStages));
  }
  if (num_microbatches < 1 || num_microbatches > kMaxPipelineMicrobatches) {
    return absl::InvalidArgumentError(absl::StrCat("num_microbatches: ", num_microbatches,
                                                   "; expected 1..", kMaxPipelineMicrobatches));
  }
  // Each limit alone still allows billions of ops; the product bounds the memory a schedule
  // (two ops per stage and microbatch) can take.
  if (num_stages * num_microbatches > kMaxPipelineStageMicrobatches) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_stages x num_microbatches: ", num_stages, " x ", num_microbatches, " = ",
        num_stages * num_microbatches, "; expected at most ", kMaxPipelineStageMicrobatches));
  }
  return absl::OkStatus();
}

// Sizes in range, one op list per stage, and every stage runs F and B of every microbatch
// exactly once. Order is left to the simulation.
absl::Status CheckStructure(const PipelineSchedule& s) {
  RESBM_RETURN_IF_ERROR(CheckSizes(s.num_stages, s.num_microbatches));
  if (static_cast<int64_t>(s.stage_ops.size()) != s.num_stages) {
    return absl::InvalidArgumentError(absl::StrCat("stage_ops has ", s.stage_ops.size(),
                                                   " lists; expected one per stage (", s.num_stages,
                                                   ")"));
  }
  const int64_t m = s.num_microbatches;
  std::vector<char> seen_forward(m);
  std::vector<char> seen_backward(m);
  for (int64_t stage = 0; stage < s.num_stages; ++stage) {
    std::fill(seen_forward.begin(), seen_forward.end(), 0);
    std::fill(seen_backward.begin(), seen_backward.end(), 0);
    const std::vector<PipelineOp>& ops = s.stage_ops[stage];
    for (size_t i = 0; i < ops.size(); ++i) {
      const PipelineOp& op = ops[i];
      if (op.kind != OpKind::kForward && op.kind != OpKind::kBackward) {
        return absl::InvalidArgumentError(absl::StrCat("stage ", stage, " op ", i, ": kind ",
                                                       static_cast<int>(op.kind),
                                                       "; expected kForward or kBackward"));
      }
      if (op.microbatch < 0 || op.microbatch >= m) {
        return absl::InvalidArgumentError(absl::StrCat("stage ", stage, " op ", i, " (", OpName(op),
                                                       "): microbatch ", op.microbatch,
                                                       "; expected 0..", m - 1));
      }
      std::vector<char>& seen = op.kind == OpKind::kForward ? seen_forward : seen_backward;
      if (seen[op.microbatch]) {
        return absl::InvalidArgumentError(absl::StrCat("stage ", stage, " op ", i, " (", OpName(op),
                                                       "): duplicate; expected exactly once"));
      }
      seen[op.microbatch] = 1;
    }
    for (int64_t mb = 0; mb < m; ++mb) {
      for (OpKind kind : {OpKind::kForward, OpKind::kBackward}) {
        const std::vector<char>& seen = kind == OpKind::kForward ? seen_forward : seen_backward;
        if (!seen[mb]) {
          return absl::InvalidArgumentError(
              absl::StrCat("stage ", stage, ": missing ", OpName(PipelineOp{kind, mb}),
                           "; expected F and B of every microbatch exactly once"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTimes(const char* name, const std::vector<double>& seconds, int64_t num_stages) {
  if (static_cast<int64_t>(seconds.size()) != num_stages) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has ", seconds.size(), " entries; expected one per stage (", num_stages, ")"));
  }
  for (size_t i = 0; i < seconds.size(); ++i) {
    if (!std::isfinite(seconds[i]) || seconds[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "[", i, "]: ", seconds[i], "; expected a finite value >= 0"));
    }
  }
  return absl::OkStatus();
}

// The op that must finish before `op` can start on `stage`, if any.
struct Dependency {
  bool exists = false;
  int64_t stage = 0;
  PipelineOp op;
  bool crosses_link = false;
};

Dependency DependencyOf(const PipelineOp& op, int64_t stage, int64_t num_stages) {
  if (op.kind == OpKind::kForward) {
    if (stage == 0) return Dependency{};
    return Dependency{true, stage - 1, op, true};
  }
  if (stage == num_stages - 1) {
    return Dependency{true, stage, PipelineOp{OpKind::kForward, op.microbatch}, false};
  }
  return Dependency{true, stage + 1, op, true};
}

// Event simulation of a structurally valid schedule. Each op starts at the later of its
// stage's previous op's end and its dependency's end (plus `link_seconds` across stages). A
// worklist of stages is advanced until empty; a stage that still has ops then is stuck.
absl::Status CheckNoneStuck(const PipelineSchedule& s, const std::vector<size_t>& next);

absl::StatusOr<ScheduleTimeline> SimulateChecked(const PipelineSchedule& s,
                                                 const std::vector<double>& forward_seconds,
                                                 const std::vector<double>& backward_seconds,
                                                 const LinkModel& link) {
  const int64_t p = s.num_stages;
  const int64_t m = s.num_microbatches;
  // [boundary * 2 + direction]: when that link direction is free again. A consumer takes its
  // frames in the order the producer sent them (both run microbatches in increasing order
  // per direction), so computing transfers in consumer order serializes them correctly.
  std::vector<double> link_free(2 * std::max<int64_t>(p - 1, 0), 0.0);
  auto arrival = [&](const PipelineOp& op, int64_t consumer, double sent) {
    if (link.bytes_per_second <= 0) return sent + link.latency_seconds;
    const bool forward = op.kind == OpKind::kForward;
    const int64_t boundary = forward ? consumer - 1 : consumer;
    double& free = link_free[boundary * 2 + (forward ? 0 : 1)];
    const double start = std::max(free, sent);
    free = start + (forward ? link.forward_bytes : link.backward_bytes) / link.bytes_per_second;
    return free + link.latency_seconds;
  };
  // End time of F / B of microbatch mb on stage st at [st * m + mb]; -1 until it has run.
  std::vector<double> forward_end(p * m, -1.0);
  std::vector<double> backward_end(p * m, -1.0);
  auto end_of = [&](int64_t stage, const PipelineOp& op) -> double& {
    return (op.kind == OpKind::kForward ? forward_end : backward_end)[stage * m + op.microbatch];
  };

  std::vector<size_t> next(p, 0);         // [stage]: index of its next op to run.
  std::vector<double> stage_end(p, 0.0);  // [stage]: end time of its last op so far.
  ScheduleTimeline timeline;
  timeline.busy_seconds.assign(p, 0.0);
  std::vector<int64_t> work(p);
  std::vector<char> queued(p, 1);
  for (int64_t st = 0; st < p; ++st) work[st] = p - 1 - st;  // Pops stage 0 first.
  auto wake = [&](int64_t stage) {
    if (stage >= 0 && stage < p && !queued[stage]) {
      queued[stage] = 1;
      work.push_back(stage);
    }
  };

  while (!work.empty()) {
    const int64_t st = work.back();
    work.pop_back();
    queued[st] = 0;
    const std::vector<PipelineOp>& ops = s.stage_ops[st];
    while (next[st] < ops.size()) {
      const PipelineOp& op = ops[next[st]];
      double ready = 0.0;
      const Dependency dep = DependencyOf(op, st, p);
      if (dep.exists) {
        const double dep_end = end_of(dep.stage, dep.op);
        if (dep_end < 0) break;  // Not run yet; running it wakes this stage again.
        ready = dep.crosses_link ? arrival(op, st, dep_end) : dep_end;
      }
      const double duration =
          op.kind == OpKind::kForward ? forward_seconds[st] : backward_seconds[st];
      const double end = std::max(stage_end[st], ready) + duration;
      end_of(st, op) = end;
      stage_end[st] = end;
      timeline.busy_seconds[st] += duration;
      ++next[st];
      wake(op.kind == OpKind::kForward ? st + 1 : st - 1);
    }
  }

  RESBM_RETURN_IF_ERROR(CheckNoneStuck(s, next));
  timeline.makespan_seconds = *std::max_element(stage_end.begin(), stage_end.end());
  timeline.end_seconds = stage_end;
  timeline.idle_seconds.resize(p);
  for (int64_t st = 0; st < p; ++st) {
    timeline.idle_seconds[st] = timeline.makespan_seconds - timeline.busy_seconds[st];
  }
  return timeline;
}

// FAILED_PRECONDITION naming the stages whose next op (`next`) never became runnable.
absl::Status CheckNoneStuck(const PipelineSchedule& s, const std::vector<size_t>& next) {
  const int64_t p = s.num_stages;
  std::string stuck;
  int64_t num_stuck = 0;
  for (int64_t st = 0; st < p; ++st) {
    if (next[st] == s.stage_ops[st].size()) continue;
    if (++num_stuck > kMaxStuckStagesReported) continue;
    const PipelineOp& op = s.stage_ops[st][next[st]];
    const Dependency dep = DependencyOf(op, st, p);
    absl::StrAppend(&stuck, num_stuck > 1 ? "; " : "", "stage ", st, " blocked at op ", next[st],
                    " (", OpName(op), ") waiting for ", OpName(dep.op), " on stage ", dep.stage);
  }
  if (num_stuck == 0) return absl::OkStatus();
  if (num_stuck > kMaxStuckStagesReported) {
    absl::StrAppend(&stuck, "; and ", num_stuck - kMaxStuckStagesReported, " more stages");
  }
  return absl::FailedPreconditionError(
      absl::StrCat("schedule deadlocks (", num_stuck, " of ", p, " stages stuck): ", stuck));
}

}  // namespace

absl::StatusOr<PipelineSchedule> MakePipelineSchedule(ScheduleKind kind, int64_t num_stages,
                                                      int64_t num_microbatches) {
  if (kind != ScheduleKind::kGpipe && kind != ScheduleKind::k1F1B) {
    return absl::InvalidArgumentError(
        absl::StrCat("kind: ", static_cast<int>(kind), "; expected kGpipe or k1F1B"));
  }
  RESBM_RETURN_IF_ERROR(CheckSizes(num_stages, num_microbatches));
  const int64_t m = num_microbatches;
  PipelineSchedule schedule{kind, num_stages, m, {}};
  schedule.stage_ops.resize(num_stages);
  for (int64_t stage = 0; stage < num_stages; ++stage) {
    std::vector<PipelineOp>& ops = schedule.stage_ops[stage];
    ops.reserve(2 * m);
    auto forward = [&ops](int64_t mb) { ops.push_back(PipelineOp{OpKind::kForward, mb}); };
    auto backward = [&ops](int64_t mb) { ops.push_back(PipelineOp{OpKind::kBackward, mb}); };
    if (kind == ScheduleKind::kGpipe) {
      for (int64_t mb = 0; mb < m; ++mb) forward(mb);
      for (int64_t mb = m - 1; mb >= 0; --mb) backward(mb);
      continue;
    }
    const int64_t num_warmup = std::min(num_stages - stage - 1, m);
    const int64_t num_steady = m - num_warmup;
    for (int64_t mb = 0; mb < num_warmup; ++mb) forward(mb);
    for (int64_t i = 0; i < num_steady; ++i) {
      forward(num_warmup + i);
      backward(i);
    }
    for (int64_t mb = num_steady; mb < m; ++mb) backward(mb);
  }
  return schedule;
}

int64_t MaxInFlight(const PipelineSchedule& s, int64_t stage) {
  if (stage < 0 || stage >= static_cast<int64_t>(s.stage_ops.size())) return 0;
  int64_t in_flight = 0;
  int64_t max_in_flight = 0;
  for (const PipelineOp& op : s.stage_ops[stage]) {
    in_flight += op.kind == OpKind::kForward ? 1 : -1;
    max_in_flight = std::max(max_in_flight, in_flight);
  }
  return max_in_flight;
}

absl::Status ValidatePipelineSchedule(const PipelineSchedule& s) {
  RESBM_RETURN_IF_ERROR(CheckStructure(s));
  const std::vector<double> unit(s.num_stages, 1.0);
  return SimulateChecked(s, unit, unit, LinkModel{}).status();
}

absl::StatusOr<ScheduleTimeline> SimulateSchedule(const PipelineSchedule& s,
                                                  const std::vector<double>& forward_seconds,
                                                  const std::vector<double>& backward_seconds,
                                                  double link_seconds) {
  RESBM_RETURN_IF_ERROR(CheckStructure(s));
  RESBM_RETURN_IF_ERROR(CheckTimes("forward_seconds", forward_seconds, s.num_stages));
  RESBM_RETURN_IF_ERROR(CheckTimes("backward_seconds", backward_seconds, s.num_stages));
  if (!std::isfinite(link_seconds) || link_seconds < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("link_seconds: ", link_seconds, "; expected a finite value >= 0"));
  }
  LinkModel link;
  link.latency_seconds = link_seconds;
  return SimulateChecked(s, forward_seconds, backward_seconds, link);
}

absl::StatusOr<ScheduleTimeline> SimulateSchedule(const PipelineSchedule& s,
                                                  const std::vector<double>& forward_seconds,
                                                  const std::vector<double>& backward_seconds,
                                                  const LinkModel& link) {
  RESBM_RETURN_IF_ERROR(CheckStructure(s));
  RESBM_RETURN_IF_ERROR(CheckTimes("forward_seconds", forward_seconds, s.num_stages));
  RESBM_RETURN_IF_ERROR(CheckTimes("backward_seconds", backward_seconds, s.num_stages));
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"link.latency_seconds", link.latency_seconds},
        {"link.bytes_per_second", link.bytes_per_second},
        {"link.forward_bytes", link.forward_bytes},
        {"link.backward_bytes", link.backward_bytes}}) {
    if (!std::isfinite(value) || value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": ", value, "; expected a finite value >= 0"));
    }
  }
  return SimulateChecked(s, forward_seconds, backward_seconds, link);
}

double TheoreticalBubbleFraction(int64_t num_stages, int64_t num_microbatches) {
  if (num_stages < 1 || num_microbatches < 1) return 0.0;
  return static_cast<double>(num_stages - 1) /
         static_cast<double>(num_microbatches + num_stages - 1);
}

std::string ScheduleKindName(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kGpipe:
      return "gpipe";
    case ScheduleKind::k1F1B:
      return "1f1b";
  }
  return "unknown";
}

std::string FormatSchedule(const PipelineSchedule& s) {
  std::string out;
  for (size_t stage = 0; stage < s.stage_ops.size(); ++stage) {
    absl::StrAppend(&out, "stage ", stage, ":");
    for (const PipelineOp& op : s.stage_ops[stage]) absl::StrAppend(&out, " ", OpName(op));
    out.push_back('\n');
  }
  return out;
}

}  // namespace resbm
