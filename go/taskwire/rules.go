package taskwire

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// The decisions of one attempt, as pure functions of what it read: attempt.go
// does the reads and writes, these say what follows from them (the TypeScript
// worker's attempt-rules.ts).

// delivery is the delivery a record names as its last writer.
type delivery struct {
	sequence uint64
	count    uint32
}

func deliveryOfRecord(record *taskwirev1.TaskStatus) delivery {
	return delivery{record.GetDeliverySequence(), record.GetDeliveryCount()}
}

func isTerminal(state taskwirev1.TaskState) bool {
	switch state {
	case taskwirev1.TaskState_TASK_STATE_SUCCEEDED, taskwirev1.TaskState_TASK_STATE_FAILED,
		taskwirev1.TaskState_TASK_STATE_CANCELLED, taskwirev1.TaskState_TASK_STATE_EXPIRED,
		taskwirev1.TaskState_TASK_STATE_INCOMPLETE:
		return true
	}
	return false
}

// overtaken: a later delivery of the task than mine wrote the record, which is
// not terminal; that delivery has the task now. Deliveries compare by stream
// sequence, then by delivery count.
func overtaken(record *taskwirev1.TaskStatus, mine delivery) bool {
	if isTerminal(record.GetState()) {
		return false
	}
	if record.GetDeliverySequence() != mine.sequence {
		return record.GetDeliverySequence() > mine.sequence
	}
	return record.GetDeliveryCount() > mine.count
}

type verdict int

const (
	verdictRun verdict = iota
	verdictOvertaken
	verdictFinished
)

// redeliveryVerdict says what a redelivery does with the task's record (step 2).
func redeliveryVerdict(record *taskwirev1.TaskStatus, mine delivery) verdict {
	switch {
	case record == nil:
		return verdictRun
	case overtaken(record, mine):
		return verdictOvertaken
	case isTerminal(record.GetState()):
		return verdictFinished
	}
	return verdictRun
}

// copyDone: a broadcast copy has nothing left to do (no record, the task
// ended, or this endpoint's outcome is recorded).
func copyDone(record *taskwirev1.TaskStatus, endpoint string) bool {
	if record == nil || isTerminal(record.GetState()) {
		return true
	}
	for _, e := range record.GetEndpoints() {
		if e.GetEndpoint() == endpoint {
			return isTerminal(e.GetState())
		}
	}
	return false
}

// maxAttemptsOf is the attempts a task may make: one without a retry policy.
func maxAttemptsOf(item *taskwirev1.WorkItem) int {
	if n := item.GetRetry().GetMaxAttempts(); n > 0 {
		return int(n)
	}
	return 1
}

// spentAttempts is how many attempts the task spent before this delivery
// (step 1): the record's attempt; with none, a first delivery is presumed to
// have started unless the task has a single attempt.
func spentAttempts(record *taskwirev1.TaskStatus, item *taskwirev1.WorkItem, deliveries uint64) int {
	if deliveries == 1 {
		return 0
	}
	if record != nil {
		return int(record.GetAttempt())
	}
	if maxAttemptsOf(item) > 1 {
		return 1
	}
	return 0
}

// recordsStart: the delivery records its start before its handler runs (step 5).
func recordsStart(deliveries uint64, maxAttempts int) bool {
	return deliveries > 1 || maxAttempts == 1
}

// expiryError is DEADLINE_EXCEEDED when the task's expiry has passed: it must not start.
func expiryError(item *taskwirev1.WorkItem, now time.Time) *Error {
	expires := item.GetExpiresAt()
	if expires == nil || expires.AsTime().After(now) {
		return nil
	}
	return &Error{
		Code:    CodeDeadlineExceeded,
		Message: "not started before its expiry " + expires.AsTime().UTC().Format("2006-01-02T15:04:05.000Z"),
	}
}

// refusal is why an admitted attempt must not start, recorded as its outcome.
type refusal struct {
	state   taskwirev1.TaskState
	outcome outcome
	err     *Error
}

// startRefusal: the task expired (step 3), or its attempts are spent (step 4).
func startRefusal(item *taskwirev1.WorkItem, attempt int, now time.Time) *refusal {
	if err := expiryError(item, now); err != nil {
		return &refusal{taskwirev1.TaskState_TASK_STATE_EXPIRED, outcomeExpired, err}
	}
	maxAttempts := maxAttemptsOf(item)
	if attempt <= maxAttempts {
		return nil
	}
	return &refusal{taskwirev1.TaskState_TASK_STATE_FAILED, outcomeFailed, &Error{
		Code:    CodeAborted,
		Message: fmt.Sprintf("gave up after %d attempt(s): the last ones were lost (worker crashed or stopped heartbeating)", maxAttempts),
	}}
}

// abortCause is why an attempt's context ended before its handler returned.
type abortCause string

const (
	causeDeadline   abortCause = "deadline"
	causeCancelled  abortCause = "cancelled"
	causeShutdown   abortCause = "shutdown"
	causeSuperseded abortCause = "superseded"
	causeOvertaken  abortCause = "overtaken"
)

type failureAction int

const (
	actionRequeue failureAction = iota
	actionCancelled
	actionSuperseded
	actionOvertaken
	actionRetry
	actionFail
)

// failureVerdict is what a failed handler's attempt comes to.
func failureVerdict(cause abortCause, failure *Error, attempt int, item *taskwirev1.WorkItem) failureAction {
	switch cause {
	case causeShutdown:
		return actionRequeue
	case causeCancelled:
		return actionCancelled
	case causeSuperseded:
		return actionSuperseded
	case causeOvertaken:
		return actionOvertaken
	}
	if failure.Retryable && attempt < maxAttemptsOf(item) && item.GetRetry() != nil {
		return actionRetry
	}
	return actionFail
}

// outcome is how an attempt ended, as the worker counts it.
type outcome string

const (
	outcomeSucceeded  outcome = "succeeded"
	outcomeFailed     outcome = "failed"
	outcomeRetrying   outcome = "retrying"
	outcomeCancelled  outcome = "cancelled"
	outcomeExpired    outcome = "expired"
	outcomeRequeued   outcome = "requeued"
	outcomeSuperseded outcome = "superseded"
	outcomeOvertaken  outcome = "overtaken"
)

type settleAction int

const (
	settleAck settleAction = iota
	settleRetry
	settleLeave
)

// settlement is what becomes of the message once an outcome is stored (or found
// recorded by someone else): left to a later delivery, nak'ed with the backoff
// (unless this delivery stalled past ack_wait), or acked.
func settlement(state taskwirev1.TaskState, how outcome, hasRetry, stalled bool) settleAction {
	if how == outcomeOvertaken {
		return settleLeave
	}
	if state == taskwirev1.TaskState_TASK_STATE_RETRYING && how != outcomeSuperseded && hasRetry {
		if stalled {
			return settleLeave
		}
		return settleRetry
	}
	return settleAck
}

// markReturned makes the record queued again with the attempts spent before
// this delivery, and counts the delivery as given back.
func markReturned(status *taskwirev1.TaskStatus, spent int) {
	status.Attempt = uint32(spent)
	status.ReturnedDeliveries++
	if status.GetState() == taskwirev1.TaskState_TASK_STATE_RUNNING {
		if len(status.GetErrorHistory()) > 0 {
			status.State = taskwirev1.TaskState_TASK_STATE_RETRYING
		} else {
			status.State = taskwirev1.TaskState_TASK_STATE_PENDING
		}
	}
	status.WorkerId = ""
}

// backoff is the delay before the attempt after failedAttempt:
// min(initial * multiplier^(failedAttempt-1), max), spread by ± jitter.
// random returns a number in [0, 1).
func backoff(policy *taskwirev1.RetryPolicy, failedAttempt int, random func() float64) time.Duration {
	initial := 1000.0
	if d := policy.GetInitialBackoff(); d != nil {
		initial = float64(d.AsDuration().Milliseconds())
	}
	maxMs := 300_000.0
	if d := policy.GetMaxBackoff(); d != nil {
		maxMs = float64(d.AsDuration().Milliseconds())
	}
	multiplier := policy.GetMultiplier()
	if multiplier == 0 {
		multiplier = 2
	}
	base := math.Min(initial*math.Pow(multiplier, float64(max(0, failedAttempt-1))), maxMs)
	spread := base * policy.GetJitter() * (2*random() - 1)
	return time.Duration(math.Max(0, math.Round(base+spread))) * time.Millisecond
}

// queuedStatus is the record of a task still queued, made from its WorkItem.
func queuedStatus(item *taskwirev1.WorkItem) *taskwirev1.TaskStatus {
	metadata := make(map[string]string, len(item.GetMetadata()))
	for k, v := range item.GetMetadata() {
		metadata[k] = v
	}
	return &taskwirev1.TaskStatus{
		TaskId:       item.GetTaskId(),
		WorkerType:   item.GetWorkerType(),
		Method:       item.GetMethod(),
		State:        taskwirev1.TaskState_TASK_STATE_PENDING,
		Priority:     item.GetPriority(),
		MaxAttempts:  item.GetRetry().GetMaxAttempts(),
		CreatedAt:    item.GetSubmittedAt(),
		UpdatedAt:    item.GetSubmittedAt(),
		Metadata:     metadata,
		NotBefore:    item.GetNotBefore(),
		ExpiresAt:    item.GetExpiresAt(),
		Delivery:     item.GetDelivery(),
		SubmittedBy:  item.GetSubmittedBy(),
		ParentTaskId: item.GetParentTaskId(),
		ChildFailure: item.GetChildFailure(),
		FairnessKey:  item.GetFairnessKey(),
	}
}

// now as a Timestamp.
func timestampNow() *timestamppb.Timestamp { return timestamppb.Now() }

// jitterRandom is the random source of backoffs.
func jitterRandom() float64 { return rand.Float64() }
