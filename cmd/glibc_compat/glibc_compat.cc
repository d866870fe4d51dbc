// Definitions that keep a self-contained binary (KATSUBUSHI_STATIC_RUNTIME)
// within the glibc 2.34 symbol versions of Amazon Linux 2023 and Ubuntu
// 22.04, when it is built on Debian 12 (glibc 2.36).
//
// Debian's static C++ runtime was built against glibc 2.36 and calls two
// newer functions:
//   arc4random        (GLIBC_2.36) from libstdc++'s std::random_device;
//   _dl_find_object   (GLIBC_2.35) from libgcc's unwinder, to find the
//                     exception tables of the code an exception unwinds.
// Defined here, in an object of the executable itself, they satisfy those
// references at link time, so the binary asks glibc for neither. Each does
// what glibc's does with interfaces from before 2.34 (getrandom 2.25,
// dl_iterate_phdr 2.2.4). They are hidden: otherwise the linker would export
// them (glibc defines the same names) and the gRPC module's libstdc++ and
// libgcc_s would bind to them instead of glibc's.
//
// tests/cli/check_self_contained.sh checks the versions the binary needs;
// the unit and e2e tests throw and catch through this _dl_find_object.
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace {

// Fills `buf` from the kernel's CSPRNG; arc4random cannot fail, so neither
// can this (it aborts, as glibc's does, when no randomness is available).
void FillRandom(void* buf, size_t size) {
  auto* out = static_cast<unsigned char*>(buf);
  while (size > 0) {
    const ssize_t n = ::getrandom(out, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out += n;
    size -= static_cast<size_t>(n);
  }
  if (size == 0) return;
  // getrandom refused (a seccomp filter, say): the device glibc falls back to.
  const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  while (fd >= 0 && size > 0) {
    const ssize_t n = ::read(fd, out, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out += n;
    size -= static_cast<size_t>(n);
  }
  if (fd >= 0) ::close(fd);
  if (size != 0) std::abort();
}

struct FindObject {
  uintptr_t pc;
  dl_find_object* result;
  bool found;
};

int FindObjectCallback(dl_phdr_info* info, size_t, void* data) {
  auto* find = static_cast<FindObject*>(data);
  bool contains = false;
  uintptr_t start = UINTPTR_MAX, end = 0;
  const void* eh_frame = nullptr;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD) {
      const uintptr_t seg_start = info->dlpi_addr + ph.p_vaddr;
      const uintptr_t seg_end = seg_start + ph.p_memsz;
      if (find->pc >= seg_start && find->pc < seg_end) contains = true;
      if (seg_start < start) start = seg_start;
      if (seg_end > end) end = seg_end;
    } else if (ph.p_type == DLFO_EH_SEGMENT_TYPE) {
      eh_frame = reinterpret_cast<const void*>(info->dlpi_addr + ph.p_vaddr);
    }
  }
  if (!contains) return 0;
  dl_find_object* r = find->result;
  r->dlfo_flags = 0;
  r->dlfo_map_start = reinterpret_cast<void*>(start);
  r->dlfo_map_end = reinterpret_cast<void*>(end);
  r->dlfo_link_map = nullptr;  // not known here; libgcc's unwinder does not read it
  r->dlfo_eh_frame = const_cast<void*>(eh_frame);
#if DLFO_STRUCT_HAS_EH_DBASE
  r->dlfo_eh_dbase = nullptr;  // only i386 and nios2 have a data base
#endif
  find->found = true;
  return 1;  // stop iterating
}

}  // namespace

#define KATSUBUSHI_HIDDEN __attribute__((visibility("hidden")))

extern "C" {

KATSUBUSHI_HIDDEN uint32_t arc4random() noexcept {
  uint32_t v = 0;
  FillRandom(&v, sizeof v);
  return v;
}

KATSUBUSHI_HIDDEN void arc4random_buf(void* buf, size_t size) noexcept { FillRandom(buf, size); }

KATSUBUSHI_HIDDEN uint32_t arc4random_uniform(uint32_t upper_bound) noexcept {
  if (upper_bound < 2) return 0;
  // Rejection sampling: drop the values that would make the modulo uneven.
  const uint32_t min = (0u - upper_bound) % upper_bound;
  for (;;) {
    const uint32_t v = arc4random();
    if (v >= min) return v % upper_bound;
  }
}

KATSUBUSHI_HIDDEN int _dl_find_object(void* address, dl_find_object* result) noexcept {
  FindObject find{reinterpret_cast<uintptr_t>(address), result, false};
  ::dl_iterate_phdr(FindObjectCallback, &find);
  return find.found ? 0 : -1;
}

}  // extern "C"
