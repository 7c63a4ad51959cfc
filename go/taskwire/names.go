package taskwire

import (
	"strconv"
	"strings"

	taskwirev1 "taskwire/go/gen/taskwire/v1"
)

// The NATS names of docs/protocol.md (sdk/core/names.ts makes the same ones).

const (
	statusBucket   = "taskwire_status"
	statusStream   = "KV_" + statusBucket
	workersBucket  = "taskwire_workers"
	keyLeaseHeader = "Taskwire-Key-Lease"
)

// priorities, highest first: the order free slots go in.
var priorities = [...]string{"high", "normal", "low"}

func taskStream(workerType string) string             { return "TASKS_" + workerType }
func consumerName(workerType, priority string) string { return workerType + "_" + priority }
func broadcastStream(workerType string) string        { return "BCAST_" + workerType }
func endpointConsumer(workerType, endpoint string) string {
	return workerType + "_ep_" + endpoint
}
func broadcastFilter(workerType, endpoint string) string {
	return "taskwire.bcast." + workerType + "." + endpoint + ".*"
}
func statusSubject(taskID string) string      { return "$KV." + statusBucket + "." + taskID }
func cancelSubject(workerType string) string  { return "taskwire.cancel." + workerType }
func controlSubject(workerType string) string { return "taskwire.control." + workerType }
func resultSubject(workerType string) string  { return "taskwire.result." + workerType }
func limitStream(workerType string) string    { return "LIMITS_" + workerType }
func limitSubject(workerType, kind string, n int) string {
	return "taskwire.limit." + workerType + "." + kind + "." + strconv.Itoa(n)
}
func deadLetterSubject(workerType, token string) string {
	return "taskwire.dead." + workerType + "." + token
}
func throughputSubject(workerType string) string { return "taskwire.throughput." + workerType }
func indexStateSubject(workerType string, state taskwirev1.TaskState) string {
	return "taskwire.index." + workerType + "." + strings.ToLower(stateName(state))
}
func childrenStream(workerType string) string { return "CHILDREN_" + workerType }
func childrenCounter(workerType, token, counter string) string {
	return "taskwire.children." + workerType + "." + token + "." + counter
}
func fatalChildSubject(workerType, token string) string {
	return "taskwire.index." + workerType + ".children." + token + ".fatal"
}
func indexStream(workerType string) string     { return "INDEX_" + workerType }
func schedulerStream(workerType string) string { return "SCHED_" + workerType }
func parkedSubject(workerType, token string) string {
	return "taskwire.sched." + workerType + ".park." + token
}

// taskSubject is a WorkItem's subject in its type's queue, at its priority.
func taskSubject(item *taskwirev1.WorkItem) string {
	priority := "normal"
	switch item.GetPriority() {
	case taskwirev1.Priority_PRIORITY_HIGH:
		priority = "high"
	case taskwirev1.Priority_PRIORITY_LOW:
		priority = "low"
	}
	return "taskwire.task." + item.GetWorkerType() + "." + priority + "." + idToken(item.GetTaskId())
}

// workerTypeOf is the part of a task id before its first ".".
func workerTypeOf(taskID string) string {
	typ, _, _ := strings.Cut(taskID, ".")
	return typ
}

// idToken is the part of a task id after its first ".".
func idToken(taskID string) string {
	_, token, _ := strings.Cut(taskID, ".")
	return token
}

// stateName is a state as the protocol's enum spells it without its prefix ("SUCCEEDED").
func stateName(state taskwirev1.TaskState) string {
	return strings.TrimPrefix(state.String(), "TASK_STATE_")
}
