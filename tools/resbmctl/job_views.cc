#include "tools/resbmctl/job_views.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/train/progress_line.h"

namespace resbm {
namespace {

// Where the job's parameters start (config.init), for people.
std::string InitSource(const v1::InitConfig& init) {
  if (init.has_from_model()) return "model " + init.from_model();
  if (init.has_from_checkpoint()) {
    return absl::StrCat("checkpoint ", init.from_checkpoint(),
                        init.carry_optimizer_state() ? " (with its optimizer state)" : "");
  }
  if (init.has_from_job()) return "job " + init.from_job();
  return "-";
}

// Left-aligned columns, two spaces apart.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string Loss(double loss) { return absl::StrFormat("%.4f", loss); }

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(unix_ms),
                          absl::UTCTimeZone());
}

}  // namespace

std::string JobStateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  const std::string prefix = "JOB_STATE_";
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

std::string JobsTable(const std::vector<v1::Job>& jobs) {
  std::vector<std::vector<std::string>> rows = {{"JOB", "NAME", "OWNER", "PRIO", "STATE", "STEP",
                                                 "LOSS", "VAL", "TOK/S", "RECOV", "MESSAGE"}};
  for (const auto& job : jobs) {
    const auto& p = job.progress();
    rows.push_back(
        {job.job_id(), job.config().name().empty() ? "-" : job.config().name(),
         job.owner().empty() ? "-" : job.owner(), absl::StrCat(job.priority()),
         JobStateName(job.state()), absl::StrCat(p.step(), "/", p.total_steps()),
         p.step() > 0 ? Loss(p.train_loss()) : "-", p.has_val_loss() ? Loss(p.val_loss()) : "-",
         p.tokens_per_second() > 0 ? absl::StrFormat("%.0f", p.tokens_per_second()) : "-",
         absl::StrCat(p.recoveries()), job.message()});
  }
  return Table(rows);
}

std::string JobDetail(const v1::Job& job) {
  const auto& p = job.progress();
  const auto& c = job.config();
  std::vector<std::vector<std::string>> rows = {
      {"job:", job.job_id()},
      {"name:", c.name().empty() ? "-" : c.name()},
      {"owner:", job.owner().empty() ? "- (open job API)" : job.owner()},
      {"priority:", absl::StrCat(job.priority())},
      {"state:", JobStateName(job.state())},
      {"message:", job.message().empty() ? "-" : job.message()},
      {"model:", absl::StrCat("d_model ", c.model().d_model(), ", ", c.model().n_layers(),
                              " layers, ", c.stages().num_stages(), " stages, ",
                              v1::CompressionKind_Name(c.compression().kind()), " ratio ",
                              c.compression().ratio())},
      {"step:", absl::StrCat(p.step(), "/", p.total_steps())},
      {"train loss:", p.step() > 0 ? Loss(p.train_loss()) : "-"},
      {"val loss:", p.has_val_loss() ? Loss(p.val_loss()) : "-"},
      {"tokens/s:", absl::StrFormat("%.0f", p.tokens_per_second())},
      {"checkpoint:",
       p.has_checkpoint_step() ? absl::StrCat("after step ", p.checkpoint_step()) : "-"},
      {"final model:", job.has_final_checkpoint_step()
                           ? absl::StrCat("after step ", job.final_checkpoint_step(), ": ",
                                          job.final_checkpoint_manifest(), " (resbmctl export ",
                                          job.job_id(), " --out DIR)")
                           : "-"},
      {"starts from:", InitSource(c.init())},
      {"initial val:", p.has_initial_val_loss() ? Loss(p.initial_val_loss()) : "-"},
      {"recoveries:", absl::StrCat(p.recoveries(), " (", p.recoveries_without_progress(),
                                   " since the last new "
                                   "checkpoint; the limit is ",
                                   c.training().max_recoveries_without_progress(), ")")},
      {"resumes:", absl::StrCat(p.resumes())},
      {"stages:", job.stage_addresses().empty() ? "-" : absl::StrJoin(job.stage_addresses(), " ")},
      {"submitted:", FormatTime(job.submitted_unix_ms())},
      {"started:", FormatTime(job.started_unix_ms())},
      {"finished:", FormatTime(job.finished_unix_ms())},
      {"outputs:", job.output_dir()}};
  // The last recoveries, newest last: when they were, what failed and why.
  for (const v1::RecoveryRecord& r : p.recent_recoveries()) {
    rows.push_back(
        {"recovered:",
         absl::StrCat(FormatTime(r.unix_ms()), " step ", r.step(), " ", r.code(),
                      r.cause() == v1::FAILURE_CAUSE_UNSPECIFIED
                          ? ""
                          : absl::StrCat(" (", v1::FailureCause_Name(r.cause()).substr(14), ")"),
                      ", resumed after step ", r.resumed_after(), ": ", r.message())});
  }
  return Table(rows);
}

std::string ClusterTable(const v1::ClusterStatus& status) {
  std::vector<std::vector<std::string>> rows = {
      {"WORKER", "ADDRESS", "DEVICE", "HEALTH", "SEEN", "JOB", "STAGE", "REPLICA"}};
  for (const auto& w : status.workers()) {
    rows.push_back({w.worker_id(), w.address(), w.device(), w.healthy() ? "healthy" : "lost",
                    absl::StrFormat("%.1fs ago", w.last_seen_ms_ago() / 1000.0),
                    w.job_id().empty() ? "-" : w.job_id(),
                    w.assigned() ? absl::StrCat(w.stage()) : "-",
                    w.assigned() ? absl::StrCat(w.replica()) : "-"});
  }
  std::vector<std::vector<std::string>> jobs = {
      {"JOB", "STATE", "OWNER", "PRIO", "WORKERS", "MESSAGE"}};
  for (const auto& j : status.jobs()) {
    jobs.push_back({j.job_id(), JobStateName(j.state()), j.owner().empty() ? "-" : j.owner(),
                    absl::StrCat(j.priority()),
                    absl::StrCat(j.workers_held(), "/", j.workers_needed()),
                    j.message().empty() ? "-" : j.message()});
  }
  return absl::StrCat(Table(rows), "\n", Table(jobs), "idle workers: ", status.idle_workers(),
                      ", queued jobs: ", status.queued_jobs(), "\n");
}

std::string ProgressBar(const v1::Job& job, int width) {
  const auto& p = job.progress();
  const double fraction =
      p.total_steps() > 0 ? std::min(1.0, static_cast<double>(p.step()) / p.total_steps()) : 0.0;
  const int filled = static_cast<int>(std::lround(fraction * width));
  std::string bar = absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '-'),
                                 "] ", job.job_id(), " step ", p.step(), "/", p.total_steps());
  if (p.step() > 0) absl::StrAppend(&bar, "  loss ", Loss(p.train_loss()));
  if (p.has_val_loss()) absl::StrAppend(&bar, "  val ", Loss(p.val_loss()));
  if (p.tokens_per_second() > 0) {
    absl::StrAppend(&bar, absl::StrFormat("  %.0f tok/s  ETA %s", p.tokens_per_second(),
                                          ProgressLine::FormatDuration(p.eta_seconds())));
  }
  if (job.state() != v1::JOB_STATE_RUNNING) absl::StrAppend(&bar, "  ", JobStateName(job.state()));
  return bar;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

}  // namespace resbm
