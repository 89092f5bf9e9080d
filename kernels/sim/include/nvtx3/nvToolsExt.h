// Host stand-in for NVTX 3's range API (the subset Lethe uses), for the kernel-simulator build.
//
// As in the real header, nvtxRangePushA returns the zero-based nesting level of the range it opens and nvtxRangePop
// the level of the range it closes, or a negative value when no range is open. The simulator keeps the nesting per
// thread, so tests can check that every range opened is closed.
#pragma once

namespace lethe::sim::nvtx_api {

inline int& nvtx_depth() {
  thread_local int depth = 0;
  return depth;
}

inline int nvtxRangePushA(const char* /*message*/) { return nvtx_depth()++; }
inline int nvtxRangePop() { return nvtx_depth() > 0 ? --nvtx_depth() : -1; }

}  // namespace lethe::sim::nvtx_api

using namespace lethe::sim::nvtx_api;  // NOLINT: the real API is global C functions
