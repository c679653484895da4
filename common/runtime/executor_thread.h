// ExecutorThread: one thread that runs posted tasks in order. The stage worker's executor
// owns the model and the device through it: gRPC reactions post, never compute. Post is
// thread-safe; Stop joins after the queued tasks ran.
#ifndef RESBM_COMMON_RUNTIME_EXECUTOR_THREAD_H_
#define RESBM_COMMON_RUNTIME_EXECUTOR_THREAD_H_

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace resbm {

class ExecutorThread {
 public:
  ExecutorThread();
  ~ExecutorThread();  // Stops.
  ExecutorThread(const ExecutorThread&) = delete;
  ExecutorThread& operator=(const ExecutorThread&) = delete;

  // Returns false (and drops the task) once stopping.
  bool Post(std::function<void()> task);
  // Runs what is queued, then joins. Idempotent; not from the executor thread itself.
  void Stop();
  bool OnExecutorThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_RUNTIME_EXECUTOR_THREAD_H_
