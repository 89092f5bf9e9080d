#include "engine/profile_range.h"

#if LETHE_HAVE_CUDA_BACKEND
#include "engine/cuda_backend.h"
#endif

namespace lethe {

#if LETHE_HAVE_CUDA_BACKEND
ProfileRange::ProfileRange(const std::string& name) { cuda::push_range(name.c_str()); }
ProfileRange::~ProfileRange() { cuda::pop_range(); }
#else
ProfileRange::ProfileRange(const std::string&) {}
ProfileRange::~ProfileRange() {}
#endif

}  // namespace lethe
