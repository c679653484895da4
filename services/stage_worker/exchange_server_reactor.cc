#include "services/stage_worker/exchange_server_reactor.h"

#include <utility>

namespace resbm {

ExchangeServerReactor::ExchangeServerReactor(std::shared_ptr<FrameLink> link)
    : link_(std::move(link)) {
  link_->Attach(this);
  StartRead(&incoming_);
}

void ExchangeServerReactor::StartFrameWrite(const v1::TensorFrame* frame) { StartWrite(frame); }

void ExchangeServerReactor::OnReadDone(bool ok) {
  if (!ok) {
    // The upstream stage half-closed or vanished: no more activations on this stream.
    link_->Shutdown(absl::UnavailableError("upstream stage closed the stream"));
    FinishOnce(grpc::Status::OK);
    return;
  }
  link_->Deliver(std::move(incoming_));
  incoming_.Clear();
  StartRead(&incoming_);
}

void ExchangeServerReactor::OnWriteDone(bool ok) { link_->OnWriteDone(ok); }

void ExchangeServerReactor::OnCancel() {
  link_->Shutdown(absl::UnavailableError("upstream stream cancelled"));
  FinishOnce(grpc::Status::CANCELLED);
}

void ExchangeServerReactor::FinishOnce(const grpc::Status& status) {
  if (!finished_.exchange(true)) Finish(status);
}

void ExchangeServerReactor::OnDone() {
  link_->Close(absl::UnavailableError("upstream stream ended"));
  delete this;
}

}  // namespace resbm
