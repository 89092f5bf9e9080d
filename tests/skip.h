#pragma once
// Skipping a test case at run time, visibly. doctest's skip decorator hides a case entirely; this runs it, prints
// "skipped: <reason>", and makes the process exit with 77 when every case it ran was skipped, which ctest reports as
// "Skipped" (SKIP_RETURN_CODE 77). Use it when a requirement (a CUDA device) is only known at run time:
//   if (no_device) { lethe::test::skip_case("no CUDA device"); return; }
#include <string>

namespace lethe::test {

void skip_case(const std::string& reason);  // defined in tests/main.cpp

}  // namespace lethe::test
