// resbm-simulate: the pipeline simulator (SimulateSchedule) on the command line, for the
// studies' projections: per-stage compute times and a link model in, the step time, tokens/s
// and bubble out, as JSON. One spec object or an array of them (answered in order):
//
//   {"schedule": "gpipe" | "1f1b", "microbatches": 4,
//    "forward_seconds": [per stage, one microbatch], "backward_seconds": [...],
//    "link": {"latency_seconds": 0.05, "bytes_per_second": 1e7,   (0: unlimited)
//             "forward_bytes": 262144, "backward_bytes": 262144},  (one microbatch's frame)
//    "tokens_per_step": 2048,
//    "step_overhead_seconds": 0.1,   (outside the schedule: optimizer, control RPCs)
//    "replicas": 2,                  (pipelines; the step's microbatches dealt to them)
//    "all_reduce": {"bytes": [per stage: its gradients], "bytes_per_second": 1e7,
//                   "latency_seconds": 0.05}}  (the replicas' links; default: "link"'s)
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/runtime/flag_parser.h"
#include "common/schedule/pipeline_schedule.h"
#include "common/schedule/replica_cost.h"

namespace {

using nlohmann::json;

absl::StatusOr<double> NonNegative(const json& object, const std::string& field, double fallback) {
  if (!object.contains(field)) return fallback;
  const json& value = object.at(field);
  if (!value.is_number() || value.get<double>() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", value.dump(), "; expected a number >= 0"));
  }
  return value.get<double>();
}

// One number >= 0 per stage, in `unit`s.
absl::StatusOr<std::vector<double>> PerStage(const json& spec, const std::string& field,
                                             const std::string& unit) {
  if (!spec.contains(field) || !spec.at(field).is_array() || spec.at(field).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": missing or empty; expected ", unit, " per stage, e.g. [5, 5]"));
  }
  std::vector<double> times;
  for (const json& value : spec.at(field)) {
    if (!value.is_number() || value.get<double>() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", value.dump(), "; expected ", unit, " >= 0"));
    }
    times.push_back(value.get<double>());
  }
  return times;
}

absl::StatusOr<json> Simulate(const json& spec) {
  if (!spec.is_object()) return absl::InvalidArgumentError("spec: not a JSON object");
  const std::string schedule_name = spec.value("schedule", std::string("gpipe"));
  if (schedule_name != "gpipe" && schedule_name != "1f1b") {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule: '", schedule_name, "'; expected gpipe or 1f1b"));
  }
  const auto kind =
      schedule_name == "1f1b" ? resbm::ScheduleKind::k1F1B : resbm::ScheduleKind::kGpipe;
  auto forward = PerStage(spec, "forward_seconds", "seconds");
  if (!forward.ok()) return forward.status();
  auto backward = PerStage(spec, "backward_seconds", "seconds");
  if (!backward.ok()) return backward.status();
  if (forward->size() != backward->size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backward_seconds: ", backward->size(), " stages; forward_seconds has ", forward->size()));
  }
  const json& microbatches = spec.value("microbatches", json(1));
  if (!microbatches.is_number_integer() || microbatches.get<int64_t>() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("microbatches: ", microbatches.dump(), "; expected an integer >= 1"));
  }
  const json link_json = spec.value("link", json::object());
  resbm::LinkModel link;
  auto latency = NonNegative(link_json, "latency_seconds", 0);
  auto rate = NonNegative(link_json, "bytes_per_second", 0);
  auto forward_bytes = NonNegative(link_json, "forward_bytes", 0);
  auto backward_bytes = NonNegative(link_json, "backward_bytes", 0);
  auto tokens = NonNegative(spec, "tokens_per_step", 0);
  auto overhead = NonNegative(spec, "step_overhead_seconds", 0);
  for (const auto* value : {&latency, &rate, &forward_bytes, &backward_bytes, &tokens, &overhead}) {
    if (!value->ok()) return value->status();
  }
  link.latency_seconds = *latency;
  link.bytes_per_second = *rate;
  link.forward_bytes = *forward_bytes;
  link.backward_bytes = *backward_bytes;

  const json& replicas_json = spec.value("replicas", json(1));
  if (!replicas_json.is_number_integer() || replicas_json.get<int64_t>() < 1 ||
      replicas_json.get<int64_t>() > microbatches.get<int64_t>()) {
    return absl::InvalidArgumentError(absl::StrCat("replicas: ", replicas_json.dump(),
                                                   "; expected an integer in 1..microbatches"));
  }
  const int64_t replicas = replicas_json.get<int64_t>();
  // The pipeline with the largest share of the step sets its pace.
  const int64_t per_pipeline = (microbatches.get<int64_t>() + replicas - 1) / replicas;
  auto schedule =
      resbm::MakePipelineSchedule(kind, static_cast<int64_t>(forward->size()), per_pipeline);
  if (!schedule.ok()) return schedule.status();
  auto timeline = resbm::SimulateSchedule(*schedule, *forward, *backward, link);
  if (!timeline.ok()) return timeline.status();
  std::vector<double> all_reduce(forward->size(), 0.0);
  if (replicas > 1) {
    const json reduce_json = spec.value("all_reduce", json::object());
    auto gradient_bytes = PerStage(reduce_json, "bytes", "gradient bytes");
    if (!gradient_bytes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("all_reduce.", gradient_bytes.status().message()));
    }
    if (gradient_bytes->size() != forward->size()) {
      return absl::InvalidArgumentError(absl::StrCat("all_reduce.bytes: ", gradient_bytes->size(),
                                                     " stages; forward_seconds has ",
                                                     forward->size()));
    }
    auto reduce_rate = NonNegative(reduce_json, "bytes_per_second", link.bytes_per_second);
    auto reduce_latency = NonNegative(reduce_json, "latency_seconds", link.latency_seconds);
    if (!reduce_rate.ok()) return reduce_rate.status();
    if (!reduce_latency.ok()) return reduce_latency.status();
    for (size_t s = 0; s < all_reduce.size(); ++s) {
      auto seconds = resbm::RingAllReduceSeconds(replicas, (*gradient_bytes)[s], *reduce_rate,
                                                 *reduce_latency);
      if (!seconds.ok()) return seconds.status();
      all_reduce[s] = *seconds;
    }
  }
  auto with_reduce = resbm::StepWithAllReduceSeconds(*timeline, all_reduce);
  if (!with_reduce.ok()) return with_reduce.status();

  const double step_seconds = *with_reduce + *overhead;
  double idle = 0;
  for (double s : timeline->idle_seconds) idle += s;
  const double stages = static_cast<double>(forward->size());
  json result = {{"schedule", schedule_name},
                 {"makespan_seconds", timeline->makespan_seconds},
                 {"step_seconds", step_seconds},
                 {"bubble_fraction", idle / (stages * timeline->makespan_seconds)},
                 {"idle_seconds", timeline->idle_seconds},
                 {"busy_seconds", timeline->busy_seconds},
                 {"replicas", replicas},
                 {"pipeline_microbatches", per_pipeline},
                 {"all_reduce_seconds", all_reduce}};
  if (*tokens > 0 && step_seconds > 0) result["tokens_per_second"] = *tokens / step_seconds;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::string spec_path = "-";
  resbm::FlagParser flags("resbm-simulate",
                          "Simulates pipeline steps (GPipe, 1F1B) over a rate-limited link.");
  flags.AddString("spec", &spec_path, "JSON spec file, or - for stdin");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  std::stringstream text;
  if (spec_path == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(spec_path);
    if (!in) {
      std::fprintf(stderr, "resbm-simulate: --spec: cannot open '%s'\n", spec_path.c_str());
      return 2;
    }
    text << in.rdbuf();
  }
  const json input = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded()) {
    std::fprintf(stderr, "resbm-simulate: --spec: not valid JSON\n");
    return 2;
  }
  const bool many = input.is_array();
  json output = json::array();
  for (size_t i = 0; i < (many ? input.size() : 1); ++i) {
    auto result = Simulate(many ? input.at(i) : input);
    if (!result.ok()) {
      std::fprintf(stderr, "resbm-simulate: spec %zu: %s\n", i,
                   std::string(result.status().message()).c_str());
      return 1;
    }
    output.push_back(*result);
  }
  std::printf("%s\n", (many ? output : output.at(0)).dump(2).c_str());
  return 0;
}
