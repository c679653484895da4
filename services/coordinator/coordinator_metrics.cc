#include "services/coordinator/coordinator_metrics.h"

#include <utility>

#include "absl/strings/ascii.h"

namespace resbm {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      jobs_(BuildGauge().Name("resbm_jobs").Help("Jobs by state").Register(*registry_)),
      workers_(BuildGauge()
                   .Name("resbm_workers")
                   .Help("Registered stage workers by health")
                   .Register(*registry_)),
      step_seconds_(
          BuildHistogram()
              .Name("resbm_step_seconds")
              .Help("Wall seconds of one optimizer step of the running job, "
                    "evaluation and checkpoint included")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                               2.5, 5, 10, 30, 60})),
      job_step_(BuildGauge()
                    .Name("resbm_job_step")
                    .Help("The last optimizer step a running job completed")
                    .Register(*registry_)),
      tokens_per_second_(BuildGauge()
                             .Name("resbm_tokens_per_second")
                             .Help("Training tokens per second of a running job")
                             .Register(*registry_)),
      train_loss_(BuildGauge()
                      .Name("resbm_train_loss")
                      .Help("Training loss of a running job's last step (nats per token)")
                      .Register(*registry_)),
      val_loss_(BuildGauge()
                    .Name("resbm_val_loss")
                    .Help("Last validation loss of a running job (nats per token)")
                    .Register(*registry_)),
      steps_(BuildCounter()
                 .Name("resbm_steps_total")
                 .Help("Optimizer steps completed (replayed ones again)")
                 .Register(*registry_)
                 .Add({})),
      recoveries_(BuildCounter()
                      .Name("resbm_recoveries_total")
                      .Help("Failed steps recovered from, by the failure's status code")
                      .Register(*registry_)),
      resumes_(BuildCounter()
                   .Name("resbm_job_resumes_total")
                   .Help("Jobs resumed after a coordinator restart")
                   .Register(*registry_)
                   .Add({})),
      checkpoint_seconds_(
          BuildHistogram()
              .Name("resbm_checkpoint_seconds")
              .Help("Seconds to write one complete checkpoint (every stage)")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                                               5, 10, 30})),
      checkpoint_bytes_(BuildCounter()
                            .Name("resbm_checkpoint_bytes_total")
                            .Help("Bytes of checkpoint files written by every stage")
                            .Register(*registry_)
                            .Add({})),
      waited_on_(BuildGauge()
                     .Name("resbm_step_waited_on_stage")
                     .Help("The stage whose part of a running job's last step ended last")
                     .Register(*registry_)),
      replica_refusals_(BuildCounter()
                            .Name("resbm_replica_refusals_total")
                            .Help("Replicas refused because their parameters disagreed with "
                                  "their stage's other replicas (rebuilt from a peer)")
                            .Register(*registry_)
                            .Add({})) {
  for (const char* health : {"healthy", "lost"}) workers_.Add({{"health", health}});
}

void CoordinatorMetrics::SetJobs(const std::map<std::string, int64_t>& jobs_by_state) {
  for (const auto& [state, count] : jobs_by_state) {
    jobs_.Add({{"state", state}}).Set(static_cast<double>(count));
  }
}

void CoordinatorMetrics::SetWorkers(int64_t healthy, int64_t lost) {
  workers_.Add({{"health", "healthy"}}).Set(static_cast<double>(healthy));
  workers_.Add({{"health", "lost"}}).Set(static_cast<double>(lost));
}

void CoordinatorMetrics::StepDone(const std::string& job_id, int64_t step, double seconds,
                                  double tokens_per_second, double train_loss) {
  step_seconds_.Observe(seconds);
  job_step_.Add({{"job_id", job_id}}).Set(static_cast<double>(step));
  tokens_per_second_.Add({{"job_id", job_id}}).Set(tokens_per_second);
  train_loss_.Add({{"job_id", job_id}}).Set(train_loss);
  steps_.Increment();
}

void CoordinatorMetrics::Evaluated(const std::string& job_id, double val_loss) {
  val_loss_.Add({{"job_id", job_id}}).Set(val_loss);
}

void CoordinatorMetrics::JobEnded(const std::string& job_id) {
  for (prometheus::Family<prometheus::Gauge>* family :
       {&job_step_, &tokens_per_second_, &train_loss_, &val_loss_, &waited_on_}) {
    // Add returns the existing series (or a new one), which Remove then drops.
    family->Remove(&family->Add({{"job_id", job_id}}));
  }
}

void CoordinatorMetrics::Recovered(const absl::Status& failure) {
  recoveries_.Add({{"cause", absl::AsciiStrToLower(absl::StatusCodeToString(failure.code()))}})
      .Increment();
}

void CoordinatorMetrics::Resumed() { resumes_.Increment(); }

void CoordinatorMetrics::Checkpointed(double seconds, int64_t bytes) {
  checkpoint_seconds_.Observe(seconds);
  checkpoint_bytes_.Increment(static_cast<double>(bytes));
}

void CoordinatorMetrics::WaitedOn(const std::string& job_id, int64_t stage) {
  waited_on_.Add({{"job_id", job_id}}).Set(static_cast<double>(stage));
}

void CoordinatorMetrics::ReplicasRefused(int64_t count) {
  replica_refusals_.Increment(static_cast<double>(count));
}

}  // namespace resbm
