#pragma once
// Errors carry the exit code the CLI should return, so a parser deep in the stack decides "bad input" once.
#include <stdexcept>
#include <string>

namespace lethe {

enum class ExitCode : int { Ok = 0, Other = 1, Usage = 2, BadInput = 3 };

struct Error : std::runtime_error {
  ExitCode code;
  Error(ExitCode c, const std::string& what) : std::runtime_error(what), code(c) {}
};

// Malformed data or model file: the message must name the file and what is wrong.
struct InputError : Error {
  explicit InputError(const std::string& what) : Error(ExitCode::BadInput, what) {}
};
struct UsageError : Error {
  explicit UsageError(const std::string& what) : Error(ExitCode::Usage, what) {}
};

// Internal invariant; failing one is a bug, never a user's fault.
#define LETHE_CHECK(cond, msg)                                                                              \
  do {                                                                                                      \
    if (!(cond)) throw ::lethe::Error(::lethe::ExitCode::Other, std::string("internal check failed: ") + #cond + \
                                                                     " (" + (msg) + ") at " + __FILE__ + ":" + \
                                                                     std::to_string(__LINE__));             \
  } while (0)

}  // namespace lethe
