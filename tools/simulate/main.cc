// resbm-simulate: the pipeline simulator (SimulateSchedule) on the command line, for the
// studies' projections: per-stage compute times and a link model in, the step time, tokens/s
// and bubble out, as JSON. One spec object or an array of them (answered in order):
//
//   {"schedule": "gpipe" | "1f1b", "microbatches": 4,
//    "forward_seconds": [per stage, one microbatch], "backward_seconds": [...],
//    "link": {"latency_seconds": 0.05, "bytes_per_second": 1e7,   (0: unlimited)
//             "forward_bytes": 262144, "backward_bytes": 262144},  (one microbatch's frame)
//    "tokens_per_step": 2048,
//    "step_overhead_seconds": 0.1}   (outside the schedule: optimizer, control RPCs)
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

absl::StatusOr<std::vector<double>> Times(const json& spec, const std::string& field) {
  if (!spec.contains(field) || !spec.at(field).is_array() || spec.at(field).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": missing or empty; expected seconds per stage, e.g. [0.05, 0.05]"));
  }
  std::vector<double> times;
  for (const json& value : spec.at(field)) {
    if (!value.is_number() || value.get<double>() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", value.dump(), "; expected seconds >= 0"));
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
  auto forward = Times(spec, "forward_seconds");
  if (!forward.ok()) return forward.status();
  auto backward = Times(spec, "backward_seconds");
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

  auto schedule = resbm::MakePipelineSchedule(kind, static_cast<int64_t>(forward->size()),
                                              microbatches.get<int64_t>());
  if (!schedule.ok()) return schedule.status();
  auto timeline = resbm::SimulateSchedule(*schedule, *forward, *backward, link);
  if (!timeline.ok()) return timeline.status();

  const double step_seconds = timeline->makespan_seconds + *overhead;
  double idle = 0;
  for (double s : timeline->idle_seconds) idle += s;
  const double stages = static_cast<double>(forward->size());
  json result = {{"schedule", schedule_name},
                 {"makespan_seconds", timeline->makespan_seconds},
                 {"step_seconds", step_seconds},
                 {"bubble_fraction", idle / (stages * timeline->makespan_seconds)},
                 {"idle_seconds", timeline->idle_seconds},
                 {"busy_seconds", timeline->busy_seconds}};
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
