package taskwire

import (
	"sync"
	"time"
)

// prioritySlots is a worker type's concurrency limit, shared by its feeds: a
// counting semaphore whose waiters are served by rank (0 first), first come
// first served within a rank. No rank starves: a waiter that has waited aging
// or more goes before any younger one, whatever its rank. While held (the
// queue is paused), no slot is handed out.
type prioritySlots struct {
	mu      sync.Mutex
	free    int
	held    bool
	aging   time.Duration
	now     func() time.Time
	waiters [][]*slotWaiter
}

type slotWaiter struct {
	since time.Time
	take  chan struct{}
}

func newPrioritySlots(capacity, ranks int, aging time.Duration, now func() time.Time) *prioritySlots {
	return &prioritySlots{free: capacity, aging: aging, now: now, waiters: make([][]*slotWaiter, ranks)}
}

// acquire takes a slot for a waiter of rank, or gives up when done closes (false).
func (s *prioritySlots) acquire(rank int, done <-chan struct{}) bool {
	s.mu.Lock()
	if !s.held && s.free > 0 && s.noWaiters() {
		s.free--
		s.mu.Unlock()
		return true
	}
	w := &slotWaiter{since: s.now(), take: make(chan struct{})}
	s.waiters[rank] = append(s.waiters[rank], w)
	s.mu.Unlock()
	select {
	case <-w.take:
		return true
	case <-done:
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, other := range s.waiters[rank] {
			if other == w {
				s.waiters[rank] = append(s.waiters[rank][:i], s.waiters[rank][i+1:]...)
				return false
			}
		}
		// Granted meanwhile: hand it on.
		s.free++
		s.grant()
		return false
	}
}

// release returns a slot, handing it to the best waiter.
func (s *prioritySlots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free++
	s.grant()
}

// hold hands out no slot until unhold: waiters wait, running ones go on.
func (s *prioritySlots) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = true
}

// holding: the slots are held (the queue is paused).
func (s *prioritySlots) holding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// unhold hands out slots again.
func (s *prioritySlots) unhold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = false
	s.grant()
}

func (s *prioritySlots) noWaiters() bool {
	for _, queue := range s.waiters {
		if len(queue) > 0 {
			return false
		}
	}
	return true
}

// grant hands free slots to waiters: the aged one first, else by rank.
func (s *prioritySlots) grant() {
	for !s.held && s.free > 0 {
		rank := s.aged()
		if rank < 0 {
			for r, queue := range s.waiters {
				if len(queue) > 0 {
					rank = r
					break
				}
			}
		}
		if rank < 0 {
			return
		}
		w := s.waiters[rank][0]
		s.waiters[rank] = s.waiters[rank][1:]
		s.free--
		close(w.take)
	}
}

// aged is the rank whose head has waited longest, if that is aging or more; else -1.
func (s *prioritySlots) aged() int {
	before := s.now().Add(-s.aging)
	oldest := -1
	for r, queue := range s.waiters {
		if len(queue) == 0 || queue[0].since.After(before) {
			continue
		}
		if oldest < 0 || queue[0].since.Before(s.waiters[oldest][0].since) {
			oldest = r
		}
	}
	return oldest
}
