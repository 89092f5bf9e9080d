#pragma once
// Named stages on the profiler's timeline: while a ProfileRange lives, an NVTX range of that name is open, so Nsight
// Systems shows the stage over the kernels it launched. Only a build with the CUDA backend emits them; elsewhere
// the object does nothing. Ranges nest; open and close them on one thread.
#include <string>

namespace lethe {

class ProfileRange {
 public:
  explicit ProfileRange(const std::string& name);
  ~ProfileRange();
  ProfileRange(const ProfileRange&) = delete;
  ProfileRange& operator=(const ProfileRange&) = delete;
};

}  // namespace lethe
