// The service manager notification protocol of sd_notify(3), as pure
// functions over the environment systemd gives a Type=notify service and the
// text of the datagrams it expects; no sockets here (notify_socket.h sends).
//
//   NOTIFY_SOCKET     where to send: "/path" (a unix datagram socket) or
//                     "@name" (the same in the abstract namespace)
//   WATCHDOG_USEC     the watchdog timeout; WATCHDOG_PID, when set, names the
//                     process it is meant for
//   SYSTEMD_EXEC_PID  the process systemd started (systemd >= 248); when that
//                     is not us, MAINPID=<our pid> tells it who the service is
//
// A datagram is newline-separated VARIABLE=value lines (READY=1, STATUS=...,
// STOPPING=1, WATCHDOG=1, MAINPID=...). An empty environment value counts as
// unset, as libsystemd treats it.
//
// Thread safety: pure functions of their arguments.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace katsubushi::systemd {

// What the server tells the service manager.
inline constexpr std::string_view kReady = "READY=1";
inline constexpr std::string_view kStopping = "STOPPING=1";
inline constexpr std::string_view kWatchdog = "WATCHDOG=1";
// The longest STATUS= text sent; longer text is cut at a UTF-8 boundary.
// (systemd keeps it for `systemctl status`, one line.)
inline constexpr size_t kMaxStatusBytes = 512;

// A unix datagram address: a filesystem path, or a name in the abstract
// namespace (no NUL inside either).
struct NotifyAddress {
  std::string name;
  bool abstract = false;
  friend bool operator==(const NotifyAddress&, const NotifyAddress&) = default;
};

// $NOTIFY_SOCKET parsed; `error` says why when there is no address (an empty
// value is no address and no error: not run by systemd).
struct ParsedNotifySocket {
  std::optional<NotifyAddress> address;
  std::string error;
};
ParsedNotifySocket ParseNotifySocket(std::string_view value);

// The sockaddr_un for `address` and the length to pass with it (an abstract
// name is counted exactly: no trailing NUL is part of it).
socklen_t ToSockaddr(const NotifyAddress& address, sockaddr_un* out);

// "STATUS=<text>" on one line: line breaks and other control characters
// become spaces, and the text is cut to kMaxStatusBytes.
std::string StatusLine(std::string_view text);

std::string MainPidLine(pid_t pid);

// How often to send WATCHDOG=1: half of WATCHDOG_USEC, or nothing when the
// watchdog is off, the value is not a positive number, or WATCHDOG_PID names
// another process.
std::optional<std::chrono::microseconds> WatchdogPingInterval(std::string_view watchdog_usec,
                                                              std::string_view watchdog_pid,
                                                              pid_t self);

// Whether to send MAINPID: SYSTEMD_EXEC_PID is set and names another process
// (we were started through a wrapper that did not exec us).
bool NeedsMainPid(std::string_view systemd_exec_pid, pid_t self);

}  // namespace katsubushi::systemd
