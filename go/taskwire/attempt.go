package taskwire

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// attempt is one delivery of a WorkItem, run to its end ("Running a task" in
// docs/protocol.md): the outcome is durably recorded in the status bucket,
// then the message is settled, so that a crash in between redelivers it.
type attempt struct {
	t        *served
	msg      jetstream.Msg
	item     *taskwirev1.WorkItem
	mine     delivery
	number   int
	started  time.Time
	maxTries int
	// endpoint is a broadcast copy's: this worker's share of a task every endpoint runs.
	endpoint string
	writer   *statusWriter
	packed   *anypb.Any

	beat     sync.Mutex
	lastBeat time.Time
	lapsed   bool

	abortMu sync.Mutex
	abort   context.CancelCauseFunc
	// aborted is why the handler's context ended before it returned, if it did.
	aborted abortCause
}

// abortError is why an attempt's context ended: its cause and the error recorded for it.
type abortError struct {
	cause abortCause
	err   *Error
}

func (e *abortError) Error() string { return e.err.Message }

// runDelivery runs one pulled message to its end. An error means no outcome
// was recorded: the message stays unacked and comes back after ack_wait.
func (t *served) runDelivery(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	item := &taskwirev1.WorkItem{}
	if err == nil {
		err = proto.Unmarshal(msg.Data(), item)
	}
	if err != nil {
		// No attempt can fix it, and its task id is unknown.
		_ = msg.TermWithReason("undecodable WorkItem")
		t.w.log.Error("undecodable WorkItem", "subject", msg.Subject(), "error", err)
		return
	}
	now := time.Now()
	a := &attempt{
		t:        t,
		msg:      msg,
		item:     item,
		mine:     delivery{meta.Sequence.Stream, uint32(meta.NumDelivered)},
		number:   int(meta.NumDelivered),
		started:  now,
		lastBeat: now,
		maxTries: maxAttemptsOf(item),
		endpoint: item.GetEndpoint(),
	}
	if err := a.run(context.Background()); err != nil {
		t.w.log.Error("running a task", "task", item.GetTaskId(), "error", err)
	}
}

func (a *attempt) run(ctx context.Context) error {
	stored, ok, err := a.admit(ctx)
	if err != nil || !ok {
		return err
	}
	a.newWriter(stored)
	if r := startRefusal(a.item, a.number, time.Now()); r != nil {
		return a.refuse(ctx, r)
	}
	var held []*lease
	release := func() {
		for _, l := range held {
			l.release(context.Background())
		}
		held = nil
	}
	defer release()
	if ok, err := a.takeLimits(ctx, &held); err != nil || !ok {
		return err
	}
	if ok, err := a.begin(ctx); err != nil || !ok {
		return err
	}
	failure := a.execute(ctx, held)
	release()
	return a.conclude(ctx, failure)
}

// admit ends the delivery here (given back, cancelled, a copy with nothing
// left to do, a task a later delivery has, one that already ended) or lets it
// run, with the task's record when a redelivery read one (steps 1 and 2).
func (a *attempt) admit(ctx context.Context) (record, bool, error) {
	w, id := a.t.w, a.item.GetTaskId()
	if w.draining.Load() {
		a.report(a.t.giveBack(ctx, a.msg))
		return record{}, false, nil
	}
	if cancelled, err := w.wasCancelled(ctx, id); err != nil || cancelled {
		if cancelled {
			_ = a.msg.Ack() // its CANCELLED record is written by the canceller
			a.report(outcomeCancelled)
		}
		return record{}, false, err
	}
	if a.endpoint != "" {
		current, err := w.store.read(ctx, id)
		if err != nil {
			return record{}, false, err
		}
		if copyDone(current.status, a.endpoint) {
			_ = a.msg.Ack()
			a.report(outcomeSuperseded)
			return record{}, false, nil
		}
		return record{}, true, nil
	}
	deliveries := uint64(a.mine.count)
	resumed := a.item.GetResumes() > 0
	var stored record
	if deliveries > 1 || resumed {
		var err error
		if stored, err = w.store.read(ctx, id); err != nil {
			return record{}, false, err
		}
	}
	v := redeliveryVerdict(stored.status, a.mine)
	if v == verdictOvertaken {
		a.report(outcomeOvertaken)
		return record{}, false, nil
	}
	if resumed && deliveries == 1 && stored.status != nil {
		a.number = max(1, int(stored.status.GetAttempt()))
	} else {
		a.number = spentAttempts(stored.status, a.item, deliveries) + 1
	}
	if v == verdictFinished {
		// The attempt that recorded it may have died before its dead letter or its notification.
		if stored.status.GetState() == taskwirev1.TaskState_TASK_STATE_FAILED {
			if err := a.t.deadLetter(ctx, a.item, stored.status); err != nil {
				return record{}, false, err
			}
		}
		bytes, err := proto.Marshal(stored.status)
		if err != nil {
			return record{}, false, err
		}
		a.t.announce(a.item, stored.status, bytes)
		if err := countChild(ctx, w.js, w.store, stored.status); err != nil {
			return record{}, false, err
		}
		_ = a.msg.Ack()
		a.report(outcomeSuperseded)
		return record{}, false, nil
	}
	return stored, true, nil
}

// newWriter makes the attempt's record: the one found, or one made from the
// WorkItem, now RUNNING with this attempt and delivery.
func (a *attempt) newWriter(stored record) {
	status := stored.status
	revision := stored.revision
	if status == nil {
		status, revision = queuedStatus(a.item), 0
	}
	status.Attempt = uint32(a.number)
	status.MaxAttempts = uint32(a.maxTries)
	status.State = taskwirev1.TaskState_TASK_STATE_RUNNING
	status.StartedAt = timestamppb.New(a.started)
	status.WorkerId = a.t.w.id
	status.DeliverySequence = a.mine.sequence
	status.DeliveryCount = a.mine.count
	a.writer = &statusWriter{
		store:    a.t.w.store,
		interval: statusInterval,
		status:   status,
		revision: revision,
		// Cancelled while it ran (the cancel message missed), or redelivered
		// elsewhere while this worker stopped answering.
		onLost: func(l lost) {
			if l == lostOvertaken {
				a.abortWith(causeOvertaken)
			} else {
				a.abortWith(causeSuperseded)
			}
		},
		logger: func(err error) { a.t.w.log.Warn("writing a task's status", "task", a.item.GetTaskId(), "error", err) },
	}
}

// refuse records why the attempt may not start: expired, or its attempts spent.
func (a *attempt) refuse(ctx context.Context, r *refusal) error {
	if r.state == taskwirev1.TaskState_TASK_STATE_FAILED {
		// Attempts beyond the policy: the last one started and its worker died.
		a.number = a.maxTries
		a.writer.update(func(s *taskwirev1.TaskStatus) { s.Attempt = uint32(a.maxTries) })
	}
	return a.end(ctx, r.state, r.outcome, r.err, nil)
}

// takeLimits waits for the type's limits across all its workers, keeping the
// task alive; a paused queue takes none meanwhile. Not started (draining, or a
// lease publish that failed), the task is given back.
func (a *attempt) takeLimits(ctx context.Context, held *[]*lease) (bool, error) {
	t := a.t
	// A keyed task's key lease came with it, taken by the dispatcher: this attempt holds it now.
	if value := a.msg.Headers().Get(keyLeaseHeader); value != "" {
		subject, seq, _ := strings.Cut(value, " ")
		if n, err := strconv.ParseUint(seq, 10, 64); err == nil {
			*held = append(*held, adoptLease(t.w.js, subject, n, a.item.GetTaskId(), t.ackWait))
		}
	}
	waiting := func() (bool, bool) {
		if t.w.draining.Load() {
			return false, false
		}
		if t.slots.holding() {
			a.beat.Lock()
			due := time.Since(a.lastBeat) >= t.heartbeat
			a.beat.Unlock()
			if due {
				a.alive()
			}
			return false, true
		}
		a.alive()
		return true, true
	}
	for _, limit := range []*leases{t.concurrency, t.rate} {
		if limit == nil {
			continue
		}
		taken, ok, err := limit.acquire(ctx, t.w.id, waiting)
		if err != nil || !ok {
			if err != nil {
				t.w.log.Warn("taking a lease", "task", a.item.GetTaskId(), "error", err)
			}
			a.report(t.giveBack(ctx, a.msg))
			return false, nil
		}
		// Rate leases are neither renewed nor released: they lapse after their window.
		if limit == t.concurrency {
			*held = append(*held, taken)
		}
	}
	return true, nil
}

// begin makes the checks between the limits and the handler: a cancel or the
// expiry that came while it waited, then the recorded start (step 5).
func (a *attempt) begin(ctx context.Context) (bool, error) {
	if cancelled, err := a.cancelledNow(ctx); err != nil || cancelled {
		return false, err
	}
	if a.t.concurrency != nil || a.t.rate != nil {
		if late := expiryError(a.item, time.Now()); late != nil {
			return false, a.end(ctx, taskwirev1.TaskState_TASK_STATE_EXPIRED, outcomeExpired, late, nil)
		}
	}
	if a.endpoint != "" || !recordsStart(uint64(a.mine.count), a.maxTries) {
		return true, nil
	}
	_, l, err := a.writer.begin(ctx)
	if l != notLost {
		a.report(a.settle(taskwirev1.TaskState_TASK_STATE_RUNNING, lostOutcome(l)))
		return false, nil
	}
	if err != nil {
		// The write may have been stored with its PubAck lost: undo it if it was, best effort.
		_, undone, _ := a.writer.finish(ctx, func(s *taskwirev1.TaskStatus) { markReturned(s, a.number-1) })
		if undone == lostOvertaken {
			a.report(outcomeOvertaken)
			return false, nil
		}
		_ = a.msg.Nak()
		a.report(outcomeRequeued)
		a.t.w.log.Warn("recording a task's start", "task", a.item.GetTaskId(), "error", err)
		return false, nil
	}
	// Cancelled while its start was written: nothing would abort it.
	cancelled, err := a.cancelledNow(ctx)
	return err == nil && !cancelled, err
}

// cancelledNow acks a task cancelled before its handler ran: the canceller recorded it.
func (a *attempt) cancelledNow(ctx context.Context) (bool, error) {
	cancelled, err := a.t.w.wasCancelled(ctx, a.item.GetTaskId())
	if err != nil || !cancelled {
		return false, err
	}
	_ = a.msg.Ack()
	a.report(outcomeCancelled)
	return true, nil
}

// execute runs the handler with its deadline and heartbeat (which renews the
// leases); its failure, or nil with the packed result kept for the record.
func (a *attempt) execute(ctx context.Context, leases []*lease) *Error {
	t, item := a.t, a.item
	timeout := 60 * time.Second
	if d := item.GetTimeout(); d != nil {
		timeout = d.AsDuration()
	}
	deadline := a.started.Add(timeout)
	base, abort := context.WithCancelCause(context.WithoutCancel(ctx))
	hctx, stop := context.WithDeadlineCause(base, deadline, &abortError{causeDeadline, &Error{
		Code:      CodeDeadlineExceeded,
		Message:   fmt.Sprintf("attempt %d passed its deadline %s", a.number, deadline.UTC().Format("2006-01-02T15:04:05.000Z")),
		Retryable: true,
	}})
	defer stop()
	a.abortMu.Lock()
	a.abort = abort
	a.abortMu.Unlock()
	t.w.track(item.GetTaskId(), a)
	defer t.w.untrack(item.GetTaskId(), a)

	beating := make(chan struct{})
	var beats sync.WaitGroup
	beats.Go(func() {
		ticker := time.NewTicker(t.heartbeat)
		defer ticker.Stop()
		for {
			select {
			case <-beating:
				return
			case <-ticker.C:
				a.alive()
				for _, l := range leases {
					_, _ = l.renew(context.Background())
				}
			}
		}
	})
	// RUNNING, unless the handler finishes within the interval: also how a worker
	// that missed a cancel message learns of it.
	if a.endpoint == "" {
		a.writer.touch()
	}
	task := &Task{
		ID:          item.GetTaskId(),
		WorkerType:  item.GetWorkerType(),
		Method:      item.GetMethod(),
		Attempt:     a.number,
		MaxAttempts: a.maxTries,
		Deadline:    deadline,
		Metadata:    item.GetMetadata(),
		Endpoint:    a.endpoint,
		WorkerID:    t.w.id,
		heartbeat:   a.alive,
		progress: func(fraction float64, message string) {
			if a.endpoint != "" {
				return // a broadcast's record holds outcomes per endpoint, not progress
			}
			a.writer.update(func(s *taskwirev1.TaskStatus) {
				s.Progress = &taskwirev1.Progress{Fraction: fraction, Message: message, UpdatedAt: timestampNow()}
			})
			a.writer.touch()
		},
	}
	result, failure := a.callHandler(hctx, task)
	close(beating)
	beats.Wait()
	// A result after a cancel or the deadline does not count.
	var aborted *abortError
	if errors.As(context.Cause(hctx), &aborted) {
		a.aborted = aborted.cause
		return aborted.err
	}
	if failure != nil {
		return failure
	}
	packed, err := anypb.New(result)
	if err != nil {
		return &Error{Code: CodeInternal, Message: "packing the result: " + err.Error()}
	}
	if len(packed.GetValue()) > t.maxResultBytes {
		return &Error{Code: CodeResourceExhausted, Message: fmt.Sprintf(
			"its result is %d bytes, over the %d kept (retention.max_result_bytes)", len(packed.GetValue()), t.maxResultBytes)}
	}
	a.packed = packed
	return nil
}

// callHandler decodes the request and runs the method's handler; a panic is a retryable failure.
func (a *attempt) callHandler(ctx context.Context, task *Task) (result proto.Message, failure *Error) {
	method, ok := a.t.methods[a.item.GetMethod()]
	if !ok {
		return nil, &Error{Code: CodeUnimplemented, Message: fmt.Sprintf(
			"this worker has no handler for %s/%s", a.item.GetWorkerType(), a.item.GetMethod())}
	}
	request := method.Input.New().Interface()
	if err := proto.Unmarshal(a.item.GetPayload(), request); err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(
			"payload is not a valid %s: %v", method.Input.Descriptor().FullName(), err)}
	}
	defer func() {
		if recovered := recover(); recovered != nil {
			a.t.w.log.Error("a handler panicked", "task", task.ID, "panic", recovered, "stack", string(debug.Stack()))
			result, failure = nil, &Error{Code: CodeUnknown, Message: fmt.Sprintf("the handler panicked: %v", recovered), Retryable: true}
		}
	}()
	output, err := method.Handle(ctx, task, request)
	if err != nil {
		return nil, errorOf(err)
	}
	if output == nil {
		return nil, &Error{Code: CodeInternal, Message: a.item.GetMethod() + " returned neither a result nor an error"}
	}
	return output, nil
}

// conclude records the handler's outcome, then settles the message (step 6).
func (a *attempt) conclude(ctx context.Context, failure *Error) error {
	if failure == nil {
		err := a.end(ctx, taskwirev1.TaskState_TASK_STATE_SUCCEEDED, outcomeSucceeded, nil, func(s *taskwirev1.TaskStatus) {
			s.Result = a.packed
			s.Error = nil
			if s.Progress != nil {
				s.Progress.Fraction = 1
			}
		})
		if err == nil || !isTooLarge(err) {
			return err
		}
		// A record the server cannot take would fail so at every attempt: the task fails, saying why.
		a.writer.update(func(s *taskwirev1.TaskStatus) { s.Result = nil })
		failure = &Error{Code: CodeResourceExhausted, Message: fmt.Sprintf(
			"its result is too large to store: %v (the status record holds the result)", err)}
	}
	switch failureVerdict(a.aborted, failure, a.number, a.item) {
	case actionRequeue:
		a.report(a.requeue(ctx))
	case actionCancelled:
		_ = a.msg.Ack() // the canceller recorded CANCELLED
		a.report(outcomeCancelled)
	case actionSuperseded:
		_ = a.msg.Ack()
		a.report(outcomeSuperseded)
	case actionOvertaken:
		a.report(outcomeOvertaken)
	case actionRetry:
		return a.end(ctx, taskwirev1.TaskState_TASK_STATE_RETRYING, outcomeRetrying, failure, nil)
	case actionFail:
		return a.end(ctx, taskwirev1.TaskState_TASK_STATE_FAILED, outcomeFailed, failure, nil)
	}
	return nil
}

// requeue gives back an attempt this worker's shutdown interrupted: not the
// task's fault, so not an attempt (step 8).
func (a *attempt) requeue(ctx context.Context) outcome {
	if a.endpoint == "" {
		_, l, err := a.writer.finish(ctx, func(s *taskwirev1.TaskStatus) { markReturned(s, a.number-1) })
		if err == nil && l != notLost {
			return a.settle(taskwirev1.TaskState_TASK_STATE_RUNNING, lostOutcome(l))
		}
	}
	if !a.stalled() {
		_ = a.msg.Nak()
	}
	return outcomeRequeued
}

// end records the attempt's outcome, then settles the message.
func (a *attempt) end(ctx context.Context, state taskwirev1.TaskState, how outcome, failure *Error, fill func(*taskwirev1.TaskStatus)) error {
	if a.endpoint != "" {
		return a.endCopy(ctx, state, how, failure)
	}
	stored, l, err := a.writer.finish(ctx, func(s *taskwirev1.TaskStatus) {
		s.State = state
		if isTerminal(state) {
			s.FinishedAt = timestampNow()
		}
		if failure != nil {
			s.Error = failure.message(a.number, time.Now())
			if state == taskwirev1.TaskState_TASK_STATE_RETRYING {
				s.ErrorHistory = append(s.ErrorHistory, s.Error)
			}
		}
		if fill != nil {
			fill(s)
		}
	})
	if err != nil {
		return err
	}
	if l != notLost {
		a.report(a.settle(state, lostOutcome(l)))
		return nil
	}
	status := &taskwirev1.TaskStatus{}
	if err := proto.Unmarshal(stored.bytes, status); err != nil {
		return err
	}
	// Failed for good: dead-lettered before the ack, so a crash in between
	// redelivers the task, which then finds the FAILED record and dead-letters it.
	if state == taskwirev1.TaskState_TASK_STATE_FAILED {
		if err := a.t.deadLetter(ctx, a.item, status); err != nil {
			return err
		}
	}
	if isTerminal(state) {
		a.t.announce(a.item, status, stored.bytes)
		if err := countChild(ctx, a.t.w.js, a.t.w.store, status); err != nil {
			return err
		}
	}
	a.report(a.settle(state, how))
	return nil
}

// endCopy records a broadcast copy's outcome in the task's record; the last
// endpoint to answer ends the task.
func (a *attempt) endCopy(ctx context.Context, state taskwirev1.TaskState, how outcome, failure *Error) error {
	stored, status, err := recordEndpoint(ctx, a.t.w.store, a.item.GetTaskId(), a.endpoint, func(r *taskwirev1.EndpointResult) {
		r.State = state
		r.FinishedAt = timestampNow()
		r.Error = nil
		if failure != nil {
			r.Error = failure.message(a.number, time.Now())
		}
		r.Result = nil
		if state == taskwirev1.TaskState_TASK_STATE_SUCCEEDED {
			r.Result = a.packed
		}
	})
	if err != nil {
		return err
	}
	if stored == nil {
		a.report(a.settle(state, outcomeSuperseded))
		return nil
	}
	if isTerminal(status.GetState()) {
		a.t.announce(a.item, status, stored.bytes)
	}
	a.report(a.settle(state, how))
	return nil
}

// settle acks, naks with the backoff, or leaves the message, once the outcome is stored.
func (a *attempt) settle(state taskwirev1.TaskState, how outcome) outcome {
	switch settlement(state, how, a.item.GetRetry() != nil, a.stalled()) {
	case settleRetry:
		_ = a.msg.NakWithDelay(backoff(a.item.GetRetry(), a.number, jitterRandom))
	case settleAck:
		_ = a.msg.Ack()
	case settleLeave:
	}
	return how
}

// alive tells JetStream the attempt is alive (+WPI). Silent for longer than
// ack_wait (the process stalled), the delivery may have gone to another worker
// meanwhile: a best-effort write finds out, and a retry is not nak'ed.
func (a *attempt) alive() {
	a.beat.Lock()
	now := time.Now()
	lapsed := now.Sub(a.lastBeat) > a.t.ackWait && !a.lapsed
	if lapsed {
		a.lapsed = true
	}
	a.lastBeat = now
	a.beat.Unlock()
	if lapsed && a.endpoint == "" {
		a.writer.touch()
	}
	_ = a.msg.InProgress()
}

func (a *attempt) stalled() bool {
	a.beat.Lock()
	defer a.beat.Unlock()
	return a.lapsed || time.Since(a.lastBeat) > a.t.ackWait
}

// abortWith ends the handler's context with a cause; the first cause stays.
func (a *attempt) abortWith(cause abortCause) {
	a.abortMu.Lock()
	abort := a.abort
	a.abortMu.Unlock()
	if abort == nil {
		return
	}
	err := map[abortCause]*Error{
		causeCancelled:  {Code: CodeCanceled, Message: "the task was cancelled"},
		causeShutdown:   {Code: CodeUnavailable, Message: "worker " + a.t.w.id + " is shutting down", Retryable: true},
		causeSuperseded: {Code: CodeAborted, Message: "the task already ended (cancelled, or finished by another delivery)"},
		causeOvertaken:  {Code: CodeAborted, Message: "a later delivery of the task, to another worker, has it now"},
	}[cause]
	abort(&abortError{cause, err})
}

func (a *attempt) report(how outcome) {
	a.t.w.throughput.count(a.item.GetWorkerType(), how)
}

func lostOutcome(l lost) outcome {
	if l == lostOvertaken {
		return outcomeOvertaken
	}
	return outcomeSuperseded
}
