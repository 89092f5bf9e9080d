// The kernel simulator's engine: a worker pool that runs blocks, and per worker a fiber scheduler that runs the
// block's CUDA threads.
//
// Scheduling within a block. A fiber is a carrier: it claims the next CUDA thread that has not started and runs it;
// when that thread returns, the same fiber claims the next one, so a kernel without barriers runs a whole block on one
// fiber with two context switches. A carrier with nothing left to claim parks as idle and is resumed by a later block,
// so contexts are set up (getcontext/makecontext) only once per fiber, not once per block. When a thread must wait (barrier, warp collective), its fiber parks and control
// passes directly to a runnable fiber, or to a fresh carrier while unstarted threads remain. The last thread to reach
// a rendezvous releases the others (queued FIFO) and carries on without switching. When nothing can run and threads
// are still waiting, the block can never finish: that is reported as an error, never a hang.
#include "kernels/sim/sim.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "engine/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define LETHE_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LETHE_SIM_ASAN 1
#endif
#endif
#if defined(LETHE_SIM_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

thread_local constinit uint3 threadIdx{0, 0, 0};
thread_local constinit uint3 blockIdx{0, 0, 0};
thread_local constinit dim3 blockDim{1, 1, 1};
thread_local constinit dim3 gridDim{1, 1, 1};

namespace lethe::sim {
namespace {

using detail::Collective;

std::string coords(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
std::string coords(dim3 v) { return coords(uint3(v)); }
std::string hex_mask(unsigned m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", m);
  return buf;
}
const char* collective_name(Collective c) {
  switch (c) {
    case Collective::Shfl: return "__shfl_sync";
    case Collective::Ballot: return "__ballot_sync";
    case Collective::Any: return "__any_sync";
    case Collective::All: return "__all_sync";
    case Collective::Sync: return "__syncwarp";
  }
  return "warp collective";
}

size_t default_stack_bytes() {
  if (const char* env = std::getenv("LETHE_SIM_STACK_KIB")) {
    const long kib = std::strtol(env, nullptr, 10);
    if (kib >= 16 && kib <= 65536) return static_cast<size_t>(kib) * 1024;
  }
#if defined(LETHE_SIM_ASAN)
  return 256 * 1024;  // ASan's redzones make frames several times larger
#else
  return 64 * 1024;
#endif
}
int default_workers() {
  if (const char* env = std::getenv("LETHE_SIM_WORKERS")) {
    const long n = std::strtol(env, nullptr, 10);
    if (n >= 1 && n <= 64) return static_cast<int>(n);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hw == 0 ? 1u : hw, 1u, 8u));
}

std::atomic<size_t> g_stack_bytes{default_stack_bytes()};
std::atomic<ThreadOrder> g_order{ThreadOrder::Forward};
std::atomic<uint64_t> g_launches{0}, g_blocks{0}, g_thread_runs{0}, g_switches{0};

// ---------------------------------------------------------------------------------------------------------------------
// Fibers.
struct Fiber {
  ucontext_t context;
  unsigned char* stack = nullptr;  // usable part, above the guard page
  size_t stack_bytes = 0;
  size_t mapped_bytes = 0;
  int thread = -1;  // the CUDA thread (linear index in the block) it is running
};

enum class ThreadState : uint8_t { NotStarted, Running, AtBarrier, AtWarp, Ready, Done };

struct WarpPending {
  Collective kind;
  unsigned mask;
  uint64_t value;
  int source;
};

struct WarpState {
  unsigned existing = 0;  // lanes that exist (the last warp of a block may be partial)
  unsigned exited = 0;
  unsigned pending = 0;   // lanes waiting in some collective
  WarpPending request[32];
  uint64_t result[32];
};

struct ThreadError {
  uint64_t block_linear = 0;
  std::string message;
};

class Worker;
thread_local Worker* tl_worker = nullptr;
thread_local bool tl_in_kernel = false;

class Worker {
 public:
  Worker() = default;
  ~Worker() { release_stacks(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs every block the job hands out until none are left or some block failed.
  void run_blocks(const detail::Launch& l, std::atomic<uint64_t>& next_block, uint64_t total_blocks,
                  std::atomic<bool>& abort, const std::function<void(ThreadError&&)>& fail);

  // Called by the intrinsics on the current fiber.
  int barrier(int predicate_kind, int predicate);
  uint64_t warp_collective(Collective kind, unsigned mask, uint64_t value, int source, int width);
  unsigned active_mask() const {
    const WarpState& w = warps_[current_thread_ / 32];
    return w.existing & ~w.exited;
  }
  unsigned lane() const { return static_cast<unsigned>(current_thread_) & 31u; }
  void yield();
  unsigned char* dynamic_shared() { return dynamic_shared_; }
  size_t dynamic_shared_size() const { return dynamic_shared_bytes_; }

 private:
  friend void fiber_entry();
  void prepare_launch(const detail::Launch& l);
  void run_block(uint64_t block_linear);
  void carrier_loop(Fiber* self);
  void run_claims(Fiber* self);
  Fiber* fresh_fiber();
  Fiber* carrier();
  Fiber* pick_next();
  void switch_to(Fiber* from, Fiber* to);
  void park(Fiber* self);
  void enter_thread(int t) {
    current_thread_ = t;
    threadIdx = thread_coords_[static_cast<size_t>(t)];
  }
  std::string deadlock_message() const;
  void release_stacks();
  std::string where(int t) const {
    return "block " + coords(blockIdx) + " thread " + coords(thread_coords_[static_cast<size_t>(t)]);
  }

  const detail::Launch* launch_ = nullptr;
  int nthreads_ = 0;
  std::vector<uint3> thread_coords_;
  std::vector<ThreadState> state_;
  std::vector<Fiber*> fiber_of_;
  std::vector<int> barrier_generation_of_;
  std::vector<WarpState> warps_;

  // Per-block scheduling state.
  int next_claim_ = 0;
  int done_ = 0;
  int current_thread_ = 0;
  int barrier_arrived_ = 0;
  int barrier_generation_ = 0;
  int barrier_kind_ = 0;
  int barrier_accumulator_ = 0;
  int barrier_result_[2] = {0, 0};
  int first_exited_ = -1;
  std::vector<Fiber*> barrier_waiters_;
  std::vector<Fiber*> ready_;  // FIFO: ready_head_ is the next to run
  size_t ready_head_ = 0;
  bool failed_ = false;
  std::string failure_;

  // Fibers and their stacks, allocated once and reused by every block and launch this worker runs.
  std::vector<std::unique_ptr<Fiber>> fibers_;
  size_t fibers_in_use_ = 0;  // fibers_[0, fibers_in_use_) have live contexts: running, parked or idle
  std::vector<Fiber*> idle_;  // carriers parked at the top of their loop, ready for another block
  Fiber* current_ = nullptr;  // nullptr: the worker's own (scheduler) context
  ucontext_t scheduler_context_;
  // Under ASan: the bounds of the OS thread's own stack, learned on the first switch away from it in each block.
  const void* main_stack_bottom_ = nullptr;
  size_t main_stack_size_ = 0;
  bool capture_main_stack_ = false;

  unsigned char* dynamic_shared_ = nullptr;
  size_t dynamic_shared_bytes_ = 0;
  uint64_t switches_ = 0;
  uint64_t thread_runs_ = 0;
};

void fiber_entry() {
  Worker& w = *tl_worker;
#if defined(LETHE_SIM_ASAN)
  if (w.capture_main_stack_) {
    __sanitizer_finish_switch_fiber(nullptr, &w.main_stack_bottom_, &w.main_stack_size_);
    w.capture_main_stack_ = false;
  } else {
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
  }
#endif
  w.carrier_loop(w.current_);
  std::abort();  // carriers loop forever; a worker abandons them instead of returning
}

void Worker::release_stacks() {
  for (auto& f : fibers_)
    if (f->stack != nullptr) munmap(f->stack - static_cast<size_t>(sysconf(_SC_PAGESIZE)), f->mapped_bytes);
  fibers_.clear();
}

Fiber* Worker::carrier() {
  if (idle_.empty()) return fresh_fiber();
  Fiber* f = idle_.back();
  idle_.pop_back();
  return f;
}

Fiber* Worker::fresh_fiber() {
  const size_t want = g_stack_bytes.load();
  if (fibers_in_use_ == fibers_.size()) fibers_.push_back(std::make_unique<Fiber>());
  Fiber* f = fibers_[fibers_in_use_++].get();
  if (f->stack_bytes != want) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    if (f->stack != nullptr) munmap(f->stack - page, f->mapped_bytes);
    const size_t bytes = (want + page - 1) / page * page;
    // A guard page below the stack turns an overflow into a fault instead of silent corruption.
    void* m = mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      f->stack = nullptr;
      f->stack_bytes = 0;
      throw std::bad_alloc();
    }
    mprotect(m, page, PROT_NONE);
    f->stack = static_cast<unsigned char*>(m) + page;
    f->stack_bytes = bytes;
    f->mapped_bytes = bytes + page;
  }
#if defined(LETHE_SIM_ASAN)
  // A fiber abandoned by a failed block leaves its frames' redzones poisoned.
  ASAN_UNPOISON_MEMORY_REGION(f->stack, f->stack_bytes);
#endif
  getcontext(&f->context);
  f->context.uc_stack.ss_sp = f->stack;
  f->context.uc_stack.ss_size = f->stack_bytes;
  f->context.uc_link = nullptr;
  makecontext(&f->context, fiber_entry, 0);
  f->thread = -1;
  return f;
}

void Worker::switch_to(Fiber* from, Fiber* to) {
  ucontext_t* from_ctx = from != nullptr ? &from->context : &scheduler_context_;
  ucontext_t* to_ctx = to != nullptr ? &to->context : &scheduler_context_;
  current_ = to;
  ++switches_;
#if defined(LETHE_SIM_ASAN)
  void* fake_stack = nullptr;
  const void* bottom = to != nullptr ? static_cast<const void*>(to->stack) : main_stack_bottom_;
  const size_t size = to != nullptr ? to->stack_bytes : main_stack_size_;
  __sanitizer_start_switch_fiber(&fake_stack, bottom, size);
  swapcontext(from_ctx, to_ctx);
  if (capture_main_stack_) {
    __sanitizer_finish_switch_fiber(fake_stack, &main_stack_bottom_, &main_stack_size_);
    capture_main_stack_ = false;
  } else {
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
  }
#else
  swapcontext(from_ctx, to_ctx);
#endif
}

Fiber* Worker::pick_next() {
  if (ready_head_ < ready_.size()) {
    Fiber* f = ready_[ready_head_++];
    if (ready_head_ == ready_.size()) {
      ready_.clear();
      ready_head_ = 0;
    }
    return f;
  }
  if (next_claim_ < nthreads_) return carrier();
  return nullptr;  // the scheduler: the block is finished, or stuck
}

// The current thread waits; another fiber runs until someone makes this one ready again.
void Worker::park(Fiber* self) {
  Fiber* next = pick_next();
  switch_to(self, next);
  enter_thread(self->thread);  // a failed block never resumes its parked fibers, so this block is still healthy
}

void Worker::carrier_loop(Fiber* self) {
  for (;;) {
    run_claims(self);
    // Nothing left to claim in this block. Park as idle; a later block resumes this fiber here.
    if (!failed_) idle_.push_back(self);
    switch_to(self, failed_ ? nullptr : pick_next());
  }
}

void Worker::run_claims(Fiber* self) {
  const bool reverse = g_order.load(std::memory_order_relaxed) == ThreadOrder::Reverse;
  while (!failed_ && next_claim_ < nthreads_) {
    const int claim = next_claim_++;
    const int t = reverse ? nthreads_ - 1 - claim : claim;
    self->thread = t;
    fiber_of_[static_cast<size_t>(t)] = self;
    state_[static_cast<size_t>(t)] = ThreadState::Running;
    enter_thread(t);
    ++thread_runs_;
    try {
      launch_->invoke(launch_->kernel);
    } catch (const std::exception& e) {
      failed_ = true;
      failure_ = where(t) + ": " + e.what();
    } catch (...) {
      failed_ = true;
      failure_ = where(t) + ": unknown exception";
    }
    if (failed_) break;
    state_[static_cast<size_t>(t)] = ThreadState::Done;
    ++done_;
    if (first_exited_ < 0) first_exited_ = t;
    warps_[static_cast<size_t>(t) / 32].exited |= 1u << (t & 31);
  }
}

int Worker::barrier(int predicate_kind, int predicate) {
  Fiber* self = current_;
  const int t = current_thread_;
  if (barrier_arrived_ == 0) {
    barrier_kind_ = predicate_kind;
    barrier_accumulator_ = predicate_kind == 2 ? 1 : 0;
  } else if (barrier_kind_ != predicate_kind) {
    throw Error(ExitCode::Other, "threads of one block wait at different kinds of barrier (__syncthreads vs "
                                 "__syncthreads_count/_and/_or)");
  }
  switch (predicate_kind) {
    case 1: barrier_accumulator_ += predicate != 0; break;
    case 2: barrier_accumulator_ = barrier_accumulator_ && predicate != 0; break;
    case 3: barrier_accumulator_ = barrier_accumulator_ || predicate != 0; break;
    default: break;
  }
  const int generation = barrier_generation_;
  if (++barrier_arrived_ == nthreads_) {
    // The last arrival releases everyone and keeps running. The result of generation g stays valid until g+1
    // completes, which needs every released thread to have read it first.
    barrier_result_[generation & 1] = barrier_accumulator_;
    barrier_arrived_ = 0;
    ++barrier_generation_;
    for (Fiber* f : barrier_waiters_) {
      state_[static_cast<size_t>(f->thread)] = ThreadState::Ready;
      ready_.push_back(f);
    }
    barrier_waiters_.clear();
    return barrier_result_[generation & 1];
  }
  state_[static_cast<size_t>(t)] = ThreadState::AtBarrier;
  barrier_generation_of_[static_cast<size_t>(t)] = generation;
  barrier_waiters_.push_back(self);
  park(self);
  state_[static_cast<size_t>(t)] = ThreadState::Running;
  return barrier_result_[generation & 1];
}

uint64_t Worker::warp_collective(Collective kind, unsigned mask, uint64_t value, int source, int width) {
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0)
    throw Error(ExitCode::Other, std::string(collective_name(kind)) + ": width " + std::to_string(width) +
                                     " is not a power of two in 1..32");
  Fiber* self = current_;
  const int t = current_thread_;
  const int lane = t & 31;
  WarpState& w = warps_[static_cast<size_t>(t) / 32];
  const unsigned bit = 1u << lane;
  if ((mask & bit) == 0)
    throw Error(ExitCode::Other, std::string(collective_name(kind)) + " called by lane " + std::to_string(lane) +
                                     ", which is not in its mask " + hex_mask(mask));
  // Lanes beyond the end of a partial last warp do not exist and are not waited for; exited lanes are an error.
  const unsigned group = mask & w.existing;
  if ((group & w.exited) != 0)
    throw Error(ExitCode::Other, std::string(collective_name(kind)) + " with mask " + hex_mask(mask) + ": lane " +
                                     std::to_string(std::countr_zero(group & w.exited)) +
                                     " of the mask has already exited");
  // Every waiting lane that this collective names, or that names this lane, must be in the same collective.
  for (unsigned others = w.pending; others != 0; others &= others - 1) {
    const WarpPending& p = w.request[std::countr_zero(others)];
    const bool related = ((group >> std::countr_zero(others)) & 1u) != 0 || (p.mask & bit) != 0;
    if (related && (p.mask != mask || p.kind != kind))
      throw Error(ExitCode::Other, std::string(collective_name(kind)) + " with mask " + hex_mask(mask) + ": lane " +
                                       std::to_string(std::countr_zero(others)) + " is waiting in " +
                                       collective_name(p.kind) + " with mask " + hex_mask(p.mask) +
                                       " (lanes of one collective must use the same mask)");
  }
  w.request[lane] = WarpPending{kind, mask, value, source};
  w.pending |= bit;
  if ((w.pending & group) != group) {
    state_[static_cast<size_t>(t)] = ThreadState::AtWarp;
    park(self);
    state_[static_cast<size_t>(t)] = ThreadState::Running;
    return w.result[lane];
  }
  // Everyone is here: compute every lane's result, release the waiters in lane order, keep running.
  unsigned votes = 0;
  for (unsigned m = group; m != 0; m &= m - 1) {
    const int l = std::countr_zero(m);
    if (w.request[l].value != 0) votes |= 1u << l;
  }
  for (unsigned m = group; m != 0; m &= m - 1) {
    const int l = std::countr_zero(m);
    uint64_t r = 0;
    switch (kind) {
      case Collective::Shfl: {
        // A source lane outside the group (not named, or nonexistent) is undefined on the device: own value here.
        const int s = w.request[l].source;
        r = (s >= 0 && s < 32 && ((group >> s) & 1u)) ? w.request[s].value : w.request[l].value;
        break;
      }
      case Collective::Ballot: r = votes; break;
      case Collective::Any: r = votes != 0; break;
      case Collective::All: r = votes == group; break;
      case Collective::Sync: break;
    }
    w.result[l] = r;
    if (l != lane) {
      const int waiter = (t & ~31) + l;
      state_[static_cast<size_t>(waiter)] = ThreadState::Ready;
      ready_.push_back(fiber_of_[static_cast<size_t>(waiter)]);
    }
  }
  w.pending &= ~group;
  return w.result[lane];
}

void Worker::yield() {
  Fiber* next = pick_next();  // chosen before this fiber queues itself, so it cannot pick itself
  if (next == nullptr) return;  // nobody else can run
  Fiber* self = current_;
  const int t = current_thread_;
  state_[static_cast<size_t>(t)] = ThreadState::Ready;
  ready_.push_back(self);
  switch_to(self, next);
  enter_thread(t);
  state_[static_cast<size_t>(t)] = ThreadState::Running;
}

void Worker::prepare_launch(const detail::Launch& l) {
  launch_ = &l;
  if (!fibers_.empty() && fibers_.front()->stack_bytes != g_stack_bytes.load()) {
    idle_.clear();
    fibers_in_use_ = 0;
  }
  nthreads_ = static_cast<int>(l.block.x * l.block.y * l.block.z);
  thread_coords_.resize(static_cast<size_t>(nthreads_));
  for (int t = 0; t < nthreads_; ++t) {
    const unsigned u = static_cast<unsigned>(t);
    thread_coords_[static_cast<size_t>(t)] = uint3{u % l.block.x, (u / l.block.x) % l.block.y, u / (l.block.x * l.block.y)};
  }
  state_.assign(static_cast<size_t>(nthreads_), ThreadState::NotStarted);
  fiber_of_.assign(static_cast<size_t>(nthreads_), nullptr);
  barrier_generation_of_.assign(static_cast<size_t>(nthreads_), 0);
  warps_.assign(static_cast<size_t>((nthreads_ + 31) / 32), WarpState{});
  for (size_t i = 0; i < warps_.size(); ++i) {
    const int lanes = std::min(32, nthreads_ - static_cast<int>(i) * 32);
    warps_[i].existing = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
  }
  blockDim = l.block;
  gridDim = l.grid;
  dynamic_shared_bytes_ = l.dynamic_shared_bytes;
  barrier_waiters_.reserve(static_cast<size_t>(nthreads_));
  ready_.reserve(static_cast<size_t>(nthreads_));
}

void Worker::run_block(uint64_t block_linear) {
  const detail::Launch& l = *launch_;
  const uint64_t gx = l.grid.x, gy = l.grid.y;
  blockIdx = uint3{static_cast<unsigned>(block_linear % gx), static_cast<unsigned>((block_linear / gx) % gy),
                   static_cast<unsigned>(block_linear / (gx * gy))};
  std::fill(state_.begin(), state_.end(), ThreadState::NotStarted);
  for (WarpState& w : warps_) w.exited = w.pending = 0;
  next_claim_ = done_ = 0;
  barrier_arrived_ = barrier_generation_ = 0;
  first_exited_ = -1;
  barrier_waiters_.clear();
  ready_.clear();
  ready_head_ = 0;
  failed_ = false;
  if (dynamic_shared_bytes_ > 0) std::memset(dynamic_shared_, 0xff, dynamic_shared_bytes_);

  capture_main_stack_ = true;
  switch_to(nullptr, carrier());
  // Back on the worker's own stack: the block finished, failed, or is stuck. After a failure or a deadlock, fibers
  // are parked mid-kernel and never resumed: every context is rebuilt from scratch for the next block.
  if (failed_ || done_ != nthreads_) {
    idle_.clear();
    fibers_in_use_ = 0;
    if (failed_) throw Error(ExitCode::Other, failure_);
    throw Error(ExitCode::Other, deadlock_message());
  }
}

std::string Worker::deadlock_message() const {
  int at_barrier = 0, at_warp = 0, exited = 0, first_barrier = -1, first_warp = -1;
  for (int t = 0; t < nthreads_; ++t) {
    switch (state_[static_cast<size_t>(t)]) {
      case ThreadState::AtBarrier: ++at_barrier; if (first_barrier < 0) first_barrier = t; break;
      case ThreadState::AtWarp: ++at_warp; if (first_warp < 0) first_warp = t; break;
      case ThreadState::Done: ++exited; break;
      default: break;
    }
  }
  std::string msg;
  if (at_barrier > 0) {
    msg = "barrier reached by only " + std::to_string(at_barrier) + " of " + std::to_string(nthreads_) +
          " threads of block " + coords(blockIdx) + " (first waiting: thread " +
          coords(thread_coords_[static_cast<size_t>(first_barrier)]) + ")";
    if (exited > 0)
      msg += "; " + std::to_string(exited) + " threads exited without reaching it (first: thread " +
             coords(thread_coords_[static_cast<size_t>(first_exited_)]) + ")";
    if (at_warp > 0) msg += "; " + std::to_string(at_warp) + " threads wait in warp collectives";
    return msg;
  }
  const int t = first_warp;
  const WarpState& w = warps_[static_cast<size_t>(t) / 32];
  const WarpPending& p = w.request[t & 31];
  const unsigned group = p.mask & w.existing;
  const unsigned missing = group & ~w.pending;
  msg = std::string(collective_name(p.kind)) + " with mask " + hex_mask(p.mask) + " in warp " +
        std::to_string(t / 32) + " of block " + coords(blockIdx) + " never completed (first waiting: thread " +
        coords(thread_coords_[static_cast<size_t>(t)]) + ")";
  if (missing != 0) {
    const int lane = std::countr_zero(missing);
    const int other = (t & ~31) + lane;
    const ThreadState st = state_[static_cast<size_t>(other)];
    msg += ": lane " + std::to_string(lane) + " (thread " + coords(thread_coords_[static_cast<size_t>(other)]) + ") " +
           (st == ThreadState::Done        ? "exited"
            : st == ThreadState::AtBarrier ? "waits at __syncthreads instead"
                                           : "waits in a warp collective with another mask");
  }
  return msg;
}

void Worker::run_blocks(const detail::Launch& l, std::atomic<uint64_t>& next_block, uint64_t total_blocks,
                        std::atomic<bool>& abort, const std::function<void(ThreadError&&)>& fail) {
  // Sized exactly, so ASan reports an access past the requested dynamic shared memory.
  unsigned char* shared_storage = nullptr;
  try {
    if (l.dynamic_shared_bytes > 0)
      shared_storage = static_cast<unsigned char*>(::operator new(l.dynamic_shared_bytes, std::align_val_t{256}));
    prepare_launch(l);
  } catch (const std::exception& e) {
    if (shared_storage != nullptr) ::operator delete(shared_storage, std::align_val_t{256});
    abort.store(true);
    fail(ThreadError{0, std::string("could not set up a simulator worker: ") + e.what()});
    return;
  }
  dynamic_shared_ = shared_storage;
  Worker* previous = tl_worker;
  tl_worker = this;
  tl_in_kernel = true;
  uint64_t blocks = 0;
  switches_ = thread_runs_ = 0;
  while (!abort.load(std::memory_order_relaxed)) {
    const uint64_t b = next_block.fetch_add(1, std::memory_order_relaxed);
    if (b >= total_blocks) break;
    ++blocks;
    try {
      run_block(b);
    } catch (const std::exception& e) {
      abort.store(true);
      fail(ThreadError{b, e.what()});
    }
  }
  tl_in_kernel = false;
  tl_worker = previous;
  dynamic_shared_ = nullptr;
  if (shared_storage != nullptr) ::operator delete(shared_storage, std::align_val_t{256});
  g_blocks += blocks;
  g_switches += switches_;
  g_thread_runs += thread_runs_;
}

// ---------------------------------------------------------------------------------------------------------------------
// The pool: workers - 1 background threads plus the launching thread, which runs blocks too.
struct Job {
  const detail::Launch* launch = nullptr;
  std::atomic<uint64_t> next_block{0};
  uint64_t total_blocks = 0;
  std::atomic<bool> abort{false};
  std::mutex error_mutex;
  bool has_error = false;
  ThreadError error;
  void fail(ThreadError&& e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!has_error || e.block_linear < error.block_linear) {
      error = std::move(e);
      has_error = true;
    }
  }
};

class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 1; i < workers; ++i) threads_.emplace_back([this] { background(); });
    workers_ = workers;
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return workers_; }

  void run(Job& job) {
    const std::function<void(ThreadError&&)> fail = [&job](ThreadError&& e) { job.fail(std::move(e)); };
    // Small grids are not worth waking anyone for.
    const uint64_t helpers = std::min<uint64_t>(threads_.size(), job.total_blocks - 1);
    if (helpers > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      wanted_ = static_cast<int>(helpers);
      busy_ = static_cast<int>(helpers);
      ++generation_;
    }
    if (helpers > 0) wake_.notify_all();
    local_.run_blocks(*job.launch, job.next_block, job.total_blocks, job.abort, fail);
    if (helpers > 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return busy_ == 0; });
      job_ = nullptr;
    }
  }

 private:
  void background() {
    Worker worker;
    uint64_t seen = 0;
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || (generation_ != seen && wanted_ > 0); });
        if (stopping_) return;
        seen = generation_;
        --wanted_;
        job = job_;
      }
      const std::function<void(ThreadError&&)> fail = [job](ThreadError&& e) { job->fail(std::move(e)); };
      worker.run_blocks(*job->launch, job->next_block, job->total_blocks, job->abort, fail);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --busy_;
      }
      done_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  int workers_ = 1;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  bool stopping_ = false;
  uint64_t generation_ = 0;
  int wanted_ = 0;
  int busy_ = 0;
  Job* job_ = nullptr;
  Worker local_;  // the launching thread's fibers
};

std::mutex g_pool_mutex;  // one launch at a time; also guards the pool's replacement
std::unique_ptr<Pool> g_pool;
std::atomic<int> g_requested_workers{0};

int effective_workers() {
  const int requested = g_requested_workers.load();
  return requested > 0 ? requested : default_workers();
}
Pool& pool_locked() {
  if (!g_pool) g_pool = std::make_unique<Pool>(effective_workers());
  return *g_pool;
}

std::mutex g_attr_mutex;
std::vector<std::pair<const void*, size_t>> g_shared_limits;

Worker& worker_or_throw(const char* what) {
  if (tl_worker == nullptr || !tl_in_kernel)
    throw Error(ExitCode::Other, std::string(what) + " called outside a kernel");
  return *tl_worker;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------------
int worker_count() { return effective_workers(); }
void set_worker_count(int workers) {
  if (workers < 0 || workers > 64) throw UsageError("simulator worker count must be in 0..64, got " + std::to_string(workers));
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_requested_workers = workers;
  g_pool.reset();
}
size_t fiber_stack_bytes() { return g_stack_bytes.load(); }
void set_fiber_stack_bytes(size_t bytes) {
  if (bytes < 16 * 1024 || bytes > (size_t{1} << 30))
    throw UsageError("simulator fiber stack must be 16 KiB .. 1 GiB, got " + std::to_string(bytes) + " bytes");
  g_stack_bytes.store((bytes + 4095) / 4096 * 4096);
}
void set_thread_order(ThreadOrder order) { g_order.store(order); }
ThreadOrder thread_order() { return g_order.load(); }
Stats stats() { return Stats{g_launches.load(), g_blocks.load(), g_thread_runs.load(), g_switches.load()}; }
void reset_stats() { g_launches = g_blocks = g_thread_runs = g_switches = 0; }
unsigned char* dynamic_shared_memory() { return worker_or_throw("dynamic_shared_memory").dynamic_shared(); }
size_t dynamic_shared_bytes() { return worker_or_throw("dynamic_shared_bytes").dynamic_shared_size(); }
bool in_kernel() { return tl_in_kernel; }

namespace detail {

size_t dynamic_shared_limit(const void* kernel_function) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  for (const auto& [f, limit] : g_shared_limits)
    if (f == kernel_function) return std::max(limit, kDefaultSharedBytes);
  return kDefaultSharedBytes;
}
void set_dynamic_shared_limit(const void* kernel_function, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  for (auto& [f, limit] : g_shared_limits)
    if (f == kernel_function) {
      limit = bytes;
      return;
    }
  g_shared_limits.emplace_back(kernel_function, bytes);
}
bool stream_is_valid(cudaStream_t stream);  // runtime.cpp

void run(const Launch& l) {
  const std::string site = std::string("kernel ") + l.kernel_name +
                           (l.file != nullptr ? std::string(" (") + l.file + ":" + std::to_string(l.line) + ")" : "");
  auto config_error = [&](const std::string& why) {
    return Error(ExitCode::Other, site + ": invalid launch configuration: " + why);
  };
  if (tl_in_kernel) throw Error(ExitCode::Other, site + ": launched from inside a kernel (dynamic parallelism is not simulated)");
  if (l.grid.x == 0 || l.grid.y == 0 || l.grid.z == 0) throw config_error("grid " + coords(l.grid) + " has a zero dimension");
  if (l.block.x == 0 || l.block.y == 0 || l.block.z == 0)
    throw config_error("block " + coords(l.block) + " has a zero dimension");
  if (l.grid.x > 0x7fffffffu || l.grid.y > 65535 || l.grid.z > 65535)
    throw config_error("grid " + coords(l.grid) + " exceeds the limits (2147483647, 65535, 65535)");
  if (l.block.x > 1024 || l.block.y > 1024 || l.block.z > 64)
    throw config_error("block " + coords(l.block) + " exceeds the per-dimension limits (1024, 1024, 64)");
  const uint64_t threads = uint64_t{l.block.x} * l.block.y * l.block.z;
  if (threads > kMaxThreadsPerBlock)
    throw config_error("block " + coords(l.block) + " has " + std::to_string(threads) + " threads, at most 1024");
  if (l.dynamic_shared_bytes > l.dynamic_shared_limit)
    throw config_error(std::to_string(l.dynamic_shared_bytes) + " bytes of dynamic shared memory, above the limit of " +
                       std::to_string(l.dynamic_shared_limit) +
                       (l.dynamic_shared_limit == kDefaultSharedBytes
                            ? " (opt in with cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))"
                            : ""));
  if (!stream_is_valid(l.stream)) throw Error(ExitCode::Other, site + ": launched on a destroyed or unknown stream");

  std::lock_guard<std::mutex> lock(g_pool_mutex);
  Job job;
  job.launch = &l;
  job.total_blocks = uint64_t{l.grid.x} * l.grid.y * l.grid.z;
  ++g_launches;
  pool_locked().run(job);
  if (job.has_error) throw Error(ExitCode::Other, site + ": " + job.error.message);
}

int barrier(int predicate_kind, int predicate) {
  return worker_or_throw("__syncthreads").barrier(predicate_kind, predicate);
}
uint64_t warp_collective(Collective kind, unsigned mask, uint64_t value, int source_lane, int width) {
  return worker_or_throw(collective_name(kind)).warp_collective(kind, mask, value, source_lane, width);
}
unsigned active_mask() { return worker_or_throw("__activemask").active_mask(); }
unsigned lane_id() { return worker_or_throw("a warp intrinsic").lane(); }
void yield() {
  if (tl_in_kernel && tl_worker != nullptr) tl_worker->yield();
}

}  // namespace detail
}  // namespace lethe::sim
