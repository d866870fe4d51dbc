// GeneratorCore: issues unique, strictly increasing IDs for one worker id.
// The server drives it directly; programs embedding katsubushi get it behind
// katsubushi::Generator (embedded/generator.h), which adds the worker id source.
//
// Lock-free: the whole state is one atomic 64-bit "slot" (tick << sequence_bits
// | sequence) of the last ID issued, advanced by compare-and-swap. Next() and
// NextN() never block on a mutex; they wait only when the format demands it
// (the tick's sequence is used up, or the clock is slightly behind the last
// ID) and then only for the clock.
//
// Guarantees, for every clock it is given:
//   * No slot is ever issued twice: each successful CAS hands out a range that
//     starts right after the previous range in the state's modification order.
//   * IDs are strictly increasing in that order, across all threads.
//   * No ID is issued at a tick the clock has not reached, except that a batch
//     of n may run ceil((n-1)/ids_per_tick) ticks ahead (the least needed to
//     hand it out in one piece), and that after the clock steps back by up to
//     `max_clock_rollback` the generator keeps using the tick it was on.
//   * Under a lease, no ID is stamped at or after the lease deadline, the
//     ticks a batch runs ahead included: LastMillisBefore(deadline) bounds
//     every ID issued under it.
//   * A clock more than `max_clock_rollback` behind the last ID gets
//     kClockMovedBackwards; the generator recovers when the clock catches up.
//
// Leases. The worker id is part of the atomic state, next to a "suspended"
// bit, so a reservation and the worker id it is composed with always come
// from the same state: Suspend() is linearizable with issuing (once it
// returns, nothing more is issued under the old worker id), and Resume() can
// switch to another worker id without an ID ever pairing the new worker id
// with a slot below the floor set for it. A lease deadline (on the clock's
// timeline) is checked on every issue, so a process that was paused past its
// deadline refuses IDs until whoever holds the lease confirms it again; no
// background thread has to run first.
//
// Thread safety: all methods may be called concurrently. The Clock must
// outlive the GeneratorCore.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "katsubushi/clock.h"
#include "katsubushi/id_layout.h"
#include "katsubushi/status.h"

namespace katsubushi {

// Errors the generator returns. Fronts map the code to their protocol.
inline constexpr Status kClockMovedBackwards{StatusCode::kUnavailable,
                                             "clock moved backwards"};
inline constexpr Status kClockBeforeEpoch{StatusCode::kUnavailable,
                                          "clock is before the ID epoch"};
inline constexpr Status kTimeOutOfRange{StatusCode::kOutOfRange,
                                        "clock is past the last time the ID layout can hold"};
inline constexpr Status kBadIdCount{StatusCode::kInvalidArgument,
                                    "ID count must be between 1 and the per-call limit"};
inline constexpr Status kWatermarkNotPassed{StatusCode::kDeadlineExceeded,
                                            "clock did not pass the restart watermark in time"};
inline constexpr Status kNoWorkerId{StatusCode::kUnavailable,
                                    "no worker id held (waiting for a lease)"};
inline constexpr Status kLeaseExpired{StatusCode::kUnavailable,
                                      "worker id lease is not confirmed (past its deadline)"};
inline constexpr Status kBehindWatermark{
    StatusCode::kUnavailable,
    "clock has not passed the worker id's watermark (IDs a previous holder may have issued)"};

// A label per error above, for counters and metrics.
enum class IssueError : uint8_t {
  kClockRollback,
  kBeforeEpoch,
  kPastLayout,
  kBadCount,
  kNoLease,
  kLeasePastDeadline,
  kWatermarkAhead,
  kOther,
  kCount,
};
IssueError IssueErrorOf(const Status& status);
std::string_view IssueErrorName(IssueError error);

// The latest Unix ms an ID issued strictly before `deadline_micros` can carry.
// A holder that records this before it may issue up to the deadline has made
// a promise: none of its IDs, in any batch, is stamped after it. It is the
// watermark a successor waits out (AdvancePast) and what -state-file writes.
constexpr int64_t LastMillisBefore(int64_t deadline_micros) {
  return deadline_micros > 0 ? (deadline_micros - 1) / 1000 : 0;
}

class GeneratorCore;

// Makes issuing possible again, synchronously, from the issue path: a lease
// with no background thread (embedded use, AWS Lambda, where threads do not
// run between events). The generator calls it when it would refuse for want
// of a worker id or past its lease deadline, or when the clock has moved more
// than `revalidate_after_idle` past the last ID; then it tries once more.
class LeaseRefresher {
 public:
  enum class Reason { kSuspended, kDeadline, kIdle };
  virtual ~LeaseRefresher() = default;
  // May call the generator's lease methods (Suspend, Resume, ExtendLease,
  // AdvancePast), never Next(). Ok: try again; an error is what the caller gets.
  virtual Status Refresh(GeneratorCore& generator, Reason reason) = 0;
};

struct GeneratorOptions {
  // How far the clock may fall behind the last ID before Next() errors instead
  // of continuing from the tick it was on.
  static constexpr std::chrono::milliseconds kDefaultMaxClockRollback{5};

  IdLayout layout = IdLayout::Default();
  uint32_t worker_id = 0;
  std::chrono::milliseconds max_clock_rollback = kDefaultMaxClockRollback;
  // Start without a worker id: nothing is issued until Resume() grants one.
  // For worker ids that come from a lease; `worker_id` is then ignored.
  bool start_suspended = false;
  // Optional; must outlive the generator. See LeaseRefresher.
  LeaseRefresher* refresher = nullptr;
  // With a refresher: ask it again when the clock is this far past the last
  // ID (a process frozen between events). 0: never.
  std::chrono::milliseconds revalidate_after_idle{0};

  // Checks the worker id against the layout and the rollback bound.
  Status Validate() const;
};

// Rare events, counted with relaxed atomics (they are off the fast path).
struct GeneratorCounters {
  uint64_t waits = 0;               // times a caller waited for the clock
  uint64_t rollbacks_absorbed = 0;  // IDs issued while the clock was behind
  uint64_t rollback_errors = 0;     // calls refused with kClockMovedBackwards
};

class GeneratorCore {
 public:
  // The most IDs one NextN() call hands out.
  static constexpr size_t kMaxIdsPerCall = 4096;

  // Fails with kInvalidArgument when the options do not Validate().
  static Result<std::unique_ptr<GeneratorCore>> Create(Clock& clock,
                                                       const GeneratorOptions& options);

  GeneratorCore(const GeneratorCore&) = delete;
  GeneratorCore& operator=(const GeneratorCore&) = delete;

  Result<uint64_t> Next();

  // Fills `out` with out.size() IDs reserved in one CAS: consecutive slots, so
  // they are strictly increasing and nobody else's IDs fall between them.
  // On error nothing is written that will be issued.
  Status NextN(std::span<uint64_t> out);

  // Restart safety: never issue an ID in the tick that holds `unix_millis` or
  // earlier, then wait up to `max_wait` for the clock to pass that tick (0:
  // do not wait). If the wait times out the floor still holds: Next() answers
  // kBehindWatermark until the clock passes it.
  Status AdvancePast(int64_t unix_millis, std::chrono::milliseconds max_wait);

  // Whether Next() would issue now, without issuing: kNoWorkerId when
  // suspended, kLeaseExpired past the lease deadline, kBehindWatermark while
  // the clock has not passed the floor AdvancePast() set, kClockMovedBackwards
  // when the clock is too far behind the last ID, kClockBeforeEpoch or
  // kTimeOutOfRange when it is outside the layout. For health checks.
  Status CanIssue() const;

  // --- Leases (see the class comment). Meant for one owner thread at a time.

  // Stops issuing. Returns once no call can issue any more.
  void Suspend();

  // Issues again, as `worker_id`, until the clock reads `valid_until_micros`
  // (Unix microseconds on this generator's clock). The slot floor is kept:
  // call AdvancePast() with the new worker id's watermark *before* Resume().
  Status Resume(uint32_t worker_id, int64_t valid_until_micros);

  // Moves the lease deadline (a renewal confirmed the lease).
  void ExtendLease(int64_t valid_until_micros);

  bool suspended() const;
  // The deadline Resume()/ExtendLease() set; INT64_MAX without a lease.
  int64_t lease_valid_until_micros() const {
    return lease_valid_until_micros_.load(std::memory_order_acquire);
  }
  // When Resume()/ExtendLease() last set a deadline still ahead (a lease
  // granted or confirmed), on this generator's clock; 0 if never. For metrics.
  int64_t lease_confirmed_unix_micros() const {
    return lease_confirmed_micros_.load(std::memory_order_relaxed);
  }

  // The time on this generator's clock, which its lease deadline is on.
  int64_t NowUnixMicros() const { return clock_.NowUnixMicros(); }

  // Start (Unix ms) of the tick of the last ID issued; 0 before the first one.
  // This is what a restart watermark should persist.
  int64_t last_issued_unix_millis() const;

  // The worker id IDs are issued as (the last one granted, when suspended).
  uint32_t worker_id() const;
  const IdLayout& layout() const { return layout_; }
  GeneratorCounters counters() const;

 private:
  GeneratorCore(Clock& clock, const GeneratorOptions& options);

  // The state word: [63] suspended | [62..53] worker id | [52..0] slot of
  // the last ID issued (tick << sequence_bits | sequence).
  static constexpr int kWorkerShift = 53;
  static constexpr uint64_t kSlotMask = (uint64_t{1} << kWorkerShift) - 1;
  static constexpr uint64_t kSuspendedBit = uint64_t{1} << 63;
  static constexpr uint64_t kMaxStateWorkerId = (kSuspendedBit >> kWorkerShift) - 1;
  static_assert(IdLayout::Default().time_bits() + IdLayout::Default().sequence_bits() <= kWorkerShift);
  static_assert(IdLayout::Default().max_worker_id() <= kMaxStateWorkerId);

  // Reserves n consecutive slots; on success *first_slot is the first of them
  // and *worker_id the worker id they belong to.
  Status Reserve(uint64_t n, uint64_t* first_slot, uint32_t* worker_id);
  // The refusal for a clock too far behind the last slot `last`: a floor
  // nothing has been issued above yet is a watermark being waited out.
  Status BehindLastSlot(uint64_t last);
  // Records the time of a grant or confirmation (lease_confirmed_unix_micros).
  void NoteLeaseConfirmed(int64_t valid_until_micros);

  Clock& clock_;
  const IdLayout layout_;
  const uint64_t max_rollback_ticks_;
  LeaseRefresher* const refresher_;
  const uint64_t idle_ticks_;  // 0: no idle revalidation

  // alignas keeps the hot word off the cache line of the read-mostly fields
  // above and the counters below. The deadline is read on every issue and
  // written about once a second.
  alignas(64) std::atomic<uint64_t> state_;
  std::atomic<int64_t> lease_valid_until_micros_;
  // The last floor AdvancePast() set (0: none). Read only to word a refusal.
  std::atomic<uint64_t> floor_slot_{0};
  // Written by the lease owner about once a second; read only by metrics.
  std::atomic<int64_t> lease_confirmed_micros_{0};

  alignas(64) std::atomic<uint64_t> waits_{0};
  std::atomic<uint64_t> rollbacks_absorbed_{0};
  std::atomic<uint64_t> rollback_errors_{0};
};

}  // namespace katsubushi
