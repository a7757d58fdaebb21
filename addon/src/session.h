// Session: one BPF object, its links and perf events. Lifecycle is linear:
// open (constructor), setRodata / setMaxEntries, load, map ops and attach,
// close. close() is idempotent and also runs from the destructor.
#pragma once

#include <napi.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

struct bpf_object;
struct bpf_map;
struct bpf_program;
struct bpf_link;

namespace apisix_profile {

// Routes libbpf's log to stderr while a verbose session is open, else drops it.
void InstallLibbpfPrint();

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;

 private:
  Napi::Value SetRodata(const Napi::CallbackInfo& info);
  Napi::Value SetMaxEntries(const Napi::CallbackInfo& info);
  Napi::Value SetAutoload(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value MapUpdate(const Napi::CallbackInfo& info);
  Napi::Value MapFillArray(const Napi::CallbackInfo& info);
  Napi::Value MapDrain(const Napi::CallbackInfo& info);
  Napi::Value MapLookup(const Napi::CallbackInfo& info);
  Napi::Value MapDelete(const Napi::CallbackInfo& info);
  Napi::Value MapEntries(const Napi::CallbackInfo& info);
  Napi::Value MapClear(const Napi::CallbackInfo& info);
  Napi::Value AttachUprobe(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value AttachPerfEvent(const Napi::CallbackInfo& info);
  Napi::Value AttachTracing(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  void CloseAll();
  void RequireOpen(Napi::Env env, const char* method) const;
  void RequireLoaded(Napi::Env env, const char* method) const;
  void RequireNotLoaded(Napi::Env env, const char* method) const;
  bpf_map* FindMap(Napi::Env env, const std::string& name) const;
  bpf_program* FindProgram(Napi::Env env, const std::string& name) const;
  size_t ValueSize(Napi::Env env, const bpf_map* map) const;
  void CheckKey(Napi::Env env, const char* method, const std::string& name, const bpf_map* map,
                size_t got) const;
  std::vector<std::string> Keys(Napi::Env env, const std::string& name,
                                const bpf_map* map) const;

  bpf_object* obj_ = nullptr;
  std::string path_;
  bool verbose_ = false;
  bool loaded_ = false;
  uint32_t next_link_id_ = 1;
  std::map<uint32_t, bpf_link*> uprobe_links_;  // uprobes and tracing programs
  std::vector<bpf_link*> perf_links_;  // each owns its perf event fd
  struct ProgramLog {
    std::string name;
    std::string log;  // libbpf writes the verifier's log into this buffer
  };
  std::vector<ProgramLog> program_logs_;
};

}  // namespace apisix_profile
