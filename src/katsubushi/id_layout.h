// IdLayout: the one place that knows how an ID is laid out in 64 bits.
//
//   default:  [0][41-bit ms since epoch][10-bit worker id][12-bit sequence]
//   js-safe:  [0 x 11][39-bit 10 ms units since epoch][6-bit worker id][8-bit sequence]
//
// The epoch is 2015-01-01T00:00:00Z for both. A "tick" is the layout's unit of
// time (1 ms or 10 ms). A "slot" is (tick << sequence_bits) | sequence: IDs of
// one worker, in issue order, are consecutive slots, which is what lets the
// generator reserve a run of IDs with one addition.
//
// IdLayout is a constexpr value type; every member function is pure and
// thread-safe.
#pragma once

#include <cstdint>

namespace katsubushi {

// Milliseconds from the Unix epoch to 2015-01-01T00:00:00Z.
inline constexpr int64_t kEpochUnixMillis = 1420070400000;

struct IdParts {
  int64_t unix_millis = 0;  // start of the tick the ID was issued in
  uint32_t worker_id = 0;
  uint32_t sequence = 0;

  friend bool operator==(const IdParts&, const IdParts&) = default;
};

class IdLayout {
 public:
  static constexpr IdLayout Default() { return IdLayout(41, 10, 12, 1); }
  static constexpr IdLayout JsSafe() { return IdLayout(39, 6, 8, 10); }

  constexpr int time_bits() const { return time_bits_; }
  constexpr int worker_bits() const { return worker_bits_; }
  constexpr int sequence_bits() const { return sequence_bits_; }
  constexpr int64_t millis_per_tick() const { return millis_per_tick_; }

  constexpr uint64_t max_tick() const { return Mask(time_bits_); }
  constexpr uint32_t max_worker_id() const { return static_cast<uint32_t>(Mask(worker_bits_)); }
  constexpr uint32_t max_sequence() const { return static_cast<uint32_t>(Mask(sequence_bits_)); }
  // IDs one worker can issue in one tick.
  constexpr uint64_t ids_per_tick() const { return uint64_t{1} << sequence_bits_; }
  // The format's hard ceiling for one worker.
  constexpr uint64_t max_ids_per_second() const {
    return ids_per_tick() * static_cast<uint64_t>(1000 / millis_per_tick_);
  }
  constexpr uint64_t max_id() const { return Compose(max_tick(), max_worker_id(), max_sequence()); }

  // Ticks since the epoch for a Unix time in ms; negative before the epoch.
  // Rounds toward negative infinity so that a tick never starts late.
  constexpr int64_t TickAt(int64_t unix_millis) const {
    const int64_t since = unix_millis - kEpochUnixMillis;
    return since >= 0 ? since / millis_per_tick_
                      : -((-since + millis_per_tick_ - 1) / millis_per_tick_);
  }
  constexpr int64_t UnixMillisAt(uint64_t tick) const {
    return kEpochUnixMillis + static_cast<int64_t>(tick) * millis_per_tick_;
  }

  // Preconditions (unchecked, callers validate at their edge): tick <= max_tick(),
  // worker_id <= max_worker_id(), sequence <= max_sequence().
  constexpr uint64_t Compose(uint64_t tick, uint32_t worker_id, uint32_t sequence) const {
    return (tick << (worker_bits_ + sequence_bits_)) |
           (uint64_t{worker_id} << sequence_bits_) | sequence;
  }
  constexpr uint64_t ComposeSlot(uint64_t slot, uint32_t worker_id) const {
    return Compose(slot >> sequence_bits_, worker_id,
                   static_cast<uint32_t>(slot & max_sequence()));
  }

  constexpr uint64_t TickOf(uint64_t id) const { return id >> (worker_bits_ + sequence_bits_); }
  constexpr uint32_t WorkerIdOf(uint64_t id) const {
    return static_cast<uint32_t>((id >> sequence_bits_) & max_worker_id());
  }
  constexpr uint32_t SequenceOf(uint64_t id) const {
    return static_cast<uint32_t>(id & max_sequence());
  }
  constexpr uint64_t SlotOf(uint64_t id) const {
    return (TickOf(id) << sequence_bits_) | SequenceOf(id);
  }

  // Bits above the layout's width are ignored, as go-katsubushi's Dump does.
  constexpr IdParts Decode(uint64_t id) const {
    return IdParts{UnixMillisAt(TickOf(id) & max_tick()), WorkerIdOf(id), SequenceOf(id)};
  }

  // The smallest ID any worker can issue at `unix_millis` (go-katsubushi's ToID):
  // `WHERE id >= MinIdAt(t)` selects rows created at or after t. Times before the
  // epoch give 0; times past the layout's range give the largest valid tick.
  constexpr uint64_t MinIdAt(int64_t unix_millis) const {
    const int64_t tick = TickAt(unix_millis);
    if (tick <= 0) return 0;
    const uint64_t t = static_cast<uint64_t>(tick);
    return Compose(t > max_tick() ? max_tick() : t, 0, 0);
  }

  friend constexpr bool operator==(const IdLayout&, const IdLayout&) = default;

 private:
  constexpr IdLayout(int time_bits, int worker_bits, int sequence_bits, int64_t millis_per_tick)
      : time_bits_(time_bits),
        worker_bits_(worker_bits),
        sequence_bits_(sequence_bits),
        millis_per_tick_(millis_per_tick) {}

  static constexpr uint64_t Mask(int bits) { return (uint64_t{1} << bits) - 1; }

  int time_bits_;
  int worker_bits_;
  int sequence_bits_;
  int64_t millis_per_tick_;
};

static_assert(IdLayout::Default().max_ids_per_second() == 4'096'000);
static_assert(IdLayout::JsSafe().max_ids_per_second() == 25'600);
static_assert(IdLayout::Default().max_id() == (uint64_t{1} << 63) - 1);
static_assert(IdLayout::JsSafe().max_id() == (uint64_t{1} << 53) - 1);

}  // namespace katsubushi
