package taskwire

import (
	"testing"
	"time"
)

// taken reports which of the channels' acquires have completed.
func startAcquire(s *prioritySlots, rank int) <-chan bool {
	got := make(chan bool, 1)
	go func() { got <- s.acquire(rank, make(chan struct{})) }()
	return got
}

func waitQueued(t *testing.T, s *prioritySlots, rank, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		queued := len(s.waiters[rank])
		s.mu.Unlock()
		if queued == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("rank %d never had %d waiters", rank, n)
}

func TestSlotsServeHigherRanksFirst(t *testing.T) {
	clock := time.Unix(0, 0)
	s := newPrioritySlots(1, 3, 5*time.Second, func() time.Time { return clock })
	if !s.acquire(0, nil) {
		t.Fatal("a free slot is taken at once")
	}
	low := startAcquire(s, 2)
	waitQueued(t, s, 2, 1)
	high := startAcquire(s, 0)
	waitQueued(t, s, 0, 1)
	s.release()
	if !<-high {
		t.Fatal("high is served first")
	}
	select {
	case <-low:
		t.Fatal("low waits while the slot is held")
	default:
	}
	s.release()
	if !<-low {
		t.Fatal("low is served next")
	}
}

func TestSlotsServeAnAgedWaiterFirst(t *testing.T) {
	clock := time.Unix(0, 0)
	s := newPrioritySlots(1, 3, 5*time.Second, func() time.Time { return clock })
	s.acquire(0, nil)
	low := startAcquire(s, 2)
	waitQueued(t, s, 2, 1)
	clock = clock.Add(5 * time.Second)
	high := startAcquire(s, 0)
	waitQueued(t, s, 0, 1)
	s.release()
	if !<-low {
		t.Fatal("a waiter of 5 s goes first, whatever its rank")
	}
	s.release()
	<-high
}

func TestSlotsHeldHandOutNothing(t *testing.T) {
	s := newPrioritySlots(2, 1, 5*time.Second, time.Now)
	s.hold()
	got := startAcquire(s, 0)
	waitQueued(t, s, 0, 1)
	s.unhold()
	if !<-got {
		t.Fatal("unhold hands out the free slot")
	}
}

func TestSlotsGiveUpWhenDone(t *testing.T) {
	s := newPrioritySlots(0, 1, 5*time.Second, time.Now)
	done := make(chan struct{})
	close(done)
	if s.acquire(0, done) {
		t.Fatal("no slot: it gives up")
	}
	if len(s.waiters[0]) != 0 {
		t.Fatal("a waiter that gave up is gone")
	}
}
