package taskwire

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

func TestBackoffGrowsToItsMaximumWithinTheJitter(t *testing.T) {
	policy := &taskwirev1.RetryPolicy{
		InitialBackoff: durationpb.New(100 * time.Millisecond),
		MaxBackoff:     durationpb.New(time.Second),
		Multiplier:     3,
		Jitter:         0.2,
	}
	middle := func() float64 { return 0.5 }
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 300 * time.Millisecond, 3: 900 * time.Millisecond, 4: time.Second} {
		if got := backoff(policy, attempt, middle); got != want {
			t.Errorf("attempt %d: %v, want %v", attempt, got, want)
		}
	}
	if got := backoff(policy, 1, func() float64 { return 0 }); got != 80*time.Millisecond {
		t.Errorf("the least jitter: %v, want 80ms", got)
	}
	if got := backoff(&taskwirev1.RetryPolicy{}, 2, middle); got != 2*time.Second {
		t.Errorf("the defaults (1 s, ×2): %v, want 2s", got)
	}
}

func TestAttemptNumbers(t *testing.T) {
	retried := &taskwirev1.WorkItem{Retry: &taskwirev1.RetryPolicy{MaxAttempts: 3}}
	once := &taskwirev1.WorkItem{}
	cases := []struct {
		name       string
		record     *taskwirev1.TaskStatus
		item       *taskwirev1.WorkItem
		deliveries uint64
		spent      int
	}{
		{"a first delivery spent none", &taskwirev1.TaskStatus{Attempt: 2}, retried, 1, 0},
		{"a redelivery counts the record's", &taskwirev1.TaskStatus{Attempt: 2}, retried, 3, 2},
		{"a record given back spent none", &taskwirev1.TaskStatus{Attempt: 0}, retried, 2, 0},
		{"no record: the first delivery is presumed started", nil, retried, 2, 1},
		{"no record of a single attempt: not started", nil, once, 2, 0},
	}
	for _, c := range cases {
		if got := spentAttempts(c.record, c.item, c.deliveries); got != c.spent {
			t.Errorf("%s: %d, want %d", c.name, got, c.spent)
		}
	}
	if recordsStart(1, 3) || !recordsStart(2, 3) || !recordsStart(1, 1) {
		t.Error("every redelivery records its start, and a single attempt's first delivery")
	}
}

func TestALaterDeliveryOwnsTheTask(t *testing.T) {
	mine := delivery{sequence: 10, count: 2}
	running := func(seq uint64, count uint32) *taskwirev1.TaskStatus {
		return &taskwirev1.TaskStatus{State: taskwirev1.TaskState_TASK_STATE_RUNNING, DeliverySequence: seq, DeliveryCount: count}
	}
	if !overtaken(running(10, 3), mine) || !overtaken(running(11, 1), mine) {
		t.Error("a higher count, or a higher sequence, is a later delivery")
	}
	if overtaken(running(10, 2), mine) || overtaken(running(9, 5), mine) {
		t.Error("the same delivery, or an earlier message, is not")
	}
	done := running(11, 1)
	done.State = taskwirev1.TaskState_TASK_STATE_CANCELLED
	if overtaken(done, mine) || redeliveryVerdict(done, mine) != verdictFinished {
		t.Error("a terminal record is the task's end, whoever wrote it")
	}
	if redeliveryVerdict(nil, mine) != verdictRun || redeliveryVerdict(running(12, 1), mine) != verdictOvertaken {
		t.Error("no record runs; a later delivery's is left alone")
	}
}

func TestStartRefusals(t *testing.T) {
	now := time.Now()
	item := &taskwirev1.WorkItem{Retry: &taskwirev1.RetryPolicy{MaxAttempts: 2}}
	if startRefusal(item, 2, now) != nil {
		t.Error("attempt 2 of 2 runs")
	}
	if r := startRefusal(item, 3, now); r == nil || r.state != taskwirev1.TaskState_TASK_STATE_FAILED || r.err.Code != CodeAborted {
		t.Errorf("attempt 3 of 2 fails ABORTED: %+v", r)
	}
	item.ExpiresAt = timestamppb.New(now.Add(-time.Second))
	if r := startRefusal(item, 1, now); r == nil || r.state != taskwirev1.TaskState_TASK_STATE_EXPIRED || r.err.Code != CodeDeadlineExceeded || r.err.Retryable {
		t.Errorf("an expired task: %+v", r)
	}
}

func TestFailuresAndSettlements(t *testing.T) {
	item := &taskwirev1.WorkItem{Retry: &taskwirev1.RetryPolicy{MaxAttempts: 3}}
	retryable := &Error{Code: CodeUnknown, Retryable: true}
	if failureVerdict("", retryable, 2, item) != actionRetry || failureVerdict("", retryable, 3, item) != actionFail {
		t.Error("retried while attempts remain")
	}
	if failureVerdict("", &Error{Code: CodeFailedPrecondition}, 1, item) != actionFail {
		t.Error("a non-retryable error fails at once")
	}
	if failureVerdict(causeShutdown, retryable, 1, item) != actionRequeue || failureVerdict(causeCancelled, retryable, 1, item) != actionCancelled {
		t.Error("a shutdown gives back; a cancel is the canceller's")
	}
	retrying := taskwirev1.TaskState_TASK_STATE_RETRYING
	if settlement(retrying, outcomeRetrying, true, false) != settleRetry || settlement(retrying, outcomeRetrying, true, true) != settleLeave {
		t.Error("a retry is nak'ed, unless the delivery stalled")
	}
	if settlement(taskwirev1.TaskState_TASK_STATE_SUCCEEDED, outcomeOvertaken, true, false) != settleLeave ||
		settlement(taskwirev1.TaskState_TASK_STATE_FAILED, outcomeFailed, true, false) != settleAck {
		t.Error("an overtaken attempt leaves the message; a failure acks it")
	}
}

func TestErrors(t *testing.T) {
	if e := errorOf(NonRetryable(NewError(CodeNotFound, "gone"))); e.Code != CodeNotFound || e.Retryable {
		t.Errorf("NonRetryable keeps the code: %+v", e)
	}
	if e := errorOf(NonRetryable(errString("nope"))); e.Code != CodeFailedPrecondition || e.Retryable || e.Message != "nope" {
		t.Errorf("NonRetryable of a plain error: %+v", e)
	}
	if e := errorOf(errString("flaky")); e.Code != CodeUnknown || !e.Retryable {
		t.Errorf("a plain error is a retryable UNKNOWN: %+v", e)
	}
	if NewError(CodeInvalidArgument, "bad").Retryable || !NewError(CodeUnavailable, "later").Retryable {
		t.Error("codes that describe the input are not retried")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestMarkReturned(t *testing.T) {
	status := &taskwirev1.TaskStatus{State: taskwirev1.TaskState_TASK_STATE_RUNNING, Attempt: 2, WorkerId: "w", ErrorHistory: []*taskwirev1.TaskError{{}}}
	markReturned(status, 1)
	if status.GetState() != taskwirev1.TaskState_TASK_STATE_RETRYING || status.GetAttempt() != 1 || status.GetReturnedDeliveries() != 1 || status.GetWorkerId() != "" {
		t.Errorf("given back after an error: %v", status)
	}
}
