#include "session.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>
#include <unordered_set>

#include "errors.h"

namespace apisix_profile {

namespace {

// libbpf's print callback is process-wide; it prints while any live session
// was opened verbose.
std::atomic<int> verbose_sessions{0};

int LibbpfPrint(enum libbpf_print_level, const char* fmt, va_list ap) {
  if (verbose_sessions.load() <= 0) return 0;
  return vfprintf(stderr, fmt, ap);
}

// errno after a failed call, never 0.
int LastErrno() { return errno ? errno : EIO; }

bool IsPerCpu(const bpf_map* map) {
  switch (bpf_map__type(map)) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

bool IsArray(const bpf_map* map) {
  return bpf_map__type(map) == BPF_MAP_TYPE_ARRAY ||
         bpf_map__type(map) == BPF_MAP_TYPE_PERCPU_ARRAY;
}

// Parses /sys/devices/system/cpu/online ("0-3,6,8-9").
bool OnlineCpus(std::vector<int>* cpus) {
  std::ifstream in("/sys/devices/system/cpu/online");
  std::string text;
  if (!std::getline(in, text)) return false;
  const char* p = text.c_str();
  while (*p) {
    char* end;
    long lo = strtol(p, &end, 10);
    if (end == p) return false;
    long hi = lo;
    p = end;
    if (*p == '-') {
      hi = strtol(p + 1, &end, 10);
      if (end == p + 1 || hi < lo) return false;
      p = end;
    }
    for (long c = lo; c <= hi; c++) cpus->push_back(static_cast<int>(c));
    if (*p == ',') p++;
    else if (*p && *p != '\n') return false;
    else break;
  }
  return !cpus->empty();
}

Napi::Buffer<uint8_t> ToBuffer(Napi::Env env, const std::string& bytes) {
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(bytes.data()),
                                     bytes.size());
}

}  // namespace

void InstallLibbpfPrint() { libbpf_set_print(LibbpfPrint); }

Napi::Function Session::Define(Napi::Env env) {
  return DefineClass(env, "Session",
                     {
                         InstanceMethod<&Session::SetRodata>("setRodata"),
                         InstanceMethod<&Session::SetMaxEntries>("setMaxEntries"),
                         InstanceMethod<&Session::SetAutoload>("setAutoload"),
                         InstanceMethod<&Session::Load>("load"),
                         InstanceMethod<&Session::Programs>("programs"),
                         InstanceMethod<&Session::MapUpdate>("mapUpdate"),
                         InstanceMethod<&Session::MapFillArray>("mapFillArray"),
                         InstanceMethod<&Session::MapLookup>("mapLookup"),
                         InstanceMethod<&Session::MapDelete>("mapDelete"),
                         InstanceMethod<&Session::MapEntries>("mapEntries"),
                         InstanceMethod<&Session::MapClear>("mapClear"),
                         InstanceMethod<&Session::MapDrain>("mapDrain"),
                         InstanceMethod<&Session::AttachUprobe>("attachUprobe"),
                         InstanceMethod<&Session::Detach>("detach"),
                         InstanceMethod<&Session::AttachPerfEvent>("attachPerfEvent"),
                         InstanceMethod<&Session::AttachTracing>("attachTracing"),
                         InstanceMethod<&Session::Close>("close"),
                     });
}

Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  METHOD("Session", 2);
  ARG_STRING(path, 0);
  ARG_BOOL(verbose, 1);
  // Optional third argument: the kernel BTF to relocate against (CO-RE),
  // instead of the running kernel's /sys/kernel/btf/vmlinux.
  std::string btf_path;
  if (info.Length() > 2 && info[2].IsString()) btf_path = info[2].As<Napi::String>().Utf8Value();
  if (verbose) verbose_sessions++;
  LIBBPF_OPTS(bpf_object_open_opts, open_opts, .btf_custom_path = btf_path.empty() ? nullptr : btf_path.c_str());
  bpf_object* obj = bpf_object__open_file(path.c_str(), &open_opts);
  if (!obj) {
    int err = LastErrno();
    if (verbose) verbose_sessions--;
    ThrowErrno(env, err, "open BPF object " + path);
  }
  obj_ = obj;
  verbose_ = verbose;
  path_ = path;
}

Session::~Session() { CloseAll(); }

void Session::CloseAll() {
  for (auto& [id, link] : uprobe_links_) bpf_link__destroy(link);
  uprobe_links_.clear();
  for (bpf_link* link : perf_links_) bpf_link__destroy(link);
  perf_links_.clear();
  if (obj_) {
    bpf_object__close(obj_);
    obj_ = nullptr;
    if (verbose_) verbose_sessions--;
  }
}

void Session::RequireOpen(Napi::Env env, const char* method) const {
  if (!obj_) ThrowErrno(env, EBADF, Format("%s: session is closed", method));
}

void Session::RequireLoaded(Napi::Env env, const char* method) const {
  RequireOpen(env, method);
  if (!loaded_) ThrowErrno(env, EINVAL, Format("%s: BPF object %s is not loaded", method, path_.c_str()));
}

void Session::RequireNotLoaded(Napi::Env env, const char* method) const {
  RequireOpen(env, method);
  if (loaded_) ThrowErrno(env, EBUSY, Format("%s: BPF object %s is already loaded", method, path_.c_str()));
}

bpf_map* Session::FindMap(Napi::Env env, const std::string& name) const {
  bpf_map* map = bpf_object__find_map_by_name(obj_, name.c_str());
  if (!map) ThrowErrno(env, ENOENT, Format("find map %s in %s", name.c_str(), path_.c_str()));
  return map;
}

bpf_program* Session::FindProgram(Napi::Env env, const std::string& name) const {
  bpf_program* prog = bpf_object__find_program_by_name(obj_, name.c_str());
  if (!prog) ThrowErrno(env, ENOENT, Format("find program %s in %s", name.c_str(), path_.c_str()));
  return prog;
}

// Per-CPU maps hold one value per possible CPU, each rounded up to 8 bytes.
size_t Session::ValueSize(Napi::Env env, const bpf_map* map) const {
  size_t size = bpf_map__value_size(map);
  if (!IsPerCpu(map)) return size;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) ThrowErrno(env, -ncpu, "count possible CPUs");
  return ((size + 7) / 8 * 8) * static_cast<size_t>(ncpu);
}

void Session::CheckKey(Napi::Env env, const char* method, const std::string& name,
                       const bpf_map* map, size_t got) const {
  size_t want = bpf_map__key_size(map);
  if (got != want)
    ThrowRangeError(env, Format("%s: map %s has %zu-byte keys, got %zu bytes", method,
                                name.c_str(), want, got));
}

// A snapshot of the keys. A hash map restarts iteration from its first key
// when the previous key was deleted concurrently, so keys are de-duplicated
// and the walk is bounded.
std::vector<std::string> Session::Keys(Napi::Env env, const std::string& name,
                                       const bpf_map* map) const {
  size_t key_size = bpf_map__key_size(map);
  std::vector<std::string> keys;
  std::unordered_set<std::string> seen;
  std::string prev;
  std::string next(key_size, '\0');
  size_t budget = 2 * static_cast<size_t>(bpf_map__max_entries(map)) + 16;
  while (budget-- > 0) {
    int err = bpf_map__get_next_key(map, prev.empty() ? nullptr : prev.data(), next.data(),
                                     key_size);
    if (err == -ENOENT) break;
    if (err) ThrowErrno(env, err, "iterate map " + name);
    if (seen.insert(next).second) keys.push_back(next);
    prev = next;
  }
  return keys;
}

Napi::Value Session::SetRodata(const Napi::CallbackInfo& info) {
  METHOD("setRodata", 1);
  ARG_BUFFER(buf, 0);
  RequireNotLoaded(env, method_name__);
  bpf_map* map = bpf_object__find_map_by_name(obj_, ".rodata");
  if (!map) ThrowErrno(env, ENOENT, Format("setRodata: %s has no .rodata map", path_.c_str()));
  size_t size = 0;
  if (!bpf_map__initial_value(map, &size))
    ThrowErrno(env, EINVAL, Format("setRodata: .rodata of %s has no initial value", path_.c_str()));
  if (buf.Length() != size)
    ThrowRangeError(env, Format("setRodata: .rodata of %s is %zu bytes, buffer is %zu bytes",
                                path_.c_str(), size, buf.Length()));
  int err = bpf_map__set_initial_value(map, buf.Data(), buf.Length());
  if (err) ThrowErrno(env, err, "setRodata: set .rodata of " + path_);
  return env.Undefined();
}

Napi::Value Session::SetMaxEntries(const Napi::CallbackInfo& info) {
  METHOD("setMaxEntries", 2);
  ARG_STRING(name, 0);
  ARG_INT(n, 1, 1, UINT32_MAX);
  RequireNotLoaded(env, method_name__);
  int err = bpf_map__set_max_entries(FindMap(env, name), static_cast<uint32_t>(n));
  if (err) ThrowErrno(env, err, Format("set max_entries of map %s to %lld", name.c_str(),
                                       static_cast<long long>(n)));
  return env.Undefined();
}

// Every program is loaded with a log buffer of its own at BPF_LOG_STATS
// level: the kernel then writes only its closing lines ("processed N insns
// (limit M) ..."), which say how close a program is to the verifier's limit,
// also for a program the kernel rejected. With fullLog the whole verifier log
// is kept (large: kernels before 6.4 fail a load whose log does not fit).
// Even the statistics level gets room: some kernels add a line for every
// call of a global function they check, and a log that does not fit fails
// the load (ENOSPC).
Napi::Value Session::Load(const Napi::CallbackInfo& info) {
  METHOD("load", 0);
  RequireNotLoaded(env, method_name__);
  bool full_log = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  constexpr uint32_t kLogStats = 4;  // BPF_LOG_STATS
  constexpr uint32_t kLogLevel1 = 1;
  const size_t log_size = full_log ? (64u << 20) : (4u << 20);
  program_logs_.clear();
  bpf_program* prog;
  size_t count = 0;
  bpf_object__for_each_program(prog, obj_) count++;
  program_logs_.reserve(count);  // buffers must not move once handed to libbpf
  bpf_object__for_each_program(prog, obj_) {
    if (!bpf_program__autoload(prog)) continue;  // not loaded: nothing to report
    program_logs_.push_back({bpf_program__name(prog), std::string(log_size, '\0')});
    bpf_program__set_log_buf(prog, program_logs_.back().log.data(), log_size);
    bpf_program__set_log_level(prog, kLogStats | (full_log ? kLogLevel1 : 0));
  }
  int err = bpf_object__load(obj_);
  // Keep what the kernel wrote, not the whole buffer.
  for (ProgramLog& entry : program_logs_) entry.log.resize(strnlen(entry.log.data(), entry.log.size()));
  if (err)
    ThrowErrno(env, err, "load BPF object " + path_,
               verbose_ ? "" : "open the session verbose for libbpf's log");
  loaded_ = true;
  return env.Undefined();
}

// Before load(): whether a program is loaded at all. A program left out is
// never verified, so a mode pays only for the programs it uses.
Napi::Value Session::SetAutoload(const Napi::CallbackInfo& info) {
  METHOD("setAutoload", 2);
  ARG_STRING(prog_name, 0);
  ARG_BOOL(autoload, 1);
  RequireNotLoaded(env, method_name__);
  bpf_program* prog = FindProgram(env, prog_name);
  int err = bpf_program__set_autoload(prog, autoload);
  if (err) ThrowErrno(env, -err, "set autoload of " + prog_name);
  return env.Undefined();
}

// Per program, after load() (also after a failed one): its name, whether it
// loaded, the kernel's verified_insns (0 before kernel 5.16) and the
// verifier's log as load() kept it.
Napi::Value Session::Programs(const Napi::CallbackInfo& info) {
  METHOD("programs", 0);
  RequireOpen(env, method_name__);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  for (const ProgramLog& entry : program_logs_) {
    bpf_program* prog = bpf_object__find_program_by_name(obj_, entry.name.c_str());
    int fd = prog ? bpf_program__fd(prog) : -1;
    uint32_t verified = 0;
    // The functions the loaded program is made of, in the kernel's order
    // (the program, then each subprogram the verifier kept): the order of
    // the log's "stack depth" figures, which do not name them.
    Napi::Array functions = Napi::Array::New(env);
    if (fd >= 0) {
      bpf_prog_info prog_info = {};
      uint32_t len = sizeof(prog_info);
      if (bpf_obj_get_info_by_fd(fd, &prog_info, &len) == 0) verified = prog_info.verified_insns;
      const btf* object_btf = bpf_object__btf(obj_);
      uint32_t count = prog_info.nr_func_info;
      if (object_btf && count > 0 && prog_info.func_info_rec_size == sizeof(bpf_func_info)) {
        std::vector<bpf_func_info> records(count);
        bpf_prog_info func_query = {};
        func_query.nr_func_info = count;
        func_query.func_info_rec_size = sizeof(bpf_func_info);
        func_query.func_info = reinterpret_cast<uint64_t>(records.data());
        len = sizeof(func_query);
        if (bpf_obj_get_info_by_fd(fd, &func_query, &len) == 0) {
          for (uint32_t f = 0; f < count && f < func_query.nr_func_info; f++) {
            const btf_type* type = btf__type_by_id(object_btf, records[f].type_id);
            const char* func_name = type ? btf__name_by_offset(object_btf, type->name_off) : nullptr;
            functions.Set(f, func_name ? func_name : "");
          }
        }
      }
    }
    Napi::Object item = Napi::Object::New(env);
    item.Set("name", entry.name);
    item.Set("loaded", fd >= 0);
    item.Set("verifiedInsns", verified);
    item.Set("functions", functions);
    item.Set("log", entry.log);
    out.Set(i++, item);
  }
  return out;
}

Napi::Value Session::MapUpdate(const Napi::CallbackInfo& info) {
  METHOD("mapUpdate", 3);
  ARG_STRING(name, 0);
  ARG_BUFFER(key, 1);
  ARG_BUFFER(value, 2);
  RequireLoaded(env, method_name__);
  bpf_map* map = FindMap(env, name);
  CheckKey(env, method_name__, name, map, key.Length());
  size_t value_size = ValueSize(env, map);
  if (value.Length() != value_size)
    ThrowRangeError(env, Format("mapUpdate: map %s has %zu-byte values, got %zu bytes",
                                name.c_str(), value_size, value.Length()));
  int err = bpf_map__update_elem(map, key.Data(), key.Length(), value.Data(), value.Length(),
                                 BPF_ANY);
  if (err) ThrowErrno(env, err, "update map " + name);
  return env.Undefined();
}

// Writes consecutive entries of an array map from one buffer (whole values
// back to back), starting at index first: loads large tables in one call.
Napi::Value Session::MapFillArray(const Napi::CallbackInfo& info) {
  METHOD("mapFillArray", 3);
  ARG_STRING(name, 0);
  ARG_INT(first, 1, 0, 0xffffffffLL);
  ARG_BUFFER(values, 2);
  RequireLoaded(env, method_name__);
  bpf_map* map = FindMap(env, name);
  if (bpf_map__type(map) != BPF_MAP_TYPE_ARRAY)
    ThrowTypeError(env, Format("mapFillArray: map %s is not an array map", name.c_str()));
  size_t value_size = ValueSize(env, map);
  if (values.Length() % value_size != 0)
    ThrowRangeError(env, Format("mapFillArray: map %s has %zu-byte values, got %zu bytes",
                                name.c_str(), value_size, values.Length()));
  uint32_t count = static_cast<uint32_t>(values.Length() / value_size);
  if (first + count > bpf_map__max_entries(map))
    ThrowRangeError(env, Format("mapFillArray: map %s holds %u entries, asked for %u from %lld",
                                name.c_str(), bpf_map__max_entries(map), count, static_cast<long long>(first)));
  if (count == 0) return env.Undefined();
  // One batched syscall (hundreds of thousands of unwind rows load in
  // milliseconds, not seconds).
  std::vector<uint32_t> keys(count);
  for (uint32_t i = 0; i < count; i++) keys[i] = static_cast<uint32_t>(first) + i;
  uint32_t done = count;
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  int err = bpf_map_update_batch(bpf_map__fd(map), keys.data(), values.Data(), &done, &opts);
  if (err) ThrowErrno(env, err, "update map " + name);
  return env.Undefined();
}

Napi::Value Session::MapLookup(const Napi::CallbackInfo& info) {
  METHOD("mapLookup", 2);
  ARG_STRING(name, 0);
  ARG_BUFFER(key, 1);
  RequireLoaded(env, method_name__);
  bpf_map* map = FindMap(env, name);
  CheckKey(env, method_name__, name, map, key.Length());
  std::string value(ValueSize(env, map), '\0');
  int err = bpf_map__lookup_elem(map, key.Data(), key.Length(), value.data(), value.size(), 0);
  if (err == -ENOENT) return env.Null();
  if (err) ThrowErrno(env, err, "look up map " + name);
  return ToBuffer(env, value);
}

Napi::Value Session::MapDelete(const Napi::CallbackInfo& info) {
  METHOD("mapDelete", 2);
  ARG_STRING(name, 0);
  ARG_BUFFER(key, 1);
  RequireLoaded(env, method_name__);
  bpf_map* map = FindMap(env, name);
  CheckKey(env, method_name__, name, map, key.Length());
  int err = bpf_map__delete_elem(map, key.Data(), key.Length(), 0);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err) ThrowErrno(env, err, "delete from map " + name);
  return Napi::Boolean::New(env, true);
}

Napi::Value Session::MapEntries(const Napi::CallbackInfo& info) {
  METHOD("mapEntries", 1);
  ARG_STRING(name, 0);
  RequireLoaded(env, method_name__);
  bpf_map* map = FindMap(env, name);
  std::vector<std::string> keys = Keys(env, name, map);
  std::string value(ValueSize(env, map), '\0');
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (const std::string& key : keys) {
    int err = bpf_map__lookup_elem(map, key.data(), key.size(), value.data(), value.size(), 0);
    if (err == -ENOENT) continue;  // deleted since the key walk
    if (err) ThrowErrno(env, err, "look up map " + name);
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, ToBuffer(env, key));
    pair.Set(1u, ToBuffer(env, value));
    out.Set(n++, pair);
  }
  return out;
}

// Hash maps: every entry read and deleted, in batches of up to 1024 per
// syscall (a second-by-second drain costs a few syscalls, not two per
// entry). Only for a map nothing writes meanwhile. Returns the keys back to
// back in one buffer and the values in another: one object per drain, not
// two per entry, for the caller to read at fixed strides.
Napi::Value Session::MapDrain(const Napi::CallbackInfo& info) {
  METHOD("mapDrain", 1);
  ARG_STRING(name, 0);
  RequireLoaded(env, method_name__);
  bpf_map* map = FindMap(env, name);
  if (IsArray(map)) ThrowTypeError(env, Format("mapDrain: map %s is an array map", name.c_str()));
  size_t key_size = bpf_map__key_size(map);
  size_t value_size = ValueSize(env, map);
  const uint32_t batch = 1024;
  std::string keys, values;
  std::string key_batch(batch * key_size, '\0');
  std::string value_batch(batch * value_size, '\0');
  uint64_t in_batch = 0, out_batch = 0;
  bool first = true;
  for (;;) {
    uint32_t count = batch;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
    int err = bpf_map_lookup_and_delete_batch(bpf_map__fd(map), first ? nullptr : &in_batch, &out_batch,
                                              key_batch.data(), value_batch.data(), &count, &opts);
    if (err && err != -ENOENT) ThrowErrno(env, err, "drain map " + name);
    keys.append(key_batch.data(), count * key_size);
    values.append(value_batch.data(), count * value_size);
    if (err == -ENOENT) break;  // no more entries
    in_batch = out_batch;
    first = false;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", ToBuffer(env, keys));
  out.Set("values", ToBuffer(env, values));
  return out;
}

// Arrays cannot delete: their values are zeroed instead.
Napi::Value Session::MapClear(const Napi::CallbackInfo& info) {
  METHOD("mapClear", 1);
  ARG_STRING(name, 0);
  RequireLoaded(env, method_name__);
  bpf_map* map = FindMap(env, name);
  if (IsArray(map)) {
    std::string zero(ValueSize(env, map), '\0');
    for (uint32_t i = 0; i < bpf_map__max_entries(map); i++) {
      int err = bpf_map__update_elem(map, &i, sizeof i, zero.data(), zero.size(), BPF_ANY);
      if (err) ThrowErrno(env, err, Format("zero map %s index %u", name.c_str(), i));
    }
    return env.Undefined();
  }
  for (const std::string& key : Keys(env, name, map)) {
    int err = bpf_map__delete_elem(map, key.data(), key.size(), 0);
    if (err && err != -ENOENT) ThrowErrno(env, err, "delete from map " + name);
  }
  return env.Undefined();
}

Napi::Value Session::AttachUprobe(const Napi::CallbackInfo& info) {
  METHOD("attachUprobe", 4);
  ARG_STRING(prog_name, 0);
  ARG_INT(pid, 1, -1, INT32_MAX);
  ARG_STRING(binary, 2);
  ARG_INT(offset, 3, 0, (int64_t{1} << 53));
  RequireLoaded(env, method_name__);
  bpf_program* prog = FindProgram(env, prog_name);
  bpf_uprobe_opts opts{};
  opts.sz = sizeof opts;
  opts.retprobe = false;
  bpf_link* link = bpf_program__attach_uprobe_opts(prog, static_cast<pid_t>(pid), binary.c_str(),
                                                   static_cast<size_t>(offset), &opts);
  if (!link)
    ThrowErrno(env, LastErrno(),
               Format("attach uprobe %s offset 0x%llx in %s pid %lld", prog_name.c_str(),
                      static_cast<unsigned long long>(offset), binary.c_str(),
                      static_cast<long long>(pid)));
  uint32_t id = next_link_id_++;
  uprobe_links_[id] = link;
  return Napi::Number::New(env, id);
}

Napi::Value Session::Detach(const Napi::CallbackInfo& info) {
  METHOD("detach", 1);
  ARG_INT(id, 0, 0, UINT32_MAX);
  RequireOpen(env, method_name__);
  auto it = uprobe_links_.find(static_cast<uint32_t>(id));
  if (it == uprobe_links_.end())
    ThrowRangeError(env, Format("detach: unknown link id %lld", static_cast<long long>(id)));
  bpf_link* link = it->second;
  uprobe_links_.erase(it);
  int err = bpf_link__destroy(link);
  if (err) ThrowErrno(env, err, Format("detach link %lld", static_cast<long long>(id)));
  return env.Undefined();
}

// One CPU-clock sampling event per online CPU, each with the program
// attached. On failure, the events attached by this call are removed again.
Napi::Value Session::AttachPerfEvent(const Napi::CallbackInfo& info) {
  METHOD("attachPerfEvent", 2);
  ARG_STRING(prog_name, 0);
  ARG_INT(hz, 1, 1, UINT32_MAX);
  RequireLoaded(env, method_name__);
  bpf_program* prog = FindProgram(env, prog_name);
  std::vector<int> cpus;
  if (!OnlineCpus(&cpus)) ThrowErrno(env, EINVAL, "parse /sys/devices/system/cpu/online");

  std::vector<bpf_link*> added;
  std::vector<int> attached;
  auto fail = [&](int err, const std::string& what, const std::string& hint = "") {
    for (bpf_link* link : added) bpf_link__destroy(link);
    ThrowErrno(env, err, what, hint);
  };
  for (int cpu : cpus) {
    perf_event_attr attr{};
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.freq = 1;
    attr.sample_freq = static_cast<uint64_t>(hz);
    int fd = static_cast<int>(syscall(__NR_perf_event_open, &attr, -1, cpu, -1,
                                      PERF_FLAG_FD_CLOEXEC));
    if (fd < 0) {
      int err = LastErrno();
      if (err == ENODEV) continue;  // went offline since we read the list
      fail(err,
           Format("perf_event_open cpu-clock %lld Hz on cpu %d", static_cast<long long>(hz), cpu),
           err == EINVAL ? "is it above kernel.perf_event_max_sample_rate?" : "");
    }
    bpf_link* link = bpf_program__attach_perf_event(prog, fd);
    if (!link) {
      int err = LastErrno();
      close(fd);
      fail(err, Format("attach perf_event %s on cpu %d", prog_name.c_str(), cpu));
    }
    added.push_back(link);
    attached.push_back(cpu);
  }
  perf_links_.insert(perf_links_.end(), added.begin(), added.end());
  Napi::Array out = Napi::Array::New(env, attached.size());
  for (uint32_t i = 0; i < attached.size(); i++) out.Set(i, Napi::Number::New(env, attached[i]));
  return out;
}

// Attaches a program whose section names its hook (tp_btf/..., raw_tp/...).
// Returns a link id for detach(); close() removes it too.
Napi::Value Session::AttachTracing(const Napi::CallbackInfo& info) {
  METHOD("attachTracing", 1);
  ARG_STRING(prog_name, 0);
  RequireLoaded(env, method_name__);
  bpf_program* prog = FindProgram(env, prog_name);
  bpf_link* link = bpf_program__attach(prog);
  if (!link) ThrowErrno(env, LastErrno(), Format("attach %s", prog_name.c_str()));
  uint32_t id = next_link_id_++;
  uprobe_links_[id] = link;
  return Napi::Number::New(env, id);
}

Napi::Value Session::Close(const Napi::CallbackInfo& info) {
  CloseAll();
  return info.Env().Undefined();
}

}  // namespace apisix_profile
