#include "katsubushi/generator_core.h"

#include <algorithm>

namespace katsubushi {

IssueError IssueErrorOf(const Status& status) {
  if (status == kClockMovedBackwards) return IssueError::kClockRollback;
  if (status == kClockBeforeEpoch) return IssueError::kBeforeEpoch;
  if (status == kTimeOutOfRange) return IssueError::kPastLayout;
  if (status == kBadIdCount) return IssueError::kBadCount;
  if (status == kNoWorkerId) return IssueError::kNoLease;
  if (status == kLeaseExpired) return IssueError::kLeasePastDeadline;
  if (status == kBehindWatermark) return IssueError::kWatermarkAhead;
  return IssueError::kOther;
}

std::string_view IssueErrorName(IssueError error) {
  switch (error) {
    case IssueError::kClockRollback: return "clock_moved_backwards";
    case IssueError::kBeforeEpoch: return "clock_before_epoch";
    case IssueError::kPastLayout: return "time_out_of_range";
    case IssueError::kBadCount: return "bad_id_count";
    case IssueError::kNoLease: return "no_worker_id";
    case IssueError::kLeasePastDeadline: return "lease_expired";
    case IssueError::kWatermarkAhead: return "clock_behind_watermark";
    case IssueError::kOther:
    case IssueError::kCount: break;
  }
  return "other";
}

Status GeneratorOptions::Validate() const {
  if (!start_suspended && worker_id > layout.max_worker_id()) {
    return Status(StatusCode::kInvalidArgument, "worker id is out of the layout's range");
  }
  if (max_clock_rollback.count() < 0 || max_clock_rollback > std::chrono::minutes(1)) {
    return Status(StatusCode::kInvalidArgument,
                  "max clock rollback must be between 0 and 1 minute");
  }
  return Status::Ok();
}

Result<std::unique_ptr<GeneratorCore>> GeneratorCore::Create(Clock& clock,
                                                     const GeneratorOptions& options) {
  if (Status s = options.Validate(); !s.ok()) return s;
  return std::unique_ptr<GeneratorCore>(new GeneratorCore(clock, options));
}

GeneratorCore::GeneratorCore(Clock& clock, const GeneratorOptions& options)
    : clock_(clock),
      layout_(options.layout),
      // Rounded up: a 5 ms bound in 10 ms ticks still absorbs a 1-tick step.
      max_rollback_ticks_(static_cast<uint64_t>(
          (options.max_clock_rollback.count() + options.layout.millis_per_tick() - 1) /
          options.layout.millis_per_tick())),
      refresher_(options.refresher),
      idle_ticks_(options.refresher == nullptr
                      ? 0
                      : static_cast<uint64_t>(options.revalidate_after_idle.count() /
                                              options.layout.millis_per_tick())),
      state_(options.start_suspended
                 ? kSuspendedBit
                 : uint64_t{options.worker_id} << kWorkerShift),
      lease_valid_until_micros_(options.start_suspended ? INT64_MIN : INT64_MAX) {}

Result<uint64_t> GeneratorCore::Next() {
  uint64_t slot = 0;
  uint32_t worker_id = 0;
  if (Status s = Reserve(1, &slot, &worker_id); !s.ok()) return s;
  return layout_.ComposeSlot(slot, worker_id);
}

Status GeneratorCore::NextN(std::span<uint64_t> out) {
  if (out.empty() || out.size() > kMaxIdsPerCall) return kBadIdCount;
  uint64_t slot = 0;
  uint32_t worker_id = 0;
  if (Status s = Reserve(out.size(), &slot, &worker_id); !s.ok()) return s;
  for (uint64_t& id : out) id = layout_.ComposeSlot(slot++, worker_id);
  return Status::Ok();
}

Status GeneratorCore::Reserve(uint64_t n, uint64_t* first_slot, uint32_t* worker_id) {
  const int seq_bits = layout_.sequence_bits();
  const uint64_t per_tick = layout_.ids_per_tick();
  // Ticks a batch may run ahead of the clock: the least that fits it in one
  // piece however full the current tick is. 0 for a single ID.
  const uint64_t lead = (n - 1 + per_tick - 1) / per_tick;
  constexpr int64_t kEpochMicros = kEpochUnixMillis * 1000;

  // Relaxed is enough for every access to state_: it publishes no other
  // data, and uniqueness comes from the CAS itself. All read-modify-writes of
  // one atomic form a single total order, each reading the value the previous
  // one wrote, so the ranges handed out are disjoint and increasing in that
  // order. A caller that learns of an ID and then calls Next() observes a later
  // value by coherence, so its ID is larger.
  // A refresher gets one call per Reserve(); whatever it could not fix is
  // the caller's error.
  bool refreshed = false;
  auto refresh = [&](LeaseRefresher::Reason reason, const Status& refusal) {
    if (refresher_ == nullptr || refreshed) return refusal;
    refreshed = true;
    return refresher_->Refresh(*this, reason);
  };

  uint64_t state = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (state & kSuspendedBit) {
      if (Status s = refresh(LeaseRefresher::Reason::kSuspended, kNoWorkerId); !s.ok()) return s;
      state = state_.load(std::memory_order_relaxed);
      continue;
    }
    const int64_t now_micros = clock_.NowUnixMicros();
    // The ID's time is now_micros, read before the check: an ID is never
    // stamped with a time at or past the deadline, however long this thread
    // is preempted before its CAS. Acquire pairs with the release in
    // ExtendLease()/Resume(): whoever recorded the promise behind this
    // deadline did so before publishing it.
    const int64_t deadline_micros = lease_valid_until_micros_.load(std::memory_order_acquire);
    if (now_micros >= deadline_micros) {
      if (Status s = refresh(LeaseRefresher::Reason::kDeadline, kLeaseExpired); !s.ok()) return s;
      state = state_.load(std::memory_order_relaxed);
      continue;
    }
    if (now_micros < kEpochMicros) return kClockBeforeEpoch;
    const uint64_t now_tick = static_cast<uint64_t>(layout_.TickAt(now_micros / 1000));
    if (now_tick > layout_.max_tick()) return kTimeOutOfRange;

    const uint64_t last = state & kSlotMask;
    const uint64_t last_tick = last >> seq_bits;
    if (idle_ticks_ != 0 && !refreshed && now_tick > last_tick + idle_ticks_) {
      if (Status s = refresh(LeaseRefresher::Reason::kIdle, Status::Ok()); !s.ok()) return s;
      state = state_.load(std::memory_order_relaxed);
      continue;
    }
    if (last_tick > now_tick + max_rollback_ticks_) return BehindLastSlot(last);

    const uint64_t first = now_tick > last_tick ? now_tick << seq_bits : last + 1;
    const uint64_t end = first + n - 1;
    const uint64_t end_tick = end >> seq_bits;
    if (end_tick > layout_.max_tick()) return kTimeOutOfRange;
    // The last ID's stamp, not only the clock, must be before the deadline: a
    // batch running ahead would otherwise carry ticks no promise covers.
    if (layout_.UnixMillisAt(end_tick) * 1000 >= deadline_micros) {
      if (Status s = refresh(LeaseRefresher::Reason::kDeadline, kLeaseExpired); !s.ok()) return s;
      state = state_.load(std::memory_order_relaxed);
      continue;
    }

    // Stay on the tick we were on (a small rollback), or run ahead by `lead`.
    if (end_tick > std::max(now_tick + lead, last_tick)) {
      waits_.fetch_add(1, std::memory_order_relaxed);
      clock_.WaitUntil(layout_.UnixMillisAt(end_tick - lead) * 1000);
      state = state_.load(std::memory_order_relaxed);
      continue;
    }

    if (state_.compare_exchange_weak(state, (state & ~kSlotMask) | end,
                                     std::memory_order_relaxed)) {
      if (last_tick > now_tick) rollbacks_absorbed_.fetch_add(1, std::memory_order_relaxed);
      *first_slot = first;
      *worker_id = static_cast<uint32_t>((state >> kWorkerShift) & kMaxStateWorkerId);
      return Status::Ok();
    }
    // The failed CAS loaded the newer value into `state`; read the clock again
    // because another thread may have moved to a newer tick.
  }
}

Status GeneratorCore::BehindLastSlot(uint64_t last) {
  if (last == floor_slot_.load(std::memory_order_relaxed)) return kBehindWatermark;
  rollback_errors_.fetch_add(1, std::memory_order_relaxed);
  return kClockMovedBackwards;
}

Status GeneratorCore::AdvancePast(int64_t unix_millis, std::chrono::milliseconds max_wait) {
  const int64_t tick = layout_.TickAt(unix_millis);
  if (tick < 0) return Status::Ok();
  if (static_cast<uint64_t>(tick) >= layout_.max_tick()) return kTimeOutOfRange;
  const uint64_t floor = (static_cast<uint64_t>(tick) << layout_.sequence_bits()) |
                         layout_.max_sequence();
  // Raise the slot to the floor (an atomic max) so that nothing at or below
  // it can be issued even if we stop waiting. Relaxed as in Reserve().
  uint64_t state = state_.load(std::memory_order_relaxed);
  while ((state & kSlotMask) < floor &&
         !state_.compare_exchange_weak(state, (state & ~kSlotMask) | floor,
                                       std::memory_order_relaxed)) {
  }
  floor_slot_.store(floor, std::memory_order_relaxed);

  const int64_t pass_micros = layout_.UnixMillisAt(static_cast<uint64_t>(tick) + 1) * 1000;
  const int64_t deadline = clock_.NowUnixMicros() +
                           std::chrono::duration_cast<std::chrono::microseconds>(max_wait).count();
  for (;;) {
    const int64_t now = clock_.NowUnixMicros();
    if (now >= pass_micros) return Status::Ok();
    if (now >= deadline) return kWatermarkNotPassed;
    clock_.WaitUntil(std::min(pass_micros, deadline));
  }
}

Status GeneratorCore::CanIssue() const {
  const uint64_t state = state_.load(std::memory_order_relaxed);
  if (state & kSuspendedBit) return kNoWorkerId;
  const int64_t now_micros = clock_.NowUnixMicros();
  if (now_micros >= lease_valid_until_micros()) return kLeaseExpired;
  if (now_micros < kEpochUnixMillis * 1000) return kClockBeforeEpoch;
  const uint64_t now_tick = static_cast<uint64_t>(layout_.TickAt(now_micros / 1000));
  if (now_tick > layout_.max_tick()) return kTimeOutOfRange;
  const uint64_t last = state & kSlotMask;
  if ((last >> layout_.sequence_bits()) > now_tick + max_rollback_ticks_) {
    return last == floor_slot_.load(std::memory_order_relaxed) ? kBehindWatermark
                                                                : kClockMovedBackwards;
  }
  return Status::Ok();
}

void GeneratorCore::Suspend() { state_.fetch_or(kSuspendedBit, std::memory_order_relaxed); }

Status GeneratorCore::Resume(uint32_t worker_id, int64_t valid_until_micros) {
  if (worker_id > layout_.max_worker_id()) {
    return Status(StatusCode::kInvalidArgument, "worker id is out of the layout's range");
  }
  // The deadline first: a thread that sees the new state and a stale deadline
  // can only refuse (an expired one) or issue before the previous deadline,
  // which the new lease also covers.
  lease_valid_until_micros_.store(valid_until_micros, std::memory_order_release);
  NoteLeaseConfirmed(valid_until_micros);
  uint64_t state = state_.load(std::memory_order_relaxed);
  while (!state_.compare_exchange_weak(
      state, (state & kSlotMask) | uint64_t{worker_id} << kWorkerShift,
      std::memory_order_relaxed)) {
  }
  return Status::Ok();
}

void GeneratorCore::ExtendLease(int64_t valid_until_micros) {
  lease_valid_until_micros_.store(valid_until_micros, std::memory_order_release);
  NoteLeaseConfirmed(valid_until_micros);
}

void GeneratorCore::NoteLeaseConfirmed(int64_t valid_until_micros) {
  // A deadline already past revokes (a lease that could not be confirmed);
  // only one ahead confirms.
  const int64_t now = clock_.NowUnixMicros();
  if (valid_until_micros > now) lease_confirmed_micros_.store(now, std::memory_order_relaxed);
}

bool GeneratorCore::suspended() const {
  return (state_.load(std::memory_order_relaxed) & kSuspendedBit) != 0;
}

uint32_t GeneratorCore::worker_id() const {
  return static_cast<uint32_t>((state_.load(std::memory_order_relaxed) >> kWorkerShift) &
                               kMaxStateWorkerId);
}

int64_t GeneratorCore::last_issued_unix_millis() const {
  const uint64_t last = state_.load(std::memory_order_relaxed) & kSlotMask;
  if (last == 0) return 0;
  return layout_.UnixMillisAt(last >> layout_.sequence_bits());
}

GeneratorCounters GeneratorCore::counters() const {
  return GeneratorCounters{
      waits_.load(std::memory_order_relaxed),
      rollbacks_absorbed_.load(std::memory_order_relaxed),
      rollback_errors_.load(std::memory_order_relaxed),
  };
}

}  // namespace katsubushi
