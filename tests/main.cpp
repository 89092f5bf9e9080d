// The doctest runner, with two additions:
// - a run filtered with --test-case that runs no test case fails. ctest gives every case its own entry by name, and a
//   name the filter cannot match (CMake splits names at ';', for one) would otherwise pass without running anything;
// - lethe::test::skip_case (tests/skip.h): a run in which every case that ran skipped itself exits with 77, which
//   ctest shows as skipped.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "tests/skip.h"

namespace {

int test_cases_started = 0;
std::set<std::string> skipped_cases;
std::string current_case;

struct StartCounter : doctest::IReporter {
  explicit StartCounter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& data) override {
    ++test_cases_started;
    current_case = data.m_name;
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("start_counter", 1, StartCounter);

void lethe::test::skip_case(const std::string& reason) {
  std::printf("skipped: %s (%s)\n", reason.c_str(), current_case.c_str());
  std::fflush(stdout);
  skipped_cases.insert(current_case);
}

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (context.shouldExit()) return result;  // --help, --list-test-cases and the like
  bool filtered = false;
  for (int i = 1; i < argc; ++i)
    filtered = filtered || std::strncmp(argv[i], "--test-case=", 12) == 0 || std::strncmp(argv[i], "-tc=", 4) == 0;
  if (result == 0 && filtered && test_cases_started == 0) {
    std::fprintf(stderr, "error: no test case matches the --test-case filter\n");
    return 1;
  }
  const int cases_run = test_cases_started;  // a case re-entered for subcases is started once
  if (result == 0 && cases_run > 0 && static_cast<int>(skipped_cases.size()) == cases_run) return 77;
  return result;
}
