// Helpers for tests that expect an rrt::Error: shared by every suite.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

#include "core/error.h"

namespace rrt::testing {

// Runs `fn`, which must throw rrt::Error, and returns its message ("" and a failure otherwise).
template <typename Fn>
std::string error_message(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected rrt::Error, got " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected rrt::Error";
  return "";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace rrt::testing
