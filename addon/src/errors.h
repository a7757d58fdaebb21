// Errors and argument checks for the addon. Native failures become one-line
// JS Errors "<what was attempted>: <strerror>" with .code set to the errno
// name ("EPERM", "ENOENT", ...). Argument checks are macros; the TypeScript
// layer validates options properly before it calls in, so these only guard
// against crashes.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace apisix_profile {

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// "<context>: <strerror(err)>[ (<hint>)]" with .code = the errno name; err
// may be a positive errno or a negative libbpf return value.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& context,
                             const std::string& hint = "");
[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);

}  // namespace apisix_profile

// Every method starts with METHOD("name", minimum argument count).
#define METHOD(name, nargs)                                                          \
  static constexpr const char* method_name__ = name;                               \
  Napi::Env env = info.Env();                                                      \
  if (static_cast<long>(info.Length()) < (nargs))                                  \
    ::apisix_profile::ThrowTypeError(                                              \
        env, ::apisix_profile::Format("%s: expected %d arguments, got %zu",       \
                                      method_name__, (nargs), info.Length()))

#define ARG_FAIL__(i, what)                                                        \
  ::apisix_profile::ThrowTypeError(                                                \
      env, ::apisix_profile::Format("%s: argument %d must be %s", method_name__, \
                                    (i) + 1, what))

#define ARG_STRING(var, i)                                                         \
  if (!info[i].IsString()) ARG_FAIL__(i, "a string");                              \
  std::string var = info[i].As<Napi::String>().Utf8Value()

#define ARG_BOOL(var, i)                                                           \
  if (!info[i].IsBoolean()) ARG_FAIL__(i, "a boolean");                            \
  bool var = info[i].As<Napi::Boolean>().Value()

#define ARG_BUFFER(var, i)                                                         \
  if (!info[i].IsBuffer()) ARG_FAIL__(i, "a Buffer");                              \
  Napi::Buffer<uint8_t> var = info[i].As<Napi::Buffer<uint8_t>>()

// An integral number in [lo, hi]; values up to 2^53 are exact.
#define ARG_INT(var, i, lo, hi)                                                    \
  if (!info[i].IsNumber()) ARG_FAIL__(i, "a number");                              \
  int64_t var = 0;                                                                 \
  {                                                                                \
    double d__ = info[i].As<Napi::Number>().DoubleValue();                         \
    if (!(d__ >= static_cast<double>(lo) && d__ <= static_cast<double>(hi)) ||     \
        d__ != static_cast<double>(static_cast<int64_t>(d__)))                     \
      ::apisix_profile::ThrowRangeError(                                           \
          env, ::apisix_profile::Format("%s: argument %d must be an integer in "  \
                                        "[%lld, %lld], got %g",                    \
                                        method_name__, (i) + 1,                    \
                                        static_cast<long long>(lo),                \
                                        static_cast<long long>(hi), d__));         \
    var = static_cast<int64_t>(d__);                                               \
  }
