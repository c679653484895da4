// libFuzzer driver: tools/fuzz.sh builds and runs it (clang, -fsanitize=fuzzer,address,undefined).
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return resbm::fuzz::Safetensors(data, size);
}
