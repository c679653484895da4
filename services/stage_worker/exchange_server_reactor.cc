#include "services/stage_worker/exchange_server_reactor.h"

#include <utility>

#include "common/status/grpc_status.h"

namespace resbm {

ExchangeServerReactor* ExchangeServerReactor::Start(std::shared_ptr<FrameLink> link, OnEnd on_end) {
  std::shared_ptr<ExchangeServerReactor> reactor(
      new ExchangeServerReactor(std::move(link), std::move(on_end)));
  reactor->self_ = reactor;
  // A weak pointer: a resume that races with OnDone finds the reactor finished, not freed.
  std::weak_ptr<ExchangeServerReactor> weak = reactor;
  reactor->link_->inbox().SetOnRoom([weak] {
    if (auto alive = weak.lock()) alive->Resume();
  });
  reactor->link_->Attach(reactor.get());
  reactor->StartRead(&reactor->incoming_);
  return reactor.get();
}

ExchangeServerReactor::ExchangeServerReactor(std::shared_ptr<FrameLink> link, OnEnd on_end)
    : link_(std::move(link)), on_end_(std::move(on_end)) {}

void ExchangeServerReactor::StartFrameWrite(const grpc::ByteBuffer* message) {
  StartWrite(message);
}

void ExchangeServerReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The upstream stage half-closed (its normal end) or vanished: no more activations.
    link_->Shutdown(absl::UnavailableError("upstream stage closed the stream"));
    FinishOnce(grpc::Status::OK);
    return;
  }
  const absl::StatusOr<bool> read_on = link_->DeliverMessage(&incoming_, "upstream stage");
  if (!read_on.ok()) {
    FinishOnce(ToGrpcStatus(read_on.status()));
    return;
  }
  if (*read_on) StartRead(&incoming_);
}

void ExchangeServerReactor::Resume() {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    ++resuming_;
  }
  StartRead(&incoming_);
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (--resuming_ > 0 || !finish_requested_ || finish_called_) return;
    finish_called_ = true;
    status = finish_status_;
  }
  Finish(status);  // Requested while this resume was starting its read.
}

void ExchangeServerReactor::OnWriteDone(bool ok) { link_->OnWriteDone(ok); }

void ExchangeServerReactor::OnCancel() {
  cancelled_ = true;
  link_->Shutdown(absl::UnavailableError("upstream stream cancelled"));
  FinishOnce(grpc::Status::CANCELLED);
}

void ExchangeServerReactor::FinishOnce(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    finish_requested_ = true;
    finish_status_ = status;
    if (resuming_ > 0) return;  // That resume finishes once its read has started.
    finish_called_ = true;
  }
  Finish(status);
}

void ExchangeServerReactor::OnDone() {
  link_->Close(absl::UnavailableError("upstream stream ended"));
  // OnCancel, if it came, came before.
  if (on_end_) on_end_(cancelled_ ? "cancelled" : "writes_done");
  self_.reset();  // May free this reactor: the last statement.
}

}  // namespace resbm
