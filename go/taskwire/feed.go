package taskwire

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// feed pulls one consumer's tasks in explicit batches and hands each to a
// handler slot. Every pulled message is visible while it waits: kept alive
// with +WPI (so a busy worker's backlog is never redelivered elsewhere) and
// given back at once on stop.
type feed struct {
	t        *served
	consumer jetstream.Consumer
	rank     int
	prefetch int
	expires  time.Duration

	mu      sync.Mutex
	waiting map[jetstream.Msg]struct{}
	stopped bool
	extra   bool
	wake    chan struct{}
	// halt ends pulls in flight and slot waits when the feed stops.
	halt    context.Context
	stop    context.CancelFunc
	loops   sync.WaitGroup
	backing sync.WaitGroup
}

func startFeed(t *served, consumer jetstream.Consumer, rank int) *feed {
	halt, stop := context.WithCancel(context.Background())
	f := &feed{
		t:        t,
		consumer: consumer,
		rank:     rank,
		prefetch: t.prefetch,
		// A pull request lasts half an ack wait, from 1 to 10 s: one a frozen worker
		// made is gone by the time its tasks are redelivered.
		expires: min(10*time.Second, max(time.Second, t.ackWait/2)),
		waiting: map[jetstream.Msg]struct{}{},
		wake:    make(chan struct{}, 1),
		halt:    halt,
		stop:    stop,
	}
	f.loops.Go(f.loop)
	f.loops.Go(f.keepAlive)
	return f
}

// shutdown stops pulling and gives every waiting message back. Running tasks go on.
func (f *feed) shutdown() {
	f.mu.Lock()
	f.stopped = true
	waiting := f.waiting
	f.waiting = map[jetstream.Msg]struct{}{}
	f.mu.Unlock()
	f.stop()
	for msg := range waiting {
		f.giveBack(msg)
	}
}

// wait waits for the feed's pulls and give-backs to end, once shut down.
func (f *feed) wait() {
	f.loops.Wait()
	f.backing.Wait()
}

// repull sends one more pull request beside the one in flight: a request made
// while the consumer was paused may stay unserved after it resumes, until it expires.
func (f *feed) repull() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || f.extra {
		return
	}
	f.extra = true
	room := max(1, f.prefetch-len(f.waiting))
	f.loops.Go(func() {
		if err := f.pull(room); err != nil && f.halt.Err() == nil {
			f.t.w.log.Warn("pulling tasks", "type", f.t.svc.WorkerType, "error", err)
		}
		f.mu.Lock()
		f.extra = false
		f.mu.Unlock()
	})
}

func (f *feed) loop() {
	// Pull again once half the prefetch is free: batches, not one request per task.
	threshold := (f.prefetch + 1) / 2
	failures := 0
	for f.halt.Err() == nil {
		f.mu.Lock()
		room := f.prefetch - len(f.waiting)
		f.mu.Unlock()
		if room < threshold {
			select {
			case <-f.wake:
			case <-f.halt.Done():
			}
			continue
		}
		if err := f.pull(room); err != nil {
			if f.halt.Err() != nil {
				return
			}
			f.t.w.log.Warn("pulling tasks", "type", f.t.svc.WorkerType, "error", err)
			select {
			case <-time.After(min(100*time.Millisecond<<min(failures, 6), 5*time.Second)):
			case <-f.halt.Done():
			}
			failures++
			continue
		}
		failures = 0
	}
}

// pull makes one pull request for up to room messages, admitting each as it comes.
func (f *feed) pull(room int) error {
	ctx, cancel := context.WithTimeout(f.halt, f.expires)
	defer cancel()
	batch, err := f.consumer.Fetch(room, jetstream.FetchContext(ctx))
	if err != nil {
		return err
	}
	for msg := range batch.Messages() {
		f.admit(msg)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, nats.ErrTimeout) {
		return err
	}
	return nil
}

func (f *feed) admit(msg jetstream.Msg) {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		f.giveBack(msg)
		return
	}
	f.waiting[msg] = struct{}{}
	f.mu.Unlock()
	go func() {
		if !f.t.slots.acquire(f.rank, f.halt.Done()) {
			return // given back by shutdown
		}
		f.mu.Lock()
		_, mine := f.waiting[msg]
		if mine {
			delete(f.waiting, msg)
			f.t.w.attempts.Add(1)
		}
		f.mu.Unlock()
		if !mine {
			f.t.slots.release()
			return
		}
		select {
		case f.wake <- struct{}{}:
		default:
		}
		defer f.t.w.attempts.Done()
		defer f.t.slots.release()
		f.t.runDelivery(msg)
	}()
}

// keepAlive sends +WPI to the waiting messages every heartbeat.
func (f *feed) keepAlive() {
	ticker := time.NewTicker(f.t.heartbeat)
	defer ticker.Stop()
	for {
		select {
		case <-f.halt.Done():
			return
		case <-ticker.C:
			f.mu.Lock()
			for msg := range f.waiting {
				_ = msg.InProgress()
			}
			f.mu.Unlock()
		}
	}
}

func (f *feed) giveBack(msg jetstream.Msg) {
	f.backing.Go(func() {
		f.t.giveBack(context.Background(), msg)
	})
}
