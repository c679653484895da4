#include "services/stage_worker/exchange_client_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace resbm {

void ExchangeClientReactor::Start(grpc::GenericStub* stub, std::shared_ptr<FrameLink> link,
                                  std::shared_ptr<grpc::ClientContext> context) {
  // gRPC keeps a pointer to the method's name for the call's life.
  static const std::string* const kMethod = new std::string("/resbm.v1.StageWorker/Exchange");
  std::shared_ptr<ExchangeClientReactor> reactor(
      new ExchangeClientReactor(std::move(link), std::move(context)));
  reactor->self_ = reactor;
  stub->PrepareBidiStreamingCall(reactor->context_.get(), *kMethod, grpc::StubOptions(),
                                 reactor.get());
  std::weak_ptr<ExchangeClientReactor> weak = reactor;
  reactor->link_->inbox().SetOnRoom([weak] {
    if (auto alive = weak.lock()) alive->Resume();
  });
  reactor->link_->Attach(reactor.get());
  // Reads are started from outside reactions too (Resume): the hold is the read flow's,
  // removed when a read fails. Writes need none: they start only while the link is open, and
  // the link shuts before that hold goes.
  reactor->AddHold();
  reactor->StartRead(&reactor->incoming_);
  reactor->StartCall();
}

ExchangeClientReactor::ExchangeClientReactor(std::shared_ptr<FrameLink> link,
                                             std::shared_ptr<grpc::ClientContext> context)
    : context_(std::move(context)), link_(std::move(link)) {}

void ExchangeClientReactor::StartFrameWrite(const grpc::ByteBuffer* message) {
  StartWrite(message);
}

void ExchangeClientReactor::StartFrameWritesDone() { StartWritesDone(); }

void ExchangeClientReactor::OnReadDone(bool ok) {
  if (!ok) {
    link_->Shutdown(absl::UnavailableError("downstream stage closed the stream"));
    RemoveHold();  // OnDone follows once the call is over.
    return;
  }
  const absl::StatusOr<bool> read_on = link_->DeliverMessage(&incoming_, "downstream stage");
  if (!read_on.ok()) {
    context_->TryCancel();
    RemoveHold();
    return;
  }
  if (*read_on) StartRead(&incoming_);
}

void ExchangeClientReactor::Resume() { StartRead(&incoming_); }

void ExchangeClientReactor::OnWriteDone(bool ok) { link_->OnWriteDone(ok); }

void ExchangeClientReactor::OnDone(const grpc::Status& status) {
  link_->Close(
      absl::UnavailableError(absl::StrCat("downstream stream ended: ", status.error_message())));
  self_.reset();  // May free this reactor: the last statement.
}

}  // namespace resbm
