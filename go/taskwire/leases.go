package taskwire

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// leases are one limit of a worker type shared by all its workers (step 5):
// count messages on numbered subjects of LIMITS_<type>, each taken by a
// publish that succeeds only on a free subject, and each with a TTL so that a
// dead worker's lease lapses by itself.
type leases struct {
	js         *js
	workerType string
	kind       string
	count      int
	ttl        time.Duration
	next       atomic.Uint64
}

func newLeases(j *js, workerType, kind string, count int, ttl time.Duration) *leases {
	l := &leases{js: j, workerType: workerType, kind: kind, count: count, ttl: ttl}
	l.next.Store(rand.Uint64N(1_000_000))
	return l
}

// rateLeases are the max_rate limit as leases: at most rate × w starts in any
// window of w = max(1, ⌈1/rate⌉) seconds.
func rateLeases(j *js, workerType string, rate float64) *leases {
	window := math.Max(1, math.Ceil(1/rate))
	count := int(math.Max(1, math.Round(rate*window)))
	return newLeases(j, workerType, "rate", count, time.Duration(window)*time.Second)
}

// lease is one lease held.
type lease struct {
	js      *js
	stream  string
	subject string
	holder  string
	ttl     time.Duration
	mu      sync.Mutex
	seq     uint64
}

// acquire takes a free lease, trying each subject once per round; between
// rounds it calls waiting (which keeps the task alive, and returns false to
// give up, or holds the next round back) and waits 10 ms, doubling up to 250 ms.
func (l *leases) acquire(ctx context.Context, holder string, waiting func() (try bool, ok bool)) (*lease, bool, error) {
	for round := 0; ; round++ {
		try, ok := waiting()
		if !ok {
			return nil, false, nil
		}
		if try {
			for range l.count {
				n := int(l.next.Add(1) % uint64(l.count))
				held := &lease{js: l.js, stream: limitStream(l.workerType), subject: limitSubject(l.workerType, l.kind, n), holder: holder, ttl: l.ttl}
				taken, err := held.take(ctx, 0)
				if err != nil {
					return nil, false, err
				}
				if taken {
					return held, true, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(min(10*time.Millisecond<<min(round, 5), 250*time.Millisecond)):
		}
	}
}

// adopt is a lease another process took and handed over (a keyed task's, in
// its Taskwire-Key-Lease header): renewed and released here, as if taken here.
func adoptLease(j *js, subject string, seq uint64, holder string, ttl time.Duration) *lease {
	// taskwire.limit.<type>.…: the stream is the type's.
	typ := ""
	if parts := strings.Split(subject, "."); len(parts) > 2 {
		typ = parts[2]
	}
	return &lease{js: j, stream: limitStream(typ), subject: subject, holder: holder, ttl: ttl, seq: seq}
}

// take publishes the lease over sequence expected (0: only if free); false if someone holds it.
func (l *lease) take(ctx context.Context, expected uint64) (bool, error) {
	seconds := max(1, int64((l.ttl+time.Second-1)/time.Second))
	h := header(
		"Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(expected, 10),
		"Nats-TTL", strconv.FormatInt(seconds, 10)+"s",
	)
	ack, err := l.js.publish(ctx, l.subject, []byte(l.holder), h)
	if isWrongLastSequence(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l.mu.Lock()
	l.seq = ack.Seq
	l.mu.Unlock()
	return true, nil
}

// renew publishes the lease again over its sequence; false when it was lost
// (it lapsed, and another holder took it): the attempt goes on without it.
func (l *lease) renew(ctx context.Context) (bool, error) {
	l.mu.Lock()
	seq := l.seq
	l.mu.Unlock()
	return l.take(ctx, seq)
}

// release deletes the lease's message, best effort.
func (l *lease) release(ctx context.Context) {
	l.mu.Lock()
	seq := l.seq
	l.mu.Unlock()
	_ = l.js.deleteMessage(ctx, l.stream, seq)
}
