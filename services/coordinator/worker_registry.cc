#include "services/coordinator/worker_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace resbm {

WorkerRegistry::WorkerRegistry(absl::Duration timeout, std::function<absl::Time()> clock)
    : timeout_(timeout), clock_(std::move(clock)) {}

std::string WorkerRegistry::Register(const std::string& address, const std::string& device,
                                     const std::string& exchange_address) {
  const std::string& exchange = exchange_address.empty() ? address : exchange_address;
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    auto worker = std::find_if(workers_.begin(), workers_.end(),
                               [&](const Worker& w) { return w.address == address; });
    if (worker == workers_.end()) {
      Worker added;
      added.id = absl::StrCat("worker-", next_id_++);
      added.address = address;
      workers_.push_back(std::move(added));
      worker = std::prev(workers_.end());
    }
    worker->exchange_address = exchange;
    worker->device = device;
    worker->last_seen = clock_();
    worker->suspect = false;
    id = worker->id;
    changed_.SignalAll();
  }
  TellAvailable();
  return id;
}

absl::Status WorkerRegistry::Heartbeat(const std::string& id, const std::string& address) {
  bool revived = false;
  {
    absl::MutexLock lock(&mu_);
    auto worker = std::find_if(workers_.begin(), workers_.end(), [&](const Worker& w) {
      return w.id == id && (address.empty() || w.address == address);
    });
    if (worker == workers_.end()) {
      return absl::NotFoundError(absl::StrCat("worker_id: '", id, "' is not registered",
                                              address.empty() ? "" : " at ", address));
    }
    revived = !IsHealthy(*worker);
    worker->last_seen = clock_();
    worker->suspect = false;
    changed_.SignalAll();
  }
  if (revived) TellAvailable();
  return absl::OkStatus();
}

std::vector<WorkerRegistry::Worker> WorkerRegistry::HealthyLocked() const {
  std::vector<Worker> healthy;
  for (const auto& worker : workers_) {
    if (IsHealthy(worker)) healthy.push_back(worker);
  }
  return healthy;
}

std::vector<WorkerRegistry::Worker> WorkerRegistry::All() const {
  absl::MutexLock lock(&mu_);
  return workers_;
}

std::vector<WorkerRegistry::Worker> WorkerRegistry::Healthy() const {
  absl::MutexLock lock(&mu_);
  return HealthyLocked();
}

std::vector<size_t> WorkerRegistry::AvailableLocked(const std::string& job_id) const {
  std::vector<size_t> held, idle;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!IsHealthy(workers_[i])) continue;
    if (workers_[i].job_id == job_id) held.push_back(i);
    if (workers_[i].job_id.empty()) idle.push_back(i);
  }
  held.insert(held.end(), idle.begin(), idle.end());
  return held;
}

bool WorkerRegistry::LeaseLocked(const std::string& job_id, const std::vector<size_t>& available,
                                 int64_t count) {
  std::vector<std::string> before;
  for (const Worker& worker : workers_) before.push_back(worker.job_id);
  // Healthy workers the job holds beyond `count` go; unhealthy ones stay its own: one whose
  // heartbeat only lapsed may still serve it, and none may be given to another job meanwhile.
  for (Worker& worker : workers_) {
    if (worker.job_id == job_id && IsHealthy(worker)) worker.job_id.clear();
  }
  for (int64_t i = 0; i < count; ++i) workers_[available[i]].job_id = job_id;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i].job_id != before[i]) return true;
  }
  return false;
}

absl::StatusOr<std::vector<WorkerRegistry::Worker>> WorkerRegistry::Acquire(
    const std::string& job_id, int64_t count, absl::Time deadline,
    const std::function<bool()>& cancelled, const std::function<void(int64_t available)>& on_wait) {
  int64_t told = -1;
  bool waited = false;  // Counted in waiting_ (only once it has to wait).
  bool leases_changed = false;
  absl::StatusOr<std::vector<Worker>> result;
  {
    absl::MutexLock lock(&mu_);
    while (true) {
      const std::vector<size_t> available = AvailableLocked(job_id);
      const int64_t have = static_cast<int64_t>(available.size());
      if (have >= count) {
        leases_changed = LeaseLocked(job_id, available, count);
        std::vector<size_t> chosen(available.begin(), available.begin() + count);
        std::sort(chosen.begin(), chosen.end());  // Registration order.
        std::vector<Worker> leased;
        for (size_t i : chosen) leased.push_back(workers_[i]);
        result = std::move(leased);
        break;
      }
      if (cancelled && cancelled()) {
        result = absl::CancelledError("stopped while waiting for workers");
        break;
      }
      // The deadline is wall time (the injected clock judges health only).
      if (absl::Now() >= deadline) {
        result = absl::DeadlineExceededError(
            absl::StrCat("workers: ", have, " healthy and free for this job; it needs ", count,
                         " (stages x replicas; jobs never share a worker)"));
        break;
      }
      if (!waited) {
        waited = true;
        ++waiting_;
      }
      if (have != told && on_wait) {
        mu_.Unlock();  // The callback may publish, which must not hold the registry.
        on_wait(have);
        mu_.Lock();
        told = have;
        continue;
      }
      changed_.WaitWithDeadline(&mu_, deadline);  // Registrations, heartbeats, WakeWaiters.
    }
    if (waited) --waiting_;
  }
  // Workers the job let go, or a wait that ended (Reserve refuses while a job waits): the
  // scheduler may start a job now. (Not for a look that changed nothing: a job without all
  // its pipelines looks at every step.)
  if (waited || leases_changed) TellAvailable();
  return result;
}

void WorkerRegistry::set_on_available(std::function<void()> on_available) {
  absl::MutexLock lock(&callback_mu_);
  on_available_ = std::move(on_available);
}

void WorkerRegistry::TellAvailable() const {
  absl::MutexLock lock(&callback_mu_);
  if (on_available_) on_available_();
}

std::vector<size_t> WorkerRegistry::IdleLocked() const {
  std::vector<size_t> idle;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (IsHealthy(workers_[i]) && workers_[i].job_id.empty()) idle.push_back(i);
  }
  return idle;
}

int64_t WorkerRegistry::WantedLocked() const {
  int64_t wanted = 0;
  for (const auto& [job_id, total] : wanted_) {
    const int64_t held = std::count_if(workers_.begin(), workers_.end(), [&](const Worker& w) {
      return w.job_id == job_id && IsHealthy(w);
    });
    wanted += std::max<int64_t>(0, total - held);
  }
  return wanted;
}

bool WorkerRegistry::Reserve(const std::string& job_id, int64_t count) {
  absl::MutexLock lock(&mu_);
  if (waiting_ > 0) return false;
  const std::vector<size_t> idle = IdleLocked();
  if (static_cast<int64_t>(idle.size()) - WantedLocked() < count) return false;
  LeaseLocked(job_id, idle, count);
  return true;
}

void WorkerRegistry::ReleaseJob(const std::string& job_id) {
  {
    absl::MutexLock lock(&mu_);
    for (Worker& worker : workers_) {
      if (worker.job_id == job_id) worker.job_id.clear();
    }
    wanted_.erase(job_id);
    changed_.SignalAll();
  }
  TellAvailable();
}

void WorkerRegistry::Want(const std::string& job_id, int64_t total) {
  {
    absl::MutexLock lock(&mu_);
    if (total > 0) {
      wanted_[job_id] = total;
      return;
    }
    if (wanted_.erase(job_id) == 0) return;
  }
  TellAvailable();  // The workers it kept may start a queued job now.
}

int64_t WorkerRegistry::IdleHealthy() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(IdleLocked().size());
}

int64_t WorkerRegistry::KeptIdle() const {
  absl::MutexLock lock(&mu_);
  return std::min(static_cast<int64_t>(IdleLocked().size()), WantedLocked());
}

int64_t WorkerRegistry::waiting_jobs() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

void WorkerRegistry::WakeWaiters() {
  absl::MutexLock lock(&mu_);
  changed_.SignalAll();
}

void WorkerRegistry::Suspect(const std::string& address) {
  absl::MutexLock lock(&mu_);
  for (auto& worker : workers_) {
    if (worker.address == address) worker.suspect = true;
  }
  changed_.SignalAll();
}

absl::Time WorkerRegistry::LapsesAt(const std::string& address) const {
  absl::MutexLock lock(&mu_);
  for (const Worker& worker : workers_) {
    if (worker.address == address) return worker.last_seen + timeout_;
  }
  return absl::InfiniteFuture();
}

}  // namespace resbm
