// A link cut without a word: the worker of stage 1 runs in a network namespace whose veth is
// set down mid-job, so its packets vanish (no reset, no error). The coordinator notices when
// the worker's heartbeat lapses (the recovery names it), cancels the step, recovers onto a
// spare worker before the links' keepalive could have noticed (15 s; about 4 s on an idle
// machine), and the job ends with exactly the uninterrupted run's losses.
// Skipped where network namespaces cannot be made (not root, no iproute2, no CAP_NET_ADMIN).
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/job_config.h"
#include "gtest/gtest.h"
#include "tests/testing/job_files.h"
#include "tests/testing/process_cluster.h"
#include "tests/testing/wait_for.h"

namespace resbm::testing {
namespace {

constexpr char kIp[] = "/usr/sbin/ip";
// Shorter than the 5 s default so that a lapse (2-3 s after the cut) always comes before the
// links' keepalive could notice (5-15 s): the test sees which of the two recovered the job.
constexpr absl::Duration kHeartbeatTimeout = absl::Seconds(3);

bool Run(const std::string& command) { return std::system((command + " 2>&1").c_str()) == 0; }

// A namespace joined to this one by a veth pair: host_ip here, ns_ip inside. Removed (with
// both ends of the pair) on destruction.
class NetworkNamespace {
 public:
  NetworkNamespace() {
    const int id = static_cast<int>(::getpid() % 200) + 20;
    name_ = absl::StrCat("resbm-cut-", ::getpid());
    host_if_ = absl::StrCat("rch", ::getpid() % 100000);
    host_ip_ = absl::StrCat("10.231.", id, ".1");
    ns_ip_ = absl::StrCat("10.231.", id, ".2");
    const std::string ns_if = absl::StrCat("rcn", ::getpid() % 100000);
    const std::string in_ns = absl::StrCat(kIp, " netns exec ", name_, " ", kIp);
    ok_ = ::geteuid() == 0 && ::access(kIp, X_OK) == 0 &&
          Run(absl::StrCat(kIp, " netns add ", name_)) &&
          Run(absl::StrCat(kIp, " link add ", host_if_, " type veth peer name ", ns_if)) &&
          Run(absl::StrCat(kIp, " link set ", ns_if, " netns ", name_)) &&
          Run(absl::StrCat(kIp, " addr add ", host_ip_, "/30 dev ", host_if_)) &&
          Run(absl::StrCat(kIp, " link set ", host_if_, " up")) &&
          Run(absl::StrCat(in_ns, " addr add ", ns_ip_, "/30 dev ", ns_if)) &&
          Run(absl::StrCat(in_ns, " link set ", ns_if, " up")) &&
          Run(absl::StrCat(in_ns, " link set lo up"));
  }
  ~NetworkNamespace() {
    Run(absl::StrCat(kIp, " link del ", host_if_, " >/dev/null"));
    Run(absl::StrCat(kIp, " netns del ", name_, " >/dev/null"));
  }

  bool ok() const { return ok_; }
  const std::string& host_ip() const { return host_ip_; }
  const std::string& ns_ip() const { return ns_ip_; }
  std::vector<std::string> exec_prefix() const { return {kIp, "netns", "exec", name_}; }
  // The link goes down: from now on nothing crosses it, in either direction.
  bool Cut() const { return Run(absl::StrCat(kIp, " link set ", host_if_, " down")); }

 private:
  bool ok_ = false;
  std::string name_, host_if_, host_ip_, ns_ip_;
};

TEST(CutLinkTest, ACutLinkIsRecoveredWhenTheHeartbeatLapses) {
  NetworkNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot make a network namespace here (needs root and ip)";
  ProcessCluster cluster(::testing::TempDir() + "/resbm_cut_" + std::to_string(::getpid()));
  cluster.set_host(ns.host_ip());
  const std::string config = cluster.dir() + "/job.json";
  std::ofstream(config) << TwoStageJobJson("cut", 200, 100, 5);
  const auto expected = ReferenceLosses(config, cluster.dir());
  ASSERT_EQ(expected.size(), 200u);

  ASSERT_TRUE(cluster
                  .StartCoordinator({absl::StrCat("--heartbeat-timeout-ms=",
                                                  absl::ToInt64Milliseconds(kHeartbeatTimeout))})
                  .ok())
      << cluster.Logs();
  auto inside = cluster.StartWorker(ns.exec_prefix(), ns.ns_ip());
  ASSERT_TRUE(inside.ok()) << inside.status();
  ASSERT_TRUE(cluster.StartWorker().ok());
  auto submitted = cluster.client().Submit(*LoadJobConfigFile(config));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job_id();
  ASSERT_TRUE(cluster.WaitForJob(
      job_id, [&](const v1::Job& job) { return job.progress().checkpoint_step() >= 30; },
      absl::Seconds(120)))
      << cluster.Logs();
  auto running = cluster.client().Get(job_id);
  ASSERT_TRUE(running.ok());
  EXPECT_NE(absl::StrJoin(running->stage_addresses(), ",").find(ns.ns_ip()), std::string::npos)
      << "the namespaced worker holds a stage";
  auto spare = cluster.StartWorker();
  ASSERT_TRUE(spare.ok());
  ASSERT_TRUE(
      WaitFor([&] { return cluster.worker(*spare).Log().find("registered") != std::string::npos; },
              absl::Seconds(30)))
      << cluster.Logs();

  ASSERT_TRUE(ns.Cut());
  const absl::Time cut = absl::Now();
  ASSERT_TRUE(cluster.WaitForJob(
      job_id, [&](const v1::Job& job) { return job.progress().recoveries() >= 1; },
      absl::Seconds(60)))
      << cluster.Logs();
  const absl::Duration recovered = absl::Now() - cut;
  std::printf("cut link: recovered %.1f s after the cut (heartbeat timeout %.0f s)\n",
              absl::ToDoubleSeconds(recovered), absl::ToDoubleSeconds(kHeartbeatTimeout));
  // A stated bound, not a race: the keepalive's worst case (10 s ping + 5 s timeout). The
  // cause check below is what tells the heartbeat from the keepalive.
  EXPECT_LT(recovered, absl::Seconds(15)) << cluster.Logs();

  auto ended = cluster.client().WaitForEnd(job_id, absl::Seconds(240));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message() << cluster.Logs();
  EXPECT_EQ(ended->progress().recoveries(), 1u);
  ASSERT_GE(ended->progress().recent_recoveries_size(), 1);
  EXPECT_NE(ended->progress().recent_recoveries(0).message().find("heartbeat lapsed"),
            std::string::npos)
      << ended->progress().recent_recoveries(0).message();
  ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), expected);
}

}  // namespace
}  // namespace resbm::testing
