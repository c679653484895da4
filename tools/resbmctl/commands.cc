#include "tools/resbmctl/commands.h"

#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/modelio/model_exporter.h"
#include "common/runtime/flag_parser.h"
#include "common/runtime/shutdown_signal.h"
#include "common/transport/transport_security.h"
#include "tools/resbmctl/follow_job.h"
#include "tools/resbmctl/job_client.h"
#include "tools/resbmctl/job_views.h"
#include "tools/resbmctl/local_cluster.h"

namespace resbm {
namespace {

constexpr char kDefaultCoordinator[] = "127.0.0.1:7070";

int ExitCode(const absl::Status& status) {
  if (status.ok()) return 0;
  if (status.code() == absl::StatusCode::kCancelled) return 130;
  if (status.code() == absl::StatusCode::kInvalidArgument ||
      status.code() == absl::StatusCode::kNotFound ||
      status.code() == absl::StatusCode::kFailedPrecondition) {
    return 2;
  }
  return 1;
}

int Fail(const std::string& command, const absl::Status& status) {
  std::fprintf(stderr, "resbmctl %s: %s: %s\n", command.c_str(),
               absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return ExitCode(status);
}

std::string SelfDirectory() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  path[n] = '\0';
  return std::filesystem::path(path).parent_path().string();
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// The flags every API command shares, and the positional arguments it takes.
struct ApiCommand {
  std::string name;
  std::string coordinator;
  bool json = false;
  std::vector<std::string> args;
  TransportSecurityOptions security;
  std::string token;
  FlagParser flags;

  ApiCommand(const std::string& command, const std::string& summary, int max_args,
             const std::string& args_usage)
      : name(command), flags("resbmctl " + command, summary) {
    coordinator = Env("RESBM_COORDINATOR");
    if (coordinator.empty()) coordinator = kDefaultCoordinator;
    security.plaintext = Env("RESBM_PLAINTEXT") == "1";
    security.ca_file = Env("RESBM_TLS_CA");
    security.cert_file = Env("RESBM_TLS_CERT");
    security.key_file = Env("RESBM_TLS_KEY");
    token = Env("RESBM_TOKEN");
    flags.AddString("coordinator", &coordinator,
                    "host:port of the coordinator (default from $RESBM_COORDINATOR)");
    flags.AddBool("json", &json, "print JSON (the API's messages) instead of tables");
    flags.AddString("tls-ca", &security.ca_file,
                    "CA bundle (PEM) the coordinator's certificate must chain to "
                    "(default from $RESBM_TLS_CA)");
    flags.AddString("tls-cert", &security.cert_file,
                    "client certificate (PEM) to present, optional ($RESBM_TLS_CERT)");
    flags.AddString("tls-key", &security.key_file, "its private key ($RESBM_TLS_KEY)");
    flags.AddBool("plaintext", &security.plaintext,
                  "no TLS: only for a coordinator on this machine or a trusted network "
                  "($RESBM_PLAINTEXT=1)");
    flags.AddString("token", &token,
                    "bearer token of the job API; prefer $RESBM_TOKEN (a flag shows in ps)");
    if (max_args > 0) flags.AcceptPositional(&args, max_args, args_usage);
  }

  // Parses and connects; returns -1 to go on, else the exit code (help printed, or bad
  // usage).
  int Parse(int argc, char** argv, int required_args) {
    if (int code = ParseFlags(argc, argv, required_args); code >= 0) return code;
    return Connect();
  }

  // Parse without connecting (for commands that may not need the coordinator).
  int ParseFlags(int argc, char** argv, int required_args) {
    if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
    if (static_cast<int>(args.size()) < required_args) {
      std::fprintf(stderr, "resbmctl %s: missing argument; usage:\n%s", name.c_str(),
                   flags.Usage().c_str());
      return 2;
    }
    return -1;
  }

  int Connect() {
    auto loaded = TransportSecurity::Load(security, /*server=*/false);
    if (!loaded.ok()) return Fail(name, loaded.status());
    client_ = std::make_unique<JobClient>(coordinator, absl::Seconds(15),
                                          JobClientAuth{loaded->ChannelCredentials(), token});
    return -1;
  }

  // After a successful Parse.
  JobClient& client() { return *client_; }

 private:
  std::unique_ptr<JobClient> client_;
};

void PrintJob(const ApiCommand& command, const v1::Job& job) {
  std::printf("%s", command.json ? (ToJson(job) + "\n").c_str() : JobDetail(job).c_str());
}

int Submit(int argc, char** argv) {
  ApiCommand command("submit",
                     "Submits the job in FILE (JSON, or textproto for .textproto/.pbtxt) and "
                     "prints it; --watch follows it to the end.",
                     1, "FILE");
  int64_t steps = 0, stages = 0, seed = 0, replicas = 0, priority = 0;
  bool watch = false;
  command.flags.AddInt("steps", &steps, "override training.steps");
  command.flags.AddInt("stages", &stages, "override stages.num_stages");
  command.flags.AddInt("replicas", &replicas,
                       "override stages.replicas (pipelines, each a worker per stage)");
  command.flags.AddInt("seed", &seed, "override training.seed");
  command.flags.AddBool("watch", &watch, "follow the job until it ends");
  command.flags.AddInt("priority", &priority,
                       "higher starts first among queued jobs (default 0; may be negative)");
  if (int code = command.Parse(argc, argv, 1); code >= 0) return code;
  if (priority < INT32_MIN || priority > INT32_MAX) {
    return Fail(command.name, absl::InvalidArgumentError(absl::StrCat(
                                  "--priority: ", priority, "; expected a 32-bit integer")));
  }
  JobOverrides overrides;
  if (command.flags.WasSet("steps")) overrides.steps = steps;
  if (command.flags.WasSet("stages")) overrides.stages = stages;
  if (command.flags.WasSet("seed")) overrides.seed = seed;
  if (command.flags.WasSet("replicas")) overrides.replicas = replicas;
  auto config = LoadJobConfigWithOverrides(command.args[0], overrides);
  if (!config.ok()) return Fail(command.name, config.status());
  JobClient& client = command.client();
  auto job = client.Submit(*config, static_cast<int32_t>(priority));
  if (!job.ok()) return Fail(command.name, job.status());
  if (!watch) {
    PrintJob(command, *job);
    return 0;
  }
  if (!command.json) std::printf("submitted %s\n", job->job_id().c_str());
  auto ended = FollowJob(client, job->job_id(), command.json);
  if (!ended.ok()) return Fail(command.name, ended.status());
  return ended->state() == v1::JOB_STATE_SUCCEEDED ? 0 : 1;
}

int Get(int argc, char** argv) {
  ApiCommand command("get", "Prints one job.", 1, "JOB_ID");
  if (int code = command.Parse(argc, argv, 1); code >= 0) return code;
  auto job = command.client().Get(command.args[0]);
  if (!job.ok()) return Fail(command.name, job.status());
  PrintJob(command, *job);
  return 0;
}

int List(int argc, char** argv) {
  ApiCommand command("list", "Lists every job, oldest first.", 0, "");
  if (int code = command.Parse(argc, argv, 0); code >= 0) return code;
  auto jobs = command.client().List();
  if (!jobs.ok()) return Fail(command.name, jobs.status());
  if (command.json) {
    v1::ListJobsResponse list;
    for (const auto& job : *jobs) *list.add_jobs() = job;
    std::printf("%s\n", ToJson(list).c_str());
  } else {
    std::printf("%s", JobsTable(*jobs).c_str());
  }
  return 0;
}

int Cancel(int argc, char** argv) {
  ApiCommand command("cancel",
                     "Cancels a job: a queued one at once, a running one before its next step "
                     "(waits for that unless --no-wait).",
                     1, "JOB_ID");
  bool no_wait = false;
  command.flags.AddBool("no-wait", &no_wait, "return without waiting for the job to stop");
  if (int code = command.Parse(argc, argv, 1); code >= 0) return code;
  JobClient& client = command.client();
  auto job = client.Cancel(command.args[0]);
  if (!job.ok()) return Fail(command.name, job.status());
  if (!no_wait && !JobEnded(*job)) job = client.WaitForEnd(job->job_id(), absl::Minutes(10));
  if (!job.ok()) return Fail(command.name, job.status());
  PrintJob(command, *job);
  return 0;
}

int Watch(int argc, char** argv) {
  ApiCommand command("watch",
                     "Follows a job until it ends: a live progress bar (loss, tokens/s, ETA).", 1,
                     "JOB_ID");
  if (int code = command.Parse(argc, argv, 1); code >= 0) return code;
  JobClient& client = command.client();
  auto job = FollowJob(client, command.args[0], command.json);
  if (!job.ok()) return Fail(command.name, job.status());
  if (!command.json && !job->message().empty() && job->state() != v1::JOB_STATE_SUCCEEDED) {
    std::printf("%s: %s\n", JobStateName(job->state()).c_str(), job->message().c_str());
  }
  return job->state() == v1::JOB_STATE_SUCCEEDED ? 0 : 1;
}

int Cluster(int argc, char** argv) {
  ApiCommand command("cluster", "Shows the workers, their health and stages, and the queue.", 0,
                     "");
  if (int code = command.Parse(argc, argv, 0); code >= 0) return code;
  auto status = command.client().ClusterStatus();
  if (!status.ok()) return Fail(command.name, status.status());
  std::printf("%s",
              command.json ? (ToJson(*status) + "\n").c_str() : ClusterTable(*status).c_str());
  return 0;
}

std::string DescribeExport(const v1::ExportInfo& info, const std::string& dir) {
  std::string text = absl::StrCat("exported ", info.job_id().empty() ? "" : info.job_id() + " ",
                                  "after step ", info.step(), ": ", info.tensors(), " tensors, ",
                                  info.parameters(), " parameters\n");
  for (const auto& file : info.files()) {
    absl::StrAppend(&text, "  ", dir, "/", file.name(), "  ", file.size(), " bytes\n");
  }
  return text;
}

int Export(int argc, char** argv) {
  ApiCommand command("export",
                     "Writes a trained model as DIR/model.safetensors and DIR/config.json: an "
                     "ended job's (through the job API: its final checkpoint, or the last "
                     "complete one of a job that failed), or a checkpoint's on this machine "
                     "(--checkpoint, e.g. what resbm-train wrote).",
                     1, "[JOB_ID]");
  std::string out, checkpoint;
  command.flags.AddString("out", &out, "directory to write the model into (required)");
  command.flags.AddString("checkpoint", &checkpoint,
                          "a checkpoint manifest or its directory (resbm-train --checkpoint-dir): "
                          "export it here, without a coordinator");
  if (int code = command.ParseFlags(argc, argv, 0); code >= 0) return code;
  if (out.empty()) return Fail(command.name, absl::InvalidArgumentError("--out: required"));
  if (command.args.empty() == checkpoint.empty()) {
    return Fail(command.name,
                absl::InvalidArgumentError("expected either JOB_ID (through the coordinator) or "
                                           "--checkpoint MANIFEST (on this machine), not both"));
  }
  v1::ExportInfo info;
  if (!checkpoint.empty()) {
    auto result = ModelExporter::Export(checkpoint, out);
    if (!result.ok()) return Fail(command.name, result.status());
    info.set_step(static_cast<uint64_t>(result->step));
    info.set_tensors(static_cast<uint32_t>(result->tensors));
    info.set_parameters(static_cast<uint64_t>(result->parameters));
    for (const auto& [name, size] : result->files) {
      auto* file = info.add_files();
      file->set_name(name);
      file->set_size(static_cast<uint64_t>(size));
    }
  } else {
    if (int code = command.Connect(); code >= 0) return code;
    auto exported = command.client().ExportModel(command.args[0], out);
    if (!exported.ok()) return Fail(command.name, exported.status());
    info = *exported;
    info.set_job_id(command.args[0]);
  }
  std::printf("%s",
              command.json ? (ToJson(info) + "\n").c_str() : DescribeExport(info, out).c_str());
  return 0;
}

int Local(int argc, char** argv) {
  LocalClusterOptions options;
  options.bin_dir = SelfDirectory();
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  FlagParser flags("resbmctl local",
                   "Starts a coordinator and one stage worker per stage (plus spares) as "
                   "processes on loopback, submits the job through the job API, follows it "
                   "with a live progress bar, and stops them.");
  flags.AddString("config", &options.config_path, "job config file (default: the default job)");
  flags.AddInt("stages", &options.stages, "override stages.num_stages");
  flags.AddInt("steps", &options.steps, "override training.steps");
  flags.AddInt("replicas", &options.replicas,
               "override stages.replicas (pipelines; one worker per stage of each)");
  flags.AddInt("spare-workers", &options.spare_workers,
               "extra workers that take over a stage whose worker dies");
  flags.AddString("summary-json", &options.summary_json, "where to copy the run summary");
  flags.AddString("loss-csv", &options.loss_csv, "where to copy the loss curve");
  flags.AddString("export-dir", &options.export_dir,
                  "where to export the trained model (model.safetensors, config.json); empty: "
                  "not exported");
  flags.AddString("log-dir", &options.log_dir,
                  "the processes' logs and the coordinator's data (data/, wiped at start)");
  options.threads_per_worker = 0;
  flags.AddInt("threads-per-worker", &options.threads_per_worker,
               "intra-op threads per worker (0: cores / workers, at least 1)");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (options.threads_per_worker <= 0) {
    const int64_t workers =
        (options.stages > 0 ? options.stages : 4) * std::max<int64_t>(1, options.replicas);
    options.threads_per_worker = std::max<int64_t>(1, cores / workers);
  }
  auto status = RunLocalCluster(options);
  if (status.code() == absl::StatusCode::kCancelled) {
    std::fprintf(stderr, "resbmctl local: %s; every process stopped\n",
                 std::string(status.message()).c_str());
    return 130;
  }
  if (!status.ok()) return Fail("local", status);
  return 0;
}

int Usage(std::FILE* out) {
  std::fprintf(out,
               "usage: resbmctl <command> [flags]\n\ncommands:\n"
               "  submit FILE   submit a job (JSON or textproto); --watch to follow it\n"
               "  get JOB_ID    show a job\n"
               "  list          list the jobs\n"
               "  cancel JOB_ID cancel a job\n"
               "  watch JOB_ID  follow a job: progress bar with loss, tokens/s, ETA\n"
               "  cluster       workers, their health and stages\n"
               "  export JOB_ID write a job's trained model (--out DIR; or --checkpoint)\n"
               "  local         run a job on a coordinator and workers started on this machine\n"
               "\nresbmctl <command> --help for its flags. The coordinator address comes from\n"
               "--coordinator or $RESBM_COORDINATOR (default %s).\n",
               kDefaultCoordinator);
  return out == stdout ? 0 : 2;
}

}  // namespace

int RunResbmctl(int argc, char** argv) {
  if (argc < 2) return Usage(stderr);
  const std::string command = argv[1];
  static const std::map<std::string, std::function<int(int, char**)>> kCommands = {
      {"submit", Submit}, {"get", Get},         {"list", List},   {"cancel", Cancel},
      {"watch", Watch},   {"cluster", Cluster}, {"local", Local}, {"export", Export},
  };
  if (auto it = kCommands.find(command); it != kCommands.end()) {
    return it->second(argc - 1, argv + 1);
  }
  if (command == "--help" || command == "-h" || command == "help") return Usage(stdout);
  std::fprintf(stderr, "resbmctl: unknown command '%s'\n", command.c_str());
  return Usage(stderr);
}

}  // namespace resbm
